package kube

import (
	"context"
	"fmt"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func configMap(ns, name, value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"data":     map[string]any{"value": value},
	}}
}

func actions(cs *ssa.ChangeSet) map[string]string {
	m := map[string]string{}
	for _, e := range cs.Entries {
		m[e.Subject] = string(e.Action)
	}
	return m
}

func TestApplyRawAddChangeRemove(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	c := newCluster(t)
	opts := DefaultRawOptions()
	opts.Set = ns // an inventory of this test's own

	// An object nobody asked mgo to manage, beside the managed ones.
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "unmanaged"}, Data: map[string]string{"keep": "me"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newNS := ns + "-extra"
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Namespaces().Delete(context.Background(), newNS, metav1.DeleteOptions{})
	})
	nsObj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": newNS},
	}}

	// Add: the namespace is applied before the object that lives in it.
	res, err := c.ApplyRaw(ctx, []*unstructured.Unstructured{configMap(newNS, "in-new-ns", "1"), configMap(ns, "a", "1"), configMap(ns, "b", "1"), nsObj}, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Namespace/" + newNS:                "created",
		"ConfigMap/" + newNS + "/in-new-ns": "created",
		"ConfigMap/" + ns + "/a":            "created",
		"ConfigMap/" + ns + "/b":            "created",
	}
	if got := actions(res.ChangeSet); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("first apply: %v, want %v", got, want)
	}

	// The same again: every object unchanged, and not one write.
	before := c.Requests.Snapshot()
	res, err = c.ApplyRaw(ctx, []*unstructured.Unstructured{configMap(newNS, "in-new-ns", "1"), configMap(ns, "a", "1"), configMap(ns, "b", "1"), nsObj}, opts)
	if err != nil {
		t.Fatal(err)
	}
	counts := c.Requests.Since(before)
	if counts.Writes() != 0 || res.InventoryWritten {
		t.Errorf("no-op apply made %d writes (%v), inventory written %v", counts.Writes(), counts, res.InventoryWritten)
	}
	if counts["dryrun-patch"] != 4 {
		t.Errorf("no-op apply: %d dry-run patches, want one per object (%v)", counts["dryrun-patch"], counts)
	}
	for subject, action := range actions(res.ChangeSet) {
		if action != "unchanged" {
			t.Errorf("no-op apply: %s %s", subject, action)
		}
	}

	// Change one, remove one: the removed one is deleted, the unmanaged
	// object survives.
	before = c.Requests.Snapshot()
	res, err = c.ApplyRaw(ctx, []*unstructured.Unstructured{configMap(newNS, "in-new-ns", "1"), configMap(ns, "a", "2"), nsObj}, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := actions(res.ChangeSet)
	if got["ConfigMap/"+ns+"/a"] != "configured" || got["ConfigMap/"+ns+"/b"] != "deleted" || got["ConfigMap/"+newNS+"/in-new-ns"] != "unchanged" {
		t.Errorf("change and remove: %v", got)
	}
	counts = c.Requests.Since(before)
	if counts["patch"] != 1 || counts["delete"] != 1 {
		t.Errorf("change and remove: %v; want 1 patch and 1 delete (and the inventory update)", counts)
	}
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "2" {
		t.Errorf("a = %v, %v", cm.Data, err)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("b still exists: %v", err)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "unmanaged", metav1.GetOptions{}); err != nil {
		t.Errorf("the unmanaged ConfigMap was touched: %v", err)
	}
	if cm.Labels[OwnerGroup+"/name"] != ns || cm.Labels[OwnerGroup+"/namespace"] != c.Name {
		t.Errorf("owner labels %v", cm.Labels)
	}
}

// An object in the inventory that someone else has taken over (its owner
// labels removed) is not pruned.
func TestApplyRawPruneSparesRelabelledObjects(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	c := newCluster(t)
	opts := DefaultRawOptions()
	opts.Set = ns
	if _, err := c.ApplyRaw(ctx, []*unstructured.Unstructured{configMap(ns, "adopted", "1")}, opts); err != nil {
		t.Fatal(err)
	}
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "adopted", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels = nil
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := c.ApplyRaw(ctx, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(res.ChangeSet)["ConfigMap/"+ns+"/adopted"]; got != "skipped" {
		t.Errorf("relabelled object: %q, want skipped", got)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "adopted", metav1.GetOptions{}); err != nil {
		t.Errorf("relabelled object deleted: %v", err)
	}
}

func TestApplyRawErrorsNameTheObject(t *testing.T) {
	ns := env.Namespace(t)
	c := newCluster(t)
	opts := DefaultRawOptions()
	opts.Set = ns
	bad := configMap(ns, "bad", "1")
	bad.Object["data"] = map[string]any{"value": map[string]any{"not": "a string"}}
	_, err := c.ApplyRaw(context.Background(), []*unstructured.Unstructured{bad}, opts)
	if err == nil {
		t.Fatal("an invalid ConfigMap was applied")
	}
	if want := "ConfigMap/" + ns + "/bad"; !containsStr(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	ns2 := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "x", "namespace": ns},
	}}
	if _, err := c.ApplyRaw(context.Background(), []*unstructured.Unstructured{ns2}, opts); err == nil || !containsStr(err.Error(), "cluster-scoped") {
		t.Errorf("namespace on a cluster-scoped object: %v", err)
	}
}
