package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/kube"
)

func history(t *testing.T, e *Engine, ns, name string) []*releasev1.Release {
	t.Helper()
	cfg, err := e.cluster.Helm(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := action.NewHistory(cfg).Run(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []*releasev1.Release
	for _, r := range revs {
		out = append(out, r.(*releasev1.Release))
	}
	return out
}

func TestSyncInstallNoopUpgradeDrift(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("web", ns, "hello", "1.0.0", "")
	e := newEngine(t)

	// Install: the release is deployed and its Deployment rolled out.
	res := syncOnce(t, e, g.load(), Options{})
	rr := mustRelease(t, res, ns, "web")
	if rr.Action != Installed || rr.Revision != 1 {
		t.Fatalf("first sync: %+v", rr)
	}
	for _, o := range rr.Objects {
		if o.Status != "Current" {
			t.Errorf("%s is %s after the sync: %s", o.Subject, o.Status, o.Message)
		}
	}
	d := deployment(t, ns, "web-hello")
	if d.Status.ReadyReplicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
		t.Fatalf("deployment after install: ready %d, image %s", d.Status.ReadyReplicas, d.Spec.Template.Spec.Containers[0].Image)
	}

	// Nothing changed: not even looked at, no request about the release.
	res = syncOnce(t, e, g.load(), Options{})
	if rr := mustRelease(t, res, ns, "web"); rr.Action != UpToDate {
		t.Errorf("second sync: %+v", rr)
	}
	if res.Requests.Writes() != 0 {
		t.Errorf("no-op sync made %d writes: %v", res.Requests.Writes(), res.Requests)
	}

	// A new engine (mgo restarted) compares with the live cluster: through
	// its cache (a list and a watch per kind), without a dry-run, since
	// every object is as mgo applied it; no write, no new revision.
	e2 := newEngine(t)
	res = syncOnce(t, e2, g.load(), Options{})
	if rr := mustRelease(t, res, ns, "web"); rr.Action != Unchanged || rr.Revision != 1 {
		t.Errorf("sync after restart: %+v", rr)
	}
	if res.Requests.Writes() != 0 || res.Requests["dryrun-patch"] != 0 || res.Requests["watch"] == 0 {
		t.Errorf("sync after restart: %v; want watches, no dry-run and no write", res.Requests)
	}
	if n := len(history(t, e, ns, "web")); n != 1 {
		t.Errorf("%d revisions after no-op syncs, want 1", n)
	}

	// A new tag: one upgrade, the Deployment rolls to the new image.
	g.release("web", ns, "hello", "1.1.0", "")
	res = syncOnce(t, e2, g.load(), Options{})
	if rr := mustRelease(t, res, ns, "web"); rr.Action != Upgraded || rr.Revision != 2 {
		t.Fatalf("sync of a new tag: %+v", rr)
	}
	d = deployment(t, ns, "web-hello")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/web:1.1.0" || d.Status.UpdatedReplicas != 2 || d.Status.ReadyReplicas != 2 {
		t.Errorf("after upgrade: image %s, updated %d, ready %d", img, d.Status.UpdatedReplicas, d.Status.ReadyReplicas)
	}
	if h := history(t, e, ns, "web"); len(h) != 2 || h[1].Info.Status != "deployed" {
		t.Errorf("helm history: %d revisions", len(h))
	}

	// Drift: someone scales the Deployment behind mgo's back. A normal sync
	// does not look (nothing changed in git); a full sync repairs it.
	if _, err := env.Client.AppsV1().Deployments(ns).Patch(context.Background(), d.Name, types.MergePatchType,
		[]byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if rr := mustRelease(t, syncOnce(t, e2, g.load(), Options{}), ns, "web"); rr.Action != UpToDate {
		t.Errorf("sync without drift check: %+v", rr)
	}
	// A full sync compares through the engine's cache: it sees the change
	// once the watch brought it (within moments).
	waitCachedDeployment(t, e2, d, func(u *unstructured.Unstructured) bool {
		n, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		return n == 5
	})
	dry := syncOnce(t, e2, g.load(), Options{Full: true, DryRun: true})
	if rr := mustRelease(t, dry, ns, "web"); rr.Action != WouldChange || dry.Requests.Writes() != 0 {
		t.Errorf("dry-run drift check: %+v, %v", rr, dry.Requests)
	}
	rr = mustRelease(t, syncOnce(t, e2, g.load(), Options{Full: true}), ns, "web")
	if rr.Action != Upgraded {
		t.Fatalf("full sync after drift: %+v", rr)
	}
	if got := *deployment(t, ns, "web-hello").Spec.Replicas; got != 2 {
		t.Errorf("replicas %d after repair, want 2", got)
	}
}

func TestSyncFailuresDoNotBlockOthers(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("good", ns, "hello", "1.0.0", "")
	// Pods that no node will ever take: the rollout never becomes ready.
	g.release("stuck", ns, "hello", "1.0.0", "nodeSelector:\n  disktype: none-has-this\n")
	// A template that does not render.
	g.write("charts/broken/Chart.yaml", "apiVersion: v2\nname: broken\nversion: 0.1.0\n")
	g.write("charts/broken/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.name }}\n")
	g.release("broken", ns, "broken", "1.0.0", "")
	e := newEngine(t)

	res := syncOnce(t, e, g.load(), Options{Timeout: 8 * time.Second})
	if !res.Failed() {
		t.Error("result does not report the failures")
	}
	if rr := mustRelease(t, res, ns, "good"); rr.Action != Installed {
		t.Errorf("good: %+v", rr)
	}
	broken := mustRelease(t, res, ns, "broken")
	if broken.Action != Failed || broken.Stage != StageRender || !contains(broken.Error, "broken-values.yaml") || !contains(broken.Error, "cm.yaml") {
		t.Errorf("broken: %+v", broken)
	}
	stuck := mustRelease(t, res, ns, "stuck")
	if stuck.Action != Failed || stuck.Stage != StageWait || !contains(stuck.Error, "Deployment/"+ns+"/stuck-hello") {
		t.Errorf("stuck: %+v", stuck)
	}

	// Helm's record says so too.
	if h := history(t, e, ns, "stuck"); len(h) == 0 || h[len(h)-1].Info.Status != "failed" {
		t.Errorf("helm history of stuck: %v", h)
	}
	if h := history(t, e, ns, "good"); len(h) == 0 || h[len(h)-1].Info.Status != "deployed" {
		t.Errorf("helm history of good: %v", h)
	}

	// The next sync does not wait for the stuck rollout again: its
	// rendering did not change. It still reports the failure.
	start := time.Now()
	res = syncOnce(t, e, g.load(), Options{Timeout: 8 * time.Second})
	again := mustRelease(t, res, ns, "stuck")
	if again.Action != Failed || !contains(again.Error, "unchanged since its failed sync") || time.Since(start) > 6*time.Second {
		t.Errorf("second sync after %s: stuck %+v", time.Since(start), again)
	}
	if res.Requests.Writes() != 0 {
		t.Errorf("second sync wrote: %+v", res.Requests)
	}
}

func TestSyncUninstallsRemovedReleases(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("keep", ns, "hello", "1.0.0", "")
	g.release("drop", ns, "hello", "1.0.0", "")
	e := newEngine(t)
	syncOnce(t, e, g.load(), Options{})

	g.remove("installations/" + clusterName + "/drop-values.yaml")
	res := syncOnce(t, e, g.load(), Options{})
	if rr := mustRelease(t, res, ns, "drop"); rr.Action != Uninstalled {
		t.Errorf("drop: %+v", rr)
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), "drop-hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the removed release's Deployment still exists: %v", err)
	}
	deployment(t, ns, "keep-hello")
}

