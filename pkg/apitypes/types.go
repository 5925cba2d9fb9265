// Package apitypes is the wire format of the mgo serve API (/api/v1 and
// the form endpoints): every request and answer body, with explicit JSON
// names and typed values. internal/api converts the service's records to
// these types, internal/dashboard builds the dashboard's views in them;
// pkg/client decodes them; internal/api/openapi.yaml describes them and
// tests hold every answer to it.
package apitypes

import "time"

// DeploymentStatus is where a deployment is.
type DeploymentStatus string

const (
	StatusQueued    DeploymentStatus = "queued"    // validated, waiting for the git worker
	StatusHeld      DeploymentStatus = "held"      // waits behind a promotion candidate soaking in its cluster; nothing committed
	StatusPushed    DeploymentStatus = "pushed"    // committed and pushed, waiting for its sync
	StatusReverting DeploymentStatus = "reverting" // its rollout failed; mgo reverts its commit, then it is failed
	StatusSucceeded DeploymentStatus = "succeeded" // synced and rolled out (or nothing to do)
	StatusFailed    DeploymentStatus = "failed"    // see Stage and Error
)

// Terminal reports whether a deployment in this status will not change
// any more.
func (s DeploymentStatus) Terminal() bool { return s == StatusSucceeded || s == StatusFailed }

// DeploymentKind says what a deployment does.
type DeploymentKind string

const (
	KindDeploy   DeploymentKind = "deploy"   // set an image
	KindRollback DeploymentKind = "rollback" // revert an earlier deployment's commit
	KindRevert   DeploymentKind = "revert"   // mgo reverting a deploy whose rollout failed (onFailure: revert)
	KindPromote  DeploymentKind = "promote"  // a promotion's deploy of a candidate's image to the next cluster
)

// DeploymentStage names the step a deployment failed in.
type DeploymentStage string

const (
	StageValidate DeploymentStage = "validate"
	StageCommit   DeploymentStage = "commit"
	StagePush     DeploymentStage = "push"
	StageSync     DeploymentStage = "sync"
	StageRollout  DeploymentStage = "rollout"
	// StageSuperseded: a held deploy replaced by a newer held one.
	StageSuperseded DeploymentStage = "superseded"
)

// ReleaseAction is what a sync did to a release.
type ReleaseAction string

const (
	ReleaseInstalled   ReleaseAction = "installed"
	ReleaseUpgraded    ReleaseAction = "upgraded"
	ReleaseUnchanged   ReleaseAction = "unchanged"   // live state matched: no new revision
	ReleaseUpToDate    ReleaseAction = "up-to-date"  // rendered output unchanged since the last sync
	ReleaseUninstalled ReleaseAction = "uninstalled" // its values file was removed
	ReleaseLeftAlone   ReleaseAction = "left-alone"  // installed by an older mgo, not defined here: kept
	ReleaseWouldChange ReleaseAction = "would-change"
	ReleaseRestarted   ReleaseAction = "restarted" // its workloads were restarted (restart: true)
	ReleaseFailed      ReleaseAction = "failed"
)

// ReleaseStage names the step of a release sync that failed.
type ReleaseStage string

const (
	ReleaseStageValidate ReleaseStage = "validate"
	ReleaseStageChart    ReleaseStage = "chart"
	ReleaseStageRender   ReleaseStage = "render"
	ReleaseStageDiff     ReleaseStage = "diff"
	ReleaseStageApply    ReleaseStage = "apply"
	ReleaseStageWait     ReleaseStage = "wait"
	// ReleaseStageDependency: not synced, as a release it depends on
	// (dependsOn) failed.
	ReleaseStageDependency ReleaseStage = "dependency"
)

// ObjectAction is what a sync, a diff or a restart did (or would do) to
// one object. Empty when the object was only checked.
type ObjectAction string

