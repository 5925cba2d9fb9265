package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/mygitops/mgo/internal/audit"
	"github.com/mygitops/mgo/internal/auth"
)

// MaxBody bounds every request body.
const MaxBody = 1 << 20

// Config wires a Server.
type Config struct {
	Service Deployer
	// Dashboard answers the dashboard's views, GET /api/v1/overview and
	// GET /api/v1/clusters/{c}/live (nil: they answer 404).
	Dashboard Dashboard
	// Promotions answers the promotion routes, /api/v1/promotions (nil:
	// they answer 404 "promotion is not configured").
	Promotions Promotions
	// Tokens authenticates static bearer tokens and OIDC ID tokens of CI
	// jobs; with neither, InsecureNoAuth lets every caller in as
	// "anonymous" with every scope (local demos only).
	Tokens         *auth.Tokens
	OIDC           *auth.OIDC
	InsecureNoAuth bool
	// Audit receives one entry per authenticated request and per refusal
	// (nil: none).
	Audit *audit.Logger
	// Refresher is triggered by push events of the webhooks (deploy.Refresher
	// in mgo serve; nil: the webhooks acknowledge and nothing happens).
	Refresher Refresher
	// GitHubSecret verifies X-Hub-Signature-256 of GitHub push events;
	// GitLabToken is compared with X-Gitlab-Token. Empty: that hook is off.
	GitHubSecret []byte
	GitLabToken  []byte
	// Ready reports whether the service can take requests, with details
	// for /readyz (such as the last fetch). It must answer at once: it
	// never waits for git or a cluster.
	Ready    func() (details map[string]any, err error)
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
}

// Server is the HTTP handler of mgo serve.
type Server struct {
	cfg Config
	svc Deployer
	log *slog.Logger
	mux *http.ServeMux
	// patterns are the routes of mux, in the order they were added.
	patterns []string
}

// Refresher fetches the repo and syncs what changed, once per burst of
// triggers; Trigger returns at once.
type Refresher interface{ Trigger() }

// New returns the server.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("api: a deploy service is required")
	}
	if cfg.Tokens == nil && cfg.OIDC == nil && !cfg.InsecureNoAuth {
		return nil, errors.New("api: no tokens configured (use --insecure-no-auth only for a local demo)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	s := &Server{cfg: cfg, svc: cfg.Service, log: cfg.Log, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// authedHandler is a handler that runs for an authenticated principal.
type authedHandler func(w http.ResponseWriter, r *http.Request, p auth.Principal)

func (s *Server) routes() {
	s.handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) }))
	s.handle("GET /readyz", http.HandlerFunc(s.handleReady))
	s.handle("GET /api/v1/openapi.json", http.HandlerFunc(handleOpenAPI))
	s.handle("GET /metrics", s.authed(auth.RouteMetrics, s.handleMetrics))
	s.handle("POST /deploy", s.authed("", s.handleFormDeploy))
	s.handle("POST /deploy/dockerhub", s.authed(auth.RouteDockerHub, s.handleDockerHub))
	s.handle("POST /api/v1/deployments", s.authed("", s.handleCreateDeployment))
	s.handle("GET /api/v1/deployments", s.authed("", s.handleListDeployments))
	s.handle("GET /api/v1/deployments/{id}", s.authed("", s.handleGetDeployment))
	s.handle("POST /api/v1/deployments/{id}/rollback", s.authed("", s.handleRollback))
	s.handle("GET /api/v1/clusters", s.authed("", s.handleClusters))
	s.handle("GET /api/v1/clusters/{cluster}/releases", s.authed("", s.handleReleases))
	s.handle("GET /api/v1/clusters/{cluster}/diff", s.authed("", s.handleDiff))
	s.handle("POST /api/v1/clusters/{cluster}/sync", s.authed("", s.handleSync))
	s.handle("POST /hooks/github", s.audited("github", http.HandlerFunc(s.handleGitHub)))
	s.handle("POST /hooks/gitlab", s.audited("gitlab", http.HandlerFunc(s.handleGitLab)))
	s.overviewRoutes()  // overview.go: the dashboard's views
	s.promotionRoutes() // promotions.go: promotion between clusters
}

