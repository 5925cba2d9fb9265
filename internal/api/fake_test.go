package api_test

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mygitops/mgo/internal/api"
	"github.com/mygitops/mgo/internal/dashboard"
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
)

// fakeDeployer is a deploy service that answers what its fields say: one
// field per result or injected error. It records the requests it got.
type fakeDeployer struct {
	// SubmitErr fails Submit and SubmitWaiting; else they return a queued
	// deployment of the request.
	SubmitErr error
	// WaitResult is what Wait returns for any id (the queued deployment
	// marked succeeded when nil); WaitErr fails it.
	WaitResult *deploy.Deployment
	WaitErr    error
	// Deployments are known to Get and List, by id.
	Deployments map[string]*deploy.Deployment
	// RollbackErr fails RollbackBy; else it returns a queued rollback.
	RollbackErr error
	// Status is each served cluster's status; the clusters are its keys.
	Status   map[string]deploy.ClusterStatus
	DiffRes  *reconcile.DiffResult
	SyncRes  *reconcile.Result
	ClusterE error // fails Diff and Sync
	// Freezes are the clusters' freezes (none when absent).
	Freezes map[string]deploy.FreezeStatus

	mu        sync.Mutex
	submitted []deploy.Request
}

// fakeRefresher counts its triggers.
type fakeRefresher struct{ triggers atomic.Int32 }

func (f *fakeRefresher) Trigger() { f.triggers.Add(1) }

var (
	_ api.Deployer     = (*fakeDeployer)(nil)
	_ dashboard.Source = (*fakeDeployer)(nil) // the read model of the dashboard's views, in front of the same fake
)

var fakeTime = time.Date(2026, 11, 25, 17, 45, 1, 0, time.UTC)

func (f *fakeDeployer) submit(req deploy.Request) (*deploy.Deployment, error) {
	f.mu.Lock()
	f.submitted = append(f.submitted, req)
	f.mu.Unlock()
	if f.SubmitErr != nil {
		return nil, f.SubmitErr
	}
	return &deploy.Deployment{ID: "20261125T174501Z-4f2a9c1e", Kind: deploy.KindDeploy, Request: req, Status: deploy.Queued,
		Times: deploy.Times{Queued: fakeTime}}, nil
}

func (f *fakeDeployer) Submit(_ context.Context, req deploy.Request) (*deploy.Deployment, error) {
	return f.submit(req)
}

func (f *fakeDeployer) SubmitWaiting(_ context.Context, req deploy.Request) (*deploy.Deployment, error) {
	return f.submit(req)
}

func (f *fakeDeployer) Wait(_ context.Context, id string) (*deploy.Deployment, error) {
	if f.WaitErr != nil {
		return nil, f.WaitErr
	}
	if f.WaitResult != nil {
		return f.WaitResult, nil
	}
	d, err := f.Get(id)
	if err != nil {
		d = &deploy.Deployment{ID: id, Kind: deploy.KindDeploy, Times: deploy.Times{Queued: fakeTime}}
	}
	done := *d
	done.Status = deploy.Succeeded
	return &done, nil
}

func (f *fakeDeployer) Get(id string) (*deploy.Deployment, error) {
	if d, ok := f.Deployments[id]; ok {
		return d, nil
	}
	return nil, &deploy.NotFoundError{What: "deployment", Name: id}
}

func (f *fakeDeployer) List(limit int, keep func(*deploy.Deployment) bool) ([]*deploy.Deployment, error) {
	var out []*deploy.Deployment
	for _, d := range f.Deployments {
		if keep(d) && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeDeployer) RollbackBy(_ context.Context, id, client string, _ deploy.Identity, author string) (*deploy.Deployment, error) {
	if f.RollbackErr != nil {
		return nil, f.RollbackErr
	}
	orig, err := f.Get(id)
	if err != nil {
		return nil, err
	}
	req := orig.Request
	req.Client, req.Author = client, author
	return &deploy.Deployment{ID: "20261125T180000Z-00000001", Kind: deploy.KindRollback, RollbackOf: id, Request: req,
		Status: deploy.Queued, Times: deploy.Times{Queued: fakeTime}}, nil
}

func (f *fakeDeployer) Clusters() []string {
	var out []string
	for name := range f.Status {
		out = append(out, name)
	}
	return out
}

func (f *fakeDeployer) ClusterStatus(cluster string) (deploy.ClusterStatus, error) {
	st, ok := f.Status[cluster]
	if !ok {
		return st, &deploy.NotFoundError{What: "cluster", Name: cluster, Known: f.Clusters()}
	}
	return st, nil
}

func (f *fakeDeployer) Freeze(_ context.Context, cluster string) (deploy.FreezeStatus, error) {
	if _, err := f.ClusterStatus(cluster); err != nil {
		return deploy.FreezeStatus{}, err
	}
	return f.Freezes[cluster], nil
}

func (f *fakeDeployer) Diff(_ context.Context, cluster string) (*reconcile.DiffResult, error) {
	if _, err := f.ClusterStatus(cluster); err != nil {
		return nil, err
	}
	return f.DiffRes, f.ClusterE
}

func (f *fakeDeployer) Sync(_ context.Context, cluster string, _ bool) (*reconcile.Result, error) {
	if _, err := f.ClusterStatus(cluster); err != nil {
		return nil, err
	}
	return f.SyncRes, f.ClusterE
}

// The dashboard's reads: deployments since t from Deployments; each
// cluster with a last result defines its releases, which run installed and
// ready, last changed by one commit.
func (f *fakeDeployer) Since(t time.Time, limit int) ([]*deploy.Deployment, error) {
	var out []*deploy.Deployment
	for _, d := range f.Deployments {
		if !d.Times.Queued.Before(t) && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeDeployer) RepoReleases(_ context.Context, cluster string) (string, []deploy.ReleaseSource, error) {
	st, ok := f.Status[cluster]
	if !ok {
		return "", nil, &deploy.NotFoundError{What: "cluster", Name: cluster, Known: f.Clusters()}
	}
	var out []deploy.ReleaseSource
	if st.LastResult != nil {
		for _, rr := range st.LastResult.Releases {
			out = append(out, deploy.ReleaseSource{File: rr.File, Name: rr.Name, Namespace: rr.Namespace, Chart: rr.Chart, Valid: true,
				Images: map[string]string{"gitlab.com/acme/app": "registry.acme.io/acme/app:1.4.2"}})
		}
	}
	return "3c1f00", out, nil
}

func (f *fakeDeployer) LiveRelease(_ context.Context, _, namespace, name string) (reconcile.LiveRelease, error) {
	return reconcile.LiveRelease{Name: name, Namespace: namespace, Installed: true, Revision: 7, HelmStatus: "deployed",
		Chart: "hello", ChartVersion: "0.1.0", AppVersion: "1.4.2", Updated: fakeTime,
		Objects: []reconcile.ObjectResult{{Subject: "Deployment/" + namespace + "/" + name, Status: "Current", Message: "Deployment is available. Replicas: 1"}}}, nil
}

func (f *fakeDeployer) LastChanges(_ context.Context, head string, files []string, _ int) (map[string]gitrepo.FileChange, error) {
	out := map[string]gitrepo.FileChange{}
	for _, file := range files {
		out[file] = gitrepo.FileChange{Commit: head, AuthorName: "Alice", AuthorEmail: "alice@acme.io", Time: fakeTime, Summary: "deploy 1.4.2"}
	}
	return out, nil
}

func (f *fakeDeployer) RepoWebURL() string { return "https://github.com/acme/gitops" }
