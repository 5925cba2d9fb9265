package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mygitops/mgo/internal/auth"
)

// handleGitHub takes GitHub push events, signed with the shared secret
// (X-Hub-Signature-256: sha256=<hmac of the body>).
func (s *Server) handleGitHub(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.GitHubSecret) == 0 {
		writeError(w, errNoRoute(r), nil)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, bodyError(err, "body"), nil)
		return
	}
	sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
	got, herr := hex.DecodeString(sig)
	mac := hmac.New(sha256.New, s.cfg.GitHubSecret)
	mac.Write(body)
	if !ok || herr != nil || !hmac.Equal(got, mac.Sum(nil)) {
		writeError(w, fmt.Errorf("%w: X-Hub-Signature-256 does not match the body", auth.ErrUnauthenticated), nil)
		return
	}
	s.pushEvent(w, "github", r.Header.Get("X-GitHub-Event"), "push", "ping")
}

// handleGitLab takes GitLab push events carrying the shared token
// (X-Gitlab-Token).
func (s *Server) handleGitLab(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.GitLabToken) == 0 {
		writeError(w, errNoRoute(r), nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Gitlab-Token")), s.cfg.GitLabToken) != 1 {
		writeError(w, fmt.Errorf("%w: X-Gitlab-Token is missing or wrong", auth.ErrUnauthenticated), nil)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	s.pushEvent(w, "gitlab", r.Header.Get("X-Gitlab-Event"), "Push Hook", "")
}

// pushEvent triggers the refresher for a push event and acknowledges
// others without acting.
func (s *Server) pushEvent(w http.ResponseWriter, source, event, push, ping string) {
	switch {
	case event == push:
		if s.cfg.Refresher != nil {
			s.cfg.Refresher.Trigger() // one refresh serves a burst of pushes
		}
		s.log.Info("push event: refreshing", "source", source)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "refresh scheduled"})
	case ping != "" && event == ping:
		writeJSON(w, http.StatusOK, map[string]string{"status": "pong"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "event": event})
	}
}
