package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/mygitops/mgo/internal/audit"
	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
)

// auditKey is the context key of a request's audit entry, for handlers to
// add what the request is about (cluster, trigger repo, deployment).
type auditKey struct{}

// auditWriter records the status and the error answer of a request.
type auditWriter struct {
	http.ResponseWriter
	status int
	reason string
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming answers through.
func (w *auditWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap is for http.ResponseController.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) startAudit(w http.ResponseWriter, r *http.Request) (*auditWriter, *audit.Entry) {
	_, route := s.mux.Handler(r)
	e := &audit.Entry{
		Time:         time.Now(),
		Remote:       r.RemoteAddr,
		ForwardedFor: clip(r.Header.Get("X-Forwarded-For"), 200),
		Route:        route,
		Path:         clip(r.URL.Path, 500), // never the query: a Docker Hub token may ride in it
	}
	return &auditWriter{ResponseWriter: w}, e
}

// finishAudit writes the entry once the request is answered.
func (s *Server) finishAudit(w *auditWriter, e *audit.Entry) {
	e.Status = w.status
	if e.Status == 0 {
		e.Status = http.StatusOK
	}
	e.Decision = audit.Allowed
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusLocked {
		e.Decision = audit.Refused
	}
	e.Reason = clip(w.reason, 1000)
	e.Seconds = time.Since(e.Time).Seconds()
	if err := s.cfg.Audit.Log(*e); err != nil {
		s.log.Error("audit log: write failed", "error", err)
	}
}

// auditOf is the audit entry of a request (a throwaway one outside authed).
func auditOf(r *http.Request) *audit.Entry {
	if e, ok := r.Context().Value(auditKey{}).(*audit.Entry); ok {
		return e
	}
	return &audit.Entry{}
}

// auditRequest notes what a deploy request asks for.
func auditRequest(r *http.Request, req deploy.Request) {
	e := auditOf(r)
	e.Cluster, e.TriggerRepo = clip(strings.TrimSpace(req.Cluster), 300), clip(strings.TrimSpace(req.TriggerRepo), 300)
	if req.ImageRepo != "" {
		e.Image = clip(req.Ref(), 500)
	}
}

func whoOf(p auth.Principal) audit.Who {
	if p.Identity == nil {
		kind := "token"
		if p.Name == "anonymous" && len(p.Grants) == 0 {
			kind = "anonymous"
		}
		return audit.Who{Kind: kind, Name: p.Name}
	}
	id := p.Identity
	return audit.Who{Kind: "oidc", Name: p.Name, Issuer: id.Issuer, Subject: id.Subject, Project: id.Project,
		Ref: id.Ref, Environment: id.Environment, RunURL: id.RunURL, Rules: strings.Join(id.Rules, ",")}
}

// identityOf is the deploy record's view of an OIDC caller.
func identityOf(p auth.Principal) deploy.Identity {
	if p.Identity == nil {
		return deploy.Identity{}
	}
	id := p.Identity
	return deploy.Identity{Issuer: id.Issuer, Subject: id.Subject, Project: id.Project, Ref: id.Ref,
		Environment: id.Environment, RunURL: id.RunURL, Rules: strings.Join(id.Rules, ",")}
}

func clip(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return s
}
