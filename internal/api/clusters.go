package api

import (
	"context"
	"net/http"
	"time"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/pkg/apitypes"
)

func (s *Server) handleClusters(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	out := apitypes.ClusterList{Clusters: []apitypes.Cluster{}}
	for _, name := range s.svc.Clusters() {
		if p.AllowCluster(name) != nil {
			continue
		}
		st, err := s.svc.ClusterStatus(name)
		if err != nil {
			continue
		}
		c := wireCluster(st)
		if fz, err := s.svc.Freeze(r.Context(), name); err == nil {
			c.Freeze = wireFreeze(fz)
		} else {
			s.log.Warn("cluster freeze unknown", "cluster", name, "error", err)
		}
		out.Clusters = append(out.Clusters, c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleReleases(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := r.PathValue("cluster")
	auditOf(r).Cluster = clip(name, 300)
	if err := p.AllowCluster(name); err != nil {
		writeErr(w, err, p)
		return
	}
	st, err := s.svc.ClusterStatus(name)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	out := apitypes.Releases{Cluster: name, Head: st.Head, LastSync: st.LastSync, Releases: []apitypes.ReleaseStatus{}}
	if st.LastResult != nil {
		for _, rr := range st.LastResult.Releases {
			out.Releases = append(out.Releases, apitypes.ReleaseStatus{File: rr.File, Name: rr.Name, Namespace: rr.Namespace,
				Chart: rr.Chart, ChartVersion: rr.ChartVersion, LastAction: apitypes.ReleaseAction(rr.Action),
				InSync:   rr.Action != reconcile.Failed && rr.Action != reconcile.WouldChange,
				Revision: rr.Revision, Error: rr.Error, Objects: wireObjects(rr.Objects)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDiff(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := r.PathValue("cluster")
	auditOf(r).Cluster = clip(name, 300)
	if err := p.AllowCluster(name); err != nil {
		writeErr(w, err, p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	res, err := s.svc.Diff(ctx, name)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	writeJSON(w, http.StatusOK, apitypes.ClusterDiff{Cluster: name, Differences: res.HasDifferences(), Diff: wireDiff(res)})
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := r.PathValue("cluster")
	auditOf(r).Cluster = clip(name, 300)
	if err := p.AllowCluster(name); err != nil {
		writeErr(w, err, p)
		return
	}
	res, err := s.svc.Sync(r.Context(), name, r.URL.Query().Get("full") == "true")
	if err != nil {
		writeErr(w, err, p)
		return
	}
	status := http.StatusOK
	if res.Failed() {
		status = http.StatusFailedDependency
	}
	writeJSON(w, status, wireSyncResult(res))
}
