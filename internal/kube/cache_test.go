package kube

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// obj decodes a YAML object and gives it the owner's labels and namespace.
func obj(t *testing.T, owner Owner, ns, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	if ns != "" {
		u.SetNamespace(ns)
	}
	l := u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, owner.Labels())
	u.SetLabels(l)
	return u
}

// applyAs applies u by server-side apply with a field manager.
func applyAs(t *testing.T, c *Cluster, manager string, u *unstructured.Unstructured) {
	t.Helper()
	u = u.DeepCopy()
	u.SetManagedFields(nil)
	u.SetResourceVersion("")
	if err := c.Client.Patch(context.Background(), u, client.Apply, client.FieldOwner(manager), client.ForceOwnership); err != nil {
		t.Fatalf("apply %s as %s: %v", fmtObj(u), manager, err)
	}
}

// waitCached waits until the cache holds the live version of u (or knows
// it is gone).
func waitCached(t *testing.T, c *Cluster, ca *Cache, u *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(u.GroupVersionKind())
		lerr := c.Client.Get(ctx, client.ObjectKeyFromObject(u), live)
		cached, err := ca.Get(ctx, u.GroupVersionKind(), u.GetNamespace(), u.GetName())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case lerr != nil && cached == nil:
			return nil
		case lerr == nil && cached != nil && cached.GetResourceVersion() == live.GetResourceVersion():
			return cached
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache does not catch up with %s (live: %v)", fmtObj(u), lerr)
		}
		select {
		case <-ca.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.0
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
        ports:
        - {name: http, containerPort: 8080}
        resources:
          requests: {cpu: "0.5", memory: 64Mi}
`

// The decision of the cache equals the server-side dry-run's on a corpus
// of objects and changes: the cache never calls unchanged what a dry-run
// calls changed, it decides plain unchanged objects alone, and it leaves
// what only the API server can normalise (quantities, int-or-string,
// defaulting inside atomic values, list order) to the dry-run. With drift
// ignore rules respected (Ignore.Respect) both agree too: a field left to
// another manager is no change for either.
func TestCacheDecisionEqualsDryRun(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	c := newCluster(t)
	owner := c.OwnerFor("corpus-" + ns)
	ca, err := c.NewCache(owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()

	type tc struct {
		name    string
		applied string                                           // applied by mgo first
		other   func(t *testing.T, u *unstructured.Unstructured) // then changed by another manager (optional)
		wanted  string                                           // then compared
		local   bool                                             // the cache decides alone (unchanged)
		action  ssa.Action                                       // what the dry-run says
		ignore  *Ignore                                          // drift ignore rules, respected before both decide
	}
	svc := `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: admin, port: 81, targetPort: 9090}
`
	cm := `apiVersion: v1
