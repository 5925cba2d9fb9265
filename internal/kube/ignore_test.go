package kube

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func managed(manager string, op metav1.ManagedFieldsOperationType, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
}

const ignoreWanted = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {mgo.io/cluster: c, team: a}
  annotations: {note: repo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {annotations: {restartedAt: "1"}}
    spec:
      containers:
      - {name: web, image: web:2}
      - {name: side, image: side:1}
`

// live is the Deployment after mgo applied it and others changed it.
func ignoreLive(t *testing.T) *unstructured.Unstructured {
	live := decode(t, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {mgo.io/cluster: other, team: b}
  annotations: {note: live}
spec:
  replicas: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {annotations: {restartedAt: "7"}}
    spec:
      containers:
      - {name: web, image: web:1}
      - {name: side, image: side:9}
`)
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		managed(FieldManager, metav1.ManagedFieldsOperationApply, `{"f:metadata":{"f:labels":{"f:mgo.io/cluster":{},"f:team":{}},"f:annotations":{"f:note":{}}},
			"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:annotations":{"f:restartedAt":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:name":{},"f:image":{}}}}}}}`),
		managed("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, `{"f:spec":{"f:replicas":{}}}`),
		managed("sidecar-injector", metav1.ManagedFieldsOperationApply, `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"side\"}":{".":{},"f:name":{},"f:image":{}}}}}}}`),
		managed("helm", metav1.ManagedFieldsOperationApply, `{"f:metadata":{"f:annotations":{"f:note":{}}}}`),
	})
	return live
}

func TestIgnoreRespect(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ig    Ignore
		check func(t *testing.T, got *unstructured.Unstructured)
		edits int
	}{
		{"nothing", Ignore{}, nil, 0},
		{"a field another manager owns by update: left out", Ignore{Pointers: [][]string{{"spec", "replicas"}}}, func(t *testing.T, got *unstructured.Unstructured) {
			if _, ok, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "replicas"); ok {
				t.Error("replicas kept")
			}
		}, 1},
		{"a field mgo owns: the live value", Ignore{Pointers: [][]string{{"spec", "template", "metadata", "annotations", "restartedAt"}}}, func(t *testing.T, got *unstructured.Unstructured) {
			if v, _, _ := unstructured.NestedString(got.Object, "spec", "template", "metadata", "annotations", "restartedAt"); v != "7" {
				t.Errorf("restartedAt %q", v)
			}
		}, 1},
		{"a list item by index", Ignore{Pointers: [][]string{{"spec", "template", "spec", "containers", "0", "image"}}}, func(t *testing.T, got *unstructured.Unstructured) {
			c, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
			if c[0].(map[string]any)["image"] != "web:1" || c[1].(map[string]any)["image"] != "side:1" {
				t.Errorf("containers %v", c)
			}
		}, 1},
		{"inside an atomic value mgo owns", Ignore{Pointers: [][]string{{"spec", "selector", "matchLabels", "app"}}}, nil, 0},
		{"no such field live or wanted", Ignore{Pointers: [][]string{{"spec", "paused"}}}, nil, 0},
		{"a manager's fields", Ignore{Managers: []string{"kube-controller-manager"}}, func(t *testing.T, got *unstructured.Unstructured) {
			if _, ok, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "replicas"); ok {
				t.Error("replicas kept")
			}
		}, 1},
		{"another applier's item, not its key", Ignore{Appliers: true}, func(t *testing.T, got *unstructured.Unstructured) {
			c, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
			if len(c) != 2 || c[1].(map[string]any)["name"] != "side" || c[1].(map[string]any)["image"] != nil {
				t.Errorf("containers %v", c)
			}
			if v, _, _ := unstructured.NestedString(got.Object, "metadata", "annotations", "note"); v != "repo" {
				t.Errorf("what helm applies is left to it: %q", v)
			}
		}, 1},
		{"mgo's own label is never touched", Ignore{Pointers: [][]string{{"metadata", "labels", "mgo.io/cluster"}, {"metadata", "labels", "team"}}}, func(t *testing.T, got *unstructured.Unstructured) {
			if l := got.GetLabels(); l["mgo.io/cluster"] != "c" || l["team"] != "b" {
				t.Errorf("labels %v", l)
			}
		}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wanted, live := decode(t, ignoreWanted), ignoreLive(t)
			got, edits := tt.ig.Respect(wanted, live)
			if len(edits) != tt.edits {
				t.Fatalf("edits %v, want %d", edits, tt.edits)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
			if !equal(decode(t, ignoreWanted).Object, wanted.Object) {
				t.Error("wanted changed")
			}
			// The same edits on another copy (what Helm renders) give the same object.
			other := decode(t, ignoreWanted)
			ApplyEdits(other.Object, edits)
			if !equal(other.Object, got.Object) {
				t.Errorf("ApplyEdits gives\n%v\nRespect\n%v", other.Object, got.Object)
			}
			again, againEdits := tt.ig.Respect(wanted, live)
			if !EditsEqual(edits, againEdits) || !equal(again.Object, got.Object) {
				t.Error("not deterministic")
			}
			if len(edits) > 0 && slices.ContainsFunc(edits, func(e Edit) bool { return e.String() == "" }) {
				t.Error("an edit without a path")
			}
		})
	}
	// Without a live object (it will be created) nothing changes.
	if got, edits := (Ignore{Pointers: [][]string{{"spec", "replicas"}}, Appliers: true}).Respect(decode(t, ignoreWanted), nil); len(edits) != 0 || got == nil {
		t.Errorf("edits without a live object: %v", edits)
	}
	// Before mgo applied the object, nothing is left to other appliers.
	live := ignoreLive(t)
	live.SetManagedFields(live.GetManagedFields()[1:])
	if _, edits := (Ignore{Appliers: true}).Respect(decode(t, ignoreWanted), live); len(edits) != 0 {
		t.Errorf("edits before mgo's first apply: %v", edits)
	}
}
