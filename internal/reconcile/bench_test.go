package reconcile

import (
	"fmt"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/kube"
)

// BenchmarkSync100Releases measures, on the local control plane, a first
// sync of 100 releases of a typical chart (Deployment, Service,
// ServiceAccount, ConfigMap) over 10 namespaces, a no-op sync by the same
// engine, a no-op sync after a restart (live diff of every object), and a
// sync with one release changed. Run it with
//
//	go test -run '^$' -bench Sync100Releases -benchtime 1x ./internal/reconcile/
//
// It reports seconds per phase and the API requests of each phase by verb.
func BenchmarkSync100Releases(b *testing.B) {
	for range b.N {
		g := newGitops(b)
		g.write("mygitops.yaml", "clusters:\n  "+clusterName+":\n    budget: {qps: 100, burst: 200, maxConcurrentReleases: 8}\n")
		var nss []string
		for range 10 {
			nss = append(nss, env.Namespace(b))
		}
		for i := range 100 {
			g.release(fmt.Sprintf("svc%03d", i), nss[i%10], "hello", "1.0.0", "")
		}
		e := newEngine(b)
		phase := func(name string, e *Engine, want Action) {
			start := time.Now()
			res := syncOnce(b, e, g.load(), Options{Timeout: 5 * time.Minute})
			d := time.Since(start)
			if res.Failed() {
				b.Fatalf("%s failed:\n%s", name, res)
			}
			n := 0
			for _, rr := range res.Releases {
				if rr.Action == want {
					n++
				}
			}
			b.ReportMetric(d.Seconds(), name+"-s")
			b.ReportMetric(float64(res.Requests.Writes()), name+"-writes")
			b.Logf("%-16s %7.2fs  %3d releases %-9s  requests: %v (writes %d)", name, d.Seconds(), n, want, fmtCounts(res.Requests), res.Requests.Writes())
		}
		phase("first-sync", e, Installed)
		phase("noop-sync", e, UpToDate)
		phase("restart-sync", newEngine(b), Unchanged)
		g.release("svc042", nss[2], "hello", "1.0.1", "")
		e2 := newEngine(b)
		// The restarted engine has seen the repo once: one change.
		syncOnce(b, e2, g.load(), Options{})
		g.release("svc042", nss[2], "hello", "1.0.2", "")
		phase("one-changed", e2, Upgraded)
	}
}

func fmtCounts(c kube.RequestCounts) string {
	s := ""
	for _, k := range []string{"get", "list", "watch", "dryrun-patch", "create", "update", "patch", "delete"} {
		if c[k] > 0 {
			s += fmt.Sprintf("%s=%d ", k, c[k])
		}
	}
	return s
}