func TestPreUpgradeHookRunsOnUpgradeOnly(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("api", ns, "hooked", "1.0.0", "")
	e := newEngine(t)
	syncOnce(t, e, g.load(), Options{})
	if _, err := env.Client.BatchV1().Jobs(ns).Get(ctx, "api-migrate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the pre-upgrade hook ran on install: %v", err)
	}

	g.release("api", ns, "hooked", "1.1.0", "")
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "api"); rr.Action != Upgraded {
		t.Fatalf("upgrade: %+v", rr)
	}
	job, err := env.Client.BatchV1().Jobs(ns).Get(ctx, "api-migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the pre-upgrade hook did not run: %v", err)
	}
	if job.Status.Succeeded != 1 {
		t.Errorf("hook job: %d succeeded", job.Status.Succeeded)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Get(ctx, "api-test", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the test hook ran during a sync: %v", err)
	}

	// A no-op sync, even a full one, runs no hook.
	for _, full := range []bool{false, true} {
		if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{Full: full}), ns, "api"); rr.Action == Upgraded {
			t.Errorf("no-op sync (full=%v) upgraded", full)
		}
	}
	again, err := env.Client.BatchV1().Jobs(ns).Get(ctx, "api-migrate", metav1.GetOptions{})
	if err != nil || again.UID != job.UID {
		t.Errorf("the hook job was recreated by a no-op sync (%v)", err)
	}
}

