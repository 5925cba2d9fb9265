package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Revert of a commit makes a new commit on the current head restoring the
// files it changed, leaving later unrelated commits alone; reverting it
// again changes nothing and pushes nothing.
func TestRevert(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)
	seedValues := f.remote.File(t, valuesFile)

	deploy, err := r.Apply(ctx, setTag("1.4.2"), info("jane@acme.io", "deploy 1.4.2", "dep-1"))
	if err != nil || !deploy.Changed {
		t.Fatalf("deploy: %+v, %v", deploy, err)
	}
	// An unrelated change after it, which the revert keeps; it also adds a
	// file the revert must not touch.
	later, err := r.Apply(ctx, setLine("installations/prod/images.txt", "svc", "x:1"), info("joe@acme.io", "deploy svc", "dep-2"))
	if err != nil || !later.Changed {
		t.Fatalf("later: %+v, %v", later, err)
	}

	in := info("ops@acme.io", "", "rollback-1")
	res, err := r.Revert(ctx, deploy.Commit, in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Attempts != 1 || f.remote.Head(t) != res.Commit || res.Head != res.Commit {
		t.Fatalf("result %+v, remote head %s", res, f.remote.Head(t))
	}
	if got := f.remote.File(t, valuesFile); got != seedValues {
		t.Errorf("values file after the revert:\n%s\nwant\n%s", got, seedValues)
	}
	if got := f.remote.File(t, "installations/prod/images.txt"); got != "svc: x:1" {
		t.Errorf("the later change was undone: %q", got)
	}
	c := logOf(t, f.remote, "-1")[0]
	if len(c.Parents) != 1 || c.Parents[0] != later.Commit {
		t.Errorf("parents %v, want [%s]", c.Parents, later.Commit)
	}
	if c.AuthorEmail != "ops@acme.io" || c.CommitterName != "mgo" {
		t.Errorf("author %s, committer %s", c.AuthorEmail, c.CommitterName)
	}
	msg := ParseMessage(c.Body)
	if msg.Summary != `Revert "deploy 1.4.2"` || !strings.HasPrefix(msg.Body, "This reverts commit "+deploy.Commit+".") ||
		msg.Trailers.Reverts != deploy.Commit || msg.Trailers.DeploymentID != "rollback-1" {
		t.Errorf("message %+v", msg)
	}
	// git agrees that the revert undoes exactly the deploy's diff.
	if d := f.remote.Git(t, "diff", deploy.Commit+"^", res.Commit, "--", valuesFile); d != "" {
		t.Errorf("values file differs from before the deploy:\n%s", d)
	}

	// Already reverted: no commit, no push.
	pushes := f.server.Count("receive-pack")
	again, err := r.Revert(ctx, deploy.Commit, info("ops@acme.io", "", "rollback-2"))
	if err != nil || again.Changed || again.Head != res.Commit || again.Attempts != 0 {
		t.Fatalf("second revert: %+v, %v", again, err)
	}
	if f.server.Count("receive-pack") != pushes || f.remote.Head(t) != res.Commit {
		t.Error("the second revert pushed")
	}
	checkClone(t, f.opts, f.remote)
}

// A revert of a commit whose files were changed again since is a conflict
// naming the files; nothing is pushed. Unknown commits are refused.
func TestRevertConflictAndUnknownCommit(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)

	first, err := r.Apply(ctx, setTag("2.0.0"), info("jane", "deploy 2.0.0", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, setTag("2.0.1"), info("jane", "deploy 2.0.1", "dep-2")); err != nil {
		t.Fatal(err)
	}
	head := f.remote.Head(t)
	pushes := f.server.Count("receive-pack")

	res, err := r.Revert(ctx, first.Commit, info("ops", "", "rollback"))
	var conflict *RevertConflictError
	if !errors.Is(err, ErrRevertConflict) || !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want a RevertConflictError", err)
	}
	t.Logf("error: %v", err)
	if conflict.Commit != first.Commit || len(conflict.Files) != 1 || conflict.Files[0] != valuesFile {
		t.Errorf("conflict %+v", conflict)
	}
	if res.Changed || f.remote.Head(t) != head || f.server.Count("receive-pack") != pushes {
		t.Fatalf("a conflicting revert pushed: %+v", res)
	}
	// The work tree is back at the head.
	r.Read(ctx, func(dir, h string) error {
		b, _ := os.ReadFile(filepath.Join(dir, valuesFile))
		if h != head || !strings.Contains(string(b), `tag: "2.0.1"`) {
			t.Errorf("after the conflict: head %s, values %q", h, b)
		}
		return nil
	})

	for _, bad := range []string{"", "1234abc", strings.Repeat("0", 40), "not a hash at all; rm -rf /"} {
		if _, err := r.Revert(ctx, bad, info("ops", "", "rollback")); !errors.Is(err, ErrUnknownCommit) {
			t.Errorf("revert %q: %v, want ErrUnknownCommit", bad, err)
		}
	}
}

// A revert that loses a push race is redone on the new head, like Apply.
func TestRevertRetriesAfterLostRace(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)
	deploy, err := r.Apply(ctx, setTag("1.4.2"), info("jane", "deploy 1.4.2", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	// The next push loses: the hook moves the branch before git updates it.
	hook := `#!/bin/sh
[ -f race-once ] || exit 0
rm -f race-once
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
c=$(echo sneaky | GIT_AUTHOR_NAME=S GIT_AUTHOR_EMAIL=s@example.com GIT_COMMITTER_NAME=S GIT_COMMITTER_EMAIL=s@example.com \
	git commit-tree refs/heads/main^{tree} -p refs/heads/main) || exit 1
git update-ref refs/heads/main "$c" || exit 1
echo "$c" > sneaky
`
	if err := os.WriteFile(filepath.Join(f.remote.Dir, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.remote.Dir, "race-once"), nil, 0o644)

	res, err := r.Revert(ctx, deploy.Commit, info("ops", "", "rollback"))
	if err != nil {
		t.Fatal(err)
	}
	sneaky, _ := os.ReadFile(filepath.Join(f.remote.Dir, "sneaky"))
	log := logOf(t, f.remote, "-2")
	if !res.Changed || res.Attempts != 2 || log[0].Hash != res.Commit || log[1].Hash != strings.TrimSpace(string(sneaky)) {
		t.Fatalf("result %+v, history %+v", res, log)
	}
	if !strings.Contains(f.remote.File(t, valuesFile), `tag: "1.4.1"`) {
		t.Error("the revert did not land")
	}
}