const (
	ObjectCreated    ObjectAction = "created"
	ObjectConfigured ObjectAction = "configured"
	ObjectUnchanged  ObjectAction = "unchanged"
	ObjectDeleted    ObjectAction = "deleted"
	ObjectSkipped    ObjectAction = "skipped"
	ObjectUnknown    ObjectAction = "unknown"
	ObjectRecreate   ObjectAction = "recreate" // an immutable field changed: deleted and created again
	ObjectRestarted  ObjectAction = "restarted"
)

// ObjectStatus is the kstatus of an object after the rollout wait. Empty
// when it was not checked.
type ObjectStatus string

const (
	ObjectInProgress    ObjectStatus = "InProgress"
	ObjectFailed        ObjectStatus = "Failed"
	ObjectCurrent       ObjectStatus = "Current"
	ObjectTerminating   ObjectStatus = "Terminating"
	ObjectNotFound      ObjectStatus = "NotFound"
	ObjectStatusUnknown ObjectStatus = "Unknown"
)

// DeployRequest is the body of POST /api/v1/deployments. Tag, Digest or
// both.
type DeployRequest struct {
	Cluster     string `json:"cluster"`
	TriggerRepo string `json:"triggerRepo"`
	ImageRepo   string `json:"imageRepo"`
	Tag         string `json:"tag,omitempty"`
	// ImageTag is accepted as another name of Tag.
	ImageTag string `json:"imageTag,omitempty"`
	Digest   string `json:"digest,omitempty"`
	// Author is the commit's author: "Name <email>", a name or an email.
	Author string `json:"author,omitempty"`
	// IdempotencyKey makes a retry of the same client return the first
	// request's deployment.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// Wait answers when the deployment has ended (else 202 at once).
	Wait bool `json:"wait,omitempty"`
	// Restart asks for a rolling restart when the image is already set.
	Restart bool `json:"restart,omitempty"`
	// SourceCommit (or CommitSHA) is the trigger repo's commit the image
	// was built from; notifications report on it.
	SourceCommit string `json:"sourceCommit,omitempty"`
	CommitSHA    string `json:"commitSha,omitempty"`
}

// RollbackRequest is the optional body of POST
// /api/v1/deployments/{id}/rollback.
type RollbackRequest struct {
	Author string `json:"author,omitempty"`
	Wait   bool   `json:"wait,omitempty"`
}

// Request is what a deployment was asked to do, as recorded.
type Request struct {
	Cluster        string    `json:"cluster"`
	TriggerRepo    string    `json:"triggerRepo"`
	ImageRepo      string    `json:"imageRepo"`
	Tag            string    `json:"tag,omitempty"`
	Digest         string    `json:"digest,omitempty"`
	Author         string    `json:"author,omitempty"`
	Client         string    `json:"client,omitempty"` // the authenticated caller
	IdempotencyKey string    `json:"idempotencyKey,omitempty"`
	Restart        bool      `json:"restart,omitempty"`
	SourceCommit   string    `json:"sourceCommit,omitempty"`
	Identity       *Identity `json:"identity,omitempty"` // callers with an OIDC ID token
	// FreezeOverride is set when the request went through a deploy freeze
	// with the freezeOverride permission: "<window> by <client>".
	FreezeOverride string `json:"freezeOverride,omitempty"`
}