// waitCachedDeployment waits until the engine's cache holds a version of a
// Deployment that ok accepts.
func waitCachedDeployment(t *testing.T, e *Engine, obj client.Object, ok func(*unstructured.Unstructured) bool) {
	t.Helper()
	gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := e.cache.Get(context.Background(), gvk, obj.GetNamespace(), obj.GetName())
		if err == nil && u != nil && ok(u) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine's cache never saw the change of %s/%s", obj.GetNamespace(), obj.GetName())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withFirstRelease returns a namespace, a gitops repo and an engine that
// has installed one release, "first", there.
func withFirstRelease(t *testing.T) (string, *gitops, *Engine) {
	t.Helper()
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("first", ns, "hello", "1.0.0", "")
	e := newEngine(t)
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "first"); rr.Action != Installed {
		t.Fatalf("first install: %+v", rr)
	}
	return ns, g, e
}

// TestInstallSendsHelmsProtocolOnly: a release installed next to one
// already synced costs Helm's install and nothing more: one read of the
// release's history (Helm's own checks read it from that answer), the
// ownership check of each object, the new revision, one server-side apply
// per object (the namespace is not applied again), the deployed status.
// The rollout wait reads the applied objects from the watches, not again
// from the API server.
func TestInstallSendsHelmsProtocolOnly(t *testing.T) {
	ns, g, e := withFirstRelease(t)

	g.release("second", ns, "hello", "1.0.0", "")
	res := syncOnce(t, e, g.load(), Options{})
	rr := mustRelease(t, res, ns, "second")
	if rr.Action != Installed || len(rr.Objects) != 4 {
		t.Fatalf("second install: %+v", rr)
	}
	for _, o := range rr.Objects {
		if o.Status != "Current" {
			t.Errorf("%s is %s after the sync: %s", o.Subject, o.Status, o.Message)
		}
	}
	want := kube.RequestCounts{"list": 1, "create": 1, "patch": 4, "update": 1}
	for verb, n := range want {
		if res.Requests[verb] != n {
			t.Errorf("%d %s requests, want %d (all: %v)", res.Requests[verb], verb, n, res.Requests)
		}
	}
	// Helm's ownership check reads each of the 4 objects; a watch event
	// later than the wait's patience would cost one more read.
	if n := res.Requests["get"]; n < 4 || n > 5 {
		t.Errorf("%d get requests, want the 4 of Helm's ownership check (all: %v)", n, res.Requests)
	}
}

// TestInstallRecreatesADeletedNamespace: the engine applies a release's
// namespace at its first install there only; when the namespace was
// deleted since, the next install there creates it again.
func TestInstallRecreatesADeletedNamespace(t *testing.T) {
	ns, g, e := withFirstRelease(t)
	ctx := context.Background()
	if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s not deleted within a minute: %v", ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	g.release("second", ns, "hello", "1.0.0", "")
	res := syncOnce(t, e, g.load(), Options{})
	if rr := mustRelease(t, res, ns, "second"); rr.Action != Installed {
		t.Fatalf("install into the deleted namespace: %+v", rr)
	}
	if d := deployment(t, ns, "second-hello"); d.Status.ReadyReplicas != 2 {
		t.Errorf("second-hello: %d ready replicas, want 2", d.Status.ReadyReplicas)
	}
}

