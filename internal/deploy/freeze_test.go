package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// nightFreeze freezes cluster prod every night from 22:00 to 06:00 UTC
// and holds pushed changes meanwhile.
const nightFreeze = autoConfig + `clusters:
  prod:
    syncDuringFreeze: false
    freezes:
      - name: night
        kind: deny
        schedule: "0 22 * * *"
        duration: 8h
`

// testClock is a clock a test sets.
type testClock struct {
	mu sync.Mutex
	f  func() time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f()
}

func (c *testClock) set(t time.Time) { c.setFunc(func() time.Time { return t }) }

func (c *testClock) setFunc(f func() time.Time) {
	c.mu.Lock()
	c.f = f
	c.mu.Unlock()
}

func newFrozenService(t *testing.T, g *fakeGit, e *fakeSyncer, clock *testClock) *Service {
	t.Helper()
	return newFrozenServiceOf(t, g, e, clock)
}

func newFrozenServiceOf(t *testing.T, g *fakeGit, e ClusterSyncer, clock *testClock) *Service {
	t.Helper()
	store, err := OpenStore(t.TempDir() + "/deployments.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc, err := New(Config{Git: g, Engines: map[string]ClusterSyncer{"prod": e}, Store: store, SnapshotDir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

// push changes the tag in the values file of the fake clone, as a person's
// push that a fetch brought in.
func push(t *testing.T, g *fakeGit, tag string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	p := filepath.Join(g.dir, valuesFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "tag:") {
			lines[i] = `      tag: "` + tag + `"`
		}
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	g.commits++
	g.head = "person" + tag
}

// TestFreezeHoldsPushedChanges: with syncDuringFreeze false, a change
// pushed during a freeze is not synced, the cluster says it is held, and
// it is synced once the freeze ends; a change held across the gap between
// two windows is not lost; the timer syncs it when the freeze ends.
func TestFreezeHoldsPushedChanges(t *testing.T) {
	g := newFakeGit(t, fakeFiles(nightFreeze))
	e := &fakeSyncer{}
	clock := &testClock{}
	day := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock.set(day)
	svc := newFrozenService(t, g, e, clock)
	ctx := fakeContext(t)
	refresh := func(when time.Time, want int) {
		t.Helper()
		clock.set(when)
		synced, err := svc.Refresh(ctx)
		if err != nil || len(synced) != want {
			t.Fatalf("refresh at %v: synced %v, %v; want %d", when, synced, err, want)
		}
	}
	held := func(want bool) {
		t.Helper()
		st, err := svc.Freeze(ctx, "prod")
		if err != nil || st.Held != want || !st.HoldPushes {
			t.Fatalf("freeze status %+v, %v; want held %v", st, err, want)
		}
	}
	refresh(day, 1) // the first sync, outside the freeze
	push(t, g, "1.5.0")
	refresh(day.Add(11*time.Hour), 0) // 23:00: frozen
	held(true)
	if n := e.count(); n != 1 {
		t.Fatalf("%d syncs during the freeze, want 1 (the first)", n)
	}
	refresh(day.Add(18*time.Hour+time.Second), 1) // 06:00:01: the freeze ended
	held(false)

	// Held in one night, still held the next, synced after it.
	push(t, g, "1.6.0")
	refresh(day.Add(35*time.Hour), 0)
	refresh(day.Add(36*time.Hour), 0) // the next night (the gap had no refresh)
	held(true)
	refresh(day.Add(42*time.Hour+time.Minute), 1)

	// The timer syncs a held change when the freeze ends: the clock runs
	// two seconds before the end of a night.
	push(t, g, "1.7.0")
	end := day.Add(66 * time.Hour) // 2026-12-10 06:00
	offset := end.Add(-2 * time.Second).Sub(time.Now())
	clock.setFunc(func() time.Time { return time.Now().Add(offset) })
	n := e.count()
	if synced, err := svc.Refresh(ctx); err != nil || len(synced) != 0 {
		t.Fatalf("refresh before the end: %v, %v", synced, err)
	}
	waitFor(t, "the held change to sync when the freeze ends", func() bool { return e.count() > n })
}

// TestFreezeRefusesDeploys: a deploy during a deny window writes nothing,
// fails with a FrozenError (ErrFrozen) naming the window and its end, and
// an overriding request goes through with FreezeOverride set. A cluster
// whose freezes have errors takes no deploy.
func TestFreezeRefusesDeploys(t *testing.T) {
	g := newFakeGit(t, fakeFiles(nightFreeze))
	clock := &testClock{}
	night := time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)
	clock.set(night)
	svc := newFrozenService(t, g, &fakeSyncer{}, clock)
	ctx := fakeContext(t)

	_, err := svc.Submit(ctx, request("2.0.0", ""))
	var fe *FrozenError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFrozen) || !Refused(err) || fe.Period.Window == nil || fe.Period.Window.Name != "night" ||
		!fe.Period.Until.Equal(time.Date(2026, 12, 8, 6, 0, 0, 0, time.UTC)) || !strings.Contains(err.Error(), "until 2026-12-08T06:00:00Z") {
		t.Fatalf("deploy at night: %v", err)
	}
	if list, _ := svc.List(10, nil); len(list) != 0 || g.commits != 0 {
		t.Fatalf("a refused deploy wrote something: %d records, %d commits", len(list), g.commits)
	}
	req := request("2.0.0", "")
	req.OverrideFreeze = true
	d := deployAndWait(t, svc, req)
	if d.Status != Succeeded || d.Request.FreezeOverride != "night by ci" || g.commits != 1 {
		t.Fatalf("override: %+v", d)
	}
	if info := req.CommitInfo(d.ID, nil); info.Trailers.FreezeOverride != "" {
		t.Errorf("the request's own copy changed: %+v", info.Trailers)
	}
	if info := d.Request.CommitInfo(d.ID, nil); info.Trailers.FreezeOverride != "night by ci" {
		t.Errorf("trailers %+v", info.Trailers)
	}

	// By day nothing is frozen.
	clock.set(night.Add(8 * time.Hour))
	if d := deployAndWait(t, svc, request("2.0.1", "")); d.Status != Succeeded || d.Request.FreezeOverride != "" {
		t.Fatalf("deploy by day: %+v", d)
	}

	// A broken window refuses deploys (422) rather than lifting the freeze.
	broken := newFakeGit(t, fakeFiles(strings.Replace(nightFreeze, `"0 22 * * *"`, `"0 22 * *"`, 1)))
	svc2 := newFrozenService(t, broken, &fakeSyncer{}, clock)
	if _, err := svc2.Submit(ctx, request("2.0.2", "")); !errors.Is(err, ErrUnprocessable) || !strings.Contains(err.Error(), "freezes of cluster prod") {
		t.Fatalf("deploy with a broken freeze: %v", err)
	}
}

