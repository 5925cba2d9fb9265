package api

import (
	"context"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
)

// Deployer is what the API asks of the deploy service: *deploy.Service in
// mgo serve, a fake in this package's tests.
type Deployer interface {
	// Submit queues a request that goes on whatever its client does;
	// SubmitWaiting one that is dropped when ctx ends while it is queued.
	Submit(ctx context.Context, req deploy.Request) (*deploy.Deployment, error)
	SubmitWaiting(ctx context.Context, req deploy.Request) (*deploy.Deployment, error)
	// Wait returns the deployment once it has ended.
	Wait(ctx context.Context, id string) (*deploy.Deployment, error)
	Get(id string) (*deploy.Deployment, error)
	List(limit int, keep func(*deploy.Deployment) bool) ([]*deploy.Deployment, error)
	RollbackBy(ctx context.Context, id, client string, identity deploy.Identity, author string) (*deploy.Deployment, error)

	Clusters() []string
	ClusterStatus(cluster string) (deploy.ClusterStatus, error)
	Diff(ctx context.Context, cluster string) (*reconcile.DiffResult, error)
	Sync(ctx context.Context, cluster string, full bool) (*reconcile.Result, error)

	// What the dashboard's views read: deployments since a time, the
	// releases the repo defines, a release's live state, the last change
	// of files and the repo's web page.
	Since(t time.Time, limit int) ([]*deploy.Deployment, error)
	RepoReleases(ctx context.Context, cluster string) (string, []deploy.ReleaseSource, error)
	LiveRelease(ctx context.Context, cluster, namespace, name string) (reconcile.LiveRelease, error)
	LastChanges(ctx context.Context, head string, files []string, maxCommits int) (map[string]gitrepo.FileChange, error)
	RepoWebURL() string
}

var _ Deployer = (*deploy.Service)(nil)
