package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(path); err == nil {
		t.Fatal("a second open of the same store succeeded")
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	req := Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "r/app", Tag: "1", Client: "ci", IdempotencyKey: "k1"}
	a := &Deployment{ID: newID(t0), Request: req, Status: Queued, Times: Times{Queued: t0}}
	if prev, err := s.Create(a); err != nil || prev != nil {
		t.Fatalf("create: %v %v", prev, err)
	}
	b := &Deployment{ID: newID(t0.Add(time.Second)), Request: req, Status: Queued}
	prev, err := s.Create(b)
	if err != nil || prev == nil || prev.ID != a.ID {
		t.Fatalf("same idempotency key: %+v %v, want the first deployment", prev, err)
	}
	if _, err := s.Get(b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the repeated request was stored: %v", err)
	}
	other := req
	other.Client = "someone-else"
	c := &Deployment{ID: newID(t0.Add(2 * time.Second)), Request: other, Status: Succeeded}
	if prev, err := s.Create(c); err != nil || prev != nil {
		t.Fatalf("same key, other client: %v %v", prev, err)
	}
	list, err := s.List(10, nil)
	if err != nil || len(list) != 2 || list[0].ID != c.ID || list[1].ID != a.ID {
		t.Fatalf("list: %v %v, want newest first", list, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the unfinished deployment is marked failed.
	s, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Interrupted(t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("interrupted: %d %v", n, err)
	}
	got, err := s.Get(a.ID)
	if err != nil || got.Status != Failed || got.Error == "" {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	if got, _ := s.Get(c.ID); got.Status != Succeeded {
		t.Errorf("a finished deployment changed: %+v", got)
	}
}

func TestRequestNormalize(t *testing.T) {
	ok := Request{Cluster: " prod ", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io:5000/acme/app",
		Tag: "1.4.2@sha256:" + "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90", Client: "ci"}
	if err := ok.Normalize(); err != nil {
		t.Fatal(err)
	}
	if ok.Cluster != "prod" || ok.Tag != "1.4.2" || ok.Digest == "" || ok.Author != "ci" {
		t.Errorf("normalized: %+v", ok)
	}
	for _, c := range []struct {
		field string
		req   Request
	}{
		{"cluster", Request{TriggerRepo: "a/b", ImageRepo: "r", Tag: "1", Author: "x"}},
		{"triggerRepo", Request{Cluster: "c", TriggerRepo: "../etc", ImageRepo: "r", Tag: "1", Author: "x"}},
		{"imageRepo", Request{Cluster: "c", TriggerRepo: "a/b", Tag: "1", Author: "x"}},
		{"imageTag", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Author: "x"}},
		{"digest", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Tag: "1@sha256:aa", Digest: "sha256:bb", Author: "x"}},
		{"author", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Tag: "1"}},
		{"author", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Tag: "1", Author: "Mallory \u202egpj.exe"}},
		{"author", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Tag: "1", Author: "Line\u2028Break <x@y.z>"}},
		{"author", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Tag: "1", Author: "Para\u2029graph"}},
		{"author", Request{Cluster: "c", TriggerRepo: "a/b", ImageRepo: "r", Tag: "1", Author: "zero\u200dwidth"}},
	} {
		err := c.req.Normalize()
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v", c.field, err)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInterruptedDeploymentKeyCanBeRetried(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	req := Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "r/app", Tag: "1", Client: "ci", IdempotencyKey: "k"}
	a := &Deployment{ID: newID(t0), Request: req, Status: Pushed, Times: Times{Queued: t0}}
	if _, err := s.Create(a); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// mgo was killed with a in flight; at the next start it is failed.
	s, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Interrupted(t0.Add(time.Minute)); n != 1 || err != nil {
		t.Fatalf("interrupted: %d %v", n, err)
	}
	b := &Deployment{ID: newID(t0.Add(2 * time.Minute)), Request: req, Status: Queued}
	prev, err := s.Create(b)
	if err != nil || prev != nil {
		t.Fatalf("retry of the interrupted deployment's key: %+v %v, want a new deployment", prev, err)
	}
	if d, err := s.Lookup("ci", "k"); err != nil || d == nil || d.ID != b.ID {
		t.Errorf("the key points at %+v (%v), want the retry", d, err)
	}
	other := req
	other.Tag = "2"
	c := &Deployment{ID: newID(t0.Add(3 * time.Minute)), Request: other, Status: Queued}
	if prev, err := s.Create(c); err != nil || prev == nil || prev.ID != b.ID {
		t.Errorf("another request with the key of a queued deployment: %+v %v, want the queued one", prev, err)
	}
}

