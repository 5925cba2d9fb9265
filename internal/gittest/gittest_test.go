package gittest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
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

func TestHTTPServerModes(t *testing.T) {
	t.Parallel()
	r := NewRemote(t, Skeleton())
	s := NewHTTPServer(t, r, "ci", "s3cret")
	refs := s.URL + "/info/refs?service=git-upload-pack"
	get := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, refs, nil)
		req.SetBasicAuth("ci", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	lsRemote := func() error {
		u, _ := url.Parse(s.URL)
		u.User = url.UserPassword("ci", "s3cret")
		_, err := Run("", nil, nil, "ls-remote", u.String())
		return err
	}
	if err := lsRemote(); err != nil {
		t.Fatalf("up: %v", err)
	}

	s.SetMode(Down)
	if err := lsRemote(); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("down: ls-remote %v, want a 503", err)
	}
	if s.Count("down") == 0 {
		t.Error("no request counted as down")
	}

	s.SetMode(Hang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if code, err := get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: status %d, error %v; want the client's deadline", code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("hang: the client waited %v", d)
	}
	// A hanging request is answered once the server is back.
	answered := make(chan int, 1)
	go func() {
		code, err := get(context.Background())
		if err != nil {
			t.Error(err)
		}
		answered <- code
	}()
	for s.Count("hung") < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case code := <-answered:
		t.Fatalf("answered %d while hanging", code)
	case <-time.After(100 * time.Millisecond):
	}
	s.SetMode(Up)
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("after up: status %d", code)
	}
	if err := lsRemote(); err != nil {
		t.Fatalf("back up: %v", err)
	}
	// A request left hanging when the test ends does not hold up cleanup.
	s.SetMode(Hang)
	go get(context.Background())
}

func TestHangingServer(t *testing.T) {
	t.Parallel()
	s := NewHangingServer(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var b [1]byte
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a hanging server: %v, want a timeout", err)
	}
	for s.Accepted() < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Release()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("read after Release: %v, want EOF", err)
	}
	if !strings.HasPrefix(s.HTTPURL, "http://"+s.Addr+"/") || !strings.HasPrefix(s.SSHURL, "ssh://git@"+s.Addr+"/") {
		t.Errorf("URLs %s %s", s.HTTPURL, s.SSHURL)
	}
	s.Close()
	if _, err := net.Dial("tcp", s.Addr); err == nil {
		t.Error("dial after Close succeeded")
	}
}
