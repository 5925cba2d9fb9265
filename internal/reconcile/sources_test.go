package reconcile

import (
	"fmt"
	"testing"

	"github.com/mygitops/mgo/internal/charttest"
)

// Ten releases from the three chart sources; then one changes, and the sync
// talks to the cluster about that release only.
func TestSyncTenReleasesFromEverySource(t *testing.T) {
	repoSrv := charttest.NewRepoServer(t, "ci", "chart-pass")
	repoSrv.Add(t, charttest.ChartDir("hello"), "0.1.0", "0.2.0")
	t.Setenv("MGO_CHART_TEST_PASSWORD", "chart-pass")
	reg := charttest.NewRegistry(t)
	ociURL := reg.Push(t, charttest.ChartDir("hello"), "charts", "0.3.0")

	g := newGitops(t)
	g.write("mygitops.yaml", "helm:\n  repositories:\n    - name: acme\n      url: "+repoSrv.URL+"\n      username: ci\n      passwordEnv: MGO_CHART_TEST_PASSWORD\n")
	nss := make([]string, 10)
	for i := range nss {
		nss[i] = env.Namespace(t)
		name := fmt.Sprintf("app%d", i)
		switch i {
		case 8:
			g.releaseOf(name, nss[i], "acme/hello", "~0.2", "1.0.0", "")
		case 9:
			g.releaseOf(name, nss[i], ociURL, "0.3.0", "1.0.0", "")
		default:
			g.release(name, nss[i], "hello", "1.0.0", "")
		}
	}
	e := newEngine(t)
	res := syncOnce(t, e, g.load(), Options{})
	for i, ns := range nss {
		rr := mustRelease(t, res, ns, fmt.Sprintf("app%d", i))
		if rr.Action != Installed {
			t.Errorf("app%d: %+v", i, rr)
		}
		if want := map[int]string{8: "0.2.0", 9: "0.3.0"}[i]; want != "" && rr.ChartVersion != want {
			t.Errorf("app%d: chart version %s, want %s", i, rr.ChartVersion, want)
		}
	}

	// Change app4's tag: only app4 is upgraded, and every request that
	// names a namespace names app4's.
	g.release("app4", nss[4], "hello", "2.0.0", "")
	before := e.cluster.Requests.Namespaces()
	res = syncOnce(t, e, g.load(), Options{})
	for i, ns := range nss {
		want := UpToDate
		if i == 4 {
			want = Upgraded
		}
		if rr := mustRelease(t, res, ns, fmt.Sprintf("app%d", i)); rr.Action != want {
			t.Errorf("app%d: %s, want %s", i, rr.Action, want)
		}
	}
	after := e.cluster.Requests.Namespaces()
	for ns, n := range after {
		if n != before[ns] && ns != nss[4] {
			t.Errorf("%d requests about namespace %s, which holds no changed release", n-before[ns], ns)
		}
	}
	if after[nss[4]] == before[nss[4]] {
		t.Error("no request about the changed release's namespace")
	}
	t.Logf("sync of one changed release of ten: %v", res.Requests)
}
