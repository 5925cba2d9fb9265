package deploy

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeOwner holds the leases of the clusters set in it.
type fakeOwner struct {
	mu   sync.Mutex
	held map[string]bool
}

func (o *fakeOwner) Holds(cluster string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held[cluster]
}

func (o *fakeOwner) set(cluster string, held bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.held[cluster] = held
}

// sharedStore is a Store shared with other replicas: what they write is
// written with put, which tells the watchers as the store's watch would.
type sharedStore struct {
	Store
	mu       sync.Mutex
	watchers []func(*Deployment)
}

var _ Watcher = (*sharedStore)(nil)

func (w *sharedStore) Watch(_ context.Context, fn func(*Deployment)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watchers = append(w.watchers, fn)
}

// Put tells the watchers of every write, this replica's too, as the
// records' watch does.
func (w *sharedStore) Put(d *Deployment) error {
	if err := w.Store.Put(d); err != nil {
		return err
	}
	w.mu.Lock()
	fns := w.watchers
	w.mu.Unlock()
	for _, fn := range fns {
		c := *d
		fn(&c)
	}
	return nil
}

type sharedFixture struct {
	svc   *Service
	owner *fakeOwner
	store *sharedStore
	e     *fakeSyncer
}

// newSharedService runs a Service whose records are shared with other
// replicas, holding the leases of the clusters in held.
func newSharedService(t *testing.T, e *fakeSyncer, held ...string) *sharedFixture {
	t.Helper()
	bolt, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	f := &sharedFixture{owner: &fakeOwner{held: map[string]bool{}}, store: &sharedStore{Store: bolt}, e: e}
	for _, c := range held {
		f.owner.set(c, true)
	}
	f.svc, err = New(Config{Git: newFakeGit(t, fakeFiles(autoConfig)), Engines: map[string]ClusterSyncer{"prod": e},
		Store: f.store, Owner: f.owner, SnapshotDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// waitPushed waits until the record of id is pushed.
func (f *sharedFixture) waitPushed(t *testing.T, id string) *Deployment {
	t.Helper()
	var d *Deployment
	waitFor(t, "the deployment pushed", func() bool {
		var err error
		d, err = f.store.Get(id)
		return err == nil && d.Status == Pushed
	})
	return d
}

// TestHandOffToTheLeaseHolder leaves a deploy of a cluster another
// replica holds pushed, without a sync here, and answers the waiting
// caller when the holder finishes the record.
func TestHandOffToTheLeaseHolder(t *testing.T) {
	f := newSharedService(t, &fakeSyncer{})
	ctx := fakeContext(t)
	d, err := f.svc.Submit(ctx, request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan *Deployment, 1)
	go func() { got, _ := f.svc.Wait(ctx, d.ID); waited <- got }()
	rec := f.waitPushed(t, d.ID)
	waitFor(t, "the hand-off", func() bool { return !f.svc.Busy("prod") })
	select {
	case got := <-waited:
		t.Fatalf("answered before the holder finished: %+v", got)
	case <-time.After(200 * time.Millisecond):
	}
	if n := f.e.count(); n != 0 {
		t.Fatalf("%d syncs of a cluster this replica does not hold", n)
	}
	rec.Status, rec.Synced = Succeeded, new(true) // the holder's sync
	if err := f.store.Put(rec); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-waited:
		if got == nil || got.Status != Succeeded {
			t.Fatalf("answer %+v", got)
		}
	case <-ctx.Done():
		t.Fatal("the caller was not answered from the holder's record")
	}
}

// TestAcquiredTakesOverPushedRecords finishes, when this replica takes a
// cluster's lease, the deployments another replica left pushed for it,
// and syncs the cluster in full.
func TestAcquiredTakesOverPushedRecords(t *testing.T) {
	f := newSharedService(t, &fakeSyncer{})
	ctx := fakeContext(t)
	d, err := f.svc.Submit(ctx, request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	f.waitPushed(t, d.ID) // left for the holder, which then went away
	waitFor(t, "the hand-off", func() bool { return !f.svc.Busy("prod") })

	f.owner.set("prod", true)
	f.svc.Acquired(ctx, "prod")
	got, err := f.svc.Wait(ctx, d.ID)
	if err != nil || got.Status != Succeeded || len(got.Releases) != 1 || got.Releases[0].File != valuesFile {
		t.Fatalf("deployment taken over: %+v, %v", got, err)
	}
	_, full := f.e.syncsOf()
	if !slices.Contains(full, true) {
		t.Errorf("syncs after taking the lease (full): %v, want a full one", full)
	}
}

// TestBusyWhileASyncRuns keeps the lease busy while a sync of the cluster
// runs, and idle once it ended.
func TestBusyWhileASyncRuns(t *testing.T) {
	gate := make(chan struct{})
	f := newSharedService(t, &fakeSyncer{BackgroundGate: gate, Started: make(chan struct{}, 10)}, "prod")
	if f.svc.Busy("prod") {
		t.Fatal("busy before any sync")
	}
	ctx := fakeContext(t)
	done := make(chan error, 1)
	go func() { _, err := f.svc.sync(ctx, "prod", true, false, true); done <- err }()
	<-f.e.Started
	if !f.svc.Busy("prod") {
		t.Fatal("not busy while a sync runs")
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "idle after the sync", func() bool { return !f.svc.Busy("prod") })
	if f.svc.Busy("elsewhere") {
		t.Error("an unknown cluster is busy")
	}
}

// TestLostLeaseStopsTheSync cancels the sync of a cluster whose lease
// this replica lost, and leaves its deployment pushed for the new holder
// instead of failing it.
func TestLostLeaseStopsTheSync(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	e := &fakeSyncer{Gates: map[string]chan struct{}{valuesFile: gate}, Started: make(chan struct{}, 10)}
	f := newSharedService(t, e, "prod")
	ctx := fakeContext(t)
	d, err := f.svc.Submit(ctx, request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	<-e.Started // the sync waits at the release
	f.owner.set("prod", false)
	f.svc.Lost("prod")
	waitFor(t, "the sync to stop", func() bool { return !f.svc.Busy("prod") })
	got, err := f.store.Get(d.ID)
	if err != nil || got.Status != Pushed {
		t.Fatalf("deployment after the loss: %+v, %v; want it left pushed", got, err)
	}
}
