package reconcile

import (
	"fmt"
	"strings"
	"time"

	"github.com/mygitops/mgo/internal/kube"
)

// Action is what a sync did to a release.
type Action string

const (
	Installed   Action = "installed"
	Upgraded    Action = "upgraded"
	Unchanged   Action = "unchanged"   // live state matched the rendered state: no new revision
	UpToDate    Action = "up-to-date"  // rendered output unchanged since the last sync: not checked again
	Uninstalled Action = "uninstalled" // its values file was removed
	// LeftAlone: a release an older mgo installed (without cluster and
	// repository labels) that the repository does not define: it may be
	// another instance's, so it is not uninstalled (see Note).
	LeftAlone   Action = "left-alone"
	WouldChange Action = "would-change"
	Failed      Action = "failed"
	// Restarted: the release's workloads were restarted (a deploy with
	// restart of an image already set).
	Restarted Action = "restarted"
)

// Stage names the step of a release sync that failed.
type Stage string

const (
	StageValidate Stage = "validate"
	StageChart    Stage = "chart"
	StageRender   Stage = "render"
	StageDiff     Stage = "diff"
	StageApply    Stage = "apply"
	StageWait     Stage = "wait"
)

// ObjectAction is what a sync, a diff or a restart did (or would do) to
// one object: the actions of fluxcd/pkg/ssa's change sets, and mgo's own
// (recreate, restarted). Empty when the object was only checked (Live).
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

// Result is the outcome of a sync of one cluster.
type Result struct {
	Cluster  string             `json:"cluster"`
	Releases []ReleaseResult    `json:"releases"`
	Raw      []ObjectResult     `json:"raw,omitempty"`
	RawError string             `json:"rawError,omitempty"`
	Requests kube.RequestCounts `json:"requests,omitempty"`
	Duration time.Duration      `json:"duration"` // nanoseconds
}

// ReleaseResult is the outcome for one release.
type ReleaseResult struct {
	File         string         `json:"file"`
	Name         string         `json:"name"`
	Namespace    string         `json:"namespace"`
	Chart        string         `json:"chart,omitempty"`
	ChartVersion string         `json:"chartVersion,omitempty"`
	Action       Action         `json:"action"`
	Revision     int            `json:"revision,omitempty"` // Helm revision after the sync (0 when unknown)
	Objects      []ObjectResult `json:"objects,omitempty"`
	Stage        Stage          `json:"stage,omitempty"` // set when Action is Failed
	Error        string         `json:"error,omitempty"` // set when Action is Failed
	// Recovered says how a revision left pending (mgo killed during a
	// Helm action) was recovered before this sync acted on the release.
	Recovered string `json:"recovered,omitempty"`
	// Note explains an action that is neither a change nor a failure
	// (LeftAlone).
	Note string `json:"note,omitempty"`
	// After are the releases it depends on (dependsOn), which the sync
	// waited for before it.
	After    []string      `json:"after,omitempty"`
	Duration time.Duration `json:"duration"` // nanoseconds
}

// ObjectResult is one object of a release or of the raw manifests.
type ObjectResult struct {
	Subject string       `json:"subject"`          // Kind/namespace/name
	Action  ObjectAction `json:"action,omitempty"` // created, configured, unchanged, deleted, skipped, recreate, restarted
	Status  string       `json:"status,omitempty"` // kstatus after the wait: Current, InProgress, Failed, ...
	Message string       `json:"message,omitempty"`
}

// Failed reports whether any release or the raw manifests failed.
func (r *Result) Failed() bool {
	if r.RawError != "" {
		return true
	}
	for _, rr := range r.Releases {
		if rr.Action == Failed {
			return true
		}
	}
	return false
}

// Release returns the result of the named release.
func (r *Result) Release(namespace, name string) (ReleaseResult, bool) {
	for _, rr := range r.Releases {
		if rr.Name == name && rr.Namespace == namespace {
			return rr, true
		}
	}
	return ReleaseResult{}, false
}

// String summarises the result on one line per release.
func (r *Result) String() string {
	var b strings.Builder
	for _, rr := range r.Releases {
		fmt.Fprintf(&b, "%s/%s %s", rr.Namespace, rr.Name, rr.Action)
		if rr.Revision > 0 {
			fmt.Fprintf(&b, " (revision %d)", rr.Revision)
		}
		if rr.Recovered != "" {
			fmt.Fprintf(&b, " [recovered: %s]", rr.Recovered)
		}
		if rr.Error != "" {
			fmt.Fprintf(&b, ": %s failed: %s", rr.Stage, rr.Error)
		}
		if rr.Note != "" {
			fmt.Fprintf(&b, ": %s", rr.Note)
		}
		b.WriteString("\n")
	}
	if r.RawError != "" {
		fmt.Fprintf(&b, "raw manifests failed: %s\n", r.RawError)
	}
	return b.String()
}
