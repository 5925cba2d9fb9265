package api

import (
	"testing"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// TestWireMirrorsEngineValues holds the wire format's release and object
// actions and stages to the engine's: wire.go converts them by value, so
// a constant added or renamed on one side only would reach clients as a
// value the API does not document.
func TestWireMirrorsEngineValues(t *testing.T) {
	releases := map[reconcile.Action]apitypes.ReleaseAction{
		reconcile.Installed: apitypes.ReleaseInstalled, reconcile.Upgraded: apitypes.ReleaseUpgraded,
		reconcile.Unchanged: apitypes.ReleaseUnchanged, reconcile.UpToDate: apitypes.ReleaseUpToDate,
		reconcile.Uninstalled: apitypes.ReleaseUninstalled, reconcile.LeftAlone: apitypes.ReleaseLeftAlone,
		reconcile.WouldChange: apitypes.ReleaseWouldChange, reconcile.Failed: apitypes.ReleaseFailed,
		reconcile.Restarted: apitypes.ReleaseRestarted,
	}
	sameValues(t, "release action", releases)
	stages := map[reconcile.Stage]apitypes.ReleaseStage{
		reconcile.StageValidate: apitypes.ReleaseStageValidate, reconcile.StageChart: apitypes.ReleaseStageChart,
		reconcile.StageRender: apitypes.ReleaseStageRender, reconcile.StageDiff: apitypes.ReleaseStageDiff,
		reconcile.StageApply: apitypes.ReleaseStageApply, reconcile.StageWait: apitypes.ReleaseStageWait,
		reconcile.StageDependency: apitypes.ReleaseStageDependency,
	}
	sameValues(t, "stage", stages)
	objects := map[reconcile.ObjectAction]apitypes.ObjectAction{
		reconcile.ObjectCreated: apitypes.ObjectCreated, reconcile.ObjectConfigured: apitypes.ObjectConfigured,
		reconcile.ObjectUnchanged: apitypes.ObjectUnchanged, reconcile.ObjectDeleted: apitypes.ObjectDeleted,
		reconcile.ObjectSkipped: apitypes.ObjectSkipped, reconcile.ObjectUnknown: apitypes.ObjectUnknown,
		reconcile.ObjectRecreate: apitypes.ObjectRecreate, reconcile.ObjectRestarted: apitypes.ObjectRestarted,
	}
	sameValues(t, "object action", objects)
	sameValues(t, "freeze kind", map[string]apitypes.FreezeKind{repo.FreezeDeny: apitypes.FreezeDeny, repo.FreezeAllow: apitypes.FreezeAllow})
	statuses := map[deploy.Status]apitypes.DeploymentStatus{
		deploy.Queued: apitypes.StatusQueued, deploy.Pushed: apitypes.StatusPushed, deploy.Reverting: apitypes.StatusReverting,
		deploy.Succeeded: apitypes.StatusSucceeded, deploy.Failed: apitypes.StatusFailed,
	}
	sameValues(t, "deployment status", statuses)
	kinds := map[deploy.Kind]apitypes.DeploymentKind{
		deploy.KindDeploy: apitypes.KindDeploy, deploy.KindRollback: apitypes.KindRollback, deploy.KindRevert: apitypes.KindRevert,
	}
	sameValues(t, "deployment kind", kinds)
}

// sameValues fails t for each engine value whose wire value differs.
func sameValues[E, W ~string](t *testing.T, kind string, pairs map[E]W) {
	t.Helper()
	for e, w := range pairs {
		if string(e) != string(w) {
			t.Errorf("%s %q is %q on the wire", kind, e, w)
		}
	}
}