kind: ConfigMap
metadata: {name: conf, annotations: {note: "a"}}
data: {a: "1", b: "2"}
`
	normalised := replace(deployment, `cpu: "0.5"`, `cpu: 500m`)
	cases := []tc{
		{name: "same deployment, defaulted fields and a quantity", applied: deployment, wanted: deployment, local: false, action: ssa.UnchangedAction},
		{name: "quantities already normalised", applied: replace(deployment, `cpu: "0.5"`, `cpu: 500m`), wanted: replace(deployment, `cpu: "0.5"`, `cpu: 500m`), local: true, action: ssa.UnchangedAction},
		{name: "new image", applied: deployment, wanted: replace(deployment, "nginx:1.0", "nginx:2.0"), action: ssa.ConfiguredAction},
		{name: "env reordered", applied: deployment, wanted: replace(replace(replace(deployment, "{name: A, value: \"1\"}", "X"), "{name: B, value: \"2\"}", "{name: A, value: \"1\"}"), "X", "{name: B, value: \"2\"}"), action: ssa.ConfiguredAction},
		{name: "service with int-or-string ports", applied: svc, wanted: svc, local: true, action: ssa.UnchangedAction},
		{name: "a port by name where it was a number", applied: svc, wanted: replace(svc, "targetPort: 9090", "targetPort: admin"), action: ssa.ConfiguredAction},
		{name: "a number given as a float", applied: svc, wanted: replace(svc, "port: 81,", "port: 81.0,"), local: true, action: ssa.UnchangedAction},
		{name: "configmap", applied: cm, wanted: cm, local: true, action: ssa.UnchangedAction},
		{name: "empty map given", applied: replace(cm, `data: {a: "1", b: "2"}`, "data: {}"), wanted: replace(cm, `data: {a: "1", b: "2"}`, "data: {}"), action: ssa.UnchangedAction},
		{name: "a key removed", applied: cm, wanted: replace(cm, `, b: "2"`, ""), action: ssa.ConfiguredAction},
		{name: "an annotation removed", applied: cm, wanted: replace(cm, `, annotations: {note: "a"}`, ""), action: ssa.ConfiguredAction},
		{name: "a label another manager added is left to it", applied: cm, wanted: cm, local: true, action: ssa.UnchangedAction,
			other: func(t *testing.T, u *unstructured.Unstructured) {
				patch(t, c, u, "other", `{"metadata":{"labels":{"team":"x"}}}`)
			}},
		{name: "a value mgo applies changed by another manager (drift)", applied: cm, wanted: cm, action: ssa.ConfiguredAction,
			other: func(t *testing.T, u *unstructured.Unstructured) {
				patch(t, c, u, "kubectl-edit", `{"data":{"a":"changed"}}`)
			}},
		{name: "replicas owned by another manager by apply (an autoscaler)", applied: deployment, wanted: deployment, action: ssa.ConfiguredAction,
			other: func(t *testing.T, u *unstructured.Unstructured) {
				scaled := obj(t, owner, u.GetNamespace(), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n")
				scaled.SetName(u.GetName())
				applyAs(t, c, "autoscaler", scaled)
			}},
		{name: "replicas owned by another manager by apply, left to it", applied: normalised, wanted: normalised, local: true, action: ssa.UnchangedAction,
			ignore: &Ignore{Appliers: true},
			other: func(t *testing.T, u *unstructured.Unstructured) {
				scaled := obj(t, owner, u.GetNamespace(), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n")
				scaled.SetName(u.GetName())
				applyAs(t, c, "autoscaler", scaled)
			}},
		{name: "replicas scaled by hand, ignored by a pointer", applied: normalised, wanted: normalised, local: true, action: ssa.UnchangedAction,
			ignore: &Ignore{Pointers: [][]string{{"spec", "replicas"}}, Appliers: true},
			other: func(t *testing.T, u *unstructured.Unstructured) {
				patch(t, c, u, "kubectl-scale", `{"spec":{"replicas":4}}`)
			}},
		{name: "a label of another manager, ignored by its manager", applied: cm, wanted: cm, local: true, action: ssa.UnchangedAction,
			ignore: &Ignore{Managers: []string{"kube-controller-manager"}},
			other: func(t *testing.T, u *unstructured.Unstructured) {
				patch(t, c, u, "kube-controller-manager", `{"data":{"a":"controller"}}`)
			}},
		{name: "a value mgo applies changed, another one ignored: still drift", applied: cm, wanted: cm, action: ssa.ConfiguredAction,
			ignore: &Ignore{Pointers: [][]string{{"data", "b"}}, Appliers: true},
			other: func(t *testing.T, u *unstructured.Unstructured) {
				patch(t, c, u, "kubectl-edit", `{"data":{"a":"changed","b":"also"}}`)
			}},
	}
	for i, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			// Each case its own name, so cases do not see each other.
			applied := obj(t, owner, ns, k.applied)
			name := fmt.Sprintf("%s-%d", applied.GetName(), i)
			applied.SetName(name)
			applyAs(t, c, FieldManager, applied)
			if k.other != nil {
				k.other(t, applied)
			}
			wanted := obj(t, owner, ns, k.wanted)
			wanted.SetName(name)
			settled(t, c, wanted)
			live := waitCached(t, c, ca, wanted)
			if k.ignore != nil {
				wanted, _ = k.ignore.Respect(wanted, live)
			}

			local := ca.Decide(ctx, wanted)
			entry, _, _, err := c.Diff(ctx, wanted)
			if err != nil {
				t.Fatal(err)
			}
			if entry.Action != k.action {
				t.Errorf("dry-run: %s, want %s", entry.Action, k.action)
			}
			if local && entry.Action != ssa.UnchangedAction {
				t.Errorf("the cache decided unchanged, the dry-run says %s", entry.Action)
			}
			if local != k.local {
				live, _ := ca.Get(ctx, wanted.GroupVersionKind(), ns, name)
				_, why := Unchanged(wanted, live, FieldManager)
				t.Errorf("decided locally: %v, want %v (%s)", local, k.local, why)
			}
			final, _, _, err := ca.Diff(ctx, wanted)
			if err != nil {
				t.Fatal(err)
			}
			if final.Action != entry.Action {
				t.Errorf("cache-first diff: %s, dry-run: %s", final.Action, entry.Action)
			}
		})
	}
	local, dry := ca.Decisions()
	t.Logf("decided locally %d, by dry-run %d", local, dry)
}

func replace(s, old, new string) string { return strings.ReplaceAll(s, old, new) }

// patch changes u by a merge patch with another field manager.
func patch(t *testing.T, c *Cluster, u *unstructured.Unstructured, manager, p string) {
	t.Helper()
	target := &unstructured.Unstructured{}
	target.SetGroupVersionKind(u.GroupVersionKind())
	target.SetNamespace(u.GetNamespace())
	target.SetName(u.GetName())
	if err := c.Client.Patch(context.Background(), target, client.RawPatch(types.MergePatchType, []byte(p)), client.FieldOwner(manager)); err != nil {
		t.Fatalf("patch %s: %v", fmtObj(u), err)
	}
}

// A kind whose CRD did not exist when the cache was made is watched from
// its first use: the CRD one release installs serves another.
func TestCacheWatchesKindsFirstSeen(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	c := newCluster(t)
	owner := c.OwnerFor("crd-" + ns)
	ca, err := c.NewCache(owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	group := ns + ".example.com"
	cr := obj(t, owner, ns, "apiVersion: "+group+"/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n")
	if _, err := ca.Get(ctx, cr.GroupVersionKind(), ns, "w"); err == nil {
		t.Fatal("a kind the cluster does not serve is cached")
	}
	crd := obj(t, owner, "", `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.`+group+`}
