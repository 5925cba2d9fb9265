package gittest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Key is an ed25519 SSH key pair.
type Key struct {
	// PEM is the private key in OpenSSH format, unencrypted.
	PEM    []byte
	Signer ssh.Signer
	Public ssh.PublicKey
}

// NewKey generates an ed25519 key pair.
func NewKey(t testing.TB) *Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "gittest")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{PEM: pem.EncodeToMemory(block), Signer: signer, Public: signer.PublicKey()}
}

// WriteFile writes the private key to a file (mode 0600) in a temporary
// directory and returns its path.
func (k *Key) WriteFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, k.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SSHServer serves a Remote over SSH on a loopback port: an exec request
// for git-upload-pack or git-receive-pack runs that program on the bare
// repository. Clients authenticate with a public key.
type SSHServer struct {
	// URL is the repository's URL, e.g. ssh://git@127.0.0.1:41234/repo.git.
	URL string
	// Addr is host:port of the listener.
	Addr string

	remote   *Remote
	listener net.Listener
	wg       sync.WaitGroup

	mu         sync.Mutex
	hostKey    ssh.Signer
	authorized []ssh.PublicKey
	conns      map[net.Conn]struct{}
	counts     map[string]int // "git-upload-pack", "git-receive-pack", "rejected-key"
	closed     bool
}

// NewSSHServer serves remote over SSH with a fresh host key; clients may log
// in (as any user) with one of the authorized keys. The server stops when
// the test ends.
func NewSSHServer(t testing.TB, remote *Remote, authorized ...ssh.PublicKey) *SSHServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{
		Addr:       l.Addr().String(),
		remote:     remote,
		listener:   l,
		hostKey:    NewKey(t).Signer,
		authorized: authorized,
		conns:      map[net.Conn]struct{}{},
		counts:     map[string]int{},
	}
	s.URL = fmt.Sprintf("ssh://git@%s/%s", s.Addr, filepath.Base(remote.Dir))
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// HostKey returns the server's current public host key.
func (s *SSHServer) HostKey() ssh.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostKey.PublicKey()
}

// SetHostKey replaces the host key for new connections, as a reinstalled
// (or impersonated) server would.
func (s *SSHServer) SetHostKey(signer ssh.Signer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostKey = signer
}

// KnownHostsLine is the known_hosts line for the server's current host key.
func (s *SSHServer) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey())
}

// KnownHosts writes a known_hosts file holding the server's current host key
// and returns its path.
func (s *SSHServer) KnownHosts(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(s.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Count returns how many sessions of a kind the server ran:
// "git-upload-pack", "git-receive-pack", or "rejected-key" for failed logins.
func (s *SSHServer) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

func (s *SSHServer) close() {
	s.mu.Lock()
	s.closed = true
	s.listener.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *SSHServer) config() *ssh.ServerConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	authorized := s.authorized
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range authorized {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			s.mu.Lock()
			s.counts["rejected-key"]++
			s.mu.Unlock()
			return nil, fmt.Errorf("unknown public key")
		},
	}
	cfg.AddHostKey(s.hostKey)
	return cfg
}

func (s *SSHServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *SSHServer) serveConn(c net.Conn) {
	conn, chans, reqs, err := ssh.NewServerConn(c, s.config())
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(ch, chReqs)
		}()
	}
}

// serveSession waits for an exec request and runs the git program it names.
func (s *SSHServer) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var env []string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" {
				env = append(env, kv.Name+"="+kv.Value)
			}
			req.Reply(true, nil)
		case "exec":
			var cmd struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
				req.Reply(false, nil)
				return
			}
			program, dir, ok := s.parseCommand(cmd.Command)
			if !ok {
				req.Reply(false, nil)
				fmt.Fprintf(ch.Stderr(), "unsupported command %q\n", cmd.Command)
				sendExit(ch, 128)
				return
			}
			req.Reply(true, nil)
			s.mu.Lock()
			s.counts[program]++
			s.mu.Unlock()
			sendExit(ch, s.run(ch, program, dir, env))
			go ssh.DiscardRequests(reqs)
			return
		default:
			req.Reply(false, nil)
		}
	}
}

// parseCommand accepts `git-upload-pack '/repo.git'` and
// `git receive-pack 'repo.git'` for the served repository.
func (s *SSHServer) parseCommand(command string) (program, dir string, ok bool) {
	command = strings.Replace(command, "git ", "git-", 1)
	program, arg, found := strings.Cut(command, " ")
	if !found || (program != "git-upload-pack" && program != "git-receive-pack") {
		return "", "", false
	}
	arg = strings.Trim(strings.TrimSpace(arg), `'"`)
	if strings.TrimPrefix(arg, "/") != filepath.Base(s.remote.Dir) {
		return "", "", false
	}
	return program, s.remote.Dir, true
}

func (s *SSHServer) run(ch ssh.Channel, program, dir string, env []string) int {
	cmd := exec.Command("git", strings.TrimPrefix(program, "git-"), dir)
	cmd.Env = Env(env...)
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 128
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 128
	}
	// Not waited for: the copy ends when the client closes its side or the
	// channel is closed after the program exits.
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 128
	}
	return 0
}

func sendExit(ch ssh.Channel, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
}
