package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
)

// Status is where a deployment is.
type Status string

const (
	Queued    Status = "queued"    // validated, waiting for the git worker
	Pushed    Status = "pushed"    // committed and pushed (or already there), waiting for the sync
	Reverting Status = "reverting" // its rollout failed; mgo reverts its commit (onFailure: revert), then it is failed
	Succeeded Status = "succeeded" // synced and rolled out (or nothing to do)
	Failed    Status = "failed"    // see Error and Stage
)

// Terminal reports whether the deployment will not change any more.
func (s Status) Terminal() bool { return s == Succeeded || s == Failed }

// Kind says what a deployment does.
type Kind string

const (
	KindDeploy   Kind = "deploy"   // set an image
	KindRollback Kind = "rollback" // revert an earlier deployment's commit
	KindRevert   Kind = "revert"   // mgo reverting a deploy whose rollout failed (onFailure: revert)
)

// Stage names the step a deployment failed in.
type Stage string

const (
	StageValidate Stage = "validate"
	StageCommit   Stage = "commit"
	StagePush     Stage = "push"
	StageSync     Stage = "sync"
	StageRollout  Stage = "rollout"
)

// Times records when each stage was reached; zero when not (yet).
type Times struct {
	Queued    time.Time `json:"queued"`
	Committed time.Time `json:"committed,omitzero"`
	Pushed    time.Time `json:"pushed,omitzero"`
	Synced    time.Time `json:"synced,omitzero"`
	RolledOut time.Time `json:"rolledOut,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
}

// Durations are the stage times relative to the request, in seconds.
type Durations struct {
	Committed float64 `json:"committed,omitempty"`
	Pushed    float64 `json:"pushed,omitempty"`
	Synced    float64 `json:"synced,omitempty"`
	RolledOut float64 `json:"rolledOut,omitempty"`
	Total     float64 `json:"total,omitempty"`
}

// Durations returns the stage times as seconds since Queued.
func (t Times) Durations() Durations {
	since := func(x time.Time) float64 {
		if x.IsZero() {
			return 0
		}
		return x.Sub(t.Queued).Seconds()
	}
	return Durations{Committed: since(t.Committed), Pushed: since(t.Pushed), Synced: since(t.Synced),
		RolledOut: since(t.RolledOut), Total: since(t.Finished)}
}

// ReleaseOutcome is what the sync did to one release the deployment touched.
type ReleaseOutcome struct {
	File      string                   `json:"file"`
	Name      string                   `json:"name"`
	Namespace string                   `json:"namespace"`
	Action    reconcile.Action         `json:"action"`
	Revision  int                      `json:"revision,omitempty"`
	Stage     reconcile.Stage          `json:"stage,omitempty"`
	Error     string                   `json:"error,omitempty"`
	Objects   []reconcile.ObjectResult `json:"objects,omitempty"`
	// After are the releases it depends on (dependsOn), synced before it.
	After []string `json:"after,omitempty"`
}

// Outcome is the deployment's view of a release's sync result.
func Outcome(rr reconcile.ReleaseResult) ReleaseOutcome {
	return ReleaseOutcome{File: rr.File, Name: rr.Name, Namespace: rr.Namespace,
		Action: rr.Action, Revision: rr.Revision, Stage: rr.Stage, Error: rr.Error, Objects: rr.Objects, After: rr.After}
}

// Deployment is the record of one request: what was asked, what happened.
type Deployment struct {
	ID      string  `json:"id"`
	Kind    Kind    `json:"kind"`
	Request Request `json:"request"`
	// RollbackOf is the deployment a rollback reverts.
	RollbackOf string `json:"rollbackOf,omitempty"`

	Status Status `json:"status"`
	// Changed reports whether a commit was pushed; false for a request
	// whose image was already set.
	Changed bool `json:"changed"`
	// Commit is the pushed commit, or the head found when nothing changed.
	Commit string `json:"commit,omitempty"`
	// Files are the values files the edit changed.
	Files []string `json:"files,omitempty"`
	// Releases are the sync results of the releases of Files (of every
	// release listing the trigger repo when nothing changed).
	Releases []ReleaseOutcome `json:"releases,omitempty"`
	Stage    Stage            `json:"stage,omitempty"` // set when Failed
	Error    string           `json:"error,omitempty"`
	// Synced reports whether the cluster was synced for the deployment;
	// false when it syncs manually (Message says so). Unset until it
	// finished, and in records of older versions.
	Synced  *bool  `json:"synced,omitempty"`
	Message string `json:"message,omitempty"`
	// Reverted reports that mgo reverted the commit of this deploy after
	// its rollout failed (onFailure: revert) and synced its releases back:
	// RevertedBy is that revert deployment and RevertCommit its commit.
	// RevertError says why a revert that was tried failed (RevertCommit is
	// set when its commit was pushed but its sync failed).
	Reverted     bool   `json:"reverted,omitempty"`
	RevertedBy   string `json:"revertedBy,omitempty"`
	RevertCommit string `json:"revertCommit,omitempty"`
	// RevertReason is why a deploy was reverted (set on it and on its
	// revert): the failed stage and its error's first line.
	RevertReason string `json:"revertReason,omitempty"`
	RevertError  string `json:"revertError,omitempty"`
	// Promotion is the state of a candidate (kind promotion).
	Promotion *Promotion `json:"promotion,omitempty"`
	// HeldBy, on a held deploy, is the candidate it waits behind.
	HeldBy  string    `json:"heldBy,omitempty"`
	Times   Times     `json:"times"`
	Seconds Durations `json:"seconds"`
}

// newID returns a time-ordered id: 20261125T174501Z-4f2a9c1e.
func newID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format(IDTimeLayout) + "-" + hex.EncodeToString(b[:])
}

// IDTimeLayout is the time at the start of a deployment id (UTC), so ids
// sort by the time they were queued.
const IDTimeLayout = "20060102T150405Z"
