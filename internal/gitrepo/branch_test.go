package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPushBranch(t *testing.T) {
	f := newHTTPFixture(t)
	// Every commit a minute after the last, so that a repeat makes a
	// commit with another hash.
	var tick atomic.Int64
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f.opts.Now = func() time.Time { return start.Add(time.Duration(tick.Add(1)) * time.Minute) }
	r, logs := f.repo(t)
	ctx := testContext(t)
	head := f.remote.Head(t)
	const branch = "mgo/promote/prod-1"

	res, err := r.PushBranch(ctx, branch, setTag("2.0.0"), info("Alice <alice@example.com>", "promote app to prod", "d-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Commit == "" || res.Base != head || res.Branch != branch {
		t.Fatalf("result %+v, want a commit on %s", res, head)
	}
	if got := strings.TrimSpace(f.remote.Git(t, "rev-parse", "refs/heads/"+branch)); got != res.Commit {
		t.Fatalf("remote branch at %s, want %s", got, res.Commit)
	}
	if got := strings.TrimSpace(f.remote.Git(t, "rev-parse", res.Commit+"^")); got != head {
		t.Fatalf("parent of the branch commit is %s, want the head %s", got, head)
	}
	if got := f.remote.Head(t); got != head {
		t.Fatalf("default branch moved to %s", got)
	}
	if got := f.remote.Git(t, "show", res.Commit+":"+valuesFile); !strings.Contains(got, `"2.0.0"`) {
		t.Fatalf("branch commit's values file:\n%s", got)
	}
	// The local clone stays at the default branch's head.
	if got, err := r.Head(ctx); err != nil || got != head {
		t.Fatalf("Head = %s, %v; want %s", got, err, head)
	}
	b, err := os.ReadFile(filepath.Join(workTree(f.opts), valuesFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"2.0.0"`) {
		t.Fatal("the work tree kept the branch's change")
	}

	// Again, as after a restart: the branch is there with the same tree.
	again, err := r.PushBranch(ctx, branch, setTag("2.0.0"), info("Alice <alice@example.com>", "promote app to prod", "d-1"))
	if err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if again.Commit != res.Commit || !again.Changed {
		t.Fatalf("repeat gave %+v, want the existing commit %s", again, res.Commit)
	}
	if !strings.Contains(logs.String(), "branch already pushed") {
		t.Fatalf("the repeat did not find the branch:\n%s", logs.String())
	}
	// Again from a fresh Repo on the same clone directory.
	r2, _ := f.repo(t)
	if again, err = r2.PushBranch(ctx, branch, setTag("2.0.0"), info("Alice <alice@example.com>", "promote app to prod", "d-1")); err != nil || again.Commit != res.Commit {
		t.Fatalf("repeat after restart: %+v, %v", again, err)
	}

	// Again from a new clone, which has to fetch the branch's commit.
	fresh := *f
	fresh.opts.Dir = filepath.Join(t.TempDir(), "clone2")
	r3, logs3 := fresh.repo(t)
	if again, err = r3.PushBranch(ctx, branch, setTag("2.0.0"), info("Alice <alice@example.com>", "promote app to prod", "d-1")); err != nil || again.Commit != res.Commit {
		t.Fatalf("repeat from a new clone: %+v, %v", again, err)
	}
	if !strings.Contains(logs3.String(), "ref=refs/heads/"+branch) {
		t.Fatalf("the new clone did not fetch the branch:\n%s", logs3.String())
	}
	if got, err := r3.Head(ctx); err != nil || got != head {
		t.Fatalf("new clone's Head = %s, %v; want %s", got, err, head)
	}

	// Other content on the same branch is refused and names it.
	_, err = r2.PushBranch(ctx, branch, setTag("3.0.0"), info("Alice <alice@example.com>", "promote app to prod", "d-2"))
	if !errors.Is(err, ErrBranchExists) || !strings.Contains(err.Error(), branch) {
		t.Fatalf("other content: err = %v, want ErrBranchExists naming %s", err, branch)
	}
	if got := strings.TrimSpace(f.remote.Git(t, "rev-parse", "refs/heads/"+branch)); got != res.Commit {
		t.Fatalf("remote branch moved to %s", got)
	}
	b, err = os.ReadFile(filepath.Join(workTree(f.opts), valuesFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"3.0.0"`) {
		t.Fatal("the work tree kept the refused change")
	}

	// A change that changes nothing pushes nothing.
	none, err := r2.PushBranch(ctx, "mgo/promote/none", func(string) (bool, error) { return false, nil }, info("Alice <alice@example.com>", "nothing", "d-3"))
	if err != nil || none.Changed || none.Commit != "" {
		t.Fatalf("no change: %+v, %v", none, err)
	}
	if out := f.remote.Git(t, "branch", "--list", "mgo/promote/none"); strings.TrimSpace(out) != "" {
		t.Fatalf("branch pushed without a change: %s", out)
	}
	if got := f.remote.Head(t); got != head {
		t.Fatalf("default branch moved to %s", got)
	}

	// The default branch still takes changes.
	ap, err := r2.Apply(ctx, setTag("4.0.0"), info("Alice <alice@example.com>", "deploy", "d-4"))
	if err != nil || !ap.Changed {
		t.Fatalf("Apply after PushBranch: %+v, %v", ap, err)
	}
	if got := strings.TrimSpace(f.remote.Git(t, "rev-parse", ap.Commit+"^")); got != head {
		t.Fatalf("Apply's commit has parent %s, want %s", got, head)
	}
}

func TestPushBranchRefusesBadNames(t *testing.T) {
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)
	head := f.remote.Head(t)
	for _, name := range []string{"", "a..b", "has space", "-x", "ctl\x01", "/a", "a/", "a.lock", ".hidden", "a@{1}", "a:b", "a~1", "a//b", "@", "main"} {
		_, err := r.PushBranch(ctx, name, setTag("9.9.9"), info("Alice <alice@example.com>", "bad", "d-9"))
		if err == nil || !strings.Contains(err.Error(), "invalid branch name") {
			t.Errorf("PushBranch(%q) err = %v, want an invalid branch name", name, err)
		}
	}
	if refs := strings.TrimSpace(f.remote.Git(t, "for-each-ref", "--format=%(refname)", "refs/heads/")); refs != "refs/heads/main" {
		t.Fatalf("the remote has branches %q, want only main", refs)
	}
	if got := f.remote.Head(t); got != head {
		t.Fatalf("default branch moved to %s", got)
	}
	for _, name := range []string{"mgo/promote/prod-1", "feature_x", "a.b/c-d"} {
		if err := ValidBranchName(name); err != nil {
			t.Errorf("ValidBranchName(%q) = %v", name, err)
		}
	}
}
