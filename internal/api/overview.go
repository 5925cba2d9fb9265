package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/dashboard"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// The dashboard's read-only views (internal/ui): a summary per cluster and
// a cluster's releases as the repo defines them and the cluster runs them.
//
//	GET /api/v1/overview                  every cluster the caller may see
//	GET /api/v1/clusters/{c}/live         releases: chart, images, revision, kstatus, last change
//
// Their read model, with its cache of each cluster's live state, is
// Config.Dashboard (internal/dashboard); these handlers only check who may
// see which cluster.

// Dashboard answers the dashboard's views: *dashboard.Dashboard in mgo
// serve.
type Dashboard interface {
	// Overview summarises every served cluster that visible keeps.
	Overview(ctx context.Context, visible func(cluster string) bool) (apitypes.Overview, error)
	// Live returns a cluster's releases with their live state.
	Live(ctx context.Context, cluster string) (apitypes.LiveCluster, error)
}

var _ Dashboard = (*dashboard.Dashboard)(nil)

func (s *Server) overviewRoutes() {
	s.handle("GET /api/v1/overview", s.authed("", s.handleOverview))
	s.handle("GET /api/v1/clusters/{cluster}/live", s.authed("", s.handleLive))
}

// errNoDashboard answers the views of a server without Config.Dashboard.
func errNoDashboard(r *http.Request) error {
	return fmt.Errorf("%w: %s %s (this server has no dashboard)", errRoute, r.Method, r.URL.Path)
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if s.cfg.Dashboard == nil {
		writeErr(w, errNoDashboard(r), p)
		return
	}
	out, err := s.cfg.Dashboard.Overview(r.Context(), func(cluster string) bool { return p.AllowCluster(cluster) == nil })
	if err != nil {
		writeErr(w, err, p)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := r.PathValue("cluster")
	auditOf(r).Cluster = clip(name, 300)
	if err := p.AllowCluster(name); err != nil {
		writeErr(w, err, p)
		return
	}
	if s.cfg.Dashboard == nil {
		writeErr(w, errNoDashboard(r), p)
		return
	}
	lc, err := s.cfg.Dashboard.Live(r.Context(), name)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	writeJSON(w, http.StatusOK, lc)
}
