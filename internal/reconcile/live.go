package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/mygitops/mgo/internal/render"
)

// LiveRelease is a Helm release as the cluster holds it now: its newest
// revision and the kstatus of each object of that revision's manifest.
type LiveRelease struct {
	Name      string
	Namespace string
	// Installed is false when the cluster has no revision of the release;
	// the other fields are empty then.
	Installed    bool
	Revision     int
	HelmStatus   string // deployed, failed, pending-upgrade, ...
	Chart        string
	ChartVersion string
	AppVersion   string
	Updated      time.Time
	Objects      []ObjectResult // Status and Message set; Action empty
}

// Live reads the newest Helm revision of a release and computes the
// status of each object of its manifest (one GET per object, under the
// cluster's request budget): its kstatus, or what the health rule of its
// kind says (the release's rules as of its last sync by this engine, else
// its cluster's). It changes nothing.
func (e *Engine) Live(ctx context.Context, namespace, name string) (LiveRelease, error) {
	lr := LiveRelease{Name: name, Namespace: namespace}
	cfg, err := e.cluster.Helm(namespace, nil)
	if err != nil {
		return lr, err
	}
	last, err := lastRelease(cfg, name)
	if err != nil || last == nil {
		return lr, err
	}
	lr.Installed, lr.Revision = true, last.Version
	if last.Info != nil {
		lr.HelmStatus, lr.Updated = string(last.Info.Status), last.Info.LastDeployed
	}
	if last.Chart != nil && last.Chart.Metadata != nil {
		lr.Chart, lr.ChartVersion, lr.AppVersion = last.Chart.Metadata.Name, last.Chart.Metadata.Version, last.Chart.Metadata.AppVersion
	}
	objs, err := render.DecodeManifest(last.Manifest)
	if err != nil {
		return lr, fmt.Errorf("release %s/%s revision %d: %w", namespace, name, last.Version, err)
	}
	var rr ReleaseResult
	e.objectStatus(ctx, &render.Rendered{Release: name, Namespace: namespace, Objects: objs}, namespace, e.liveHealth(namespace, name), &rr)
	lr.Objects = rr.Objects
	return lr, nil
}