// Ref is the requested image reference: repo:tag, repo@digest or both.
func (r Request) Ref() string {
	s := r.ImageRepo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Identity is who an OIDC ID token said the caller was.
type Identity struct {
	Issuer      string `json:"issuer"`
	Subject     string `json:"subject"`
	Project     string `json:"project,omitempty"`
	Ref         string `json:"ref,omitempty"`
	Environment string `json:"environment,omitempty"`
	RunURL      string `json:"runURL,omitempty"`
	Rules       string `json:"rules,omitempty"`
}

// Times records when each stage was reached; absent when not (yet).
type Times struct {
	Queued    time.Time `json:"queued"`
	Committed time.Time `json:"committed,omitzero"`
	Pushed    time.Time `json:"pushed,omitzero"`
	Synced    time.Time `json:"synced,omitzero"`
	RolledOut time.Time `json:"rolledOut,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
}

// Seconds are the stage times relative to the request.
type Seconds struct {
	Committed float64 `json:"committed,omitempty"`
	Pushed    float64 `json:"pushed,omitempty"`
	Synced    float64 `json:"synced,omitempty"`
	RolledOut float64 `json:"rolledOut,omitempty"`
	Total     float64 `json:"total,omitempty"`
}

// Object is one object of a release or of the raw manifests.
type Object struct {
	Subject string       `json:"subject"` // Kind/namespace/name
	Action  ObjectAction `json:"action,omitempty"`
	Status  ObjectStatus `json:"status,omitempty"`
	Message string       `json:"message,omitempty"`
}

// ReleaseOutcome is what the sync did to one release a deployment touched.
type ReleaseOutcome struct {
	File      string        `json:"file"`
	Name      string        `json:"name"`
	Namespace string        `json:"namespace"`
	Action    ReleaseAction `json:"action"`
	Revision  int           `json:"revision,omitempty"`
	Stage     ReleaseStage  `json:"stage,omitempty"`
	Error     string        `json:"error,omitempty"`
	Objects   []Object      `json:"objects,omitempty"`
	// After are the releases it depends on (dependsOn), synced before it.
	After []string `json:"after,omitempty"`
}

// Deployment is the record of one deploy or rollback request.
type Deployment struct {
	ID         string           `json:"id"`
	Kind       DeploymentKind   `json:"kind"`
	Request    Request          `json:"request"`
	RollbackOf string           `json:"rollbackOf,omitempty"`
	Status     DeploymentStatus `json:"status"`
	// Changed reports whether a commit was pushed.
	Changed bool `json:"changed"`
	// Commit is the pushed commit, or the head found when nothing changed.
	Commit   string           `json:"commit,omitempty"`
	Files    []string         `json:"files,omitempty"`
	Releases []ReleaseOutcome `json:"releases,omitempty"`
	Stage    DeploymentStage  `json:"stage,omitempty"` // set when failed
	Error    string           `json:"error,omitempty"`
	// Synced reports whether the cluster was synced for the deployment
	// (false for a cluster that syncs manually); absent until it ended.
	Synced  *bool  `json:"synced,omitempty"`
	Message string `json:"message,omitempty"`
	// Reverted is set on a failed deploy whose commit mgo reverted after
	// its rollout failed (onFailure: revert): RevertedBy is the revert
	// deployment, RevertCommit its commit. RevertError says why a revert
	// failed. RevertReason (also on the revert) is why it was reverted.
	Reverted     bool   `json:"reverted,omitempty"`
	RevertedBy   string `json:"revertedBy,omitempty"`
	RevertCommit string `json:"revertCommit,omitempty"`
	RevertReason string `json:"revertReason,omitempty"`
	RevertError  string `json:"revertError,omitempty"`
	// HeldBy is the promotion candidate a held deploy waits behind.
	HeldBy string `json:"heldBy,omitempty"`
	// Promoted says where a promote deploy's image comes from.
	Promoted *Promoted `json:"promoted,omitempty"`
	Times    Times     `json:"times"`
	Seconds  Seconds   `json:"seconds"`
}

// DeploymentList is the answer of GET /api/v1/deployments, newest first.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
}

// Error is every error answer.
type Error struct {
	Error string `json:"error"`
	// Field names the bad input field of a 400.
	Field string `json:"field,omitempty"`
	// Deployment is the deployment that failed (deploy answers).
	Deployment *Deployment `json:"deployment,omitempty"`
	// Freeze is the freeze that refused a deploy or rollback (423):
	// its window and when it ends.
	Freeze *FreezePeriod `json:"freeze,omitempty"`
}

// Cluster is what mgo knows of a served cluster.
type Cluster struct {
	Name     string    `json:"name"`
	Head     string    `json:"head,omitempty"` // commit of the last sync
	LastSync time.Time `json:"lastSync,omitzero"`
	Failed   bool      `json:"failed"`
	Error    string    `json:"error,omitempty"`
	Releases int       `json:"releases"`
	// Drift is the number of objects that differed at the last drift
	// check, and DriftChecked when that was.
	Drift        int       `json:"drift"`
	DriftChecked time.Time `json:"driftChecked,omitzero"`
	// Manual: the cluster syncs only when asked; Pending is the head an
	// automatic sync skipped.
	Manual  bool   `json:"manual,omitempty"`
	Pending string `json:"pending,omitempty"`
	// Freeze is the cluster's deploy freeze now and next; absent when its
	// mygitops.yaml settings have no freezes.
	Freeze *Freeze `json:"freeze,omitempty"`
}

// FreezeKind is a freeze window's kind.
type FreezeKind string

const (
	FreezeDeny  FreezeKind = "deny"  // deploys are refused while it is active
	FreezeAllow FreezeKind = "allow" // deploys are refused while no allow window is active
)

// FreezeWindow is one window of a cluster's freezes in mygitops.yaml.
type FreezeWindow struct {
	Name     string     `json:"name,omitempty"`
	Kind     FreezeKind `json:"kind"`
	Reason   string     `json:"reason,omitempty"`
	Schedule string     `json:"schedule"` // cron, in TimeZone
	Duration string     `json:"duration"` // Go duration: 60h0m0s
	TimeZone string     `json:"timeZone"`
	// TriggerRepos limits the window to deploys of these trigger repos
	// (patterns); absent: every deploy and pushed change.
	TriggerRepos []string `json:"triggerRepos,omitempty"`
}

// FreezePeriod is a time during which deploys to a cluster are refused.
type FreezePeriod struct {
	// Window is the deny window that freezes; absent when the cluster is
	// frozen because none of its allow windows is active.
	Window *FreezeWindow `json:"window,omitempty"`
	// Reason says what freezes, in words.
	Reason string `json:"reason"`
	// From is when the period began or begins (absent for a freeze
	// outside the allow windows that is on now); Until when it ends
	// (absent: not within a year).
	From  time.Time `json:"from,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// Freeze is a cluster's deploy freeze: the current and the next period,
// for the cluster as a whole (windows limited to trigger repos are listed
// in Windows but not counted here).
type Freeze struct {
	Active *FreezePeriod `json:"active,omitempty"`
	Next   *FreezePeriod `json:"next,omitempty"`
	// Held: changes pushed to git wait for the freeze to end
	// (syncDuringFreeze: false).
	Held bool `json:"held,omitempty"`
	// SyncDuringFreeze is the cluster's setting: pushed changes are synced
	// during a freeze (true) or held until it ends (false).
	SyncDuringFreeze bool `json:"syncDuringFreeze"`
	// Invalid: a window has errors (mgo validate names them); deploys are
	// refused until it is fixed.
	Invalid bool           `json:"invalid,omitempty"`
	Windows []FreezeWindow `json:"windows"`
}

// ClusterList is the answer of GET /api/v1/clusters.
type ClusterList struct {
	Clusters []Cluster `json:"clusters"`
}

// ReleaseStatus is one release as the last sync left it.
type ReleaseStatus struct {
	File         string        `json:"file"`
	Name         string        `json:"name"`
	Namespace    string        `json:"namespace"`
	Chart        string        `json:"chart"`
	ChartVersion string        `json:"chartVersion,omitempty"`
	LastAction   ReleaseAction `json:"lastAction"`
	InSync       bool          `json:"inSync"`
	Revision     int           `json:"revision,omitempty"`
	Error        string        `json:"error,omitempty"`
	Objects      []Object      `json:"objects,omitempty"`
}

// Releases is the answer of GET /api/v1/clusters/{cluster}/releases.
type Releases struct {
	Cluster  string          `json:"cluster"`
	Head     string          `json:"head,omitempty"`
	LastSync time.Time       `json:"lastSync,omitzero"`
	Releases []ReleaseStatus `json:"releases"`
}

// ReleaseResult is what one sync did to one release.
type ReleaseResult struct {
	File         string        `json:"file"`
	Name         string        `json:"name"`
	Namespace    string        `json:"namespace"`
	Chart        string        `json:"chart,omitempty"`
	ChartVersion string        `json:"chartVersion,omitempty"`
	Action       ReleaseAction `json:"action"`
	Revision     int           `json:"revision,omitempty"`
	Objects      []Object      `json:"objects,omitempty"`
	Stage        ReleaseStage  `json:"stage,omitempty"`
	Error        string        `json:"error,omitempty"`
	// Recovered says how a revision left pending was recovered first.
	Recovered string `json:"recovered,omitempty"`
	// Note explains an action that is neither a change nor a failure.
	Note string `json:"note,omitempty"`
	// After are the releases it depends on (dependsOn), synced before it.
	After   []string `json:"after,omitempty"`
	Seconds float64  `json:"seconds"`
}

// SyncResult is the answer of POST /api/v1/clusters/{cluster}/sync.
type SyncResult struct {
	Cluster  string          `json:"cluster"`
	Releases []ReleaseResult `json:"releases"`
	Raw      []Object        `json:"raw,omitempty"`
	RawError string          `json:"rawError,omitempty"`
	// Requests counts the API requests of the sync by verb.
	Requests map[string]int `json:"requests,omitempty"`
	Seconds  float64        `json:"seconds"`
}

// ObjectDiff is how one object differs between the repo and the cluster.
type ObjectDiff struct {
	Subject string       `json:"subject"`
	Action  ObjectAction `json:"action"`
	// Diff is a unified diff, live (---) to wanted (+++), Secret values
	// masked.
	Diff string `json:"diff,omitempty"`
}

// ReleaseDiff is the diff of one release.
type ReleaseDiff struct {
	File      string       `json:"file"`
	Name      string       `json:"name"`
	Namespace string       `json:"namespace"`
	Objects   []ObjectDiff `json:"objects,omitempty"`
	Stage     ReleaseStage `json:"stage,omitempty"` // set when the diff failed
	Error     string       `json:"error,omitempty"`
	// After are the releases it depends on (dependsOn), synced before it.
	After []string `json:"after,omitempty"`
}

// Diff is the diff of a cluster against the repo.
type Diff struct {
	Releases []ReleaseDiff `json:"releases"`
	Raw      []ObjectDiff  `json:"raw,omitempty"`
	RawError string        `json:"rawError,omitempty"`
}

// ClusterDiff is the answer of GET /api/v1/clusters/{cluster}/diff.
type ClusterDiff struct {
	Cluster     string `json:"cluster"`
	Differences bool   `json:"differences"`
	Diff        Diff   `json:"diff"`
}

// Status is the answer of /healthz, /readyz and the webhooks.
type Status struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Event  string `json:"event,omitempty"`
}

// Health is a release's health on the dashboard: from its Helm status,
// the kstatus of its objects and its last sync.
type Health string

const (
	HealthHealthy     Health = "healthy"
	HealthProgressing Health = "progressing"
	HealthFailed      Health = "failed"
)

// Repo says where the gitops repo is, for links to its commits.
type Repo struct {
	URL string `json:"url,omitempty"`
	// Forge is github or gitlab when the host is known to be one;
	// CommitURL is then a template with {commit} in it.
	Forge     string `json:"forge,omitempty"`
	CommitURL string `json:"commitURL,omitempty"`
}

// ReleaseCounts are the releases of a cluster by health.
type ReleaseCounts struct {
	Total       int `json:"total"`
	Healthy     int `json:"healthy"`
	Progressing int `json:"progressing"`
	Failed      int `json:"failed"`
}

// LastSync is a cluster's last sync: its start commit, end time and
// result.
type LastSync struct {
	Commit string    `json:"commit,omitempty"`
	Time   time.Time `json:"time,omitzero"`
	Failed bool      `json:"failed"`
	Error  string    `json:"error,omitempty"`
}

// ClusterSummary is one cluster of GET /api/v1/overview.
type ClusterSummary struct {
	Name         string        `json:"name"`
	LastSync     LastSync      `json:"lastSync"`
	Manual       bool          `json:"manual,omitempty"`
	Pending      string        `json:"pending,omitempty"`
	Drift        int           `json:"drift"`
	DriftChecked time.Time     `json:"driftChecked,omitzero"`
	Releases     ReleaseCounts `json:"releases"`
	// LiveError says why the releases' live state could not be read.
	LiveError string `json:"liveError,omitempty"`
	// Deploys24h counts deployments (and rollbacks) asked for in the last
	// 24 hours; FailedDeploys24h those of them that failed.
	Deploys24h       int `json:"deploys24h"`
	FailedDeploys24h int `json:"failedDeploys24h"`
}

// Overview is the answer of GET /api/v1/overview: every cluster the token
// may see.
type Overview struct {
	Clusters []ClusterSummary `json:"clusters"`
	Repo     Repo             `json:"repo"`
}

// LiveObject is one object of a release's installed revision with its
// kstatus.
type LiveObject struct {
	Subject string       `json:"subject"`
	Status  ObjectStatus `json:"status"`
	Message string       `json:"message,omitempty"`
}

// Change is the commit that last changed a release's values file.
type Change struct {
	Commit  string    `json:"commit"`
	Author  string    `json:"author"`
	Email   string    `json:"email,omitempty"`
	Time    time.Time `json:"time"`
	Summary string    `json:"summary,omitempty"`
}

// LiveRelease is one release of GET /api/v1/clusters/{cluster}/live.
type LiveRelease struct {
	File      string `json:"file"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Chart and Version are what the repo asks for; ChartVersion is the
	// version the installed revision runs.
	Chart        string `json:"chart"`
	Version      string `json:"version,omitempty"`
	ChartVersion string `json:"chartVersion,omitempty"`
	AppVersion   string `json:"appVersion,omitempty"`
	// Images are the image references of the values file's header, by
	// trigger repo.
	Images     map[string]string `json:"images"`
	Installed  bool              `json:"installed"`
	Revision   int               `json:"revision,omitempty"`
	HelmStatus string            `json:"helmStatus,omitempty"`
	Updated    time.Time         `json:"updated,omitzero"`
	Health     Health            `json:"health"`
	Reason     string            `json:"reason,omitempty"`
	// DependsOn are the releases it is synced after (its header's
	// dependsOn, namespace/name).
	DependsOn []string `json:"dependsOn,omitempty"`
	// LastAction and Error are what the cluster's last sync did to it.
	LastAction ReleaseAction `json:"lastAction,omitempty"`
	Error      string        `json:"error,omitempty"`
	Objects    []LiveObject  `json:"objects"`
	LastChange *Change       `json:"lastChange,omitempty"`
}

// LiveCluster is the answer of GET /api/v1/clusters/{cluster}/live: the
// releases of the repo at Head with what the cluster runs, as read at
// Read.
type LiveCluster struct {
	Cluster  string        `json:"cluster"`
	Head     string        `json:"head"`
	Read     time.Time     `json:"read"`
	Repo     Repo          `json:"repo"`
	Releases []LiveRelease `json:"releases"`
	Counts   ReleaseCounts `json:"counts"`
}

// Promoted is where a promote deploy's image comes from: the candidate,
// its path, the previous cluster and commit, the gates it passed and who
// approved it (the commit's trailers).
type Promoted struct {
	Candidate  string `json:"candidate"`
	Path       string `json:"path"`
	From       string `json:"from"`
	FromCommit string `json:"fromCommit"`
	Gates      string `json:"gates"`
	ApprovedBy string `json:"approvedBy,omitempty"`
}
