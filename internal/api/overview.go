package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/auth"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
)

// The dashboard's read-only views (internal/ui): a summary per cluster and
// a cluster's releases as the repo defines them and the cluster runs them.
//
//	GET /api/v1/overview                  every cluster the caller may see
//	GET /api/v1/clusters/{c}/live         releases: chart, images, revision, kstatus, last change
//
// Reading the live state costs a Helm storage read and a GET per object:
// it is cached per cluster for liveTTL, and concurrent callers share one
// read, so any number of open dashboards cost the cluster the same.
const (
	liveTTL = 5 * time.Second
	// historyDepth bounds the commits searched for a file's last change.
	historyDepth = 2000
	// maxRecent bounds the deployment records read for the 24-hour counts.
	maxRecent = 100000
)

// Health of a release, from its objects' kstatus and its Helm status.
const (
	Healthy     = "healthy"
	Progressing = "progressing"
	Unhealthy   = "failed"
)

// repoView says where the gitops repo is, for links to its commits.
type repoView struct {
	URL string `json:"url,omitempty"`
	// Forge is github or gitlab when the host is known to be one;
	// CommitURL is then a template with {commit} in it.
	Forge     string `json:"forge,omitempty"`
	CommitURL string `json:"commitURL,omitempty"`
}

// releaseCounts are the releases of a cluster by health.
type releaseCounts struct {
	Total       int `json:"total"`
	Healthy     int `json:"healthy"`
	Progressing int `json:"progressing"`
	Failed      int `json:"failed"`
}

// clusterSummary is one cluster of GET /api/v1/overview.
type clusterSummary struct {
	Name string `json:"name"`
	// LastSync is the last sync's start commit, end time and result.
	LastSync struct {
		Commit string    `json:"commit,omitempty"`
		Time   time.Time `json:"time,omitzero"`
		Failed bool      `json:"failed"`
		Error  string    `json:"error,omitempty"`
	} `json:"lastSync"`
	Manual       bool          `json:"manual,omitempty"`
	Pending      string        `json:"pending,omitempty"`
	Drift        int           `json:"drift"`
	DriftChecked time.Time     `json:"driftChecked,omitzero"`
	Releases     releaseCounts `json:"releases"`
	// LiveError says why the releases' live state could not be read.
	LiveError string `json:"liveError,omitempty"`
	// Deploys24h counts deployments (and rollbacks) asked for in the last
	// 24 hours; FailedDeploys24h those of them that failed.
	Deploys24h       int `json:"deploys24h"`
	FailedDeploys24h int `json:"failedDeploys24h"`
}

