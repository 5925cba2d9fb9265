package gittest

import (
	"bytes"
	"crypto/subtle"
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
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + "/" + filepath.Base(remote.Dir)
	return s
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
// "upload-pack" (fetches), "receive-pack" (pushes) or "unauthorized".
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
