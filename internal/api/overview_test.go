package api

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
)

func TestForge(t *testing.T) {
	for web, want := range map[string]repoView{
		"https://github.com/acme/gitops":         {URL: "https://github.com/acme/gitops", Forge: "github", CommitURL: "https://github.com/acme/gitops/commit/{commit}"},
		"https://gitlab.com/acme/infra/gitops":   {URL: "https://gitlab.com/acme/infra/gitops", Forge: "gitlab", CommitURL: "https://gitlab.com/acme/infra/gitops/-/commit/{commit}"},
		"https://gitlab.acme.io/platform/gitops": {URL: "https://gitlab.acme.io/platform/gitops", Forge: "gitlab", CommitURL: "https://gitlab.acme.io/platform/gitops/-/commit/{commit}"},
		"https://git.acme.io/platform/gitops":    {URL: "https://git.acme.io/platform/gitops"},
		"":                                       {},
	} {
		if got := forge(web); got != want {
			t.Errorf("forge(%q) = %+v, want %+v", web, got, want)
		}
	}
}

func TestHealth(t *testing.T) {
	obj := func(st string) reconcile.ObjectResult {
		return reconcile.ObjectResult{Subject: "Deployment/ns/x", Status: st}
	}
	for name, c := range map[string]struct {
		live reconcile.LiveRelease
		last reconcile.ReleaseResult
		want string
	}{
		"ready":                 {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current")}}, reconcile.ReleaseResult{Action: reconcile.Upgraded}, Healthy},
		"rolling":               {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current"), obj("InProgress")}}, reconcile.ReleaseResult{}, Progressing},
		"helm acting":           {reconcile.LiveRelease{Installed: true, HelmStatus: "pending-upgrade"}, reconcile.ReleaseResult{}, Progressing},
		"not installed yet":     {reconcile.LiveRelease{}, reconcile.ReleaseResult{}, Progressing},
		"install failed":        {reconcile.LiveRelease{}, reconcile.ReleaseResult{Action: reconcile.Failed, Error: "boom"}, Unhealthy},
		"revision failed":       {reconcile.LiveRelease{Installed: true, HelmStatus: "failed", Revision: 3}, reconcile.ReleaseResult{}, Unhealthy},
		"object failed":         {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Failed")}}, reconcile.ReleaseResult{}, Unhealthy},
		"object gone":           {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("NotFound")}}, reconcile.ReleaseResult{}, Unhealthy},
		"ready, last sync fail": {reconcile.LiveRelease{Installed: true, HelmStatus: "deployed", Objects: []reconcile.ObjectResult{obj("Current")}}, reconcile.ReleaseResult{Action: reconcile.Failed, Stage: reconcile.StageRender}, Unhealthy},
	} {
		if got, reason := health(c.live, c.last); got != c.want || (got != Healthy && reason == "") {
			t.Errorf("%s: %s (%q), want %s with a reason", name, got, reason, c.want)
		}
	}
}

// Callers of the same cluster share one read of its live state while it
// runs and for liveTTL after; then the next caller reads again.
func TestLiveCache(t *testing.T) {
	o := newOverview(nil)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	o.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	release := make(chan struct{})
	var reads atomic.Int32
	stalled := make(chan struct{}) // the read of "staging" never ends while the test runs
	t.Cleanup(func() { close(stalled) })
	o.load = func(_ context.Context, cluster string) (liveCluster, error) {
		if cluster == "staging" {
			<-stalled
			return liveCluster{}, nil
		}
		reads.Add(1)
		<-release
		return liveCluster{Cluster: cluster, Counts: releaseCounts{Total: int(reads.Load())}}, nil
	}
	var wg sync.WaitGroup
	got := make([]liveCluster, 20)
	for i := range got {
		wg.Go(func() {
			lc, err := o.cluster(context.Background(), "prod")
			if err != nil {
				t.Error(err)
			}
			got[i] = lc
		})
	}
	// The read is under way: callers during it and within liveTTL share it.
	for {
		o.mu.Lock()
		started := o.live["prod"] != nil
		o.mu.Unlock()
		if started {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("20 concurrent callers made %d reads, want 1", n)
	}
	for _, lc := range got {
		if lc.Cluster != "prod" || lc.Counts.Total != 1 {
			t.Fatalf("a caller got %+v", lc)
		}
	}
	if _, err := o.cluster(context.Background(), "prod"); err != nil || reads.Load() != 1 {
		t.Fatalf("within the TTL: %d reads, %v", reads.Load(), err)
	}
	mu.Lock()
	now = now.Add(liveTTL + time.Second)
	mu.Unlock()
	if lc, err := o.cluster(context.Background(), "prod"); err != nil || reads.Load() != 2 || lc.Counts.Total != 2 {
		t.Fatalf("after the TTL: %d reads, %+v, %v", reads.Load(), lc, err)
	}
	// A caller that gives up does not wait for the read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.cluster(ctx, "staging"); err == nil {
		t.Error("a cancelled caller got an answer")
	}
}