func TestStoreListFiltersWhileScanning(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	// One staging deployment, then 20 newer prod ones.
	for i, cluster := range append([]string{"staging"}, slices.Repeat([]string{"prod"}, 20)...) {
		d := &Deployment{ID: newID(t0.Add(time.Duration(i) * time.Second)), Request: Request{Cluster: cluster}, Status: Succeeded}
		if _, err := s.Create(d); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(5, func(d *Deployment) bool { return d.Request.Cluster == "staging" })
	if err != nil || len(list) != 1 || list[0].Request.Cluster != "staging" {
		t.Errorf("staging deployments among the newest prod ones: %d %v", len(list), err)
	}
}

// corruptions damage a store file in the ways disks and crashes do.
var corruptions = map[string]func(t *testing.T, path string){
	"both meta pages overwritten": func(t *testing.T, path string) { overwrite(t, path, 0, 2*pageSize) },
	"data pages overwritten":      func(t *testing.T, path string) { overwrite(t, path, 2*pageSize, -1) },
	"truncated":                   func(t *testing.T, path string) { truncate(t, path, pageSize+100) },
	"truncated after the metas":   func(t *testing.T, path string) { truncate(t, path, 3*pageSize) },
}

var pageSize = int64(os.Getpagesize())

// overwrite fills [off, off+n) of the file (n<0: to its end) with a
// repeating garbage pattern.
func overwrite(t *testing.T, path string, off, n int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if n < 0 {
		n = fi.Size() - off
	}
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptStoreIsMovedAside(t *testing.T) {
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "deployments.db")
			s, err := OpenStore(path)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			for i := range 200 {
				d := &Deployment{ID: newID(t0.Add(time.Duration(i) * time.Second)), Request: Request{Cluster: "prod", Author: strings.Repeat("a", 200)}, Status: Succeeded}
				if _, err := s.Create(d); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			corrupt(t, path)

			s, err = OpenStore(path)
			if err != nil {
				t.Fatalf("open of a corrupt store: %v", err)
			}
			defer s.Close()
			rec := s.Recovered()
			if rec == nil || !strings.HasPrefix(filepath.Base(rec.MovedTo), "deployments.db.corrupt-") || rec.Cause == nil {
				t.Fatalf("recovery: %+v", rec)
			}
			if _, err := os.Stat(rec.MovedTo); err != nil {
				t.Errorf("the corrupt file was not kept: %v", err)
			}
			// The new store works.
			if n, err := s.Interrupted(t0); n != 0 || err != nil {
				t.Errorf("interrupted on the new store: %d %v", n, err)
			}
			if list, err := s.List(10, nil); len(list) != 0 || err != nil {
				t.Errorf("new store lists %d (%v)", len(list), err)
			}
			d := &Deployment{ID: newID(t0), Request: Request{Cluster: "prod", Client: "ci", IdempotencyKey: "k"}, Status: Queued}
			if _, err := s.Create(d); err != nil {
				t.Errorf("create in the new store: %v", err)
			}
		})
	}
}

func TestHealthyStoreIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deployments.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &Deployment{ID: newID(time.Now()), Request: Request{Cluster: "prod"}, Status: Succeeded}
	if _, err := s.Create(d); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Recovered() != nil {
		t.Fatalf("a healthy store was moved aside: %+v", s.Recovered())
	}
	if _, err := s.Get(d.ID); err != nil {
		t.Error(err)
	}
	// A second process is refused, and does not take the file for corrupt.
	if _, err := OpenStore(path); err == nil {
		t.Fatal("second open succeeded")
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("a locked store was moved aside: %v", m)
	}
}

// Since reads the records queued at or after a time, oldest first, and no
// more than asked for.
func TestStoreSince(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Hour)
		d := &Deployment{ID: newID(at), Request: Request{Cluster: "prod"}, Status: Succeeded, Times: Times{Queued: at}}
		if err := s.Put(d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	got, err := s.Since(t0.Add(2*time.Hour), 100)
	if err != nil || len(got) != 3 || got[0].ID != ids[2] || got[2].ID != ids[4] {
		t.Fatalf("since the third: %d records (%v), want %v", len(got), err, ids[2:])
	}
	if got, _ := s.Since(t0.Add(90*time.Minute), 2); len(got) != 2 || got[0].ID != ids[2] {
		t.Errorf("limit 2: %d records", len(got))
	}
	if got, _ := s.Since(t0.Add(10*time.Hour), 100); len(got) != 0 {
		t.Errorf("after the last: %d records", len(got))
	}
}
