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
}

// ClusterSyncer syncs one cluster from a loaded repo: *reconcile.Engine in
// mgo serve, a fake in tests.
type ClusterSyncer interface {
	Sync(ctx context.Context, r *repo.Repo, opts reconcile.Options) (*reconcile.Result, error)
	Diff(ctx context.Context, r *repo.Repo, opts reconcile.Options) (*reconcile.DiffResult, error)
	// Restart rolls the workloads of a release and waits for them.
	Restart(ctx context.Context, namespace, release string, timeout time.Duration) ([]reconcile.ObjectResult, error)
}

var (
	_ GitWriter     = (*gitrepo.Repo)(nil)
	_ ClusterSyncer = (*reconcile.Engine)(nil)
)

// Syncers returns engines as the ClusterSyncers of Config.Engines.
func Syncers(engines map[string]*reconcile.Engine) map[string]ClusterSyncer {
	out := make(map[string]ClusterSyncer, len(engines))
	for name, e := range engines {
		out[name] = e
	}
	return out
}