// TestInstallOfACustomResourceWithItsDefinition: a chart that brings a
// CustomResourceDefinition in its crds directory and a resource of that
// kind in its templates installs from an empty cache. The resource gets
// mgo's labels (it was planned before its kind was known), so that the
// cache watches it and a full sync finds it unchanged; the definition is
// installed as Helm installs it.
func TestInstallOfACustomResourceWithItsDefinition(t *testing.T) {
	ns := env.Namespace(t)
	group := ns + ".example.com"
	g := newGitops(t)
	g.write("charts/widgets/Chart.yaml", "apiVersion: v2\nname: widgets\nversion: 1.0.0\n")
	g.write("charts/widgets/crds/widgets.yaml", crdYAML(group, "Widget", false))
	g.write("charts/widgets/templates/widget.yaml", `apiVersion: `+group+`/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}
spec:
  size: 3
`)
	g.release("gadget", ns, "widgets", "1.0.0", "")
	e := newEngine(t)
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	crd.SetName("widgets." + group)
	t.Cleanup(func() { _ = e.cluster.Client.Delete(context.Background(), crd) })
	res := syncOnce(t, e, g.load(), Options{})
	rr := mustRelease(t, res, ns, "gadget")
	if rr.Action != Installed {
		t.Fatalf("install: %+v", rr)
	}
	ctx := context.Background()
	widget := &unstructured.Unstructured{}
	widget.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Widget"})
	if err := e.cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gadget"}, widget); err != nil {
		t.Fatal(err)
	}
	if got := widget.GetLabels()[kube.LabelCluster]; got != e.owner.Cluster {
		t.Errorf("the Widget's %s label is %q, want %q", kube.LabelCluster, got, e.owner.Cluster)
	}
	if err := e.cluster.Client.Get(ctx, client.ObjectKey{Name: "widgets." + group}, crd); err != nil {
		t.Fatal(err)
	}
	if _, ok := crd.GetLabels()[kube.LabelCluster]; ok {
		t.Errorf("the chart's CustomResourceDefinition got mgo's labels: %v", crd.GetLabels())
	}

	res = syncOnce(t, e, g.load(), Options{Full: true})
	if rr := mustRelease(t, res, ns, "gadget"); rr.Action != Unchanged {
		t.Errorf("full sync after the install: %+v", rr)
	}

	// A new chart version changes the definition: Helm never upgrades
	// the crds directory, mgo applies it before the upgrade; then a full
	// sync finds the release unchanged again.
	g.write("charts/widgets/Chart.yaml", "apiVersion: v2\nname: widgets\nversion: 1.1.0\n")
	crdFile := filepath.Join(g.dir, "charts/widgets/crds/widgets.yaml")
	b, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	g.write("charts/widgets/crds/widgets.yaml", strings.Replace(string(b), "size: {type: integer}", "size: {type: integer}\n              color: {type: string}", 1))
	res = syncOnce(t, e, g.load(), Options{})
	if rr := mustRelease(t, res, ns, "gadget"); rr.Action != Upgraded {
		t.Fatalf("sync of the changed definition: %+v", rr)
	}
	if err := e.cluster.Client.Get(ctx, client.ObjectKey{Name: "widgets." + group}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("%d versions in the definition", len(versions))
	}
	if _, ok, _ := unstructured.NestedMap(versions[0].(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties", "color"); !ok {
		t.Errorf("the definition was not upgraded: %v", versions[0])
	}
	res = syncOnce(t, e, g.load(), Options{Full: true})
	if rr := mustRelease(t, res, ns, "gadget"); rr.Action != Unchanged {
		t.Errorf("full sync after the upgrade: %+v", rr)
	}
}
