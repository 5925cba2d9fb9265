package gittest

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRemoteSeedAndHistory(t *testing.T) {
	t.Parallel()
	r := NewRemote(t, Skeleton())
	if got := r.File(t, "installations/prod/app-values.yaml"); !strings.Contains(got, `tag: "1.4.1"`) {
		t.Fatalf("seeded values file:\n%s", got)
	}
	// 1,000 commits are enough here; gitrepo's TestLargeHistory imports
	// 10,000.
	start := time.Now()
	r.AddHistory(t, 1000)
	t.Logf("fast-import of 1000 commits: %v", time.Since(start))
	if n := r.Count(t); n != 1001 {
		t.Fatalf("commits = %d, want 1001", n)
	}
}

func TestHTTPServerAuth(t *testing.T) {
	t.Parallel()
	r := NewRemote(t, Skeleton())
	s := NewHTTPServer(t, r, "ci", "s3cret")

	u, _ := url.Parse(s.URL)
	u.User = url.UserPassword("ci", "s3cret")
	p := NewPerson(t, u.String(), "Other", "other@example.com")
	commit, err := p.PushChange(map[string]string{"notes.txt": "hello\n"}, "notes", 1)
	if err != nil {
		t.Fatal(err)
	}
	if head := r.Head(t); head != commit {
		t.Fatalf("remote head %s, want pushed commit %s", head, commit)
	}
	if s.Count("receive-pack") != 1 {
		t.Errorf("receive-pack requests = %d, want 1", s.Count("receive-pack"))
	}

	u.User = url.UserPassword("ci", "wrong")
	_, err = Run("", nil, nil, "clone", u.String(), filepath.Join(t.TempDir(), "c"))
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("clone with a wrong password: %v", err)
	}
}

func TestSSHServer(t *testing.T) {
	t.Parallel()
	r := NewRemote(t, Skeleton())
	key := NewKey(t)
	s := NewSSHServer(t, r, key.Public)
	knownHosts := s.KnownHosts(t)
	sshCmd := func(keyFile string) string {
		return fmt.Sprintf("ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes",
			keyFile, knownHosts)
	}
	keyFile := key.WriteFile(t)
	dir := filepath.Join(t.TempDir(), "c")
	if _, err := Run("", nil, []string{"GIT_SSH_COMMAND=" + sshCmd(keyFile)}, "clone", "--quiet", s.URL, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(dir, nil, nil, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "--allow-empty", "-m", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(dir, nil, []string{"GIT_SSH_COMMAND=" + sshCmd(keyFile)}, "push", "--quiet", "origin", "HEAD:main"); err != nil {
		t.Fatal(err)
	}
	if s.Count("git-receive-pack") != 1 || s.Count("git-upload-pack") != 1 {
		t.Errorf("sessions: upload-pack %d, receive-pack %d", s.Count("git-upload-pack"), s.Count("git-receive-pack"))
	}

	// An unknown key is refused.
	other := NewKey(t).WriteFile(t)
	if _, err := Run("", nil, []string{"GIT_SSH_COMMAND=" + sshCmd(other)}, "ls-remote", s.URL); err == nil {
		t.Fatal("ls-remote with an unknown key succeeded")
	}
	// A changed host key is refused by a client that knows the old one.
	s.SetHostKey(NewKey(t).Signer)
	_, err := Run("", nil, []string{"GIT_SSH_COMMAND=" + sshCmd(keyFile)}, "ls-remote", s.URL)
	if err == nil || !strings.Contains(err.Error(), "HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("ls-remote after a host key change: %v", err)
	}
}