// differingSyncer is a fakeSyncer whose diffs always find a changed
// object.
type differingSyncer struct{ *fakeSyncer }

func (d differingSyncer) Diff(_ context.Context, _ *repo.Repo, _ reconcile.Options) (*reconcile.DiffResult, error) {
	return &reconcile.DiffResult{Releases: []reconcile.ReleaseDiff{{File: valuesFile, Name: "app", Namespace: "app",
		Objects: []reconcile.ObjectDiff{{Subject: "Deployment/app/app", Action: reconcile.ObjectConfigured}}}}}, nil
}

// TestFreezeHoldsDriftRepairs: a drift repair would sync held changes, so
// it waits for the freeze to end too.
func TestFreezeHoldsDriftRepairs(t *testing.T) {
	e := &fakeSyncer{}
	clock := &testClock{}
	night := time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)
	clock.set(night)
	svc := newFrozenServiceOf(t, newFakeGit(t, fakeFiles(strings.Replace(nightFreeze, "    syncDuringFreeze", "    drift: repair\n    syncDuringFreeze", 1))),
		differingSyncer{e}, clock)
	ctx := fakeContext(t)
	if err := svc.CheckDrift(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(); n != 0 {
		t.Fatalf("%d syncs: a drift repair ran during the freeze", n)
	}
	clock.set(night.Add(8 * time.Hour))
	if err := svc.CheckDrift(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d syncs after the freeze, want the repair", n)
	}
}
