package deploy

import (
	"context"
	"time"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// GitWriter is what the service needs of the clone of the gitops repo:
// *gitrepo.Repo in mgo serve, a fake in tests.
type GitWriter interface {
	// Fetch updates the clone to the remote branch head and returns it.
	Fetch(ctx context.Context) (string, error)
	// Read runs fn on the checked-out tree at the last fetched head; no
	// write runs meanwhile.
	Read(ctx context.Context, fn func(dir, head string) error) error
	// ApplyBatch runs each change on a fresh tree, commits each as its own
	// commit and pushes them once.
	ApplyBatch(ctx context.Context, changes []gitrepo.Change) (gitrepo.BatchResult, error)
	// Revert reverts commit as a new commit and pushes it.
	Revert(ctx context.Context, commit string, info gitrepo.CommitInfo) (gitrepo.Result, error)
	// Commit describes a commit of the clone (author, subject), for the
	// notification of a sync of a pushed change.
	Commit(ctx context.Context, hash string) (gitrepo.CommitSummary, error)
	// LastChanges returns the last commit that changed each path, for the
	// dashboard; WebURL is the repo's web page (empty when not a forge).
	LastChanges(ctx context.Context, head string, paths []string, maxCommits int) (map[string]gitrepo.FileChange, error)
	WebURL() string
}

// ClusterSyncer syncs one cluster from a loaded repo: *reconcile.Engine in
// mgo serve, a fake in tests.
type ClusterSyncer interface {
	Sync(ctx context.Context, r *repo.Repo, opts reconcile.Options) (*reconcile.Result, error)
	Diff(ctx context.Context, r *repo.Repo, opts reconcile.Options) (*reconcile.DiffResult, error)
	// Restart rolls the workloads of a release and waits for them.
	Restart(ctx context.Context, namespace, release string, timeout time.Duration) ([]reconcile.ObjectResult, error)
	// Live reads a release's newest Helm revision and its objects' status,
	// for the dashboard.
	Live(ctx context.Context, namespace, name string) (reconcile.LiveRelease, error)
}

// DriftSource is a ClusterSyncer that reports drift as its watches see it
// (*reconcile.Engine with its cache): the service registers a handler for
// each served cluster.
type DriftSource interface {
	OnDrift(func(reconcile.Drift))
}

var (
	_ GitWriter     = (*gitrepo.Repo)(nil)
	_ ClusterSyncer = (*reconcile.Engine)(nil)
	_ DriftSource   = (*reconcile.Engine)(nil)
)

// nilEngine reports whether e is a nil *reconcile.Engine (a cluster that
// tests never sync).
func nilEngine(e ClusterSyncer) bool {
	en, ok := e.(*reconcile.Engine)
	return ok && en == nil
}

// Syncers returns engines as the ClusterSyncers of Config.Engines.
func Syncers(engines map[string]*reconcile.Engine) map[string]ClusterSyncer {
	out := make(map[string]ClusterSyncer, len(engines))
	for name, e := range engines {
		out[name] = e
	}
	return out
}