// handle adds a route ("METHOD /path/{param}") to the server.
func (s *Server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.patterns = append(s.patterns, pattern)
}

// Routes returns the patterns ("METHOD /path/{param}") of every route the
// server serves; the OpenAPI document must name each of them.
func (s *Server) Routes() []string { return slices.Clone(s.patterns) }

// ServeHTTP limits the body and routes. Unknown paths get a JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeError(w, errNoRoute(r), nil)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authed authenticates the bearer token, and checks that it may use the
// route (a name of auth.Route*, "" for the others), before h runs. Every
// request it sees goes to the audit log.
func (s *Server) authed(route string, h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw, e := s.startAudit(w, r)
		defer s.finishAudit(aw, e)
		p, err := s.principal(r)
		if p.Name != "" {
			e.Who = whoOf(p)
		}
		if err == nil {
			err = p.AllowRoute(route)
		}
		if err != nil {
			s.log.Info("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "client", p.Name, "error", err)
			writeError(aw, err, nil)
			return
		}
		h(aw, r.WithContext(context.WithValue(r.Context(), auditKey{}, e)), p)
	})
}

// audited puts a webhook (authenticated by its signature or token) in the
// audit log.
func (s *Server) audited(hook string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw, e := s.startAudit(w, r)
		defer s.finishAudit(aw, e)
		e.Who = audit.Who{Kind: "webhook", Name: hook}
		h.ServeHTTP(aw, r)
	})
}

func (s *Server) principal(r *http.Request) (auth.Principal, error) {
	if s.cfg.Tokens == nil && s.cfg.OIDC == nil {
		return auth.Principal{Name: "anonymous", Clusters: []string{"*"}, TriggerRepos: []string{"*"}}, nil
	}
	if r.URL.Path == "/deploy/dockerhub" && r.Header.Get("Authorization") == "" && r.URL.Query().Has("token") {
		// Docker Hub webhooks are a bare URL: the token rides in it, so only
		// a static token limited to this route is accepted there.
		if s.cfg.Tokens == nil {
			return auth.Principal{}, fmt.Errorf("%w: no static tokens are configured for a token in the URL", auth.ErrUnauthenticated)
		}
		return s.cfg.Tokens.AuthenticateURLToken(r.URL.Query().Get("token"))
	}
	// Verifying an ID token may fetch the issuer's keys: bounded.
	ctx, cancel := context.WithTimeout(r.Context(), 2*auth.HTTPTimeout)
	defer cancel()
	return auth.Authenticator{Tokens: s.cfg.Tokens, OIDC: s.cfg.OIDC}.AuthenticateRequest(r.WithContext(ctx))
}

// handleMetrics serves the Prometheus metrics. A token whose clusters
// scope is not "*" sees no series labelled with a cluster outside it.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	g := s.cfg.Gatherer
	if !p.AllClusters() {
		g = scopedGatherer{g, p}
	}
	promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// scopedGatherer drops the series whose cluster label the principal may
// not see.
type scopedGatherer struct {
	prometheus.Gatherer
	p auth.Principal
}

func (g scopedGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		ms := mf.Metric[:0]
		for _, m := range mf.Metric {
			if g.visible(m) {
				ms = append(ms, m)
			}
		}
		if len(ms) > 0 {
			mf.Metric = ms
			out = append(out, mf)
		}
	}
	return out, err
}

func (g scopedGatherer) visible(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == "cluster" && g.p.AllowCluster(l.GetValue()) != nil {
			return false
		}
	}
	return true
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	body := map[string]any{"status": "ready"}
	if s.cfg.Ready != nil {
		details, err := s.cfg.Ready()
		for k, v := range details {
			body[k] = v
		}
		if err != nil {
			body["status"], body["error"] = "not ready", err.Error()
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
	}
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
