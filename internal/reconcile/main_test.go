package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mygitops/mgo/internal/charttest"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/testenv"
)

const clusterName = "reconcile-test"

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Context: clusterName, Nodes: 2})
}

// gitops is a gitops repo on disk for one test.
type gitops struct {
	t   testing.TB
	dir string
}

func newGitops(t testing.TB) *gitops {
	t.Helper()
	g := &gitops{t: t, dir: t.TempDir()}
	for _, name := range []string{"hello", "hooked", "stateful"} {
		if err := os.CopyFS(filepath.Join(g.dir, "charts", name), os.DirFS(charttest.ChartDir(name))); err != nil {
			t.Fatal(err)
		}
	}
	g.write("installations/"+clusterName+"/.keep", "")
	return g
}

func (g *gitops) write(rel, content string) {
	g.t.Helper()
	p := filepath.Join(g.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gitops) remove(rel string) {
	g.t.Helper()
	if err := os.Remove(filepath.Join(g.dir, rel)); err != nil {
		g.t.Fatal(err)
	}
}

// release writes installations/<cluster>/<name>-values.yaml for a release
// of a chart kept in the repo.
func (g *gitops) release(name, ns, chart, tag string, extra string) {
	g.t.Helper()
	g.releaseOf(name, ns, "./charts/"+chart, "", tag, extra)
}

// releaseOf writes a release of any chart reference and version.
func (g *gitops) releaseOf(name, ns, chart, version, tag string, extra string) {
	g.t.Helper()
	if version != "" {
		chart += "\n  version: " + version
	}
	g.write("installations/"+clusterName+"/"+name+"-values.yaml", `__mygitops:
  chart: `+chart+`
  name: `+name+`
  namespace: `+ns+`
  images:
    gitlab.com/acme/`+name+`: &img
      repository: registry.example.com/`+name+`
      tag: "`+tag+`"
image:
  <<: *img
replicaCount: 2
`+extra)
}

func (g *gitops) load() *repo.Repo {
	g.t.Helper()
	r, err := repo.Load(g.dir, repo.LoadOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	if errs := r.Problems.Errors(); len(errs) > 0 {
		g.t.Fatalf("repo problems: %v", errs)
	}
	return r
}

func newEngine(t testing.TB) *Engine {
	t.Helper()
	c, err := kube.FromKubeconfig(env.Kubeconfig, env.Context, repo.Budget{QPS: 100, Burst: 200, MaxConcurrentReleases: 4})
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions(t.TempDir())
	opts.PlainHTTP = true // the test registry speaks plain HTTP
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
	return e
}

func syncOnce(t testing.TB, e *Engine, r *repo.Repo, opts Options) *Result {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 90 * time.Second
	}
	res, err := e.Sync(context.Background(), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustRelease(t testing.TB, res *Result, ns, name string) ReleaseResult {
	t.Helper()
	rr, ok := res.Release(ns, name)
	if !ok {
		t.Fatalf("no result for %s/%s in\n%s", ns, name, res)
	}
	return rr
}

func deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// crdYAML is a namespaced CustomResourceDefinition of kind in group, version
// v1, whose spec has an integer size and, with status, a status
// subresource with a string phase. No controller serves it.
func crdYAML(group, kind string, status bool) string {
	plural := strings.ToLower(kind) + "s"
	out := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ` + plural + `.` + group + `
spec:
  group: ` + group + `
  names: {kind: ` + kind + `, plural: ` + plural + `, singular: ` + strings.ToLower(kind) + `, listKind: ` + kind + `List}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
`
	if status {
		out += "    subresources: {status: {}}\n"
	}
	out += `    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`
	if status {
		out += `          status:
            type: object
            properties:
              phase: {type: string}
`
	}
	return out
}
