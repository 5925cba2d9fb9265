package dashboard

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
)

var (
	_ Source = (*deploy.Service)(nil)
	_ Source = (*fakeSource)(nil)
)

// fakeSource is a deploy service that answers what its fields say: one
// field per answer or injected error. It counts the reads of git history.
type fakeSource struct {
	// Status is each served cluster's status; the clusters are its keys.
	Status map[string]deploy.ClusterStatus
	// Deployments are what Since answers from; SinceErr fails it.
	Deployments []*deploy.Deployment
	SinceErr    error
	// Head is the repo's head; Releases the releases of each cluster there.
	Head     string
	Releases map[string][]deploy.ReleaseSource
	// Live is each release's live state, by namespace/name; a release
	// without one is not installed. LiveErr fails LiveRelease.
	Live    map[string]reconcile.LiveRelease
	LiveErr error
	// Changes are the last changes of files; ChangesErr is returned with them.
	Changes    map[string]gitrepo.FileChange
	ChangesErr error
	WebURL     string

	mu         sync.Mutex
	historyFor [][]string // the files of each LastChanges call
}

func (f *fakeSource) Clusters() []string {
	var out []string
	for name := range f.Status {
		out = append(out, name)
	}
	return out
}

func (f *fakeSource) ClusterStatus(cluster string) (deploy.ClusterStatus, error) {
	st, ok := f.Status[cluster]
	if !ok {
		return st, &deploy.NotFoundError{What: "cluster", Name: cluster, Known: f.Clusters()}
	}
	return st, nil
}

func (f *fakeSource) Since(t time.Time, limit int) ([]*deploy.Deployment, error) {
	var out []*deploy.Deployment
	for _, d := range f.Deployments {
		if !d.Times.Queued.Before(t) && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, f.SinceErr
}

func (f *fakeSource) RepoReleases(_ context.Context, cluster string) (string, []deploy.ReleaseSource, error) {
	if _, err := f.ClusterStatus(cluster); err != nil {
		return "", nil, err
	}
	return f.Head, f.Releases[cluster], nil
}

func (f *fakeSource) LiveRelease(_ context.Context, _, namespace, name string) (reconcile.LiveRelease, error) {
	if f.LiveErr != nil {
		return reconcile.LiveRelease{}, f.LiveErr
	}
	return f.Live[namespace+"/"+name], nil
}

func (f *fakeSource) LastChanges(_ context.Context, _ string, files []string, _ int) (map[string]gitrepo.FileChange, error) {
	f.mu.Lock()
	f.historyFor = append(f.historyFor, files)
	f.mu.Unlock()
	out := map[string]gitrepo.FileChange{}
	for _, file := range files {
		if c, ok := f.Changes[file]; ok {
			out[file] = c
		}
	}
	return out, f.ChangesErr
}

func (f *fakeSource) RepoWebURL() string { return f.WebURL }

func (f *fakeSource) historyReads() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.historyFor
}

var errBoom = errors.New("boom")
