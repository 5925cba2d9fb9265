package reconcile

import (
	"context"
	"fmt"
	"slices"

	"helm.sh/helm/v4/pkg/action"

	"github.com/mygitops/mgo/internal/kube"
)

// SoakHealth is a release as a promotion's soak judges it: the status of
// each object mgo applied for it, read from the engine's watch cache (no
// request to the API server), and whether its last sync by this engine
// failed.
type SoakHealth struct {
	Objects []ObjectResult
	// Known is false when the engine has not synced the release since it
	// started (nothing to read): the soak cannot judge it yet.
	Known bool
	// FailedAt is the stage its last sync failed in, "" when it did not.
	FailedAt Stage
}

// Healthy reports whether every object is Current and the last sync did
// not fail; otherwise it says why.
func (h SoakHealth) Healthy() (bool, string) {
	switch {
	case !h.Known:
		return false, "mgo has not synced the release since it started: no watched state yet"
	case h.FailedAt != "":
		return false, fmt.Sprintf("its last sync failed at %s", h.FailedAt)
	}
	for _, o := range h.Objects {
		if o.Status != "Current" {
			msg := fmt.Sprintf("%s is %s", o.Subject, o.Status)
			if o.Message != "" {
				msg += ": " + o.Message
			}
			return false, msg
		}
	}
	return true, ""
}

// Soak reads a release's health from the watch cache. Without a cache
// (Config.NoCache) it reports the release unknown.
func (e *Engine) Soak(ctx context.Context, namespace, release string) SoakHealth {
	var h SoakHealth
	if e.cache == nil {
		return h
	}
	key := namespace + "/" + release
	e.mu.Lock()
	h.FailedAt = e.failedAt[key]
	e.mu.Unlock()
	e.drift.mu.Lock()
	subjects := slices.Clone(e.drift.byRelease[key])
	want := make([]desired, 0, len(subjects))
	for _, s := range subjects {
		want = append(want, e.drift.want[s])
	}
	e.drift.mu.Unlock()
	if len(want) == 0 {
		return h
	}
	h.Known = true
	rules := e.liveHealth(namespace, release)
	for i, d := range want {
		obj, err := d.object()
		if err != nil {
			continue
		}
		or := ObjectResult{Subject: subjects[i]}
		live, err := e.cache.Get(ctx, obj.GroupVersionKind(), obj.GetNamespace(), obj.GetName())
		switch {
		case err != nil:
			or.Status, or.Message = kube.StatusUnknown, err.Error()
		case live == nil:
			or.Status, or.Message = kube.StatusNotFound, "not in the cluster"
		default:
			st := kube.StatusWith(rules, live)
			or.Status, or.Message = st.Status, st.Message
		}
		h.Objects = append(h.Objects, or)
	}
	slices.SortFunc(h.Objects, func(a, b ObjectResult) int {
		if a.Subject < b.Subject {
			return -1
		}
		if a.Subject > b.Subject {
			return 1
		}
		return 0
	})
	return h
}

// HelmConfig is the Helm SDK configuration of a namespace of the engine's
// cluster, under its budget (for Helm tests of a promotion's soak).
func (e *Engine) HelmConfig(namespace string) (*action.Configuration, error) {
	return e.cluster.Helm(namespace, nil)
}
