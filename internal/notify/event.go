package notify

import (
	"time"

	"github.com/mygitops/mgo/internal/repo"
)

// Event types: those of internal/repo, which mygitops.yaml routes select
// (repo.EventTypes lists them).
const (
	// DeployStarted: a deploy was accepted and queued. Forges routed the
	// deploy's outcome show it as pending; other receivers hear of it only
	// when a route names it.
	DeployStarted     = repo.EventDeployStarted
	DeploySucceeded   = repo.EventDeploySucceeded
	DeployFailed      = repo.EventDeployFailed
	RollbackSucceeded = repo.EventRollbackSucceeded
	RollbackFailed    = repo.EventRollbackFailed
	SyncSucceeded     = repo.EventSyncSucceeded // a sync of a change pushed to the gitops repo
	SyncFailed        = repo.EventSyncFailed
	DriftDetected     = repo.EventDriftDetected
	DriftRepaired     = repo.EventDriftRepaired
	// Promotions between clusters.
	PromotionStarted   = repo.EventPromotionStarted
	PromotionApproval  = repo.EventPromotionApproval
	PromotionSucceeded = repo.EventPromotionSucceeded
	PromotionFailed    = repo.EventPromotionFailed
)

// Event is what happened. It is the JSON body of the generic webhook
// (docs/notifications.md), so its field names are a wire format.
type Event struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	// Success is false for *.failed, drift.detected and deploy.started
	// (not yet succeeded).
	Success bool `json:"success"`
	// Summary is one line for people: "deployed registry.acme.io/app:1.4.2 to prod/web".
	Summary string `json:"summary"`
	// DeploymentID is the deploy or rollback; empty for syncs and drift.
	DeploymentID string `json:"deploymentId,omitempty"`
	// RollbackOf is the deployment a rollback reverts.
	RollbackOf  string `json:"rollbackOf,omitempty"`
	TriggerRepo string `json:"triggerRepo,omitempty"`
	Image       string `json:"image,omitempty"`
	// Commit is the gitops repo commit (pushed, or the synced head).
	Commit string `json:"commit,omitempty"`
	// SourceCommit is the commit of the trigger repo the image was built
	// from, when the request named it; forge receivers report on it.
	SourceCommit string `json:"sourceCommit,omitempty"`
	// Project is the forge project of the trigger repo (acme/app), from the
	// caller's OIDC identity or the trigger repo's path.
	Project   string    `json:"project,omitempty"`
	Author    string    `json:"author,omitempty"`
	Requester string    `json:"requester,omitempty"`
	Releases  []Release `json:"releases,omitempty"`
	// Stage and Error say where and why it failed.
	Stage string `json:"stage,omitempty"`
	Error string `json:"error,omitempty"`
	// Reverted is set on a failed deploy whose commit mgo reverted
	// (onFailure: revert), RevertCommit being the revert; RevertError
	// says why a revert failed. RevertReason is why it was reverted (also
	// on the revert's own event).
	Reverted     bool   `json:"reverted,omitempty"`
	RevertCommit string `json:"revertCommit,omitempty"`
	RevertReason string `json:"revertReason,omitempty"`
	RevertError  string `json:"revertError,omitempty"`
	// Seconds are the stage times since the request (committed, pushed,
	// synced, rolledOut, total).
	Seconds map[string]float64 `json:"seconds,omitempty"`
	// Objects is the number of objects that differed (drift).
	Objects int `json:"objects,omitempty"`
	// Promotion is the candidate of a promotion event, From the cluster it
	// comes from (Cluster is the one it goes to), Gate the gate that
	// failed, MergeRequest the link of the merge request to approve.
	Promotion    string `json:"promotion,omitempty"`
	From         string `json:"from,omitempty"`
	Gate         string `json:"gate,omitempty"`
	MergeRequest string `json:"mergeRequest,omitempty"`
	// URL links to the deployment in mgo's API (needs --external-url).
	URL string `json:"url,omitempty"`
}

// Release is what happened to one Helm release.
type Release struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Action    string `json:"action,omitempty"`
	Revision  int    `json:"revision,omitempty"`
	Stage     string `json:"stage,omitempty"`
	Error     string `json:"error,omitempty"`
}

// forge reports whether the event is one a forge receiver reports on the
// source commit.
func (e Event) forge() bool {
	switch e.Type {
	case DeployStarted, DeploySucceeded, DeployFailed, RollbackSucceeded, RollbackFailed:
		return e.SourceCommit != "" && e.Project != ""
	}
	return false
}
