package deploy

import "time"

// A promotion moves the image a deploy set in one cluster of a promotion
// path (mygitops.yaml promotions) to the next cluster, once the gates of
// that next stage passed on the cluster before it. Its record is a
// Deployment of kind promotion in the same Store as the deploys, so it
// survives restarts and is shared by replicas like them; internal/promote
// runs it. The deploy it makes in the next cluster is an ordinary
// deployment of kind promote, created under an idempotency key of the
// candidate, so however many replicas try, there is one.

// Kinds and statuses of promotions.
const (
	// KindPromotion is a candidate moving from one stage of a promotion
	// path to the next: its Promotion says where it is.
	KindPromotion Kind = "promotion"
	// KindPromote is the deploy a promotion makes in the next cluster.
	KindPromote Kind = "promote"

	// Promoting is a candidate whose gates, approval or promote deploy are
	// still under way (its Promotion.Phase says which).
	Promoting Status = "promoting"
	// Held is a deploy to a cluster where a candidate of the same trigger
	// repo soaks: it waits (nothing committed) until the candidate leaves
	// the stage, then the newest held one goes and older ones are
	// superseded.
	Held Status = "held"
)

// StageSuperseded: a held deploy that a newer held deploy of the same
// trigger repo replaced before it was started; nothing was committed.
const StageSuperseded Stage = "superseded"

// PromotionPhase is where a candidate is on its way to the next cluster.
type PromotionPhase string

const (
	PhaseSoaking   PromotionPhase = "soaking"   // healthyFor: waiting for the soak to end
	PhaseTesting   PromotionPhase = "testing"   // Helm tests running in the previous cluster
	PhaseChecking  PromotionPhase = "checking"  // HTTP and Prometheus checks
	PhaseApproval  PromotionPhase = "approval"  // waiting for an approve call or a merged merge request
	PhasePromoting PromotionPhase = "promoting" // the promote deploy runs in the next cluster
	PhasePromoted  PromotionPhase = "promoted"  // the next cluster runs the image (terminal)
	PhaseFailed    PromotionPhase = "failed"    // a gate failed or the promote deploy failed (terminal)
	PhaseRejected  PromotionPhase = "rejected"  // a caller rejected it (terminal)
)

// Gate names.
const (
	GateHealthy  = "healthyFor"
	GateTests    = "tests"
	GateChecks   = "checks"
	GateApproval = "approval"
	GateAllowed  = "allowedImages"
	GatePromote  = "promote"
)

// GateState is where one gate is.
type GateState string

const (
	GatePending GateState = "pending"
	GateRunning GateState = "running"
	GatePassed  GateState = "passed"
	GateFailed  GateState = "failed"
	GateSkipped GateState = "skipped" // promote now with gates skipped by the caller's permission
)

// GateResult is one gate of a candidate: its state and the evidence.
type GateResult struct {
	Gate  string    `json:"gate"`
	State GateState `json:"state"`
	// Detail is the evidence: which object went unhealthy, which test
	// failed, which query value, who approved.
	Detail   string    `json:"detail,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Checks are the results of each HTTP or Prometheus check (gate
	// checks), or of each Helm test (gate tests).
	Checks []CheckResult `json:"checks,omitempty"`
}

// CheckResult is one check or Helm test of a gate.
type CheckResult struct {
	Name   string    `json:"name"`
	Passed bool      `json:"passed"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Approval is who let a candidate go to the next cluster, or rejected it.
type Approval struct {
	By string `json:"by"`
	// Via is none (the stage needs no approval), api or merge-request.
	Via     string    `json:"via"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// MergeRequest is the merge request (GitLab) or pull request (GitHub) a
// stage with approval merge-request opened for a candidate.
type MergeRequest struct {
	Forge  string `json:"forge"` // gitlab or github
	URL    string `json:"url"`
	Number int    `json:"number"`
	Branch string `json:"branch"`
	// Commit is the commit on Branch that carries the change.
	Commit string `json:"commit"`
	// State is open, merged or closed, as last read.
	State string `json:"state"`
	// MergeCommit is the commit of the default branch that merged it.
	MergeCommit string `json:"mergeCommit,omitempty"`
}

// Promotion is the state of a candidate (a Deployment of kind promotion).
// Its Deployment's Request is the candidate's image as the previous stage
// runs it (trigger repo, image repository, tag and digest, source commit,
// author), with Cluster the next cluster.
type Promotion struct {
	// Path is the promotion path's name in mygitops.yaml.
	Path string `json:"path"`
	// From and To are the clusters of the previous and the next stage;
	// Stage is To's index in the path (1 for the second cluster).
	From  string `json:"from"`
	To    string `json:"to"`
	Stage int    `json:"stage"`
	// Source is the deployment that set the image in From, FromCommit its
	// gitops commit, Releases the releases it rolled out there
	// (namespace/name).
	Source     string   `json:"source"`
	FromCommit string   `json:"fromCommit"`
	Releases   []string `json:"releases,omitempty"`
	// RolledOut is when the source's rollout in From ended: the soak is
	// measured from it (or from its last restart, SoakStart).
	RolledOut time.Time `json:"rolledOut"`
	SoakStart time.Time `json:"soakStart"`
	// SoakRestarts counts the restarts of the soak after an unhealthy
	// moment (onUnhealthy: restart).
	SoakRestarts int            `json:"soakRestarts,omitempty"`
	Phase        PromotionPhase `json:"phase"`
	Gates        []GateResult   `json:"gates,omitempty"`
	Approval     *Approval      `json:"approval,omitempty"`
	MergeRequest *MergeRequest  `json:"mergeRequest,omitempty"`
	// Deployment is the promote deploy in To.
	Deployment string `json:"deployment,omitempty"`
	// Manual is set for a promote-now request: it promotes what runs in
	// From, asked by Request.Client.
	Manual bool `json:"manual,omitempty"`
}

// Approver is the caller of an approve, reject or promote-now: recorded
// in the candidate, the audit log and the Approved-By trailer.
type Approver struct {
	Client   string
	Identity Identity
	// SkipGates is the caller's skipGates permission (promote now without
	// the gates); set by the API from the token or claim rule.
	SkipGates bool
}

// Name is how the approver reads in a trailer: the client, or its CI
// identity (see Request.RequestedBy).
func (a Approver) Name() string { return Request{Client: a.Client, Identity: a.Identity}.RequestedBy() }
