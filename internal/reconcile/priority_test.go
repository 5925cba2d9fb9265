package reconcile

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// A sync of one release (a deploy) does not wait behind a background sync
// of the whole cluster (the start-up comparison, a drift check): with one
// release at a time, it gets the next free slot before the background
// sync's releases still waiting.
func TestForegroundReleaseBeforeBackgroundSync(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	for _, name := range []string{"prio-a", "prio-b", "prio-c", "prio-d"} {
		g.release(name, ns, "hello", "1.0.0", "")
	}
	c, err := kube.FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 100, Burst: 200, MaxConcurrentReleases: 1})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions(t.TempDir())
	opts.PlainHTTP = true
	opts.CAFile = charttest.CAFile(t)
	charts, err := render.NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(c, charts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)

	var mu sync.Mutex
	var order []string
	first := make(chan struct{})
	proceed := make(chan struct{})
	t.Cleanup(func() { testHookBeforeWait = nil })
	testHookBeforeWait = func(release string) {
		mu.Lock()
		order = append(order, release)
		n := len(order)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-proceed // hold the only slot until the deploy waits for it
		}
	}
	r := g.load()
	background := make(chan *Result, 1)
	go func() {
		res, err := e.Sync(context.Background(), r, Options{Background: true})
		if err != nil {
			t.Error(err)
		}
		background <- res
	}()
	<-first
	mu.Lock()
	held := order[0]
	mu.Unlock()
	deployed := "prio-d"
	if held == deployed {
		deployed = "prio-c"
	}
	foreground := make(chan *Result, 1)
	go func() {
		res, err := e.Sync(context.Background(), r, Options{Release: deployed})
		if err != nil {
			t.Error(err)
		}
		foreground <- res
	}()
	waitFor(t, "the deploy to wait for a slot", func() bool {
		e.slots.mu.Lock()
		defer e.slots.mu.Unlock()
		return len(e.slots.foreground) == 1
	})
	close(proceed)
	fg := <-foreground
	if rr := mustRelease(t, fg, ns, deployed); rr.Action != Installed {
		t.Errorf("deploy of %s: %+v", deployed, rr)
	}
	bg := <-background
	if bg.Failed() {
		t.Errorf("background sync:\n%s", bg)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) < 2 || order[1] != deployed {
		t.Errorf("rollout waits in the order %v; want %s second, before the background sync's others", order, deployed)
	}
	if !slices.Contains(order, held) {
		t.Errorf("order %v", order)
	}
}

// A release that Options.Superseded names (a deploy synced it at a newer
// head while this background sync ran) is neither synced nor reported.
func TestSupersededReleaseIsLeftAlone(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("sup-a", ns, "hello", "1.0.0", "")
	g.release("sup-b", ns, "hello", "1.0.0", "")
	c, err := kube.FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 100, Burst: 200})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions(t.TempDir())
	opts.PlainHTTP = true
	opts.CAFile = charttest.CAFile(t)
	charts, err := render.NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An owner of its own: the full sync uninstalls no other test's releases.
	e, err := NewWithConfig(c, charts, nil, Config{RepoID: "superseded-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	var asked []string
	var mu sync.Mutex
	res, err := e.Sync(context.Background(), g.load(), Options{Background: true, Superseded: func(file string) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, file)
		return strings.Contains(file, "sup-b")
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Releases of other tests that run meanwhile may be reported too (left
	// alone): only this namespace's count.
	var ours []ReleaseResult
	for _, rr := range res.Releases {
		if rr.Namespace == ns {
			ours = append(ours, rr)
		}
	}
	if len(ours) != 1 || ours[0].Name != "sup-a" || ours[0].Action != Installed {
		t.Fatalf("result %s, want sup-a installed and sup-b left out", res)
	}
	if len(asked) != 2 {
		t.Errorf("Superseded asked about %v, want both releases", asked)
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), "sup-b-hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the superseded release's Deployment: %v, want not found", err)
	}
}

// A diff (mgo diff, the API's diff, the periodic drift check) takes the
// cluster's release slots as syncs do, in the background lane: with one
// release at a time it waits while a deploy's release holds the slot, and
// a deploy arriving meanwhile gets the slot before the diff's releases.
func TestDiffTakesBackgroundSlots(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("dprio-a", ns, "hello", "1.0.0", "")
	g.release("dprio-b", ns, "hello", "1.0.0", "")
	c, err := kube.FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 100, Burst: 200, MaxConcurrentReleases: 1})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions(t.TempDir())
	opts.PlainHTTP = true
	opts.CAFile = charttest.CAFile(t)
	charts, err := render.NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewWithConfig(c, charts, nil, Config{RepoID: "diff-slots-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if res := syncOnce(t, e, g.load(), Options{}); res.Failed() {
		t.Fatalf("install:\n%s", res)
	}

	// Two deploys: each release gets a new tag.
	g.release("dprio-a", ns, "hello", "2.0.0", "")
	g.release("dprio-b", ns, "hello", "2.0.0", "")
	r := g.load()
	waiting := func(background, foreground int) func() bool {
		return func() bool {
			e.slots.mu.Lock()
			defer e.slots.mu.Unlock()
			return len(e.slots.background) == background && len(e.slots.foreground) == foreground
		}
	}
	holdA := make(chan struct{})
	var diffWaitingAtB bool
	t.Cleanup(func() { testHookBeforeWait = nil })
	testHookBeforeWait = func(release string) {
		switch release {
		case "dprio-a":
			<-holdA // hold the only slot
		case "dprio-b":
			// dprio-b holds the slot: both releases of the diff still wait.
			diffWaitingAtB = waiting(2, 0)()
		}
	}
	syncRelease := func(name string) <-chan *Result {
		ch := make(chan *Result, 1)
		go func() {
			res, err := e.Sync(context.Background(), r, Options{Release: name})
			if err != nil {
				t.Error(err)
			}
			ch <- res
		}()
		return ch
	}
	a := syncRelease("dprio-a")
	waitFor(t, "the deploy of dprio-a to hold the slot", func() bool {
		e.slots.mu.Lock()
		defer e.slots.mu.Unlock()
		return e.slots.free == 0
	})
	diffed := make(chan *DiffResult, 1)
	go func() {
		d, err := e.Diff(context.Background(), r, Options{})
		if err != nil {
			t.Error(err)
		}
		diffed <- d
	}()
	waitFor(t, "the diff's releases to wait for a slot", waiting(2, 0))
	b := syncRelease("dprio-b")
	waitFor(t, "the deploy of dprio-b to wait for a slot", waiting(2, 1))
	close(holdA)

	for name, ch := range map[string]<-chan *Result{"dprio-a": a, "dprio-b": b} {
		if rr := mustRelease(t, <-ch, ns, name); rr.Action != Upgraded {
			t.Errorf("deploy of %s: %+v", name, rr)
		}
	}
	if !diffWaitingAtB {
		t.Error("the diff's releases did not wait while the deploy of dprio-b held the slot: a diff went ahead of a deploy")
	}
	d := <-diffed
	if d.Failed() || d.HasDifferences() || len(d.Releases) != 2 || d.Releases[0].Name != "dprio-a" || d.Releases[1].Name != "dprio-b" {
		t.Errorf("diff after the deploys: %+v, want both releases unchanged", d)
	}
}
