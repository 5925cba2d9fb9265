package reconcile

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// openSockets counts the sockets this process holds open.
func openSockets(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// settle waits until count() is at most want, and returns the last count.
func settle(want int, count func() int) int {
	n := count()
	for deadline := time.Now().Add(15 * time.Second); n > want && time.Now().Before(deadline); n = count() {
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// The API server stops in the middle of a sync (during a release's rollout
// wait) and starts again: the sync ends within its deadlines and reports
// the failure of each release it could not sync, naming the file and the
// object; the next sync converges; no goroutine or connection is left
// behind. Not parallel: it stops the package's shared API server, and
// starts it again before it returns.
func TestAPIServerStoppedDuringSync(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	for _, name := range []string{"one", "two", "three"} {
		g.release(name, ns, "hello", "1.0.0", "")
	}
	c, err := kube.FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 100, Burst: 200, MaxConcurrentReleases: 1})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions(t.TempDir())
	charts, err := render.NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewWithConfig(c, charts, nil, Config{RepoID: "outage-test", DiffTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A first sync of something else warms the clients up.
	warm := newGitops(t)
	warm.release("warm", ns, "hello", "1.0.0", "")
	if res := syncOnce(t, e, warm.load(), Options{Release: "warm"}); res.Failed() {
		t.Fatal(res)
	}
	goroutines := settle(0, runtime.NumGoroutine)
	sockets := openSockets(t)
	t.Logf("before: %d goroutines, %d sockets", goroutines, sockets)

	restarted := false
	t.Cleanup(func() {
		testHookBeforeWait = nil
		if !restarted {
			if err := env.StartAPIServer(context.Background()); err != nil {
				t.Errorf("restarting the API server: %v", err)
			}
		}
	})
	stopped := false
	testHookBeforeWait = func(release string) {
		if release == "two" && !stopped {
			stopped = true
			env.StopAPIServer()
		}
	}
	start := time.Now()
	const rollout = 5 * time.Second
	res, err := e.Sync(context.Background(), g.load(), Options{Release: "", Timeout: rollout})
	took := time.Since(start)
	testHookBeforeWait = nil
	if err != nil {
		t.Fatal(err)
	}
	if !stopped {
		t.Fatal("the API server was not stopped during the sync")
	}
	t.Logf("sync during the outage took %s:\n%s", took.Round(time.Millisecond), res)
	// Bounded by the rollout wait of "two" and the request deadlines of
	// the rest (a refused connection fails at once).
	if took > rollout+40*time.Second {
		t.Errorf("the sync took %s", took)
	}
	two := mustRelease(t, res, ns, "two")
	if two.Action != Failed || two.Stage != StageWait || !contains(two.Error, "two-values.yaml") || !contains(two.Error, "Deployment/"+ns+"/two-hello") {
		t.Errorf("two (API server stopped during its rollout wait): %+v", two)
	}
	// The others were synced before the outage or failed for it.
	for _, name := range []string{"one", "three"} {
		rr := mustRelease(t, res, ns, name)
		if rr.Action != Installed && (rr.Action != Failed || !contains(rr.Error, name+"-values.yaml") || !contains(rr.Error, "connection refused")) {
			t.Errorf("%s: %+v", name, rr)
		}
	}

	if err := env.StartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	res = syncOnce(t, e, g.load(), Options{Full: true, Timeout: 90 * time.Second})
	if res.Failed() {
		t.Fatalf("sync after the API server is back:\n%s", res)
	}
	for _, name := range []string{"one", "two", "three"} {
		if h := history(t, e, ns, name); len(h) == 0 || h[len(h)-1].Info.Status != "deployed" {
			t.Errorf("%s: not deployed after the sync", name)
		}
		waitFor(t, name+" rolled out", func() bool {
			d := deployment(t, ns, name+"-hello")
			return d.Status.ReadyReplicas == 2 && d.Status.UpdatedReplicas == 2
		})
	}

	if n := settle(goroutines, runtime.NumGoroutine); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the outage, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
	if n := settle(sockets, func() int { return openSockets(t) }); n > sockets {
		t.Errorf("%d sockets open after the outage, %d before", n, sockets)
	}
}
