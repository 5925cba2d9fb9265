package reconcile

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestDependsOnOrdersASync: from an empty namespace, one sync installs a
// chart whose template defines a CRD, a chart with a resource of that kind
// that depends on it, and an app that depends on the resource's release,
// in that order (the resource could not be applied before its kind
// exists); each dependant says what it was synced after. A dependency that
// fails leaves its dependant not synced, saying why, with nothing of it
// applied; a sync of that one release alone says the same.
func TestDependsOnOrdersASync(t *testing.T) {
	ns := env.Namespace(t)
	group := ns + ".example.com"
	g := newGitops(t)
	g.write("charts/defs/Chart.yaml", "apiVersion: v2\nname: defs\nversion: 1.0.0\n")
	g.write("charts/defs/templates/crd.yaml", crdYAML(group, "Gizmo", false))
	g.write("charts/gizmo/Chart.yaml", "apiVersion: v2\nname: gizmo\nversion: 1.0.0\n")
	g.write("charts/gizmo/templates/gizmo.yaml", `apiVersion: `+group+`/v1
kind: Gizmo
metadata:
  name: {{ .Release.Name }}
spec:
  size: 3
`)
	header := func(name, chart string, deps ...string) string {
		s := "__mygitops:\n  chart: ./charts/" + chart + "\n  name: " + name + "\n  namespace: " + ns + "\n"
		if len(deps) > 0 {
			s += "  dependsOn: [" + strings.Join(deps, ", ") + "]\n"
		}
		return s
	}
	// File names sort the dependants first: order comes from dependsOn.
	g.write("installations/"+clusterName+"/a-app-values.yaml", header("app", "hello", "gizmo")+"image: {repository: registry.example.com/app, tag: \"1.0\"}\n")
	g.write("installations/"+clusterName+"/b-gizmo-values.yaml", header("gizmo", "gizmo", ns+"/defs"))
	g.write("installations/"+clusterName+"/c-defs-values.yaml", header("defs", "defs"))
	// A raw manifest file of a Gizmo: applied after the release of its
	// definition, not before every release as raw files are.
	rawGizmo := func(dep string) string {
		return "__mygitops:\n  dependsOn: [" + dep + "]\n---\napiVersion: " + group + "/v1\nkind: Gizmo\nmetadata: {name: spare, namespace: " + ns + "}\nspec: {size: 1}\n"
	}
	g.write("installations/"+clusterName+"/gizmos-raw.yaml", rawGizmo(ns+"/defs"))
	e := newEngine(t)
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	crd.SetName("gizmos." + group)
	t.Cleanup(func() { _ = e.cluster.Client.Delete(context.Background(), crd) })

	var mu sync.Mutex
	var waits []string
	testHookBeforeWait = func(release string) {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, release)
	}
	t.Cleanup(func() { testHookBeforeWait = nil })

	res := syncOnce(t, e, g.load(), Options{})
	for _, name := range []string{"defs", "gizmo", "app"} {
		if rr := mustRelease(t, res, ns, name); rr.Action != Installed {
			t.Fatalf("%s: %+v", name, rr)
		}
	}
	mu.Lock()
	order := slices.Clone(waits)
	mu.Unlock()
	if !slices.Equal(order, []string{"defs", "gizmo", "app"}) {
		t.Errorf("rollout waits began in the order %v, want defs, gizmo, app", order)
	}
	if rr := mustRelease(t, res, ns, "app"); !slices.Equal(rr.After, []string{ns + "/gizmo"}) {
		t.Errorf("app: after %v, want [%s/gizmo]", rr.After, ns)
	}
	if rr := mustRelease(t, res, ns, "gizmo"); !slices.Equal(rr.After, []string{ns + "/defs"}) {
		t.Errorf("gizmo: after %v", rr.After)
	}
	if s := res.String(); !strings.Contains(s, "gizmo") {
		t.Errorf("summary %q", s)
	}
	if res.RawError != "" || !slices.ContainsFunc(res.Raw, func(o ObjectResult) bool {
		return o.Subject == "Gizmo/"+ns+"/spare" && o.Action == ObjectCreated
	}) {
		t.Errorf("the raw file after defs: error %q, objects %+v", res.RawError, res.Raw)
	}

	// A dependency that fails: its dependant is not synced, and says why.
	g.write("installations/"+clusterName+"/d-broken-values.yaml", header("broken", "nowhere"))
	g.write("installations/"+clusterName+"/e-waiter-values.yaml", header("waiter", "hello", "broken")+"image: {repository: registry.example.com/waiter, tag: \"1.0\"}\n")
	g.write("installations/"+clusterName+"/gizmos-raw.yaml", rawGizmo(ns+"/broken"))
	r := g.load()
	res = syncOnce(t, e, r, Options{})
	if rr := mustRelease(t, res, ns, "broken"); rr.Action != Failed || rr.Stage != StageChart {
		t.Fatalf("broken: %+v", rr)
	}
	rr := mustRelease(t, res, ns, "waiter")
	want := "not synced: depends on " + ns + "/broken, which failed at chart"
	if rr.Action != Failed || rr.Stage != StageDependency || !strings.Contains(rr.Error, want) {
		t.Fatalf("waiter: %+v, want failed at dependency with %q", rr, want)
	}
	if want := "gizmos-raw.yaml: not applied (nor anything pruned): depends on " + ns + "/broken, which failed at chart"; !strings.Contains(res.RawError, want) {
		t.Errorf("raw error %q, want %q", res.RawError, want)
	}
	var dep appsv1.Deployment
	if err := e.cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "waiter-hello"}, &dep); !apierrors.IsNotFound(err) {
		t.Errorf("the waiter's Deployment: %v, want not found (nothing applied)", err)
	}
	for _, name := range []string{"defs", "gizmo", "app"} {
		if rr := mustRelease(t, res, ns, name); rr.Action == Failed {
			t.Errorf("%s failed beside the broken one: %+v", name, rr)
		}
	}

	// A sync of the waiter alone (a deploy's): its dependency's last sync
	// failed, so it is not synced either.
	res = syncOnce(t, e, r, Options{Release: "waiter"})
	if rr := mustRelease(t, res, ns, "waiter"); rr.Stage != StageDependency || !strings.Contains(rr.Error, "which failed at chart in its last sync") {
		t.Fatalf("waiter alone: %+v", rr)
	}

	// Every values file removed: the releases are uninstalled dependants
	// first, the reverse of their install order.
	for _, f := range []string{"a-app", "b-gizmo", "c-defs", "d-broken", "e-waiter"} {
		g.remove("installations/" + clusterName + "/" + f + "-values.yaml")
	}
	g.remove("installations/" + clusterName + "/gizmos-raw.yaml")
	res = syncOnce(t, e, g.load(), Options{})
	var uninstalled []string
	for _, rr := range res.Releases {
		if rr.Action == Uninstalled {
			uninstalled = append(uninstalled, rr.Name)
		}
	}
	if !slices.Equal(uninstalled, []string{"app", "gizmo", "defs"}) {
		t.Errorf("uninstalled in the order %v, want app, gizmo, defs (results %v)", uninstalled, res)
	}
}
