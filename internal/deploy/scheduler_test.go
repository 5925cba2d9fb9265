package deploy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// TestSyncQueueCoalesces takes everything queued as one batch, with the
// flags of all its requests; a batch is a background one only when no job
// and no waiting request is in it.
func TestSyncQueueCoalesces(t *testing.T) {
	j1, j2 := &job{d: &Deployment{ID: "1"}}, &job{d: &Deployment{ID: "2"}}
	for _, tc := range []struct {
		name                          string
		fill                          func(q *syncQueue)
		jobs, waiters                 int
		full, force, background, none bool
	}{
		{name: "empty", fill: func(*syncQueue) {}, none: true},
		{name: "jobs", fill: func(q *syncQueue) { q.addJob(j1); q.addJob(j2) }, jobs: 2},
		{name: "background check", fill: func(q *syncQueue) {
			q.addRequest(make(chan syncOutcome, 1), true, false, true)
		}, waiters: 1, full: true, background: true},
		{name: "background check and a job", fill: func(q *syncQueue) {
			q.addRequest(make(chan syncOutcome, 1), true, false, true)
			q.addJob(j1)
		}, jobs: 1, waiters: 1, full: true},
		{name: "background and explicit", fill: func(q *syncQueue) {
			q.addRequest(make(chan syncOutcome, 1), false, false, true)
			q.addRequest(make(chan syncOutcome, 1), false, true, false)
		}, waiters: 2, force: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q syncQueue
			tc.fill(&q)
			b, ok := q.take()
			if ok == tc.none {
				t.Fatalf("take: ok %v", ok)
			}
			if len(b.jobs) != tc.jobs || len(b.waiters) != tc.waiters || b.full != tc.full || b.force != tc.force || b.background != tc.background {
				t.Errorf("batch %+v", b)
			}
			if !q.empty() {
				t.Error("the queue keeps what the batch took")
			}
			if _, ok := q.take(); ok {
				t.Error("a second take found a batch")
			}
		})
	}
}

// gatedStore holds every write of a finished deployment until gate is
// closed.
type gatedStore struct {
	Store
	gate chan struct{}
}

func (g *gatedStore) Put(d *Deployment) error {
	if d.Status.Terminal() {
		<-g.gate
	}
	return g.Store.Put(d)
}

// returningSyncer tells, after each OnRelease call of the engine
// returned, the values file of the release.
type returningSyncer struct {
	*fakeSyncer
	returned chan string
}

func (r *returningSyncer) Sync(ctx context.Context, rp *repo.Repo, opts reconcile.Options) (*reconcile.Result, error) {
	if inner := opts.OnRelease; inner != nil {
		opts.OnRelease = func(rr reconcile.ReleaseResult) {
			inner(rr)
			r.returned <- rr.File
		}
	}
	return r.fakeSyncer.Sync(ctx, rp, opts)
}

// TestAnswersDoNotRunOnTheEngine answers a deploy whose release is synced
// while the engine goes on: the engine's OnRelease returns while the
// answer's store write still waits.
func TestAnswersDoNotRunOnTheEngine(t *testing.T) {
	bolt, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	store := &gatedStore{Store: bolt, gate: make(chan struct{})}
	var once sync.Once
	open := func() { once.Do(func() { close(store.gate) }) }
	t.Cleanup(open)
	e := &returningSyncer{fakeSyncer: &fakeSyncer{}, returned: make(chan string, 10)}
	svc, err := New(Config{Git: newFakeGit(t, fakeFiles(autoConfig)), Engines: map[string]ClusterSyncer{"prod": e}, Store: store, SnapshotDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { open(); cancel(); <-done })

	tctx := fakeContext(t)
	d, err := svc.Submit(tctx, request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-e.returned:
		if f != valuesFile {
			t.Fatalf("OnRelease of %s", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the engine's OnRelease did not return while the answer's store write waited")
	}
	open()
	if d, err = svc.Wait(tctx, d.ID); err != nil || d.Status != Succeeded {
		t.Fatalf("deployment %+v, %v", d, err)
	}
}
