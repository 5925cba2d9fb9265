package gitrepo

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mygitops/mgo/internal/faults"
	"github.com/mygitops/mgo/internal/gittest"
)

// crashChildEnv holds the Options (JSON) of the child process of
// TestKilledAfterCommit.
const crashChildEnv = "GITREPO_TEST_CRASH_CHILD"

// mgo is killed (SIGKILL, at faults.AfterCommit) once a deploy's commit
// exists in the clone and before it is pushed. Reopening the clone
// discards that commit: the head is the remote's, the work tree holds its
// files and nothing else. Fetch right after Open then brings what was
// pushed meanwhile (e.g. a bad file reverted on the remote).
func TestKilledAfterCommit(t *testing.T) {
	if cfg := os.Getenv(crashChildEnv); cfg != "" {
		crashChild(t, cfg)
		return
	}
	t.Parallel()
	f := newHTTPFixture(t)
	ctx := testContext(t)
	seed := f.remote.Head(t)
	cfg, err := json.Marshal(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledAfterCommit$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(cfg), faults.EnvKillAt+"="+faults.AfterCommit)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL\n%s", err, out)
	}
	if f.remote.Head(t) != seed || f.server.Count("receive-pack") != 0 {
		t.Fatalf("the child pushed before the fault point: remote head %s, %d pushes", f.remote.Head(t), f.server.Count("receive-pack"))
	}
	// The kill left the commit's files in the work tree.
	b, err := os.ReadFile(filepath.Join(workTree(f.opts), valuesFile))
	if err != nil || !strings.Contains(string(b), `tag: "9.9.9"`) {
		t.Fatalf("work tree after the kill: %q, %v; want the unpushed edit", b, err)
	}

	r, _ := f.repo(t)
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if head, err := r.Head(ctx); err != nil || head != seed {
		t.Fatalf("head after reopening: %s, %v; want the remote's %s", head, err, seed)
	}
	checkClone(t, f.opts, f.remote)

	// Someone fixes the repository while mgo is down: a reopened clone is
	// stale until Fetch, which Open leaves to the caller.
	other := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com")
	fix, err := other.PushChange(map[string]string{valuesFile: "fixed: true\n"}, "fix the values file", 1)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := f.repo(t)
	if err := r2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if head, _ := r2.Head(ctx); head != seed {
		t.Fatalf("reopened head %s, want the stale %s", head, seed)
	}
	if head, err := r2.Fetch(ctx); err != nil || head != fix {
		t.Fatalf("fetch after open: %s, %v; want %s", head, err, fix)
	}
	err = r2.Read(ctx, func(dir, head string) error {
		b, err := os.ReadFile(filepath.Join(dir, valuesFile))
		if head != fix || string(b) != "fixed: true\n" {
			t.Errorf("read after fetch at %s: %q", head, b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkClone(t, f.opts, f.remote)
}

// crashChild clones and applies a change, and is killed at the fault
// point before the push.
func crashChild(t *testing.T, cfg string) {
	var opts Options
	if err := json.Unmarshal([]byte(cfg), &opts); err != nil {
		t.Fatal(err)
	}
	r, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(testContext(t), setTag("9.9.9"), info("jane", "deploy 9.9.9", "dep-1"))
	t.Fatalf("not killed at %s: %+v, %v", faults.AfterCommit, res, err)
}
