package importer

import (
	"errors"

	"github.com/mygitops/mgo/internal/reconcile"
)

// Sentinel errors of an import that ran but refused to write. The command
// line maps them to exit code 1.
var (
	// ErrNotProven: the files rendered from the import differ from the
	// live cluster (Result says where), or a release could not be
	// imported.
	ErrNotProven = errors.New("the imported repo does not render the live cluster")
	// ErrPlaintextSecrets: secret values would be written in clear.
	ErrPlaintextSecrets = errors.New("secret values would be written in clear")
)

// Result is what an import found, proved and wrote.
type Result struct {
	Cluster  string          `json:"cluster"`
	Releases []ReleaseResult `json:"releases"`
	Raw      []RawResult     `json:"raw,omitempty"`
	// RawDiff are the raw objects whose rendering differs from the live
	// cluster by more than mgo's owner labels.
	RawDiff []reconcile.ObjectDiff `json:"rawDiff,omitempty"`
	Files   []FileResult           `json:"files"`
	// Proven is true when every imported release renders exactly the live
	// cluster.
	Proven bool `json:"proven"`
	// Forced is true when the files were written although not proven.
	Forced bool `json:"forced,omitempty"`
	// Written is true when the files are in the repo.
	Written bool `json:"written"`
}

// ReleaseResult is one imported release.
type ReleaseResult struct {
	Namespace   string      `json:"namespace"`
	Name        string      `json:"name"`
	Revision    int         `json:"revision"`
	File        string      `json:"file,omitempty"`
	SecretsFile string      `json:"secretsFile,omitempty"`
	Chart       string      `json:"chart,omitempty"`
	Version     string      `json:"version,omitempty"`
	ChartSource ChartSource `json:"chartSource,omitempty"`
	// Images are the trigger repos linked to the chart's image fields.
	Images []string `json:"images,omitempty"`
	// Secrets are the dotted values paths moved to the secrets file.
	Secrets  []string `json:"secrets,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Objects are the rendered objects that differ from the live ones.
	Objects []reconcile.ObjectDiff `json:"objects,omitempty"`
	Error   string                 `json:"error,omitempty"`
}

// RawResult is a raw manifest file exported from objects no release owns.
type RawResult struct {
	File    string   `json:"file"`
	Objects []string `json:"objects"`
}

// FileResult is one file (or chart directory) of the import.
type FileResult struct {
	Path   string `json:"path"`
	Action string `json:"action"` // created, updated, unchanged
}

// File actions.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
)

// Failed reports whether some release could not be imported or differs.
func (r *Result) Failed() bool {
	for _, rr := range r.Releases {
		if rr.Error != "" || len(rr.Objects) > 0 {
			return true
		}
	}
	return len(r.RawDiff) > 0
}
