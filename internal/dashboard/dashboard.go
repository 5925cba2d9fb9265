package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// Source is what the dashboard reads of the deploy service: *deploy.Service
// in mgo serve, a fake in this package's tests.
type Source interface {
	// Clusters are the served clusters; ClusterStatus is one's last sync,
	// drift check and last result.
	Clusters() []string
	ClusterStatus(cluster string) (deploy.ClusterStatus, error)
	// Since returns up to limit deployments asked for at or after t.
	Since(t time.Time, limit int) ([]*deploy.Deployment, error)
	// RepoReleases returns the head and the releases the repo defines for
	// the cluster there.
	RepoReleases(ctx context.Context, cluster string) (string, []deploy.ReleaseSource, error)
	// LiveRelease reads a release's newest Helm revision and the kstatus
	// of its objects.
	LiveRelease(ctx context.Context, cluster, namespace, name string) (reconcile.LiveRelease, error)
	// LastChanges returns the commits that last changed files as of head,
	// searching at most maxCommits.
	LastChanges(ctx context.Context, head string, files []string, maxCommits int) (map[string]gitrepo.FileChange, error)
	// RepoWebURL is the gitops repo's web page ("" when it has none).
	RepoWebURL() string
}

const (
	// DefaultTTL is how long a read of a cluster's live state is served.
	DefaultTTL = 5 * time.Second
	// historyDepth bounds the commits searched for a file's last change.
	historyDepth = 2000
	// maxRecent bounds the deployment records read for the 24-hour counts.
	maxRecent = 100000
	// readTimeout bounds one read of a cluster's live state.
	readTimeout = time.Minute
	// readsPerCluster bounds the releases read at once in one cluster (its
	// client budget applies too).
	readsPerCluster = 4
)

// Options configure a Dashboard.
type Options struct {
	// TTL is how long a read of a cluster's live state is served
	// (default DefaultTTL).
	TTL time.Duration
	// Log receives what cannot be read but does not fail a view (nil:
	// discarded).
	Log *slog.Logger
}

// Dashboard answers the dashboard's views. It is safe for concurrent use.
type Dashboard struct {
	src Source
	ttl time.Duration
	log *slog.Logger
	now func() time.Time
	// load reads a cluster's live state (read; tests count calls).
	load func(ctx context.Context, cluster string) (apitypes.LiveCluster, error)

	mu      sync.Mutex
	live    map[string]*liveRead
	changes map[string]map[string]gitrepo.FileChange // by head, then file
}

// liveRead is one read of a cluster's live state; done is closed when it
// is complete.
type liveRead struct {
	done chan struct{}
	at   time.Time
	out  apitypes.LiveCluster
	err  error
}

// New returns the dashboard's read model of src.
func New(src Source, opts Options) (*Dashboard, error) {
	if src == nil {
		return nil, errors.New("dashboard: a deploy service to read is required")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{src: src, ttl: opts.TTL, log: opts.Log, now: time.Now,
		live: map[string]*liveRead{}, changes: map[string]map[string]gitrepo.FileChange{}}
	d.load = d.read
	return d, nil
}

// Overview summarises every served cluster that visible keeps: its last
// sync and drift check, its releases by health (from Live; LiveError says
// why they could not be read) and the deployments asked for in the last
// 24 hours.
func (d *Dashboard) Overview(ctx context.Context, visible func(cluster string) bool) (apitypes.Overview, error) {
	var names []string
	for _, name := range d.src.Clusters() {
		if visible(name) {
			names = append(names, name)
		}
	}
	deploys, failed := map[string]int{}, map[string]int{}
	recent, err := d.src.Since(d.now().Add(-24*time.Hour), maxRecent)
	if err != nil {
		return apitypes.Overview{}, err
	}
	for _, dep := range recent {
		if c := dep.Request.Cluster; visible(c) {
			deploys[c]++
			if dep.Status == deploy.Failed {
				failed[c]++
			}
		}
	}
	out := apitypes.Overview{Clusters: make([]apitypes.ClusterSummary, len(names)), Repo: d.repo()}
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			cs := apitypes.ClusterSummary{Name: name, Deploys24h: deploys[name], FailedDeploys24h: failed[name]}
			if st, err := d.src.ClusterStatus(name); err == nil {
				cs.LastSync = apitypes.LastSync{Commit: st.Head, Time: st.LastSync, Failed: st.Failed, Error: st.Error}
				cs.Manual, cs.Pending, cs.Drift, cs.DriftChecked = st.Manual, st.Pending, st.Drift, st.DriftChecked
			}
			lc, err := d.Live(ctx, name)
			if err != nil {
				cs.LiveError = err.Error()
			}
			cs.Releases = lc.Counts
			out.Clusters[i] = cs
		})
	}
	wg.Wait()
	return out, nil
}

// Live returns the releases of a cluster as the repo defines them at the
// head and the cluster runs them, read at most the TTL ago; callers that
// come while it is read wait for that read, each until its ctx ends.
func (d *Dashboard) Live(ctx context.Context, cluster string) (apitypes.LiveCluster, error) {
	d.mu.Lock()
	lr := d.live[cluster]
	if lr != nil {
		select {
		case <-lr.done:
			if d.now().Sub(lr.at) > d.ttl {
				lr = nil
			}
		default: // being read
		}
	}
	if lr == nil {
		lr = &liveRead{done: make(chan struct{})}
		d.live[cluster] = lr
		go func() {
			// Detached from the caller: other callers share the read.
			rctx, cancel := context.WithTimeout(context.Background(), readTimeout)
			defer cancel()
			lr.out, lr.err = d.load(rctx, cluster)
			lr.at = d.now()
			close(lr.done)
		}()
	}
	d.mu.Unlock()
	select {
	case <-lr.done:
		return lr.out, lr.err
	case <-ctx.Done():
		return apitypes.LiveCluster{}, ctx.Err()
	}
}

