package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/gittest"
)

type sshFixture struct {
	remote *gittest.Remote
	server *gittest.SSHServer
	key    *gittest.Key
	opts   Options
}

func newSSHFixture(t *testing.T) *sshFixture {
	t.Helper()
	remote := gittest.NewRemote(t, gittest.Skeleton())
	key := gittest.NewKey(t)
	server := gittest.NewSSHServer(t, remote, key.Public)
	opts := DefaultOptions()
	opts.URL = server.URL
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	opts.Auth = Auth{SSHKey: SecretRef{File: key.WriteFile(t)}, KnownHosts: server.KnownHosts(t)}
	return &sshFixture{remote: remote, server: server, key: key, opts: opts}
}

// Clone, change, commit and push over SSH with a key and a checked host
// key.
func TestSSHApply(t *testing.T) {
	t.Parallel()
	f := newSSHFixture(t)
	logger, logs := newLogger(t)
	r, err := New(f.opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	res, err := r.Apply(ctx, setTag("1.4.2"), info("Jane Doe <jane@acme.io>", "deploy 1.4.2", "dep-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || f.remote.Head(t) != res.Commit {
		t.Fatalf("result %+v, remote head %s", res, f.remote.Head(t))
	}
	c := logOf(t, f.remote, "-1")[0]
	if c.AuthorName != "Jane Doe" || c.AuthorEmail != "jane@acme.io" {
		t.Errorf("author %s <%s>", c.AuthorName, c.AuthorEmail)
	}
	if f.server.Count("git-upload-pack") < 2 || f.server.Count("git-receive-pack") != 1 {
		t.Errorf("sessions: upload-pack %d, receive-pack %d", f.server.Count("git-upload-pack"), f.server.Count("git-receive-pack"))
	}
	if strings.Contains(logs.String(), "OPENSSH PRIVATE KEY") {
		t.Errorf("the key is in the log")
	}
}

// A server whose host key changed is refused (ErrHostKey); so is a
// known_hosts without the host; the insecure opt-out accepts it.
func TestSSHHostKey(t *testing.T) {
	t.Parallel()
	f := newSSHFixture(t)
	ctx := testContext(t)

	r, err := New(f.opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	f.server.SetHostKey(gittest.NewKey(t).Signer)
	_, err = r.Fetch(ctx)
	if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("fetch from a server with a new host key: %v, want ErrHostKey", err)
	}
	t.Logf("error: %v", err)
	if _, err := r.Apply(ctx, setTag("6.6.6"), info("mallory", "deploy", "dep-1")); !errors.Is(err, ErrHostKey) {
		t.Fatalf("apply: %v, want ErrHostKey", err)
	}
	if f.server.Count("git-receive-pack") != 0 {
		t.Fatal("pushed to an unverified server")
	}

	// A fresh clone with the old known_hosts fails the same way.
	opts := f.opts
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	r2, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Open(ctx); !errors.Is(err, ErrHostKey) {
		t.Fatalf("clone: %v, want ErrHostKey", err)
	}

	// known_hosts without this host fails at construction.
	other := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(other, []byte("[example.com]:2222 "+strings.SplitN(f.server.KnownHostsLine(), " ", 2)[1]+"\n"), 0o644)
	opts.Auth.KnownHosts = other
	if _, err := New(opts, nil); !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "holds no host key") {
		t.Fatalf("New with a known_hosts lacking the host: %v", err)
	}

	// The test-only opt-out accepts the new key.
	opts.Auth.KnownHosts = ""
	opts.Auth.InsecureIgnoreHostKey = true
	logger, logs := newLogger(t)
	r3, err := New(opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r3.Apply(ctx, setTag("1.4.2"), info("jane", "deploy", "dep-2")); err != nil || !res.Changed {
		t.Fatalf("insecure apply: %+v, %v", res, err)
	}
	if !strings.Contains(logs.String(), "host key checking is disabled") {
		t.Errorf("no warning logged: %s", logs)
	}
}

// An unknown client key is ErrAuth; an encrypted key needs its passphrase.
func TestSSHClientKey(t *testing.T) {
	t.Parallel()
	f := newSSHFixture(t)
	ctx := testContext(t)

	opts := f.opts
	opts.Auth.SSHKey = SecretRef{File: gittest.NewKey(t).WriteFile(t)}
	r, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Open(ctx); !errors.Is(err, ErrAuth) {
		t.Fatalf("unknown key: %v, want ErrAuth", err)
	}
	if f.server.Count("rejected-key") == 0 {
		t.Error("the server saw no rejected key")
	}

	// The key from an environment variable, as an already-read value, and
	// a garbage key, which New refuses without printing it.
	t.Run("sources", func(t *testing.T) {
		opts := f.opts
		opts.Dir = filepath.Join(t.TempDir(), "clone")
		opts.Auth.SSHKey = SecretRef{Value: NewSecret(string(f.key.PEM))}
		r, err := New(opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Open(ctx); err != nil {
			t.Fatal(err)
		}
		opts.Auth.SSHKey = SecretRef{Value: NewSecret("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END OPENSSH PRIVATE KEY-----\n")}
		_, err = New(opts, nil)
		if !errors.Is(err, ErrInvalidOptions) || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Fatalf("garbage key: %v", err)
		}
	})
}
