package api

import (
	"context"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
)

// Deployer is what the API asks of the deploy service for deploys,
// rollbacks, deployments and clusters: *deploy.Service in mgo serve, a fake
// in this package's tests. The dashboard's views read it through their own
// read model (Dashboard).
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
	// Freeze is the cluster's deploy freeze now, by the repo's head.
	Freeze(ctx context.Context, cluster string) (deploy.FreezeStatus, error)
	Diff(ctx context.Context, cluster string) (*reconcile.DiffResult, error)
	Sync(ctx context.Context, cluster string, full bool) (*reconcile.Result, error)
}

var _ Deployer = (*deploy.Service)(nil)