// read loads the cluster's releases from the repo, their live state from
// the cluster and their last change from git.
func (d *Dashboard) read(ctx context.Context, cluster string) (apitypes.LiveCluster, error) {
	lc := apitypes.LiveCluster{Cluster: cluster, Repo: d.repo(), Releases: []apitypes.LiveRelease{}}
	head, sources, err := d.src.RepoReleases(ctx, cluster)
	if err != nil {
		return lc, err
	}
	lc.Head = head
	last := map[string]reconcile.ReleaseResult{}
	if st, err := d.src.ClusterStatus(cluster); err == nil && st.LastResult != nil {
		for _, rr := range st.LastResult.Releases {
			last[rr.File] = rr
		}
	}
	files := make([]string, 0, len(sources))
	for _, src := range sources {
		files = append(files, src.File)
	}
	changes := d.lastChanges(ctx, head, files)
	lc.Releases = make([]apitypes.LiveRelease, len(sources))
	var wg sync.WaitGroup
	sem := make(chan struct{}, readsPerCluster)
	for i, src := range sources {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lc.Releases[i] = d.release(ctx, cluster, src, last[src.File], changes)
		})
	}
	wg.Wait()
	lc.Counts = count(lc.Releases)
	lc.Read = d.now()
	return lc, nil
}

// release is one release of a cluster: what the repo asks, what the
// cluster runs, its health and its last change.
func (d *Dashboard) release(ctx context.Context, cluster string, src deploy.ReleaseSource, last reconcile.ReleaseResult,
	changes map[string]gitrepo.FileChange) apitypes.LiveRelease {
	rel := apitypes.LiveRelease{File: src.File, Name: src.Name, Namespace: src.Namespace, Chart: src.Chart, Version: src.Version,
		Images: src.Images, DependsOn: src.DependsOn, LastAction: apitypes.ReleaseAction(last.Action), Error: last.Error, Objects: []apitypes.LiveObject{}}
	if c, ok := changes[src.File]; ok {
		rel.LastChange = &apitypes.Change{Commit: c.Commit, Author: c.AuthorName, Email: c.AuthorEmail, Time: c.Time, Summary: c.Summary}
	}
	if !src.Valid {
		rel.Health, rel.Reason = apitypes.HealthFailed, "the values file has errors (mgo validate names them)"
		return rel
	}
	live, err := d.src.LiveRelease(ctx, cluster, src.Namespace, src.Name)
	if err != nil {
		rel.Health, rel.Reason = apitypes.HealthFailed, "reading the release: "+err.Error()
		return rel
	}
	rel.Installed, rel.Revision, rel.HelmStatus, rel.Updated = live.Installed, live.Revision, live.HelmStatus, live.Updated
	rel.ChartVersion, rel.AppVersion = live.ChartVersion, live.AppVersion
	for _, ob := range live.Objects {
		rel.Objects = append(rel.Objects, apitypes.LiveObject{Subject: ob.Subject, Status: apitypes.ObjectStatus(ob.Status), Message: ob.Message})
	}
	rel.Health, rel.Reason = health(live, last)
	return rel
}

// count counts releases by health.
func count(rels []apitypes.LiveRelease) apitypes.ReleaseCounts {
	var n apitypes.ReleaseCounts
	for _, rel := range rels {
		n.Total++
		switch rel.Health {
		case apitypes.HealthHealthy:
			n.Healthy++
		case apitypes.HealthProgressing:
			n.Progressing++
		default:
			n.Failed++
		}
	}
	return n
}

// lastChanges returns the last change of each file as of head, cached
// per head (history does not change under a head).
func (d *Dashboard) lastChanges(ctx context.Context, head string, files []string) map[string]gitrepo.FileChange {
	d.mu.Lock()
	known := d.changes[head]
	var missing []string
	for _, f := range files {
		if _, ok := known[f]; !ok {
			missing = append(missing, f)
		}
	}
	d.mu.Unlock()
	if len(missing) > 0 && head != "" {
		found, err := d.src.LastChanges(ctx, head, missing, historyDepth)
		if err != nil && !errors.Is(err, gitrepo.ErrNotInHistory) {
			d.log.Warn("dashboard: reading the last changes of values files", "head", head, "error", err)
		}
		d.mu.Lock()
		if d.changes[head] == nil {
			if len(d.changes) > 16 {
				clear(d.changes)
			}
			d.changes[head] = map[string]gitrepo.FileChange{}
		}
		for f, c := range found {
			d.changes[head][f] = c
		}
		known = d.changes[head]
		d.mu.Unlock()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]gitrepo.FileChange, len(files))
	for _, f := range files {
		if c, ok := known[f]; ok {
			out[f] = c
		}
	}
	return out
}

// repo describes the gitops repo for links to its commits.
func (d *Dashboard) repo() apitypes.Repo { return forge(d.src.RepoWebURL()) }
