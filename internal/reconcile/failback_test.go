package reconcile

import (
	"testing"
	"time"
)

// TestSyncBackAfterFailedRollout: a release whose upgrade failed its
// rollout wait, synced again from the inputs of its last successful sync
// (a revert of the failed change), is compared with the cluster and
// rolled back, not skipped as unchanged.
func TestSyncBackAfterFailedRollout(t *testing.T) {
	ns := env.Namespace(t)
	g := newGitops(t)
	g.release("web", ns, "hello", "1.0.0", "")
	e := newEngine(t)
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{Timeout: 20 * time.Second}), ns, "web"); rr.Action != Installed {
		t.Fatalf("install: %+v", rr)
	}
	// Pods that no node will ever take: the upgrade's rollout fails.
	g.release("web", ns, "hello", "1.1.0", "nodeSelector:\n  disktype: none-has-this\n")
	if rr := mustRelease(t, syncOnce(t, e, g.load(), Options{Timeout: 3 * time.Second}), ns, "web"); rr.Action != Failed || rr.Stage != StageWait {
		t.Fatalf("stuck upgrade: %+v", rr)
	}
	g.release("web", ns, "hello", "1.0.0", "")
	back := mustRelease(t, syncOnce(t, e, g.load(), Options{Timeout: 20 * time.Second}), ns, "web")
	if back.Action != Upgraded && back.Action != Installed {
		t.Fatalf("sync back: %+v, want the release rolled back", back)
	}
	for _, o := range back.Objects {
		if o.Subject == "Deployment/"+ns+"/web-hello" && o.Status != "Current" {
			t.Errorf("deployment after the sync back: %+v", o)
		}
	}
	h := history(t, e, ns, "web")
	if len(h) != 3 || h[2].Info.Status != "deployed" || h[1].Info.Status != "failed" {
		t.Errorf("helm history: %d revisions, want installed, failed, deployed", len(h))
	}
}