// objectView is one object of a release with its kstatus.
type objectView struct {
	Subject string `json:"subject"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// changeView is the commit that last changed a release's values file.
type changeView struct {
	Commit  string    `json:"commit"`
	Author  string    `json:"author"`
	Email   string    `json:"email,omitempty"`
	Time    time.Time `json:"time"`
	Summary string    `json:"summary,omitempty"`
}

// liveRelease is one release of GET /api/v1/clusters/{c}/live.
type liveRelease struct {
	File      string `json:"file"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Chart and Version are what the repo asks for; ChartVersion is the
	// version the installed revision runs.
	Chart        string            `json:"chart"`
	Version      string            `json:"version,omitempty"`
	ChartVersion string            `json:"chartVersion,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Images       map[string]string `json:"images"`
	Installed    bool              `json:"installed"`
	Revision     int               `json:"revision,omitempty"`
	HelmStatus   string            `json:"helmStatus,omitempty"`
	Updated      time.Time         `json:"updated,omitzero"`
	Health       string            `json:"health"`
	Reason       string            `json:"reason,omitempty"`
	// LastAction and Error are what the cluster's last sync did to it.
	LastAction string       `json:"lastAction,omitempty"`
	Error      string       `json:"error,omitempty"`
	Objects    []objectView `json:"objects"`
	LastChange *changeView  `json:"lastChange,omitempty"`
}

// liveCluster is the answer of GET /api/v1/clusters/{c}/live.
type liveCluster struct {
	Cluster  string        `json:"cluster"`
	Head     string        `json:"head"`
	Read     time.Time     `json:"read"`
	Repo     repoView      `json:"repo"`
	Releases []liveRelease `json:"releases"`
	Counts   releaseCounts `json:"counts"`
}

// overview holds the cached live state of each cluster.
type overview struct {
	s   *Server
	now func() time.Time
	// load reads a cluster's live state (read; tests count calls).
	load func(ctx context.Context, cluster string) (liveCluster, error)

	mu      sync.Mutex
	live    map[string]*liveRead
	changes map[string]map[string]gitrepo.FileChange // by head, then file
}

// liveRead is one read of a cluster's live state; done is closed when it
// is complete.
type liveRead struct {
	done chan struct{}
	at   time.Time
	out  liveCluster
	err  error
}

func (s *Server) overviewRoutes() {
	o := newOverview(s)
	s.handle("GET /api/v1/overview", s.authed("", o.handleOverview))
	s.handle("GET /api/v1/clusters/{cluster}/live", s.authed("", o.handleLive))
}

func newOverview(s *Server) *overview {
	o := &overview{s: s, now: time.Now, live: map[string]*liveRead{}, changes: map[string]map[string]gitrepo.FileChange{}}
	o.load = o.read
	return o
}

func (o *overview) handleOverview(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	svc := o.s.svc
	var names []string
	for _, name := range svc.Clusters() {
		if p.AllowCluster(name) == nil {
			names = append(names, name)
		}
	}
	since := o.now().Add(-24 * time.Hour)
	deploys, failed := map[string]int{}, map[string]int{}
	recent, err := svc.Since(since, maxRecent)
	for _, d := range recent {
		if p.AllowCluster(d.Request.Cluster) == nil {
			deploys[d.Request.Cluster]++
			if d.Status == deploy.Failed {
				failed[d.Request.Cluster]++
			}
		}
	}
	if err != nil {
		writeErr(w, err, p)
		return
	}
	out := make([]clusterSummary, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			cs := clusterSummary{Name: name, Deploys24h: deploys[name], FailedDeploys24h: failed[name]}
			if st, err := svc.ClusterStatus(name); err == nil {
				cs.LastSync.Commit, cs.LastSync.Time, cs.LastSync.Failed, cs.LastSync.Error = st.Head, st.LastSync, st.Failed, st.Error
				cs.Manual, cs.Pending, cs.Drift, cs.DriftChecked = st.Manual, st.Pending, st.Drift, st.DriftChecked
			}
			lc, err := o.cluster(r.Context(), name)
			if err != nil {
				cs.LiveError = err.Error()
			}
			cs.Releases = lc.Counts
			out[i] = cs
		})
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, map[string]any{"repo": o.repo(), "clusters": out})
}

func (o *overview) handleLive(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := r.PathValue("cluster")
	auditOf(r).Cluster = clip(name, 300)
	if err := p.AllowCluster(name); err != nil {
		writeErr(w, err, p)
		return
	}
	lc, err := o.cluster(r.Context(), name)
	if err != nil {
		writeErr(w, err, p)
		return
	}
	writeJSON(w, http.StatusOK, lc)
}

// cluster returns the live state of a cluster, read at most liveTTL ago;
// callers that come while it is read wait for that read.
func (o *overview) cluster(ctx context.Context, name string) (liveCluster, error) {
	o.mu.Lock()
	lr := o.live[name]
	if lr != nil {
		select {
		case <-lr.done:
			if o.now().Sub(lr.at) > liveTTL {
				lr = nil
			}
		default: // being read
		}
	}
	if lr == nil {
		lr = &liveRead{done: make(chan struct{})}
		o.live[name] = lr
		go func() {
			// Detached from the caller: other callers share the read.
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			lr.out, lr.err = o.load(rctx, name)
			lr.at = o.now()
			close(lr.done)
		}()
	}
	o.mu.Unlock()
	select {
	case <-lr.done:
		return lr.out, lr.err
	case <-ctx.Done():
		return liveCluster{}, ctx.Err()
	}
}

// read loads the cluster's releases from the repo, their live state from
// the cluster and their last change from git.
func (o *overview) read(ctx context.Context, name string) (liveCluster, error) {
	svc := o.s.svc
	lc := liveCluster{Cluster: name, Repo: o.repo(), Releases: []liveRelease{}}
	head, sources, err := svc.RepoReleases(ctx, name)
	if err != nil {
		return lc, err
	}
	lc.Head = head
	last := map[string]reconcile.ReleaseResult{}
	if st, err := svc.ClusterStatus(name); err == nil && st.LastResult != nil {
		for _, rr := range st.LastResult.Releases {
			last[rr.File] = rr
		}
	}
	files := make([]string, 0, len(sources))
	for _, src := range sources {
		files = append(files, src.File)
	}
	changes := o.lastChanges(ctx, head, files)
	lc.Releases = make([]liveRelease, len(sources))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // the cluster's client budget applies too
	for i, src := range sources {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lc.Releases[i] = o.release(ctx, name, src, last[src.File], changes)
		})
	}
	wg.Wait()
	for _, rel := range lc.Releases {
		lc.Counts.Total++
		switch rel.Health {
		case Healthy:
			lc.Counts.Healthy++
		case Progressing:
			lc.Counts.Progressing++
		default:
			lc.Counts.Failed++
		}
	}
	lc.Read = o.now()
	return lc, nil
}

func (o *overview) release(ctx context.Context, cluster string, src deploy.ReleaseSource, last reconcile.ReleaseResult,
	changes map[string]gitrepo.FileChange) liveRelease {
	rel := liveRelease{File: src.File, Name: src.Name, Namespace: src.Namespace, Chart: src.Chart, Version: src.Version,
		Images: src.Images, LastAction: string(last.Action), Error: last.Error, Objects: []objectView{}}
	if c, ok := changes[src.File]; ok {
		rel.LastChange = &changeView{Commit: c.Commit, Author: c.AuthorName, Email: c.AuthorEmail, Time: c.Time, Summary: c.Summary}
	}
	if !src.Valid {
		rel.Health, rel.Reason = Unhealthy, "the values file has errors (mgo validate names them)"
		return rel
	}
	live, err := o.s.svc.LiveRelease(ctx, cluster, src.Namespace, src.Name)
	if err != nil {
		rel.Health, rel.Reason = Unhealthy, "reading the release: "+err.Error()
		return rel
	}
	rel.Installed, rel.Revision, rel.HelmStatus, rel.Updated = live.Installed, live.Revision, live.HelmStatus, live.Updated
	rel.ChartVersion, rel.AppVersion = live.ChartVersion, live.AppVersion
	for _, ob := range live.Objects {
		rel.Objects = append(rel.Objects, objectView{Subject: ob.Subject, Status: ob.Status, Message: ob.Message})
	}
	rel.Health, rel.Reason = health(live, last)
	return rel
}

// health is a release's health: failed when it is not installed, its
// newest revision failed, an object failed or is missing, or its last
// sync failed; progressing while Helm acts on it or an object is not
// ready yet; healthy otherwise.
func health(live reconcile.LiveRelease, last reconcile.ReleaseResult) (string, string) {
	if !live.Installed {
		if last.Action == reconcile.Failed {
			return Unhealthy, "not installed: " + last.Error
		}
		return Progressing, "not installed yet"
	}
	if live.HelmStatus == "failed" {
		return Unhealthy, "Helm revision " + strconv.Itoa(live.Revision) + " failed"
	}
	var failed, progressing []string
	for _, ob := range live.Objects {
		switch ob.Status {
		case "Current":
		case "InProgress", "Unknown":
			progressing = append(progressing, ob.Subject)
		default: // Failed, NotFound, Terminating
			failed = append(failed, ob.Subject+" "+ob.Status)
		}
	}
	switch {
	case len(failed) > 0:
		return Unhealthy, strings.Join(failed, ", ")
	case last.Action == reconcile.Failed:
		return Unhealthy, "last sync failed at " + string(last.Stage)
	case strings.HasPrefix(live.HelmStatus, "pending"):
		return Progressing, "Helm " + live.HelmStatus
	case len(progressing) > 0:
		return Progressing, "not ready: " + strings.Join(progressing, ", ")
	}
	return Healthy, ""
}

// lastChanges returns the last change of each file as of head, cached
// per head (history does not change under a head).
func (o *overview) lastChanges(ctx context.Context, head string, files []string) map[string]gitrepo.FileChange {
	o.mu.Lock()
	known := o.changes[head]
	var missing []string
	for _, f := range files {
		if _, ok := known[f]; !ok {
			missing = append(missing, f)
		}
	}
	o.mu.Unlock()
	if len(missing) > 0 && head != "" {
		found, err := o.s.svc.LastChanges(ctx, head, missing, historyDepth)
		if err != nil && !errors.Is(err, gitrepo.ErrNotInHistory) {
			o.s.log.Warn("dashboard: reading the last changes of values files", "head", head, "error", err)
		}
		o.mu.Lock()
		if o.changes[head] == nil {
			if len(o.changes) > 16 {
				clear(o.changes)
			}
			o.changes[head] = map[string]gitrepo.FileChange{}
		}
		for f, c := range found {
			o.changes[head][f] = c
		}
		known = o.changes[head]
		o.mu.Unlock()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]gitrepo.FileChange, len(files))
	for _, f := range files {
		if c, ok := known[f]; ok {
			out[f] = c
		}
	}
	return out
}

// repo describes the gitops repo for links to commits.
func (o *overview) repo() repoView { return forge(o.s.svc.RepoWebURL()) }

// forge names the forge of a repository's web URL and the URL of its
// commits: GitHub and GitLab (gitlab.com, github.com and hosts named
// gitlab.* or github.*, as self-managed instances usually are).
func forge(web string) repoView {
	v := repoView{URL: web}
	u, err := url.Parse(web)
	if web == "" || err != nil {
		return v
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "github.com" || strings.HasPrefix(host, "github."):
		v.Forge, v.CommitURL = "github", web+"/commit/{commit}"
	case host == "gitlab.com" || strings.HasPrefix(host, "gitlab."):
		v.Forge, v.CommitURL = "gitlab", web+"/-/commit/{commit}"
	}
	return v
}
