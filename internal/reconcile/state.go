package reconcile

import (
	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
)

// The state of a release, as helm-controller's DetermineReleaseState
// determines it: one pure function (determineState) over what a release
// sync has found out so far (releaseFacts), and one action per state
// (releaseState.action). What is found out costs the more the later it
// comes (render: local work; compare: the cache, else requests; Helm's
// storage: requests), so a state may ask for more facts first: the sync
// (release.go) looks, determines the state again, and so on until the
// state picks an action that ends the release's sync.

// releaseState is what a release sync knows of a release.
type releaseState string

const (
	// stateInvalid: the release's files have errors.
	stateInvalid releaseState = "invalid"
	// stateInputsUnchanged: its inputs (files, chart, capabilities) are
	// those of its last successful sync (inputs.go): not even rendered.
	stateInputsUnchanged releaseState = "inputs-unchanged"
	// stateUnrendered: not rendered yet.
	stateUnrendered releaseState = "unrendered"
	// stateRenderingUnchanged: rendered as at its last successful sync.
	stateRenderingUnchanged releaseState = "rendering-unchanged"
	// stateFailedUnchanged: rendered as at its last sync, which failed.
	stateFailedUnchanged releaseState = "failed-unchanged"
	// stateUncompared: rendered, not compared with the live cluster yet.
	stateUncompared releaseState = "uncompared"
	// stateUnread: its objects differ, or the cache cannot tell whether
	// its newest Helm revision is deployed and this engine's: Helm's
	// storage is to be read.
	stateUnread releaseState = "unread"
	// statePending: its newest revision is pending-install, -upgrade or
	// -rollback (a Helm action that did not end), not known to be held.
	statePending releaseState = "pending"
	// stateLocked: its newest revision is pending and a live mgo (or
	// helm) may still hold it.
	stateLocked releaseState = "locked"
	// stateAbsent: Helm has no revision of it.
	stateAbsent releaseState = "absent"
	// stateInSync: every object as the repo renders it, and the newest
	// revision deployed.
	stateInSync releaseState = "in-sync"
	// stateOutOfSync: some object differs; the newest revision is
	// deployed.
	stateOutOfSync releaseState = "out-of-sync"
	// stateHistoryUnread: the newest revision is not deployed (failed,
	// superseded, ...), and whether an earlier one was is not read yet.
	stateHistoryUnread releaseState = "history-unread"
	// stateFailed: the newest revision is not deployed, an earlier one
	// was (in a dry run: Helm's history is not read).
	stateFailed releaseState = "failed"
	// stateNeverDeployed: no revision was ever deployed (failed
	// installs).
	stateNeverDeployed releaseState = "never-deployed"
)

// revisionStatus is what a sync knows of the newest Helm revision of a
// release.
type revisionStatus string

const (
	revisionNone     revisionStatus = "none"     // Helm has no revision
	revisionDeployed revisionStatus = "deployed" // the newest is deployed
	revisionPending  revisionStatus = "pending"  // pending, not known to be held
	revisionHeld     revisionStatus = "held"     // pending, a live mgo may hold it
	revisionOther    revisionStatus = "other"    // failed, superseded, uninstalled, ...
)

// statusOf is the status of a newest revision (nil: none).
func statusOf(last *releasev1.Release) revisionStatus {
	switch {
	case last == nil:
		return revisionNone
	case last.Info == nil:
		return revisionOther
	case last.Info.Status == helmcommon.StatusDeployed:
		return revisionDeployed
	case last.Info.Status.IsPending():
		return revisionPending
	}
	return revisionOther
}

// releaseFacts are what a release sync found out about a release so far.
type releaseFacts struct {
	Valid  bool // its files have no errors
	Full   bool // Options.Full
	DryRun bool // Options.DryRun
	// Synced: the engine remembers a successful sync of the release.
	Synced bool
	// SameInputs: its inputs are known and those of that sync.
	SameInputs bool

	Rendered bool
	// SameRendering: rendered as at the last successful sync.
	SameRendering bool
	// FailedRendering: rendered as at the last failed sync.
	FailedRendering bool

	Compared bool
	Changed  bool // some object differs from the live cluster
	// CachedInSync: no object differs, and the cache holds the newest
	// revision, deployed and this engine's (no read of Helm's storage).
	CachedInSync bool

	Read bool // Helm's newest revision was read
	Last revisionStatus
	// HistoryRead: Helm's history was asked whether a revision was ever
	// deployed (DeployedBefore).
	HistoryRead    bool
	DeployedBefore bool
}

// determineState is the state of a release given what is known of it.
func determineState(f releaseFacts) releaseState {
	switch {
	case !f.Valid:
		return stateInvalid
	case f.Synced && f.SameInputs && !f.Full:
		return stateInputsUnchanged
	case !f.Rendered:
		return stateUnrendered
	case f.Synced && f.SameRendering && !f.Full:
		return stateRenderingUnchanged
	case f.FailedRendering && !f.Full && !f.DryRun:
		// Not tried (and waited for) again on every sync of its cluster:
		// only when its rendering changes or on a full sync.
		return stateFailedUnchanged
	case !f.Compared:
		return stateUncompared
	case f.CachedInSync:
		return stateInSync
	case !f.Read:
		return stateUnread
	case f.Last == revisionHeld:
		return stateLocked
	case f.Last == revisionPending:
		return statePending
	case f.Last == revisionNone:
		return stateAbsent
	case f.Last == revisionDeployed && f.Changed:
		return stateOutOfSync
	case f.Last == revisionDeployed:
		return stateInSync
	case f.DryRun:
		return stateFailed
	case !f.HistoryRead:
		return stateHistoryUnread
	case f.DeployedBefore:
		return stateFailed
	}
	return stateNeverDeployed
}

// releaseAction is what a release sync does next.
type releaseAction string

const (
	// Steps that find out more: the state is determined again after.
	actRender      releaseAction = "render"       // load the chart, render it
	actCompare     releaseAction = "compare"      // compare with the live cluster
	actRead        releaseAction = "read"         // read Helm's newest revision
	actReadHistory releaseAction = "read-history" // ask Helm's history for a deployed revision
	actRecover     releaseAction = "recover"      // mark a pending revision no live mgo holds failed (pending.go)
	// Actions that end the release's sync.
	actFail          releaseAction = "fail"           // Failed, the state's error
	actSkip          releaseAction = "skip"           // UpToDate
	actRepeatFailure releaseAction = "repeat-failure" // the last failed sync's result
	actLeaveAlone    releaseAction = "leave-alone"    // Unchanged (unchanged.go)
	actReport        releaseAction = "report"         // WouldChange (a dry run)
	actInstall       releaseAction = "install"        // install.go
	actUpgrade       releaseAction = "upgrade"        // upgrade.go
)

// action is what a sync does with a release in state s.
func (s releaseState) action(dryRun bool) releaseAction {
	switch s {
	case stateInvalid:
		return actFail
	case stateInputsUnchanged, stateRenderingUnchanged:
		return actSkip
	case stateFailedUnchanged:
		return actRepeatFailure
	case stateUnrendered:
		return actRender
	case stateUncompared:
		return actCompare
	case stateUnread:
		return actRead
	case stateHistoryUnread:
		return actReadHistory
	case stateInSync:
		return actLeaveAlone
	}
	// The states that call for a Helm action: a dry run only says so.
	if dryRun {
		return actReport
	}
	switch s {
	case stateLocked:
		return actFail
	case statePending:
		return actRecover
	case stateAbsent, stateNeverDeployed:
		return actInstall
	}
	return actUpgrade // stateOutOfSync, stateFailed
}
