package deploy

import (
	"context"
	"fmt"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// Diff compares a cluster with the repo at the current head.
func (s *Service) Diff(ctx context.Context, cluster string) (*reconcile.DiffResult, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return nil, err
	}
	return c.diffs.do(ctx, s.ctx, func(ctx context.Context) (*reconcile.DiffResult, error) {
		res, _, err := s.diff(ctx, cluster, false)
		return res, err
	})
}

// diff compares a cluster with the repo and records how many objects
// differ; it also returns the cluster's drift policy. A background diff
// (the periodic check) gives way to deploy syncs.
func (s *Service) diff(ctx context.Context, cluster string, background bool) (*reconcile.DiffResult, string, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return nil, "", err
	}
	var res *reconcile.DiffResult
	var policy string
	began := s.cfg.Now()
	err = s.withSnapshot(ctx, func(dir, _ string) error {
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: cluster, Cache: s.parsed})
		if err != nil {
			return err
		}
		policy = r.Config.Cluster(cluster).Drift
		c.setPolicy(r.Config.Cluster(cluster))
		res, err = c.engine.Diff(ctx, r, reconcile.Options{Background: background})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	now := s.cfg.Now()
	drifted := map[string]driftMark{} // the diff lists unchanged objects too
	for _, od := range res.Raw {
		if od.Action != reconcile.ObjectUnchanged {
			drifted[od.Subject] = driftMark{at: now}
		}
	}
	for _, rd := range res.Releases {
		for _, od := range rd.Objects {
			if od.Action != reconcile.ObjectUnchanged {
				drifted[od.Subject] = driftMark{release: rd.Namespace + "/" + rd.Name, at: now}
			}
		}
	}
	c.mu.Lock()
	// A drift the watches reported after this diff began may be newer than
	// what the diff compared (through the cache): it stays counted.
	for subj, m := range c.state.drifted {
		if _, ok := drifted[subj]; !ok && m.at.After(began) {
			drifted[subj] = m
		}
	}
	n := len(drifted)
	c.state.status.Drift, c.state.status.DriftChecked, c.state.drifted = n, now, drifted
	c.mu.Unlock()
	s.cfg.Metrics.Drift.WithLabelValues(cluster).Set(float64(n))
	return res, policy, nil
}

// CheckDrift runs the periodic full check of one cluster, as its drift
// policy in mygitops.yaml says: "report" diffs and records what differs,
// "repair" then syncs every release against the live cluster.
//
// It notifies drift.detected when the number of differing objects changed
// since the last check (a drift that stays is told once), and
// drift.repaired when a repair synced without failure.
func (s *Service) CheckDrift(ctx context.Context, cluster string) error {
	prev := 0
	if c, err := s.cluster(cluster); err == nil {
		prev = c.Status().Drift
	}
	res, policy, err := s.diff(ctx, cluster, true)
	if err != nil {
		return err
	}
	if !res.HasDifferences() {
		return nil
	}
	n := s.clusters[cluster].Status().Drift
	ev := notify.Event{Type: notify.DriftDetected, Cluster: cluster, Objects: n,
		Summary: fmt.Sprintf("%d objects in %s differ from the repo", n, cluster)}
	if policy == repo.DriftRepair && s.pushesHeldAt(ctx, cluster) {
		s.log.Warn("drift: the cluster differs from the repo; not repaired during a freeze that holds pushed changes",
			"cluster", cluster, "objects", n)
		ev.Summary += "; not repaired during a freeze (syncDuringFreeze: false)"
		if n != prev {
			s.notify(ev)
		}
		return nil
	}
	if policy == repo.DriftRepair {
		s.log.Info("drift: repairing", "cluster", cluster)
		out, err := s.sync(ctx, cluster, true, false, true)
		switch {
		case err == nil && out.notSynced != "":
			s.log.Warn("drift: the cluster differs from the repo; not repaired, the cluster syncs manually",
				"cluster", cluster, "objects", n)
			ev.Summary += "; not repaired: the cluster syncs manually"
		case err == nil && !out.res.Failed():
			ev.Type, ev.Success, ev.Commit = notify.DriftRepaired, true, out.head
			ev.Summary = fmt.Sprintf("repaired drift of %d objects in %s", n, cluster)
			s.notify(ev)
			return nil
		case err == nil:
			ev.Error = "repair: " + syncEvent(cluster, out, nil).Error
		default:
			ev.Error = "repair: " + err.Error()
		}
		if n != prev && ctx.Err() == nil {
			s.notify(ev)
		}
		return err
	}
	s.log.Warn("drift: the cluster differs from the repo", "cluster", cluster, "objects", n)
	if n != prev {
		s.notify(ev)
	}
	return nil
}

// onDrift reports an object that the engine's watches saw change behind
// mgo's back: the cluster's drift count and metric go up and drift.detected
// is sent, at once, without waiting for the periodic check. An object
// already counted (by the last check, or an earlier event) is told once.
// With shared clusters only the holder of the cluster's lease reports;
// after Shutdown began nothing is reported.
func (c *scheduler) onDrift(d reconcile.Drift) {
	s := c.s
	if s.isClosed() || !s.owns(c.name) {
		return
	}
	c.mu.Lock()
	c.repairLaterLocked(d)
	if m, ok := c.state.drifted[d.Subject]; ok {
		m.at = d.At // seen again: not covered by a repair that began before
		c.state.drifted[d.Subject] = m
		c.mu.Unlock()
		return
	}
	if c.state.drifted == nil {
		c.state.drifted = map[string]driftMark{}
	}
	c.state.drifted[d.Subject] = driftMark{release: d.Namespace + "/" + d.Release, at: d.At}
	n := len(c.state.drifted)
	c.state.status.Drift, c.state.status.DriftChecked = n, s.cfg.Now()
	c.mu.Unlock()
	s.cfg.Metrics.Drift.WithLabelValues(c.name).Set(float64(n))
	s.log.Warn("drift: an object of a release changed behind mgo's back", "cluster", c.name,
		"release", d.Namespace+"/"+d.Release, "object", d.Subject, "change", d.Change, "objects", n)
	s.notify(notify.Event{Type: notify.DriftDetected, Cluster: c.name, Objects: n,
		Releases: []notify.Release{{Name: d.Release, Namespace: d.Namespace}},
		Summary:  fmt.Sprintf("%s of release %s/%s %s behind mgo's back; %d objects in %s differ from the repo", d.Subject, d.Namespace, d.Release, d.Change, n, c.name)})
}
