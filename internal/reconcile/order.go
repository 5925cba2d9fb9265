package reconcile

import (
	"context"
	"fmt"
	"maps"
	"time"

	releasev1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/mygitops/mgo/internal/repo"
)

// StageDependency: the release was not synced because a release it depends
// on (dependsOn) failed, or the sync ended while it waited for one.
const StageDependency Stage = "dependency"

// releaseOrder is the dependency order of one sync's releases: each
// release's goroutine waits, before it takes a sync slot, until every
// release of the sync it depends on is done, so the sync is as parallel
// as the graph and the slots allow. repo.Load refuses cycles.
type releaseOrder struct {
	index map[string]int  // namespace/name -> position in the sync
	done  []chan struct{} // closed when the release at that position is done
}

func newReleaseOrder(rels []*repo.Release) *releaseOrder {
	o := &releaseOrder{index: map[string]int{}, done: make([]chan struct{}, len(rels))}
	for i, rel := range rels {
		o.done[i] = make(chan struct{})
		if _, dup := o.index[rel.Key()]; !dup {
			o.index[rel.Key()] = i
		}
	}
	return o
}

// finish marks the release at i done; its result must be set before.
func (o *releaseOrder) finish(i int) { close(o.done[i]) }

// awaitDependencies waits until every release rel depends on is done and
// returns the result of rel when one of them failed (rel is then not
// synced), nil when rel may go on. A dependency synced by this sync is
// waited for through the order; one outside it (a sync of one release,
// a deploy's) is waited for only while another sync holds it, and its
// last sync must not have failed. An invalid release (a cycle among its
// reasons) waits for nothing: it fails at validation.
func (e *Engine) awaitDependencies(ctx context.Context, rel *repo.Release, o *releaseOrder, results []ReleaseResult, skipped []bool) *ReleaseResult {
	if !rel.Valid || len(rel.Header.DependsOn) == 0 {
		return nil
	}
	start := time.Now()
	blocked := func(format string, args ...any) *ReleaseResult {
		return &ReleaseResult{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace, Chart: rel.Header.Chart,
			Action: Failed, Stage: StageDependency, After: rel.DependsOnKeys(),
			Error: fmt.Sprintf("%s: not synced: ", rel.File) + fmt.Sprintf(format, args...), Duration: time.Since(start)}
	}
	for _, d := range rel.Header.DependsOn {
		if j, ok := o.index[d.Key()]; ok {
			select {
			case <-o.done[j]:
			case <-ctx.Done():
				return blocked("waiting for %s, which it depends on: %v", d.Key(), ctx.Err())
			}
			if !skipped[j] && results[j].Action == Failed {
				return blocked("depends on %s, which failed at %s", d.Key(), results[j].Stage)
			}
			continue
		}
		e.lockRelease(d.Key())() // a sync of it in flight ends first
		e.mu.Lock()
		stage, failed := e.failedAt[d.Key()]
		e.mu.Unlock()
		if failed {
			return blocked("depends on %s, which failed at %s in its last sync", d.Key(), stage)
		}
	}
	if waited := time.Since(start); waited > 100*time.Millisecond {
		e.log.Info("release waited for what it depends on", "release", rel.Key(), "dependsOn", rel.DependsOnKeys(), "waited", waited.Round(time.Millisecond))
	}
	return nil
}

// recordOutcome remembers whether a release's sync failed, and at which
// stage, for the syncs of its dependants alone.
func (e *Engine) recordOutcome(rr ReleaseResult) {
	key := rr.Namespace + "/" + rr.Name
	e.mu.Lock()
	defer e.mu.Unlock()
	if rr.Action == Failed {
		if e.failedAt == nil {
			e.failedAt = map[string]Stage{}
		}
		e.failedAt[key] = rr.Stage
	} else {
		delete(e.failedAt, key)
	}
}

// rememberDependencies records the dependsOn of a cluster's releases as
// the repo has them now, for uninstalling them in reverse order once
// their values files are gone.
func (e *Engine) rememberDependencies(c *repo.Cluster) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dependsOf == nil {
		e.dependsOf = map[string][]string{}
	}
	for _, rel := range c.Releases {
		if rel.Header.Name != "" && rel.Header.Namespace != "" {
			e.dependsOf[rel.Key()] = rel.DependsOnKeys()
		}
	}
}

// dependantsFirst orders Helm releases so that each comes after every
// release of the list that depends on it (as last seen in the repo): the
// removed releases are uninstalled in the reverse of their install order,
// an operator's resources before the operator and its CRDs. Releases this
// engine never saw in the repo keep their order.
func (e *Engine) dependantsFirst(rels []*releasev1.Release) []*releasev1.Release {
	e.mu.Lock()
	deps := maps.Clone(e.dependsOf)
	e.mu.Unlock()
	key := func(hr *releasev1.Release) string { return hr.Namespace + "/" + hr.Name }
	dependants := map[string][]*releasev1.Release{}
	for _, hr := range rels {
		for _, d := range deps[key(hr)] {
			dependants[d] = append(dependants[d], hr)
		}
	}
	out := make([]*releasev1.Release, 0, len(rels))
	seen := map[string]bool{}
	var visit func(hr *releasev1.Release)
	visit = func(hr *releasev1.Release) {
		if seen[key(hr)] {
			return
		}
		seen[key(hr)] = true
		for _, d := range dependants[key(hr)] {
			visit(d)
		}
		out = append(out, hr)
	}
	for _, hr := range rels {
		visit(hr)
	}
	return out
}
