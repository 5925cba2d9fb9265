package reconcile

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func statefulValues(storage, tag, tier, immutable string) string {
	return "storage: " + storage + "\nworker:\n  tier: " + tier + "\n  immutable: \"" + immutable + "\"\n" +
		"image:\n  repository: registry.example.com/db\n  tag: \"" + tag + "\"\n"
}

func podUIDs(t *testing.T, ns, selector string) map[string]types.UID {
	t.Helper()
	pods, err := env.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]types.UID{}
	for _, p := range pods.Items {
		m[p.Name] = p.UID
	}
	return m
}

// A volumeClaimTemplate change is forbidden by the API server: the sync
// orphan-deletes the StatefulSet and recreates it; its PVCs survive and its
// pods are replaced by the rolling update, not deleted with it.
func TestStatefulSetVolumeClaimChangeRecreatesWithOrphans(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	g := newGitops(t)
	g.releaseOf("pg", ns, "./charts/stateful", "", "15.0", statefulValues("1Gi", "15.0", "backend", ""))
	e := newEngine(t)
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "pg"); rr.Action != Installed {
		t.Fatalf("install: %+v", rr)
	}
	sts, err := env.Client.AppsV1().StatefulSets(ns).Get(ctx, "pg-db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvcs, err := env.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pvcs.Items) != 2 {
		t.Fatalf("PVCs after install: %v, %v", pvcs, err)
	}
	pvcUIDs := map[string]types.UID{}
	for _, p := range pvcs.Items {
		pvcUIDs[p.Name] = p.UID
	}
	oldPods := podUIDs(t, ns, "app=pg-db")

	// A bigger volume (forbidden on a StatefulSet) and a new image.
	g.releaseOf("pg", ns, "./charts/stateful", "", "15.1", statefulValues("2Gi", "15.1", "backend", ""))
	rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "pg")
	if rr.Action != Upgraded {
		t.Fatalf("upgrade with a forbidden StatefulSet change: %+v", rr)
	}
	now, err := env.Client.AppsV1().StatefulSets(ns).Get(ctx, "pg-db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.UID == sts.UID {
		t.Error("the StatefulSet was not recreated")
	}
	if got := now.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "2Gi" {
		t.Errorf("volumeClaimTemplate size %s", got.String())
	}
	for name, uid := range pvcUIDs {
		p, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || p.UID != uid {
			t.Errorf("PVC %s did not survive: %v", name, err)
		}
	}
	// The rolling update replaced the pods (with the new image), one by
	// one: the new StatefulSet adopted the old pods instead of losing them.
	waitFor(t, "pods at the new image", func() bool {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=pg-db"})
		if err != nil || len(pods.Items) != 2 {
			return false
		}
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image != "registry.example.com/db:15.1" || p.Status.Phase != corev1.PodRunning {
				return false
			}
		}
		return true
	})
	for name, uid := range podUIDs(t, ns, "app=pg-db") {
		if oldPods[name] == uid {
			t.Errorf("pod %s was not replaced by the rolling update", name)
		}
	}
	events, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=StatefulSet"})
	if err == nil {
		for _, ev := range events.Items {
			if ev.Reason == "SuccessfulDelete" && ev.InvolvedObject.UID == sts.UID {
				t.Errorf("the old StatefulSet deleted a pod (%s): its pods should have been orphaned", ev.Message)
			}
		}
	}
}

// Other immutable fields fail with a clear message unless the object opts
// into recreate; nothing is deleted on refusal.
func TestImmutableFieldNeedsOptIn(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	g := newGitops(t)
	g.releaseOf("q", ns, "./charts/stateful", "", "15.0", statefulValues("1Gi", "15.0", "backend", ""))
	e := newEngine(t)
	syncOnce(t, e, g.load(), Options{})
	worker, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "q-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A new selector (immutable on a Deployment), without the opt-in.
	g.releaseOf("q", ns, "./charts/stateful", "", "15.0", statefulValues("1Gi", "15.0", "frontend", ""))
	rr := mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "q")
	if rr.Action != Failed || !contains(rr.Error, "Deployment/"+ns+"/q-worker") || !contains(rr.Error, "immutable") || !contains(rr.Error, AnnotationImmutable) {
		t.Fatalf("selector change without opt-in: %+v", rr)
	}
	if d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "q-worker", metav1.GetOptions{}); err != nil || d.UID != worker.UID {
		t.Errorf("the refused Deployment was touched: %v", err)
	}

	// With the opt-in it is deleted and recreated.
	g.releaseOf("q", ns, "./charts/stateful", "", "15.0", statefulValues("1Gi", "15.0", "frontend", "recreate"))
	rr = mustRelease(t, syncOnce(t, e, g.load(), Options{}), ns, "q")
	if rr.Action != Upgraded {
		t.Fatalf("selector change with opt-in: %+v", rr)
	}
	d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "q-worker", metav1.GetOptions{})
	if err != nil || d.UID == worker.UID || d.Spec.Selector.MatchLabels["tier"] != "frontend" {
		t.Errorf("recreated Deployment: %v, %v", d, err)
	}
}
