package reconcile

import (
	"testing"

	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
)

// The state of a release and its action, from what a sync knows of it:
// each row as far as a sync gets before the state ends it.
func TestDetermineState(t *testing.T) {
	rendered := releaseFacts{Valid: true, Rendered: true}
	compared := rendered
	compared.Compared = true
	read := func(f releaseFacts, last revisionStatus) releaseFacts {
		f.Read, f.Last = true, last
		return f
	}
	with := func(f releaseFacts, edit func(*releaseFacts)) releaseFacts {
		edit(&f)
		return f
	}
	changed := with(compared, func(f *releaseFacts) { f.Changed = true })
	for _, tc := range []struct {
		name   string
		facts  releaseFacts
		state  releaseState
		action releaseAction
		dryRun releaseAction // the action in a dry run, when another
	}{
		{"files with errors", releaseFacts{Synced: true, SameInputs: true}, stateInvalid, actFail, ""},
		{"first sync", releaseFacts{Valid: true}, stateUnrendered, actRender, ""},
		{"inputs of the last sync", releaseFacts{Valid: true, Synced: true, SameInputs: true}, stateInputsUnchanged, actSkip, ""},
		{"inputs of the last sync, full sync", releaseFacts{Valid: true, Full: true, Synced: true, SameInputs: true}, stateUnrendered, actRender, ""},
		{"inputs without a successful sync", releaseFacts{Valid: true, SameInputs: true}, stateUnrendered, actRender, ""},
		{"rendering of the last sync", with(rendered, func(f *releaseFacts) { f.Synced, f.SameRendering = true, true }), stateRenderingUnchanged, actSkip, ""},
		{"rendering of the last sync, full sync", with(rendered, func(f *releaseFacts) { f.Synced, f.SameRendering, f.Full = true, true, true }), stateUncompared, actCompare, ""},
		{"rendering of the last failed sync", with(rendered, func(f *releaseFacts) { f.FailedRendering = true }), stateFailedUnchanged, actRepeatFailure, ""},
		{"rendering of the last failed sync, full sync", with(rendered, func(f *releaseFacts) { f.FailedRendering, f.Full = true, true }), stateUncompared, actCompare, ""},
		{"rendering of the last failed sync, dry run", with(rendered, func(f *releaseFacts) { f.FailedRendering, f.DryRun = true, true }), stateUncompared, actCompare, ""},
		{"new rendering", rendered, stateUncompared, actCompare, ""},
		{"unchanged, deployed in the cache", with(compared, func(f *releaseFacts) { f.CachedInSync = true }), stateInSync, actLeaveAlone, ""},
		{"unchanged, the cache cannot tell", compared, stateUnread, actRead, ""},
		{"changed", changed, stateUnread, actRead, ""},
		{"no revision", read(changed, revisionNone), stateAbsent, actInstall, actReport},
		{"no revision, no objects", read(compared, revisionNone), stateAbsent, actInstall, actReport},
		{"unchanged, deployed", read(compared, revisionDeployed), stateInSync, actLeaveAlone, ""},
		{"changed, deployed", read(changed, revisionDeployed), stateOutOfSync, actUpgrade, actReport},
		{"pending", read(compared, revisionPending), statePending, actRecover, actReport},
		{"pending, held", read(changed, revisionHeld), stateLocked, actFail, actReport},
		{"not deployed, history unread", read(compared, revisionOther), stateHistoryUnread, actReadHistory, ""},
		{"not deployed, deployed before", with(read(compared, revisionOther), func(f *releaseFacts) { f.HistoryRead, f.DeployedBefore = true, true }),
			stateFailed, actUpgrade, actReport},
		{"never deployed", with(read(changed, revisionOther), func(f *releaseFacts) { f.HistoryRead = true }), stateNeverDeployed, actInstall, actReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := determineState(tc.facts); got != tc.state {
				t.Fatalf("state %s, want %s", got, tc.state)
			}
			if got := tc.state.action(false); got != tc.action {
				t.Errorf("action %s, want %s", got, tc.action)
			}
			want := tc.dryRun
			if want == "" {
				want = tc.action
			}
			if got := tc.state.action(true); got != want {
				t.Errorf("dry-run action %s, want %s", got, want)
			}
		})
	}
}

// A dry run never reads Helm's history: a revision that is not deployed
// is reported as a change.
func TestDetermineStateDryRunNotDeployed(t *testing.T) {
	f := releaseFacts{Valid: true, DryRun: true, Rendered: true, Compared: true, Read: true, Last: revisionOther}
	if got := determineState(f); got != stateFailed || got.action(true) != actReport {
		t.Errorf("state %s (action %s), want %s (%s)", got, got.action(true), stateFailed, actReport)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		last *releasev1.Release
		want revisionStatus
	}{
		{nil, revisionNone},
		{&releasev1.Release{}, revisionOther},
		{&releasev1.Release{Info: &releasev1.Info{Status: helmcommon.StatusDeployed}}, revisionDeployed},
		{&releasev1.Release{Info: &releasev1.Info{Status: helmcommon.StatusPendingUpgrade}}, revisionPending},
		{&releasev1.Release{Info: &releasev1.Info{Status: helmcommon.StatusPendingInstall}}, revisionPending},
		{&releasev1.Release{Info: &releasev1.Info{Status: helmcommon.StatusPendingRollback}}, revisionPending},
		{&releasev1.Release{Info: &releasev1.Info{Status: helmcommon.StatusFailed}}, revisionOther},
		{&releasev1.Release{Info: &releasev1.Info{Status: helmcommon.StatusSuperseded}}, revisionOther},
	} {
		if got := statusOf(tc.last); got != tc.want {
			t.Errorf("statusOf(%+v) = %s, want %s", tc.last, got, tc.want)
		}
	}
}
