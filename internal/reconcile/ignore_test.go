package reconcile

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// releaseWithHeader writes a release of the hello chart whose header ends
// in header (drift ignore rules) and whose values end in extra.
func (g *gitops) releaseWithHeader(name, ns, tag, header, extra string) {
	g.t.Helper()
	g.write("installations/"+clusterName+"/"+name+"-values.yaml", `__mygitops:
  chart: ./charts/hello
  name: `+name+`
  namespace: `+ns+`
  images:
    gitlab.com/acme/`+name+`: &img
      repository: registry.example.com/`+name+`
      tag: "`+tag+`"
`+header+`image:
  <<: *img
replicaCount: 2
`+extra)
}

// hpaTemplate is a HorizontalPodAutoscaler for the hello chart.
const hpaTemplate = `{{- if .Values.autoscaling }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "hello.fullname" . }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "hello.fullname" . }}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
{{- end }}
`

// A rule for /spec/replicas: the Deployment scaled by hand is no drift
// (watch, Diff, sync), and an upgrade for another reason keeps the hand-set
// replicas; a change of another field is still drift.
func TestIgnoreDifferencesReplicas(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	rules := "  ignoreDifferences:\n  - {kind: Deployment, name: web-hello, jsonPointers: [/spec/replicas]}\n"
	g.releaseWithHeader("web", ns, "1.0.0", rules, "")
	leftAlone(t, g, ns, scaleBy("kubectl-scale"), func(tag string) { g.releaseWithHeader("web", ns, tag, rules, "") })
}

// The replicas of a Deployment that an HPA of the same release scales are
// left to the HPA without any rule.
func TestIgnoreReplicasOfAnHPA(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.write("charts/hello/templates/hpa.yaml", hpaTemplate)
	g.releaseWithHeader("web", ns, "1.0.0", "", "autoscaling: true\n")
	leftAlone(t, g, ns, scaleBy("kube-controller-manager"), func(tag string) { g.releaseWithHeader("web", ns, tag, "", "autoscaling: true\n") })
}

// Replicas another field manager applies (server-side, taking them over
// from mgo) are left to it without any rule.
func TestIgnoreFieldsAppliedByAnotherManager(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.releaseWithHeader("web", ns, "1.0.0", "", "")
	leftAlone(t, g, ns, func(t *testing.T, ns, name string) {
		scaled := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": name, "namespace": ns}, "spec": map[string]any{"replicas": int64(4)}}}
		b, err := scaled.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := env.Client.AppsV1().Deployments(ns).Patch(context.Background(), name, types.ApplyPatchType, b,
			metav1.PatchOptions{FieldManager: "autoscaler", Force: &force}); err != nil {
			t.Fatal(err)
		}
	}, func(tag string) { g.releaseWithHeader("web", ns, tag, "", "") })
}

// scaleBy scales a Deployment to 4 through the scale subresource, as an
// autoscaler or a person does, with its own field manager.
func scaleBy(manager string) func(t *testing.T, ns, name string) {
	return func(t *testing.T, ns, name string) {
		ctx := context.Background()
		deployments := env.Client.AppsV1().Deployments(ns)
		scale, err := deployments.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 4
		if _, err := deployments.UpdateScale(ctx, name, scale, metav1.UpdateOptions{FieldManager: manager}); err != nil {
			t.Fatal(err)
		}
	}
}

// leftAlone installs the release web (hello chart), scales its Deployment
// to 4 with scale, and checks that this is no drift and is kept by an
// upgrade; write writes the release with another image tag.
func leftAlone(t *testing.T, g *gitops, ns string, scale func(t *testing.T, ns, name string), write func(tag string)) {
	ctx := context.Background()
	const name = "web-hello"
	e := newEngine(t)
	var mu sync.Mutex
	var seen []Drift
	e.OnDrift(func(d Drift) {
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
	})
	driftOf := func(subject string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, d := range seen {
			if d.Subject == subject {
				n++
			}
		}
		return n
	}
	installed := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web")
	if installed.Action != Installed {
		t.Fatalf("install: %+v", installed)
	}

	scale(t, ns, name)
	deployments := env.Client.AppsV1().Deployments(ns)
	gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	waitFor(t, "the cache to see the scaled Deployment", func() bool {
		live, err := e.Cache().Get(ctx, gvk, ns, name)
		n, _, _ := unstructured.NestedInt64(liveObject(live), "spec", "replicas")
		return err == nil && n == 4
	})

	// Diff shows nothing, a full sync makes no revision.
	diff, err := e.Diff(ctx, g.load(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff.HasDifferences() || diff.Failed() {
		t.Errorf("diff after the scale: %+v", diff)
	}
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{Full: true}), ns, "web"); rr.Action != Unchanged || rr.Revision != installed.Revision {
		t.Errorf("sync after the scale: %+v (installed as revision %d)", rr, installed.Revision)
	}
	if d := deployment(t, ns, name); *d.Spec.Replicas != 4 {
		t.Errorf("replicas %d after the sync, want 4", *d.Spec.Replicas)
	}

	// A change of a field no rule names is drift, on another object and on
	// the Deployment itself; the drift of the ConfigMap comes after the
	// events of the scale in the engine's queue.
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"data":{"greeting":"edited"}}`),
		metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drift of the ConfigMap", func() bool { return driftOf("ConfigMap/"+ns+"/"+name) > 0 })
	if n := driftOf("Deployment/" + ns + "/" + name); n != 0 {
		t.Errorf("the scale is drift: %d drifts of the Deployment", n)
	}
	if _, err := deployments.Patch(ctx, name, types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"hello","image":"registry.example.com/web:edited"}]}}}}`),
		metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drift of the Deployment", func() bool { return driftOf("Deployment/"+ns+"/"+name) > 0 })

	// A new image in the repo: a new revision with the image, and the
	// replicas as they were scaled.
	write("1.1.0")
	up := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "web")
	if up.Action != Upgraded || up.Revision != installed.Revision+1 {
		t.Fatalf("upgrade: %+v (installed as revision %d)", up, installed.Revision)
	}
	d := deployment(t, ns, name)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/web:1.1.0" {
		t.Errorf("image %s after the upgrade", img)
	}
	if *d.Spec.Replicas != 4 {
		t.Errorf("replicas %d after the upgrade, want the 4 scaled by hand", *d.Spec.Replicas)
	}
	diff, err = e.Diff(ctx, g.load(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rd := range diff.Releases {
		for _, o := range rd.Objects {
			if o.Action != ObjectUnchanged {
				t.Errorf("after the upgrade %s is %s:\n%s", o.Subject, o.Action, o.Diff)
			}
		}
	}
}

func liveObject(u *unstructured.Unstructured) map[string]any {
	if u == nil {
		return nil
	}
	return u.Object
}
