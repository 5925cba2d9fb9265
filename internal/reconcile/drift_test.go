package reconcile

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// An object of a release changed by another field manager, or deleted, is
// reported as drift by the engine's watches, without a sync and without
// polling; a change by mgo's own sync is not drift.
func TestDriftFromWatchEvents(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("web", ns, "hello", "1.0.0", "")
	e := newEngine(t)
	var mu sync.Mutex
	var seen []Drift
	e.OnDrift(func(d Drift) {
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
	})
	drifts := func() []Drift {
		mu.Lock()
		defer mu.Unlock()
		return append([]Drift(nil), seen...)
	}
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web"); rr.Action != Installed {
		t.Fatalf("install: %+v", rr)
	}
	// An upgrade by mgo itself: its events are not drift.
	g.release("web", ns, "hello", "1.1.0", "")
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web"); rr.Action != Upgraded {
		t.Fatalf("upgrade: %+v", rr)
	}
	if d := drifts(); len(d) != 0 {
		t.Fatalf("drift after mgo's own upgrade: %+v", d)
	}

	// Someone scales the Deployment by hand.
	before := e.cluster.Requests.Snapshot()
	if _, err := env.Client.AppsV1().Deployments(ns).Patch(ctx, "web-hello", types.MergePatchType,
		[]byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drift of the Deployment", func() bool { return len(drifts()) > 0 })
	got := drifts()[0]
	if got.Subject != "Deployment/"+ns+"/web-hello" || got.Change != DriftChanged || got.Release != "web" || got.Namespace != ns {
		t.Errorf("drift: %+v", got)
	}
	// At most the confirmation of the changed object by a dry-run (ssa's
	// diff reads it, then dry-runs it); no list, nothing else.
	reqs := e.cluster.Requests.Since(before)
	if reqs["list"] > 0 || reqs["get"] > 1 || reqs["dryrun-patch"] > 1 {
		t.Errorf("drift found by polling: %v", reqs)
	}
	t.Logf("requests from the change to its drift: %v", reqs)

	// Someone deletes the ConfigMap.
	if err := env.Client.CoreV1().ConfigMaps(ns).Delete(ctx, "web-hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drift of the ConfigMap", func() bool {
		for _, d := range drifts() {
			if d.Subject == "ConfigMap/"+ns+"/web-hello" && d.Change == DriftDeleted {
				return true
			}
		}
		return false
	})
	if e.Drifts() < 2 {
		t.Errorf("%d drifts counted", e.Drifts())
	}
}
