package gittest

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// HTTPServer serves a Remote over HTTP with `git http-backend` (smart HTTP,
// fetch and push) behind basic auth, on a loopback port.
type HTTPServer struct {
	// URL is the repository's URL, e.g. http://127.0.0.1:41234/repo.git.
	URL string

	srv     *httptest.Server
	backend string
	root    string

	mu       sync.Mutex
	user     string
	password string
	counts   map[string]int // "upload-pack", "receive-pack", "unauthorized"
	stderr   bytes.Buffer
	losePush bool
	mode     Mode
	modeCh   chan struct{} // closed and replaced when the mode changes
}

// Mode is how an HTTPServer answers (SetMode).
type Mode int

const (
	// Up serves git normally.
	Up Mode = iota
	// Down answers every request 503 Service Unavailable at once, as a
	// git host in maintenance or a proxy whose backend is gone.
	Down
	// Hang accepts every request and never answers it until the mode
	// changes (then it is served in the new mode) or the client gives up,
	// as a git host that stopped responding.
	Hang
)

func (m Mode) String() string {
	switch m {
	case Up:
		return "up"
	case Down:
		return "down"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// NewHTTPServer serves remote over HTTP; every request must carry basic
// auth user:password (a wrong or missing one is answered 401). The server
// stops when the test ends.
func NewHTTPServer(t testing.TB, remote *Remote, user, password string) *HTTPServer {
	t.Helper()
	execPath := Git(t, "", "--exec-path")
	s := &HTTPServer{
		backend:  filepath.Join(execPath, "git-http-backend"),
		root:     filepath.Dir(remote.Dir),
		user:     user,
		password: password,
		counts:   map[string]int{},
	}
	s.modeCh = make(chan struct{})
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	// Runs before Close (cleanups run last first): hanging requests are
	// let go so that Close, which waits for them, returns.
	t.Cleanup(func() { s.SetMode(Down) })
	s.URL = s.srv.URL + "/" + filepath.Base(remote.Dir)
	return s
}

// SetMode switches how the server answers from now on; requests hanging
// in Hang mode are answered in the new mode. A fault test can take the
// remote down, make it hang and bring it back.
func (s *HTTPServer) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode != m {
		s.mode = m
		close(s.modeCh)
		s.modeCh = make(chan struct{})
	}
}

// Mode returns the current mode.
func (s *HTTPServer) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// wait holds a request while the server hangs and returns the mode to
// serve it in; false when the client went away meanwhile.
func (s *HTTPServer) wait(r *http.Request) (Mode, bool) {
	for {
		s.mu.Lock()
		m, ch := s.mode, s.modeCh
		if m == Hang {
			s.counts["hung"]++
		}
		s.mu.Unlock()
		if m != Hang {
			return m, true
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return m, false
		}
	}
}

// SetCredentials changes the user and password the server accepts.
func (s *HTTPServer) SetCredentials(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.password = user, password
}

// LoseNextPushResponse makes the server carry out the next push but answer
// it with 502 Bad Gateway, as when a proxy or the network loses the answer
// after the server updated the branch.
func (s *HTTPServer) LoseNextPushResponse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.losePush = true
}

// Count returns how many requests of a kind the server answered:
// "upload-pack" (fetches), "receive-pack" (pushes) or "unauthorized";
// or, for "down" and "hung", how many it refused with 503 or held in
// Hang mode.
func (s *HTTPServer) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// Stderr returns what git http-backend wrote to standard error so far.
func (s *HTTPServer) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (s *HTTPServer) serve(w http.ResponseWriter, r *http.Request) {
	switch m, ok := s.wait(r); {
	case !ok:
		return
	case m == Down:
		s.mu.Lock()
		s.counts["down"]++
		s.mu.Unlock()
		http.Error(w, "git server down", http.StatusServiceUnavailable)
		return
	}
	user, password, ok := r.BasicAuth()
	s.mu.Lock()
	lose := false
	authorized := ok &&
		subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(password), []byte(s.password)) == 1
	if !authorized {
		s.counts["unauthorized"]++
	} else if r.Method == http.MethodPost {
		switch {
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.counts["upload-pack"]++
		case strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
			s.counts["receive-pack"]++
			lose, s.losePush = s.losePush, false
		}
	}
	s.mu.Unlock()
	if !authorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	h := &cgi.Handler{
		Path: s.backend,
		Env: append(Env(),
			"GIT_PROJECT_ROOT="+s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER="+user,
		),
		Stderr: lockedWriter{&s.mu, &s.stderr},
	}
	if lose {
		h.ServeHTTP(httptest.NewRecorder(), r)
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	h.ServeHTTP(w, r)
}
