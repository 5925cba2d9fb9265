package importer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
	"github.com/mygitops/mgo/internal/testenv"
)

const clusterName = "import-test"

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Context: clusterName})
}

// fixture is what an import test needs: the cluster, charts served from an
// HTTP chart repository and an OCI registry, and an engine.
type fixture struct {
	t        *testing.T
	cluster  *kube.Cluster
	charts   *render.Charts
	engine   *reconcile.Engine
	importer *Importer
	http     *charttest.RepoServer
	oci      *charttest.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t}
	var err error
	f.cluster, err = kube.FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 100, Burst: 200, MaxConcurrentReleases: 4})
	if err != nil {
		t.Fatal(err)
	}
	f.http = charttest.NewRepoServer(t, "", "")
	f.oci = charttest.NewRegistry(t)
	opts := render.DefaultOptions(t.TempDir())
	opts.PlainHTTP = true // the test registry speaks plain HTTP
	opts.CAFile = f.http.CAFile
	if f.charts, err = render.NewCharts(opts, nil); err != nil {
		t.Fatal(err)
	}
	if f.engine, err = reconcile.New(f.cluster, f.charts, nil); err != nil {
		t.Fatal(err)
	}
	if f.importer, err = New(f.cluster, f.charts, f.engine, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// chartFrom loads a chart as `helm install` would: from a chart repository
// or registry through the chart source, given a header's chart reference.
func (f *fixture) chartFrom(cfg *repo.Config, ref, version string) *chart.Chart {
	f.t.Helper()
	ch, err := f.charts.Load(context.Background(), "", cfg, repo.Header{Chart: ref, Version: version, Name: "x", Namespace: "x"})
	if err != nil {
		f.t.Fatal(err)
	}
	return ch.Chart
}

// install installs a release with the Helm SDK, as a user of Helm did.
func (f *fixture) install(ns, name string, ch *chart.Chart, vals map[string]any) {
	f.t.Helper()
	cfg, err := f.cluster.Helm(ns, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = name, ns
	in.ServerSideApply = true
	in.WaitStrategy = helmkube.HookOnlyStrategy
	in.Timeout = time.Minute
	if _, err := in.RunWithContext(context.Background(), ch, vals); err != nil {
		f.t.Fatalf("installing %s/%s: %v", ns, name, err)
	}
}

// history returns the number of revisions of a release.
func (f *fixture) history(ns, name string) int {
	f.t.Helper()
	cfg, err := f.cluster.Helm(ns, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	h, err := cfg.Releases.History(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(h)
}

// localChart is the hello chart under another name, in no repository.
func localChart(t *testing.T, name, version string) *chart.Chart {
	t.Helper()
	ch, err := loader.LoadDir(charttest.ChartDir("hello"))
	if err != nil {
		t.Fatal(err)
	}
	ch.Metadata.Name, ch.Metadata.Version = name, version
	return ch
}

func readFile(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func loadRepo(t *testing.T, dir string) *repo.Repo {
	t.Helper()
	return loadRepoKeys(t, dir, secrets.Keys{})
}

// loadRepoKeys loads a repo as mgo diff and sync do with --age-key-file.
func loadRepoKeys(t *testing.T, dir string, keys secrets.Keys) *repo.Repo {
	t.Helper()
	r, err := repo.Load(dir, repo.LoadOptions{Cluster: clusterName, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if errs := r.Problems.Errors(); len(errs) > 0 {
		t.Fatalf("repo problems: %v", errs)
	}
	return r
}
