package gittest

import (
	"net"
	"sync"
	"testing"
)

// HangingServer is a TCP listener on loopback that accepts connections and
// never answers: no HTTP response, no SSH banner. It is the git host that
// stopped responding, for tests of timeouts and of what must not wait for
// the network.
type HangingServer struct {
	// Addr is host:port.
	Addr string
	// HTTPURL and SSHURL are repository URLs on it, for an http:// and an
	// ssh:// client.
	HTTPURL, SSHURL string

	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	closed   bool
	done     chan struct{}
}

// NewHangingServer starts a HangingServer; it is closed when the test ends.
func NewHangingServer(t testing.TB) *HangingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &HangingServer{
		Addr: ln.Addr().String(), ln: ln, done: make(chan struct{}),
	}
	s.HTTPURL = "http://" + s.Addr + "/repo.git"
	s.SSHURL = "ssh://git@" + s.Addr + "/repo.git"
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *HangingServer) accept() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepted++
		if s.closed {
			c.Close()
		} else {
			s.conns = append(s.conns, c)
		}
		s.mu.Unlock()
	}
}

// Accepted returns how many connections the server accepted so far.
func (s *HangingServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Release closes the connections held so far (their clients see the
// connection closed without an answer); the server goes on accepting and
// holding new ones.
func (s *HangingServer) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// Close stops listening and closes every connection. It may be called more
// than once.
func (s *HangingServer) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ln.Close()
	<-s.done
	s.Release()
}