spec:
  group: `+group+`
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`)
	applyAs(t, c, FieldManager, crd)
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), crd) })
	if err := c.Resources.WaitForSet([]object.ObjMetadata{object.UnstructuredToObjMetadata(crd)}, ssa.WaitOptions{Interval: 200 * time.Millisecond, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var applyErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if applyErr = c.Client.Patch(ctx, cr.DeepCopy(), client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership); applyErr == nil {
			break
		}
		<-time.After(200 * time.Millisecond)
	}
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	if got := waitCached(t, c, ca, cr); got == nil {
		t.Fatal("the custom resource is not cached")
	}
	if !ca.Decide(ctx, cr) {
		t.Error("the unchanged custom resource is not decided locally")
	}
}

// settled waits until the Deployment controller is done with a new or
// changed Deployment (its revision annotation set, its generation
// observed): it writes the object too, and a dry-run that reads the object
// before that write and applies after it sees a difference that is the
// controller's, not the test's.
func settled(t *testing.T, c *Cluster, u *unstructured.Unstructured) {
	t.Helper()
	if u.GetKind() != "Deployment" {
		return
	}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(u.GroupVersionKind())
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(u), live); err != nil {
			return false, err
		}
		observed, _, _ := unstructured.NestedInt64(live.Object, "status", "observedGeneration")
		return live.GetAnnotations()["deployment.kubernetes.io/revision"] != "" && observed == live.GetGeneration(), nil
	})
	if err != nil {
		t.Fatalf("%s not settled: %v", fmtObj(u), err)
	}
}
