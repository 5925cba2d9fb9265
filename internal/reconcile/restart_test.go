package reconcile

import (
	"context"
	"testing"
	"time"
)

// TestRestartWaitsForTheRollout: Restart returns once the restarted
// Deployment has rolled out (every replica of the new template ready), and
// names a workload that does not become ready within the timeout.
func TestRestartWaitsForTheRollout(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("web", ns, "hello", "1.0.0", "")
	g.release("stuck", ns, "hello", "1.0.0", "nodeSelector:\n  pool: none\n")
	e := newEngine(t)
	res := syncOnce(t, e, g.load(), Options{Release: "web"})
	if rr := mustRelease(t, res, ns, "web"); rr.Action != Installed {
		t.Fatalf("install: %+v", rr)
	}
	before := deployment(t, ns, "web-hello")

	objs, err := e.Restart(context.Background(), ns, "web", 90*time.Second)
	if err != nil {
		t.Fatalf("restart: %v (%+v)", err, objs)
	}
	if len(objs) != 1 || objs[0].Subject != "Deployment/"+ns+"/web-hello" || objs[0].Action != "restarted" || objs[0].Status != "Current" {
		t.Errorf("restart results %+v, want the Deployment restarted and Current", objs)
	}
	d := deployment(t, ns, "web-hello")
	if d.Spec.Template.Annotations[RestartedAtAnnotation] == "" || d.Generation == before.Generation {
		t.Fatalf("the pod template was not stamped: generation %d -> %d, annotations %v", before.Generation, d.Generation, d.Spec.Template.Annotations)
	}
	// Read as Restart returned: the new template rolled out.
	want := *d.Spec.Replicas
	if d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != want || d.Status.ReadyReplicas != want || d.Status.Replicas != want {
		t.Errorf("restart returned before the rollout: generation %d observed %d, replicas %d updated %d ready %d (want %d)",
			d.Generation, d.Status.ObservedGeneration, d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, want)
	}

	// A release whose pods fit no node never becomes ready.
	res = syncOnce(t, e, g.load(), Options{Release: "stuck", Timeout: 2 * time.Second})
	if rr := mustRelease(t, res, ns, "stuck"); rr.Stage != StageWait {
		t.Fatalf("sync of the stuck release: %+v", rr)
	}
	objs, err = e.Restart(context.Background(), ns, "stuck", 2*time.Second)
	if err == nil || !contains(err.Error(), "restart of "+ns+"/stuck not ready within 2s") || !contains(err.Error(), "Deployment/"+ns+"/stuck-hello is InProgress") {
		t.Errorf("restart of the stuck release: %v", err)
	}
	if len(objs) != 1 || objs[0].Status != "InProgress" {
		t.Errorf("restart results of the stuck release %+v", objs)
	}
}
