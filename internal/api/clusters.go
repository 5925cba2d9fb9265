package api

import (
	"context"
	"net/http"
	"time"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
)

func (s *Server) handleClusters(w http.ResponseWriter, _ *http.Request, p auth.Principal) {
	out := []deploy.ClusterStatus{}
	for _, name := range s.svc.Clusters() {
		if p.AllowCluster(name) != nil {
			continue
		}
		st, err := s.svc.ClusterStatus(name)
		if err == nil {
			out = append(out, st)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"clusters": out})
}

// releaseStatus is one release as the last sync left it.
type releaseStatus struct {
	File         string                   `json:"file"`
	Name         string                   `json:"name"`
	Namespace    string                   `json:"namespace"`
	Chart        string                   `json:"chart"`
	ChartVersion string                   `json:"chartVersion,omitempty"`
	Action       reconcile.Action         `json:"lastAction"`
	InSync       bool                     `json:"inSync"`
	Revision     int                      `json:"revision,omitempty"`
	Error        string                   `json:"error,omitempty"`
	Objects      []reconcile.ObjectResult `json:"objects,omitempty"`
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
	out := []releaseStatus{}
	if st.LastResult != nil {
		for _, rr := range st.LastResult.Releases {
			out = append(out, releaseStatus{File: rr.File, Name: rr.Name, Namespace: rr.Namespace, Chart: rr.Chart,
				ChartVersion: rr.ChartVersion, Action: rr.Action, InSync: rr.Action != reconcile.Failed && rr.Action != reconcile.WouldChange,
				Revision: rr.Revision, Error: rr.Error, Objects: rr.Objects})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cluster": name, "head": st.Head, "lastSync": st.LastSync, "releases": out})
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
	writeJSON(w, http.StatusOK, map[string]any{"cluster": name, "differences": res.HasDifferences(), "diff": res})
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
	writeJSON(w, status, res)
}
