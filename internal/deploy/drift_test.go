package deploy

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mygitops/mgo/internal/logtest"
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

const repairConfig = autoConfig + "clusters:\n  prod:\n    drift: repair\n"

// newRepairService runs a Service on fakes with drift: repair, after its
// start-up sync (which reads the policy).
func newRepairService(t *testing.T, e *fakeSyncer, config string) (*Service, *recorder, *logtest.Buffer) {
	t.Helper()
	store, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rec, logs := &recorder{}, &logtest.Buffer{}
	svc, err := New(Config{Git: newFakeGit(t, fakeFiles(config)), Engines: map[string]ClusterSyncer{"prod": e}, Store: store,
		SnapshotDir: t.TempDir(), Notifier: rec, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	svc.StartupSync(fakeContext(t))
	return svc, rec, logs
}

func eventsOf(rec *recorder, typ string) []notify.Event {
	var out []notify.Event
	for _, ev := range rec.all() {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDriftFromWatchesIsRepaired: under drift: repair, a burst of drift
// events of one release makes one background sync of that release alone,
// then drift.repaired, and the count falls back.
func TestDriftFromWatchesIsRepaired(t *testing.T) {
	e := &fakeSyncer{}
	svc, rec, _ := newRepairService(t, e, repairConfig)
	now := time.Now()
	for i, subj := range []string{"Deployment/app/app", "Deployment/app/app", "Service/app/app"} {
		e.report(reconcile.Drift{Namespace: "app", Release: "app", Subject: subj, Change: reconcile.DriftChanged, At: now.Add(time.Duration(i))})
	}
	waitUntil(t, "drift.repaired", func() bool { return len(eventsOf(rec, notify.DriftRepaired)) == 1 })
	ev := eventsOf(rec, notify.DriftRepaired)[0]
	if !ev.Success || ev.Cluster != "prod" || ev.Objects != 2 || len(ev.Releases) != 1 || ev.Releases[0].Name != "app" || ev.Commit == "" {
		t.Errorf("drift.repaired %+v", ev)
	}
	releases, full := e.syncsOf()
	if len(releases) != 2 || releases[0] != "" || releases[1] != "app" || !full[1] || !e.backgrounds()[1] {
		t.Errorf("syncs (release, full): %q %v, background %v; want the start-up sync, then one full background sync of app", releases, full, e.backgrounds())
	}
	if st, _ := svc.ClusterStatus("prod"); st.Drift != 0 {
		t.Errorf("drift count %d after the repair, want 0", st.Drift)
	}

	// A second change is repaired too.
	e.report(reconcile.Drift{Namespace: "app", Release: "app", Subject: "Deployment/app/app", Change: reconcile.DriftChanged, At: time.Now()})
	waitUntil(t, "the second drift.repaired", func() bool { return len(eventsOf(rec, notify.DriftRepaired)) == 2 })
	if releases, _ := e.syncsOf(); len(releases) != 3 || releases[2] != "app" {
		t.Errorf("syncs %q, want a second sync of app", releases)
	}
}

// TestDriftFromWatchesIsOnlyReported: under drift: report, or with sync:
// manual, nothing is synced for a watch-seen drift.
func TestDriftFromWatchesIsOnlyReported(t *testing.T) {
	for name, config := range map[string]string{
		"report": autoConfig,
		"manual": autoConfig + "clusters:\n  prod:\n    drift: repair\n    sync: manual\n",
	} {
		t.Run(name, func(t *testing.T) {
			e := &fakeSyncer{}
			svc, rec, _ := newRepairService(t, e, config)
			e.report(reconcile.Drift{Namespace: "app", Release: "app", Subject: "Deployment/app/app", Change: reconcile.DriftChanged, At: time.Now()})
			waitUntil(t, "drift.detected", func() bool { return len(eventsOf(rec, notify.DriftDetected)) == 1 })
			// The drift handler queues a repair before it returns.
			c := svc.clusters["prod"]
			c.mu.Lock()
			queued := len(c.repair.pending) > 0 || c.repair.running
			c.mu.Unlock()
			if queued {
				t.Fatal("a repair was queued")
			}
			if releases, _ := e.syncsOf(); len(releases) > 1 {
				t.Errorf("syncs %q after a drift, want the start-up sync only", releases)
			}
			if st, _ := svc.ClusterStatus("prod"); st.Drift != 1 {
				t.Errorf("drift count %d, want 1", st.Drift)
			}
		})
	}
}

// TestDriftRepairLeftToADeploy: a drift seen before the sync of a deploy
// of its release began is repaired by that sync, not by one of its own; a
// drift seen after it began is repaired by a sync of its own.
func TestDriftRepairLeftToADeploy(t *testing.T) {
	gate := make(chan struct{}, 1)
	gate <- struct{}{} // for the start-up sync
	e := &fakeSyncer{Started: make(chan struct{}, 10), Gates: map[string]chan struct{}{valuesFile: gate}}
	svc, rec, logs := newRepairService(t, e, repairConfig)
	<-e.Started // the start-up sync
	before := time.Now()
	d, err := svc.Submit(fakeContext(t), request("2.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	<-e.Started // the deploy's sync, held at app
	// Seen before the deploy's sync began, told late.
	e.report(reconcile.Drift{Namespace: "app", Release: "app", Subject: "Deployment/app/app", Change: reconcile.DriftChanged, At: before})
	waitUntil(t, "the repair left to the deploy", func() bool {
		return strings.Contains(logs.String(), "a deploy of the release is under way")
	})
	// Seen after it began: the deploy may have compared the release already.
	e.report(reconcile.Drift{Namespace: "app", Release: "app", Subject: "Deployment/app/app", Change: reconcile.DriftChanged, At: time.Now()})
	<-e.Started // the repair's sync, held at app behind the deploy's
	close(gate)
	if d, err = svc.Wait(fakeContext(t), d.ID); err != nil || d.Status != Succeeded {
		t.Fatalf("deploy: %+v %v", d, err)
	}
	waitUntil(t, "drift.repaired", func() bool { return len(eventsOf(rec, notify.DriftRepaired)) == 1 })
	if releases, _ := e.syncsOf(); len(releases) != 3 || releases[2] != "app" {
		t.Errorf("syncs %q, want the start-up sync, the deploy's and one repair of app", releases)
	}
}
