package deploy

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
)

// watchedStore is a store shared with (absent) other replicas: it makes
// the service consult its Owner.
type watchedStore struct{ *BoltStore }

func (watchedStore) Watch(context.Context, func(*Deployment)) {}

// flagOwner holds the clusters while held is set.
type flagOwner struct{ held atomic.Bool }

func (o *flagOwner) Holds(string) bool { return o.held.Load() }

func newDriftService(t *testing.T, e *fakeSyncer, owner Owner) (*Service, *recorder, *Metrics) {
	t.Helper()
	store, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rec, m := &recorder{}, NewMetrics(prometheus.NewRegistry())
	cfg := Config{Git: newFakeGit(t, fakeFiles(autoConfig)), Engines: map[string]ClusterSyncer{"prod": e}, Store: store,
		SnapshotDir: t.TempDir(), Notifier: rec, Metrics: m}
	if owner != nil {
		cfg.Store, cfg.Owner = watchedStore{store}, owner
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc, rec, m
}

func TestDriftFromWatchesIsReportedOnce(t *testing.T) {
	e := &fakeSyncer{}
	svc, rec, m := newDriftService(t, e, nil)
	dep := reconcile.Drift{Namespace: "apps", Release: "app", Subject: "Deployment/apps/app", Change: reconcile.DriftChanged}
	e.report(dep)
	e.report(dep) // the same object again: told once
	st, _ := svc.ClusterStatus("prod")
	if st.Drift != 1 || st.DriftChecked.IsZero() {
		t.Fatalf("status after one drifted object: %+v", st)
	}
	if v := gauge(t, m.Drift.WithLabelValues("prod")); v != 1 {
		t.Errorf("mgo_drift_objects = %v, want 1", v)
	}
	evs := rec.all()
	if len(evs) != 1 {
		t.Fatalf("events %+v, want one drift.detected", evs)
	}
	ev := evs[0]
	if ev.Type != notify.DriftDetected || ev.Success || ev.Cluster != "prod" || ev.Objects != 1 ||
		len(ev.Releases) != 1 || ev.Releases[0].Name != "app" || !strings.Contains(ev.Summary, "Deployment/apps/app") {
		t.Errorf("event %+v", ev)
	}

	e.report(reconcile.Drift{Namespace: "apps", Release: "app", Subject: "Service/apps/app", Change: reconcile.DriftDeleted})
	if st, _ := svc.ClusterStatus("prod"); st.Drift != 2 {
		t.Errorf("drift after a second object: %d, want 2", st.Drift)
	}
	if evs := rec.all(); len(evs) != 2 || evs[1].Objects != 2 || !strings.Contains(evs[1].Summary, "deleted") {
		t.Errorf("events %+v, want a second drift.detected of 2 objects", evs)
	}

	// The periodic check finds no difference: the count starts again.
	if err := svc.CheckDrift(fakeContext(t), "prod"); err != nil {
		t.Fatal(err)
	}
	if st, _ := svc.ClusterStatus("prod"); st.Drift != 0 {
		t.Errorf("drift after a check that found none: %d", st.Drift)
	}
	if v := gauge(t, m.Drift.WithLabelValues("prod")); v != 0 {
		t.Errorf("mgo_drift_objects = %v after the check, want 0", v)
	}
	e.report(dep)
	if evs := rec.all(); len(evs) != 3 || evs[2].Objects != 1 {
		t.Errorf("events %+v, want the object told again after the check cleared it", evs)
	}
}

func TestDriftIsReportedByTheLeaseHolderOnly(t *testing.T) {
	e, owner := &fakeSyncer{}, &flagOwner{}
	svc, rec, _ := newDriftService(t, e, owner)
	dep := reconcile.Drift{Namespace: "apps", Release: "app", Subject: "Deployment/apps/app", Change: reconcile.DriftChanged}
	e.report(dep)
	if st, _ := svc.ClusterStatus("prod"); st.Drift != 0 || len(rec.all()) != 0 {
		t.Fatalf("a replica that does not hold the cluster reported drift: %+v %+v", st, rec.all())
	}
	owner.held.Store(true)
	e.report(dep)
	if st, _ := svc.ClusterStatus("prod"); st.Drift != 1 || len(rec.all()) != 1 {
		t.Fatalf("the holder did not report drift: %+v %+v", st, rec.all())
	}
}

func TestStartupAndDriftChecksRunInBackground(t *testing.T) {
	e := &fakeSyncer{}
	svc := newFakeService(t, newFakeGit(t, fakeFiles(autoConfig)), e)
	ctx := fakeContext(t)
	svc.StartupSync(ctx)
	if err := svc.CheckDrift(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sync(ctx, "prod", true); err != nil {
		t.Fatal(err)
	}
	if d := deployAndWait(t, svc, request("2.0.0", "")); d.Status != Succeeded {
		t.Fatalf("deploy: %+v", d)
	}
	// start-up sync, drift check's diff, explicit sync, deploy's sync
	if got := e.backgrounds(); len(got) != 4 || !got[0] || !got[1] || got[2] || got[3] {
		t.Errorf("Options.Background of each sync and diff: %v, want [true true false false]", got)
	}
}

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var pb dto.Metric
	if err := g.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetGauge().GetValue()
}

// TestDeployGoesAheadOfBackgroundSync: a deploy submitted while the
// start-up sync is held is answered from a sync of its own release, and
// the start-up sync, at the older head, then leaves that release alone.
func TestDeployGoesAheadOfBackgroundSync(t *testing.T) {
	e := &fakeSyncer{Started: make(chan struct{}, 10), BackgroundGate: make(chan struct{})}
	svc := newFakeService(t, newFakeGit(t, fakeFiles(autoConfig)), e)
	ctx := fakeContext(t)
	startup := make(chan struct{})
	go func() { svc.StartupSync(ctx); close(startup) }()
	<-e.Started // the start-up sync runs, held by the gate

	d := deployAndWait(t, svc, request("2.0.0", ""))
	if d.Status != Succeeded || d.Synced == nil || !*d.Synced || len(d.Releases) != 1 || d.Releases[0].Name != "app" {
		t.Fatalf("deploy while the start-up sync is held: %s synced %v releases %+v (%s)", d.Status, d.Synced, d.Releases, d.Error)
	}
	select {
	case <-startup:
		t.Fatal("the start-up sync ended before its gate opened")
	default:
	}

	close(e.BackgroundGate)
	<-startup
	st, _ := svc.ClusterStatus("prod")
	if st.LastResult == nil || len(st.LastResult.Releases) != 1 || st.LastResult.Releases[0].File != workerFile {
		t.Fatalf("the start-up sync synced %+v, want the worker only (app was deployed at a newer head)", st.LastResult)
	}
	if got := e.backgrounds(); len(got) != 2 || !got[0] || got[1] {
		t.Errorf("Options.Background of each sync: %v, want [true false]", got)
	}
}
