package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gittest"
)

// A change over HTTP with basic auth lands as one commit whose author is the
// requester, committer mgo, and whose message carries the trailers; the git
// CLI reads it back from the bare repository.
func TestHTTPApplyCommitAndPush(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, logs := f.repo(t)
	ctx := testContext(t)
	seed := f.remote.Head(t)

	in := info("jane@acme.io", "deploy registry.acme.io/acme/app:1.4.2 to prod/app", "dep-0001")
	in.Body = "Requested from pipeline 4711."
	res, err := r.Apply(ctx, setTag("1.4.2"), in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Commit == "" || res.Head != res.Commit || res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
	if head := f.remote.Head(t); head != res.Commit {
		t.Fatalf("remote head %s, want %s", head, res.Commit)
	}
	if got := f.remote.File(t, valuesFile); !strings.Contains(got, `tag: "1.4.2"`) {
		t.Fatalf("values file on the remote:\n%s", got)
	}

	log := logOf(t, f.remote, seed+"..main")
	if len(log) != 1 {
		t.Fatalf("%d new commits, want 1", len(log))
	}
	c := log[0]
	if c.AuthorName != "jane" || c.AuthorEmail != "jane@acme.io" {
		t.Errorf("author %s <%s>, want jane <jane@acme.io>", c.AuthorName, c.AuthorEmail)
	}
	if c.CommitterName != "mgo" || c.CommitterEmail != "mgo@users.noreply.mgo" {
		t.Errorf("committer %s <%s>", c.CommitterName, c.CommitterEmail)
	}
	if len(c.Parents) != 1 || c.Parents[0] != seed {
		t.Errorf("parents %v, want [%s]", c.Parents, seed)
	}
	wantMsg := "deploy registry.acme.io/acme/app:1.4.2 to prod/app\n\n" +
		"Requested from pipeline 4711.\n\n" +
		"Trigger-Repo: gitlab.com/acme/app\nRequested-By: ci-acme\nDeployment-Id: dep-0001\n"
	if strings.TrimRight(c.Body, "\n") != strings.TrimRight(wantMsg, "\n") {
		t.Errorf("message:\n%q\nwant\n%q", c.Body, wantMsg)
	}
	// git itself parses the trailers.
	trailers := f.remote.Git(t, "log", "-1", "--format=%(trailers:key=Deployment-Id,valueonly)%(trailers:key=Trigger-Repo,valueonly)", "main")
	if trailers != "dep-0001\ngitlab.com/acme/app" {
		t.Errorf("git reads trailers %q", trailers)
	}
	if ParseMessage(c.Body) != in.Message {
		t.Errorf("ParseMessage = %+v, want %+v", ParseMessage(c.Body), in.Message)
	}
	if strings.Contains(logs.String(), httpPass) {
		t.Errorf("the password is in the log:\n%s", logs)
	}
	checkClone(t, f.opts, f.remote)
}

// Nothing to change means no commit, whether the ChangeFunc says so or
// claims a change that leaves the tree as it was.
func TestNoChangeNoCommit(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)
	seed := f.remote.Head(t)
	pushes := f.server.Count("receive-pack")

	res, err := r.Apply(ctx, setTag("1.4.1"), info("jane", "deploy 1.4.1", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Commit != "" || res.Head != seed || res.Attempts != 0 {
		t.Fatalf("result %+v, want unchanged at %s", res, seed)
	}
	// Claims a change but rewrites the same bytes.
	same := func(dir string) (bool, error) {
		p := filepath.Join(dir, valuesFile)
		b, err := os.ReadFile(p)
		if err != nil {
			return false, err
		}
		return true, os.WriteFile(p, b, 0o644)
	}
	res, err = r.Apply(ctx, same, info("jane", "rewrite", "dep-2"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Head != seed {
		t.Fatalf("result %+v, want unchanged at %s", res, seed)
	}
	// Says it changed nothing although it wrote a file: nothing committed,
	// and the stray file is gone.
	stray := func(dir string) (bool, error) {
		return false, os.WriteFile(filepath.Join(dir, "stray.txt"), []byte("x"), 0o644)
	}
	if res, err = r.Apply(ctx, stray, info("jane", "stray", "dep-3")); err != nil || res.Changed {
		t.Fatalf("result %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(workTree(f.opts), "stray.txt")); !os.IsNotExist(err) {
		t.Errorf("stray.txt left in the work tree: %v", err)
	}
	if head := f.remote.Head(t); head != seed {
		t.Fatalf("remote head moved to %s", head)
	}
	if n := f.server.Count("receive-pack"); n != pushes {
		t.Errorf("%d pushes for no change", n-pushes)
	}
}

// Adds, modifications and deletions are all staged; a failed change leaves
// nothing behind; a panicking one is an error, not a crash.
func TestStagingAndFailedChanges(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)

	res, err := r.Apply(ctx, func(dir string) (bool, error) {
		if err := os.Remove(filepath.Join(dir, "mygitops.yaml")); err != nil {
			return false, err
		}
		if err := os.MkdirAll(filepath.Join(dir, "installations/staging"), 0o755); err != nil {
			return false, err
		}
		return setTag("2.0.0")(dir)
	}, info("jane", "restructure", "dep-1"))
	if err != nil || !res.Changed {
		t.Fatalf("result %+v, %v", res, err)
	}
	files := f.remote.Git(t, "ls-tree", "-r", "--name-only", "main")
	if files != valuesFile {
		t.Fatalf("files on the remote:\n%s", files)
	}

	boom := errors.New("boom")
	head := f.remote.Head(t)
	res, err = r.Apply(ctx, func(dir string) (bool, error) {
		os.WriteFile(filepath.Join(dir, "half-done.txt"), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(dir, valuesFile), []byte("garbage"), 0o644)
		return true, boom
	}, info("jane", "fails", "dep-2"))
	if !errors.Is(err, boom) || !errors.Is(err, ErrChange) || res.Changed {
		t.Fatalf("result %+v, err %v; want ErrChange wrapping boom", res, err)
	}
	_, err = r.Apply(ctx, func(string) (bool, error) { panic("editor bug") }, info("jane", "panics", "dep-3"))
	if !errors.Is(err, ErrChange) || !strings.Contains(err.Error(), "editor bug") {
		t.Fatalf("panic: %v", err)
	}
	if f.remote.Head(t) != head {
		t.Fatal("a failed change was pushed")
	}
	err = r.Read(ctx, func(dir, h string) error {
		if h != head {
			t.Errorf("Read head %s, want %s", h, head)
		}
		if _, err := os.Stat(filepath.Join(dir, "half-done.txt")); !os.IsNotExist(err) {
			t.Errorf("half-done.txt survived: %v", err)
		}
		b, err := os.ReadFile(filepath.Join(dir, valuesFile))
		if err != nil || !strings.Contains(string(b), `tag: "2.0.0"`) {
			t.Errorf("values file after a failed change: %q %v", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The next change works as usual.
	if res, err := r.Apply(ctx, setTag("2.0.1"), info("jane", "deploy 2.0.1", "dep-4")); err != nil || !res.Changed {
		t.Fatalf("result %+v, %v", res, err)
	}
	checkClone(t, f.opts, f.remote)
}

// A wrong password fails with ErrAuth; neither the error nor the log holds
// the password. A rotated password file is picked up without a new Repo.
func TestHTTPWrongPassword(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	const wrong = "not-the-password-0xdeadbeef"
	secret := writeSecret(t, wrong)
	f.opts.Auth.Password = secret
	r, logs := f.repo(t)
	ctx := testContext(t)

	_, err := r.Apply(ctx, setTag("1.4.2"), info("jane", "deploy", "dep-1"))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	t.Logf("error: %v", err)
	for _, s := range []string{wrong, httpPass} {
		if strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) {
			t.Fatalf("a password leaked: error %q, log %q", err, logs)
		}
	}
	if f.server.Count("unauthorized") == 0 {
		t.Fatal("the server saw no unauthorized request")
	}
	if _, err := os.Stat(f.opts.Dir); !os.IsNotExist(err) {
		t.Errorf("a failed clone left %s behind", f.opts.Dir)
	}

	// Rotate: the secret file now holds the right password.
	if err := os.WriteFile(secret.File, []byte(httpPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Apply(ctx, setTag("1.4.2"), info("jane", "deploy", "dep-1")); err != nil || !res.Changed {
		t.Fatalf("after rotation: %+v, %v", res, err)
	}
	// The server rotates away from it: ErrAuth again on push.
	f.server.SetCredentials(httpUser, "rotated")
	if _, err := r.Apply(ctx, setTag("1.4.3"), info("jane", "deploy", "dep-2")); !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
}

// A clone is reopened after a restart; a directory holding something else
// is refused.
func TestReopen(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	ctx := testContext(t)
	r1, _ := f.repo(t)
	if _, err := r1.Apply(ctx, setTag("1.5.0"), info("jane", "deploy", "dep-1")); err != nil {
		t.Fatal(err)
	}
	fetches := f.server.Count("upload-pack")

	// Leave a mess, as a crash in the middle of a change would.
	for name, content := range map[string]string{valuesFile: "half-written", "untracked.txt": "x", "sub/.git/config": "x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(workTree(f.opts), name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(workTree(f.opts), name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	r2, logs := f.repo(t)
	head, err := r2.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head != f.remote.Head(t) {
		t.Fatalf("reopened head %s, want %s", head, f.remote.Head(t))
	}
	if n := f.server.Count("upload-pack"); n != fetches {
		t.Errorf("reopening fetched %d times; want no clone", n-fetches)
	}
	if !strings.Contains(logs.String(), "reopened clone") {
		t.Errorf("log: %s", logs)
	}
	r2.Read(ctx, func(dir, _ string) error {
		b, _ := os.ReadFile(filepath.Join(dir, valuesFile))
		if !strings.Contains(string(b), `tag: "1.5.0"`) {
			t.Errorf("reopened tree not reset: %q", b)
		}
		for _, name := range []string{"untracked.txt", "sub"} {
			if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
				t.Errorf("%s survived the reopen", name)
			}
		}
		return nil
	})

	// The same directory configured for another repository.
	other := gittest.NewHTTPServer(t, gittest.NewRemote(t, gittest.Skeleton()), httpUser, httpPass)
	opts := f.opts
	opts.URL = other.URL
	r3, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r3.Open(ctx); !errors.Is(err, ErrWorkdir) {
		t.Fatalf("open a clone of another URL: %v, want ErrWorkdir", err)
	}
	// A non-empty directory that is no clone.
	opts.Dir = t.TempDir()
	os.WriteFile(filepath.Join(opts.Dir, "precious.txt"), []byte("x"), 0o644)
	r4, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r4.Open(ctx); !errors.Is(err, ErrWorkdir) {
		t.Fatalf("open a non-empty directory: %v, want ErrWorkdir", err)
	}
}

// A server-side refusal (here a pre-receive hook) with the branch not moved
// is ErrPushRejected at once, without retries.
func TestPushRejectedByHook(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	hook := filepath.Join(f.remote.Dir, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'branch is frozen' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, _ := f.repo(t)
	res, err := r.Apply(testContext(t), setTag("9.9.9"), info("jane", "deploy", "dep-1"))
	if !errors.Is(err, ErrPushRejected) {
		t.Fatalf("err = %v, want ErrPushRejected", err)
	}
	t.Logf("error: %v", err)
	if res.Attempts != 1 || f.server.Count("receive-pack") != 1 {
		t.Errorf("attempts %d, pushes %d; want 1 and 1", res.Attempts, f.server.Count("receive-pack"))
	}
	r.Read(testContext(t), func(dir, head string) error {
		if head != f.remote.Head(t) {
			t.Errorf("after the rejection the clone is at %s, want the remote head", head)
		}
		return nil
	})
	checkClone(t, f.opts, f.remote)
}

// A file:// URL needs no credentials.
func TestFileURL(t *testing.T) {
	t.Parallel()
	remote := gittest.NewRemote(t, gittest.Skeleton())
	opts := DefaultOptions()
	opts.URL = "file://" + remote.Dir
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	r, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(testContext(t), setTag("3.0.0"), info("jane", "deploy", "dep-1"))
	if err != nil || !res.Changed || remote.Head(t) != res.Commit {
		t.Fatalf("result %+v, %v", res, err)
	}
}
