package gitrepo

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gittest"
)

// Applying a change that is already there pushes nothing: the remote head
// stays, Result.Changed is false and Result.Head is that head.
func TestReapplyIsNoOp(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, _ := f.repo(t)
	ctx := testContext(t)
	first, err := r.Apply(ctx, setTag("1.4.2"), info("jane", "deploy 1.4.2", "dep-1"))
	if err != nil || !first.Changed {
		t.Fatalf("first: %+v, %v", first, err)
	}
	pushes := f.server.Count("receive-pack")
	for i := 0; i < 2; i++ {
		res, err := r.Apply(ctx, setTag("1.4.2"), info("joe", "deploy 1.4.2 again", fmt.Sprint("dep-again-", i)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed || res.Commit != "" || res.Head != first.Commit || res.Attempts != 0 {
			t.Fatalf("re-apply: %+v, want unchanged at %s", res, first.Commit)
		}
	}
	if f.remote.Head(t) != first.Commit || f.server.Count("receive-pack") != pushes {
		t.Fatalf("re-applying pushed: head %s, %d pushes", f.remote.Head(t), f.server.Count("receive-pack")-pushes)
	}
	// Also in a batch: the second of two identical changes is a no-op.
	br, err := r.ApplyBatch(ctx, []Change{
		{Func: setTag("1.4.3"), Info: info("jane", "deploy 1.4.3", "dep-2")},
		{Func: setTag("1.4.3"), Info: info("joe", "deploy 1.4.3", "dep-3")},
	})
	if err != nil || !br.Changes[0].Changed || br.Changes[1].Changed || br.Head != br.Changes[0].Commit {
		t.Fatalf("batch: %+v, %v", br, err)
	}
	if got := f.remote.Count(t); got != 3 {
		t.Errorf("%d commits, want 3", got)
	}
}

// Loose objects (those of pushed and fetched commits) are packed into one
// packfile once there are enough of them; the clone stays sound and usable,
// also after a restart.
func TestPackLooseObjects(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	r, logs := f.repo(t)
	r.packLooseMin = 12
	ctx := testContext(t)
	other := gittest.NewPerson(t, f.remote.Dir, "Other", "other@example.com")
	for i := 0; i < 6; i++ {
		if _, err := other.PushChange(map[string]string{fmt.Sprintf("other/%d.txt", i): "x\n"}, "other", 1); err != nil {
			t.Fatal(err)
		}
		if res, err := r.Apply(ctx, setTag(fmt.Sprint("3.0.", i)), info("jane", "deploy", fmt.Sprint("dep-", i))); err != nil || !res.Changed {
			t.Fatalf("apply %d: %+v, %v", i, res, err)
		}
	}
	if !strings.Contains(logs.String(), "packed loose objects") {
		t.Fatalf("nothing was packed: %s", logs)
	}
	checkCloneState(t, f.opts, f.remote)
	if n := looseObjects(f.opts); n >= 12 {
		t.Errorf("%d loose objects left", n)
	}
	if n := len(packfiles(f.opts)); n < 2 {
		t.Errorf("%d packfiles, want the clone's and at least one more", n)
	}

	// A restart reads the packed objects.
	r2, _ := f.repo(t)
	if _, err := r2.Revert(ctx, f.remote.Git(t, "rev-parse", "main~1"), info("ops", "", "rollback")); err != nil {
		t.Fatal(err)
	}
	checkCloneState(t, f.opts, f.remote)
}

// No credential shows up in a log line (debug level included), in an
// error, or when options are printed or marshalled, whether operations
// succeed or fail: HTTPS password and bearer token, SSH key and
// passphrase.
func TestCredentialsNeverLogged(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	var secrets []string
	var texts []string // everything that was logged, returned or printed
	check := func(t *testing.T) {
		t.Helper()
		for _, text := range texts {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Fatalf("a credential (%.4s...) leaked in:\n%s", s, text)
				}
			}
		}
	}
	record := func(opts Options, err error) {
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err))
		}
		b, _ := json.Marshal(opts)
		texts = append(texts, fmt.Sprintf("%v", opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts), string(b))
	}

	t.Run("https", func(t *testing.T) {
		f := newHTTPFixture(t)
		secrets = append(secrets, httpPass)
		// Success, with the password inline rather than in a file.
		f.opts.Auth.Password = SecretRef{Value: NewSecret(httpPass)}
		r, logs := f.repo(t)
		_, err := r.Apply(ctx, setTag("1.4.2"), info("jane", "deploy", "dep-1"))
		if err != nil {
			t.Fatal(err)
		}
		record(f.opts, err)
		// The server changes its password: push and fetch fail.
		f.server.SetCredentials(httpUser, "rotated")
		_, err = r.Apply(ctx, setTag("1.4.3"), info("jane", "deploy", "dep-2"))
		if err == nil {
			t.Fatal("apply with a stale password succeeded")
		}
		record(f.opts, err)
		texts = append(texts, logs.String())

		// A wrong password on the first clone.
		const wrong = "wrong-pass-4f1e9a"
		secrets = append(secrets, wrong)
		opts := f.opts
		opts.Dir = filepath.Join(t.TempDir(), "clone")
		opts.Auth.Password = writeSecret(t, wrong)
		logger, logs2 := newLogger(t)
		r2, err := New(opts, logger)
		if err != nil {
			t.Fatal(err)
		}
		err = r2.Open(ctx)
		if err == nil {
			t.Fatal("clone with a wrong password succeeded")
		}
		record(opts, err)
		texts = append(texts, logs2.String())

		// A bearer token the server does not take.
		const token = "tok-3c2b1a-bearer-secret"
		secrets = append(secrets, token)
		opts.Auth = Auth{BearerToken: SecretRef{Value: NewSecret(token)}}
		logger, logs3 := newLogger(t)
		r3, err := New(opts, logger)
		if err != nil {
			t.Fatal(err)
		}
		err = r3.Open(ctx)
		if err == nil {
			t.Fatal("clone with a bearer token succeeded")
		}
		record(opts, err)
		texts = append(texts, logs3.String())
		check(t)
	})

	t.Run("ssh", func(t *testing.T) {
		f := newSSHFixture(t)
		other := gittest.NewKey(t)
		// The base64 body of the private keys, line by line.
		for _, k := range []*gittest.Key{f.key, other} {
			for _, line := range strings.Split(string(k.PEM), "\n") {
				if len(line) > 20 && !strings.HasPrefix(line, "-----") {
					secrets = append(secrets, line)
				}
			}
		}
		f.opts.Auth.SSHKey = SecretRef{Value: NewSecret(string(f.key.PEM))}
		logger, logs := newLogger(t)
		r, err := New(f.opts, logger)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Apply(ctx, setTag("1.4.2"), info("jane", "deploy", "dep-1"))
		if err != nil {
			t.Fatal(err)
		}
		record(f.opts, err)
		// The server's host key changes: fetch fails.
		f.server.SetHostKey(gittest.NewKey(t).Signer)
		_, err = r.Fetch(ctx)
		if err == nil {
			t.Fatal("fetch from a changed host key succeeded")
		}
		record(f.opts, err)
		texts = append(texts, logs.String())

		// A key the server does not know, from a file, with a passphrase
		// that does not match: New fails without printing either.
		const pass = "passphrase-7d6e5f"
		secrets = append(secrets, pass)
		opts := f.opts
		opts.Auth.SSHKey = SecretRef{Value: NewSecret(string(other.PEM))}
		opts.Auth.SSHKeyPassphrase = SecretRef{Value: NewSecret(pass)}
		_, err = New(opts, nil)
		record(opts, err)
		check(t)
	})
}
