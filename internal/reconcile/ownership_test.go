package reconcile

import (
	"context"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// newEngineFor is an engine for the test control plane under any cluster
// name (a second kubeconfig context on the same physical cluster) with a
// configuration.
func newEngineFor(t testing.TB, name string, cfg Config) *Engine {
	t.Helper()
	c, err := kube.NewCluster(name, env.Config, repo.Budget{QPS: 100, Burst: 200, MaxConcurrentReleases: 4})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions(t.TempDir())
	opts.PlainHTTP = true
	charts, err := render.NewCharts(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewWithConfig(c, charts, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// releaseIn writes a release of the hello chart for a cluster of any name.
func (g *gitops) releaseIn(cluster, name, ns string) {
	g.t.Helper()
	g.write("installations/"+cluster+"/"+name+"-values.yaml", "__mygitops:\n  chart: ./charts/hello\n  name: "+name+
		"\n  namespace: "+ns+"\nimage:\n  repository: registry.example.com/"+name+"\n  tag: \"1.0.0\"\nreplicaCount: 1\n")
}

func releaseLabels(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	cfg, err := newEngine(t).cluster.Helm(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	last, err := lastRelease(cfg, name)
	if err != nil || last == nil {
		t.Fatalf("release %s/%s: %v", ns, name, err)
	}
	return last.Labels
}

func assertInstalled(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), name+"-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("release %s/%s: %v", ns, name, err)
	}
}

// Two mgo instances on one cluster (another repository, or another
// kubeconfig context of the same cluster) never uninstall each other's
// releases, and uninstall their own.
func TestInstancesNeverRemoveEachOthersReleases(t *testing.T) {
	ns := env.Namespace(t)
	const otherContext = clusterName + "-alias"

	a, b, c := newGitops(t), newGitops(t), newGitops(t)
	a.releaseIn(clusterName, "a1", ns)
	a.releaseIn(clusterName, "a2", ns)
	b.releaseIn(clusterName, "b1", ns)
	c.write("installations/"+otherContext+"/.keep", "")
	c.releaseIn(otherContext, "c1", ns)

	ea := newEngineFor(t, clusterName, Config{RepoID: "gitlab.com/acme/gitops-a"})
	eb := newEngineFor(t, clusterName, Config{RepoID: "gitlab.com/acme/gitops-b"})
	ec := newEngineFor(t, otherContext, Config{RepoID: "gitlab.com/acme/gitops-a"})
	for _, s := range []struct {
		e *Engine
		g *gitops
	}{{ea, a}, {eb, b}, {ec, c}} {
		if res := syncOnce(t, s.e, s.g.load(), Options{Full: true}); res.Failed() {
			t.Fatalf("sync of %s: %s", s.e.cluster.Name, res)
		}
	}
	// Each one's full sync again: the releases of the others are not in its
	// repository, and must stay.
	for _, s := range []struct {
		e *Engine
		g *gitops
	}{{ea, a}, {eb, b}, {ec, c}} {
		res := syncOnce(t, s.e, s.g.load(), Options{Full: true})
		for _, rr := range res.Releases {
			if rr.Action == Uninstalled || rr.Action == Failed {
				t.Errorf("sync of %s: %s/%s %s %s", s.e.cluster.Name, rr.Namespace, rr.Name, rr.Action, rr.Error)
			}
		}
	}
	for _, name := range []string{"a1", "a2", "b1", "c1"} {
		assertInstalled(t, ns, name)
	}
	l := releaseLabels(t, ns, "a1")
	if l[kube.LabelCluster] != clusterName || l[kube.LabelRepo] != kube.LabelValue("gitlab.com/acme/gitops-a") || l[LabelManagedBy] != managedBy {
		t.Errorf("labels of a1: %v", l)
	}

	// a2 leaves repository a: instance a uninstalls it, and nothing else.
	a.remove("installations/" + clusterName + "/a2-values.yaml")
	res := syncOnce(t, ea, a.load(), Options{})
	if rr := mustRelease(t, res, ns, "a2"); rr.Action != Uninstalled {
		t.Errorf("a2: %+v", rr)
	}
	for _, rr := range res.Releases {
		if rr.Name != "a2" && rr.Action == Uninstalled {
			t.Errorf("instance a uninstalled %s/%s", rr.Namespace, rr.Name)
		}
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), "a2-hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a2 still installed: %v", err)
	}
	for _, name := range []string{"a1", "b1", "c1"} {
		assertInstalled(t, ns, name)
	}
}

// Releases an older mgo installed (managed-by only) are adopted when the
// repository defines them and left alone, reported, when it does not.
func TestOlderReleasesAdoptedOrLeftAlone(t *testing.T) {
	ns := env.Namespace(t)
	e := newEngineFor(t, clusterName, Config{RepoID: "legacy-test"})
	// Two releases as an older mgo installed them.
	for _, name := range []string{"kept", "orphan"} {
		cfg, err := e.cluster.Helm(ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace = name, ns
		in.ServerSideApply = true
		in.WaitStrategy = helmkube.HookOnlyStrategy
		in.Timeout = time.Minute
		in.Labels = map[string]string{LabelManagedBy: managedBy}
		ch := loadChart(t, "hello")
		if _, err := in.RunWithContext(context.Background(), ch, map[string]any{"replicaCount": 1,
			"image": map[string]any{"repository": "registry.example.com/" + name, "tag": "1.0.0"}}); err != nil {
			t.Fatal(err)
		}
	}
	g := newGitops(t)
	g.releaseIn(clusterName, "kept", ns)
	res := syncOnce(t, e, g.load(), Options{Full: true})
	if rr := mustRelease(t, res, ns, "kept"); rr.Action == Failed {
		t.Fatalf("kept: %+v", rr)
	}
	orphan := mustRelease(t, res, ns, "orphan")
	if orphan.Action != LeftAlone || !contains(orphan.Note, "older mgo") {
		t.Errorf("orphan: %+v", orphan)
	}
	assertInstalled(t, ns, "orphan")
	if l := releaseLabels(t, ns, "kept"); !e.owner.Owns(l) {
		t.Errorf("kept was not adopted: %v", l)
	}
	if l := releaseLabels(t, ns, "orphan"); !kube.Unowned(l) {
		t.Errorf("orphan was relabelled: %v", l)
	}

	// Adopted: once it leaves the repository, it is uninstalled.
	g.remove("installations/" + clusterName + "/kept-values.yaml")
	res = syncOnce(t, e, g.load(), Options{Full: true})
	if rr := mustRelease(t, res, ns, "kept"); rr.Action != Uninstalled {
		t.Errorf("kept after removal: %+v", rr)
	}
	assertInstalled(t, ns, "orphan")
}

func loadChart(t *testing.T, name string) *chartType {
	t.Helper()
	ch, err := loadChartDir(charttest.ChartDir(name))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

type chartType = chartv2.Chart

var loadChartDir = loader.LoadDir
