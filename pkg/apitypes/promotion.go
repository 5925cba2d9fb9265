package apitypes

import "time"

// PromotionPhase is where a candidate is on its way to the next cluster.
type PromotionPhase string

const (
	PhaseSoaking   PromotionPhase = "soaking"   // healthyFor: the soak in the previous cluster runs
	PhaseTesting   PromotionPhase = "testing"   // its Helm tests run in the previous cluster
	PhaseChecking  PromotionPhase = "checking"  // its HTTP and Prometheus checks run
	PhaseApproval  PromotionPhase = "approval"  // waiting for an approve call or a merged merge request
	PhasePromoting PromotionPhase = "promoting" // the promote deploy runs in the next cluster
	PhasePromoted  PromotionPhase = "promoted"  // the next cluster runs the image
	PhaseFailed    PromotionPhase = "failed"    // a gate or the promote deploy failed: see Gates
	PhaseRejected  PromotionPhase = "rejected"  // a caller rejected it
)

// Terminal reports whether a candidate in this phase will not change any
// more.
func (p PromotionPhase) Terminal() bool {
	return p == PhasePromoted || p == PhaseFailed || p == PhaseRejected
}

// GateState is where one gate of a candidate is.
type GateState string

const (
	GatePending GateState = "pending"
	GateRunning GateState = "running"
	GatePassed  GateState = "passed"
	GateFailed  GateState = "failed"
	GateSkipped GateState = "skipped"
)

// PromotionGate is one gate of a candidate (healthyFor, tests, checks,
// allowedImages, approval, promote) with its evidence.
type PromotionGate struct {
	Gate     string      `json:"gate"`
	State    GateState   `json:"state"`
	Detail   string      `json:"detail,omitempty"`
	Started  time.Time   `json:"started,omitzero"`
	Finished time.Time   `json:"finished,omitzero"`
	Checks   []GateCheck `json:"checks,omitempty"`
}

// GateCheck is one HTTP or Prometheus check, or one Helm test, of a gate.
type GateCheck struct {
	Name   string    `json:"name"`
	Passed bool      `json:"passed"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Approval is who let a candidate go, or rejected it.
type Approval struct {
	By      string    `json:"by"`
	Via     string    `json:"via"` // none, api or merge-request
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// MergeRequest is the GitLab merge request or GitHub pull request of a
// candidate whose stage is approved by merge request.
type MergeRequest struct {
	Forge       string `json:"forge"` // gitlab or github
	URL         string `json:"url"`
	Number      int    `json:"number"`
	Branch      string `json:"branch"`
	Commit      string `json:"commit"`
	State       string `json:"state"` // open, merged or closed
	MergeCommit string `json:"mergeCommit,omitempty"`
}

// Promotion is a candidate: an image that runs in one cluster of a
// promotion path, on its way to the next.
type Promotion struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	From string `json:"from"`
	To   string `json:"to"`
	// Stage is To's index in the path (1: the second cluster).
	Stage        int    `json:"stage"`
	TriggerRepo  string `json:"triggerRepo"`
	ImageRepo    string `json:"imageRepo"`
	Tag          string `json:"tag,omitempty"`
	Digest       string `json:"digest,omitempty"`
	SourceCommit string `json:"sourceCommit,omitempty"`
	// Author made the original deploy; the promote commit is theirs.
	Author string `json:"author,omitempty"`
	// Source is the deployment that set the image in From; FromCommit its
	// gitops commit; Releases what it rolled out there.
	Source     string         `json:"source"`
	FromCommit string         `json:"fromCommit"`
	Releases   []string       `json:"releases,omitempty"`
	Phase      PromotionPhase `json:"phase"`
	// Error says why a failed or rejected candidate stopped.
	Error string `json:"error,omitempty"`
	// RolledOut is when the rollout in From ended; SoakStart when the
	// soak (re)started; SoakEnds when it ends if nothing goes wrong.
	RolledOut    time.Time       `json:"rolledOut"`
	SoakStart    time.Time       `json:"soakStart"`
	SoakEnds     time.Time       `json:"soakEnds,omitzero"`
	SoakRestarts int             `json:"soakRestarts,omitempty"`
	Gates        []PromotionGate `json:"gates,omitempty"`
	Approval     *Approval       `json:"approval,omitempty"`
	MergeRequest *MergeRequest   `json:"mergeRequest,omitempty"`
	// Deployment is the promote deploy in To.
	Deployment string    `json:"deployment,omitempty"`
	Manual     bool      `json:"manual,omitempty"`
	Created    time.Time `json:"created"`
	Finished   time.Time `json:"finished,omitzero"`
}

// Ref is the candidate's image reference.
func (p Promotion) Ref() string {
	return Request{ImageRepo: p.ImageRepo, Tag: p.Tag, Digest: p.Digest}.Ref()
}

// PromotionStageView is one cluster of a promotion path as the dashboard
// and `mgo promote` show it.
type PromotionStageView struct {
	Cluster string `json:"cluster"`
	// Image is what the cluster's releases of the path's trigger repos run
	// by the last successful deploy or promotion to it (empty: none yet).
	Image       string `json:"image,omitempty"`
	ImageSource string `json:"imageSource,omitempty"` // that deployment
	// HealthyFor, Tests, Checks and Approval are the stage's gates on the
	// stage before it (none for the first stage).
	HealthyForSeconds float64 `json:"healthyForSeconds,omitempty"`
	Tests             bool    `json:"tests,omitempty"`
	Checks            int     `json:"checks,omitempty"`
	Approval          string  `json:"approval,omitempty"` // none, api or merge-request
	// Candidate is the newest candidate on its way into this stage.
	Candidate *Promotion `json:"candidate,omitempty"`
	// Held counts deploys held behind a candidate soaking in this cluster.
	Held int `json:"held,omitempty"`
	// CanApprove reports whether the caller may approve or reject the
	// candidate (its token or rule grants this cluster).
	CanApprove bool `json:"canApprove,omitempty"`
}

// PromotionPath is a promotion path of mygitops.yaml with where each of
// its stages is.
type PromotionPath struct {
	Name         string               `json:"name"`
	TriggerRepos []string             `json:"triggerRepos"`
	Stages       []PromotionStageView `json:"stages"`
}

// PromotionPaths is the answer of GET /api/v1/promotions.
type PromotionPaths struct {
	Paths []PromotionPath `json:"paths"`
}

// PromotionDecision is the optional body of approve and reject.
type PromotionDecision struct {
	Comment string `json:"comment,omitempty"`
}

// PromoteRequest is the body of POST /api/v1/promotions: promote what runs
// in the cluster before To on path Path (a manual promotion), through the
// same gates unless SkipGates (which needs the skipGates permission).
type PromoteRequest struct {
	Path        string `json:"path"`
	To          string `json:"to"`
	TriggerRepo string `json:"triggerRepo"`
	SkipGates   bool   `json:"skipGates,omitempty"`
	Wait        bool   `json:"wait,omitempty"`
}
