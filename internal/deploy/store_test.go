package deploy

import (
	"errors"
	"path/filepath"
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
	list, err := s.List(10)
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
	} {
		err := c.req.Normalize()
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || (errors.As(err, &fe) && fe.Field != c.field) {
			t.Errorf("%s: %v", c.field, err)
		}
	}
}
