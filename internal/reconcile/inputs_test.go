package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A sync finds a release rendered from the same inputs up to date without
// rendering it; a change in any input (a template of a chart kept in the
// repo, the values file) is synced.
func TestReleaseInputs(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("inputs", ns, "hello", "1.0.0", "greeting: hi\n")
	e := newEngine(t)
	ctx := context.Background()

	action := func(want Action) {
		t.Helper()
		res := syncOnce(t, e, g.load(), Options{})
		rr, ok := res.Release(ns, "inputs")
		if !ok || rr.Action != want {
			t.Fatalf("release: %+v, want %s", rr, want)
		}
		if rr.ChartVersion == "" {
			t.Fatalf("no chart version in %+v", rr)
		}
	}
	action(Installed)
	action(UpToDate)

	// A template of the chart in the repo changes: the release is rendered
	// and upgraded.
	tpl := filepath.Join(g.dir, "charts", "hello", "templates", "configmap.yaml")
	b, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	g.write("charts/hello/templates/configmap.yaml", strings.Replace(string(b), "\ndata:\n", "\ndata:\n  extra: \"from the chart\"\n", 1))
	action(Upgraded)
	cm := &corev1.ConfigMap{}
	if err := e.cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "inputs-hello"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["extra"] != "from the chart" {
		t.Fatalf("configmap data %v: the chart's change was not applied", cm.Data)
	}
	action(UpToDate)

	// The values file changes.
	g.release("inputs", ns, "hello", "1.0.0", "greeting: hello\n")
	action(Upgraded)
	if err := e.cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "inputs-hello"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["greeting"] != "hello" {
		t.Fatalf("configmap data %v: the values change was not applied", cm.Data)
	}
	action(UpToDate)
}

// The inputs of a release with a chart version range cannot be told: a
// newer chart may match it.
func TestReleaseInputsOfARange(t *testing.T) {
	g := newGitops(t)
	g.releaseOf("ranged", "ns", "acme/hello", "~0.2", "1.0.0", "")
	g.write("mygitops.yaml", "helm:\n  repositories:\n    - name: acme\n      url: https://charts.example.com\n")
	r := g.load()
	in := newInputs(nil)
	rel := r.Clusters[clusterName].Releases[0]
	if d := in.release(r, rel); d != "" {
		t.Fatalf("inputs of a range: %q, want none", d)
	}
	g.releaseOf("ranged", "ns", "acme/hello", "0.2.0", "1.0.0", "")
	r = g.load()
	rel = r.Clusters[clusterName].Releases[0]
	first := in.release(r, rel)
	if first == "" {
		t.Fatal("no inputs for an exact version")
	}
	g.write("mygitops.yaml", "helm:\n  repositories:\n    - name: acme\n      url: https://other.example.com\n")
	r = g.load()
	if again := in.release(r, r.Clusters[clusterName].Releases[0]); again == first || again == "" {
		t.Fatalf("inputs %q did not change with the repository URL", again)
	}
}
