package deploy

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// The quiet time a watch-seen drift waits for more events of its release
// before it is repaired, and the longest it waits: a burst of changes (a
// script scaling a Deployment twice, kubectl edit of several objects) is
// repaired by one sync.
const (
	repairQuiet   = 250 * time.Millisecond
	repairMaxWait = 2 * time.Second
)

// driftMark is an object counted in a cluster's drift: the release it
// belongs to ("namespace/name"; empty for raw manifests) and when it was
// seen to differ.
type driftMark struct {
	release string
	at      time.Time
}

// repairs are the watch-seen drifts of a cluster waiting for their
// repair, by release ("namespace/name").
type repairs struct {
	pending map[string]repairRequest
	// started is when the running repair of each release began: a drift
	// seen before that is covered by it (the repair compares the release
	// with the live cluster after it began).
	started map[string]time.Time
	running bool
	kick    chan struct{} // a new drift arrived while the loop waits
}

type repairRequest struct {
	namespace, release string
	at                 time.Time // the last drift seen
}

// repairLaterLocked queues the repair of the release of a drift seen by the
// engine's watches, when the cluster's drift policy (at its last sync or
// check) is repair and it syncs automatically. Called with c.mu held.
func (c *scheduler) repairLaterLocked(d reconcile.Drift) {
	if c.state.policy != repo.DriftRepair || c.state.manual {
		return
	}
	key := d.Namespace + "/" + d.Release
	if t, ok := c.repair.started[key]; ok && !d.At.After(t) {
		return // the running repair of the release began after the change
	}
	if c.repair.pending == nil {
		c.repair.pending, c.repair.started = map[string]repairRequest{}, map[string]time.Time{}
		c.repair.kick = make(chan struct{}, 1)
	}
	rq := c.repair.pending[key]
	rq.namespace, rq.release = d.Namespace, d.Release
	if d.At.After(rq.at) {
		rq.at = d.At
	}
	c.repair.pending[key] = rq
	select {
	case c.repair.kick <- struct{}{}:
	default:
	}
	if c.repair.running || !c.s.syncStarted() {
		return
	}
	c.repair.running = true
	go c.repairLoop()
}

// repairLoop repairs the releases whose drift the watches saw, each by a
// background sync of that release alone (Options.Release, Options.Full),
// once their events have settled, until none waits.
func (c *scheduler) repairLoop() {
	defer c.s.syncEnded()
	for {
		if !c.settle() {
			c.mu.Lock()
			c.repair.running = false
			c.mu.Unlock()
			return
		}
		owned := !c.s.isClosed() && c.s.owns(c.name)
		c.mu.Lock()
		pending := c.repair.pending
		c.repair.pending = map[string]repairRequest{}
		if len(pending) == 0 || !owned {
			c.repair.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.repairReleases(pending)
	}
}

// settle waits until no drift arrived for repairQuiet, or repairMaxWait
// passed; false when the service stops meanwhile.
func (c *scheduler) settle() bool {
	c.mu.Lock()
	kick := c.repair.kick
	c.mu.Unlock()
	limit := time.NewTimer(repairMaxWait)
	defer limit.Stop()
	quiet := time.NewTimer(repairQuiet)
	defer quiet.Stop()
	for {
		select {
		case <-c.s.ctx.Done():
			return false
		case <-limit.C:
			return true
		case <-quiet.C:
			return true
		case <-kick:
			quiet.Reset(repairQuiet)
		}
	}
}

// repairReleases syncs each release at the current head, all at once (the
// engine's slots bound them, after any deploy's releases), and tells how
// each went.
func (c *scheduler) repairReleases(pending map[string]repairRequest) {
	s := c.s
	ctx, held := s.replicas.hold(s.ctx, &c.lease, c.name)
	if !held {
		return
	}
	err := s.withSnapshot(ctx, func(dir, head string) error {
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: c.name, Cache: c.s.parsed})
		if err != nil {
			return err
		}
		settings := r.Config.Cluster(c.name)
		c.setPolicy(settings)
		if settings.Drift != repo.DriftRepair || settings.Sync == repo.SyncManual {
			s.log.Info("drift: not repaired, the cluster's policy changed", "cluster", c.name,
				"drift", settings.Drift, "sync", settings.Sync)
			return nil
		}
		if s.pushesHeld(settings) {
			s.log.Info("drift: not repaired during a freeze that holds pushed changes (syncDuringFreeze: false)", "cluster", c.name)
			return nil
		}
		files := map[string]string{} // release key -> values file
		if rc, ok := r.Clusters[c.name]; ok {
			for _, rel := range rc.Releases {
				files[rel.Header.Namespace+"/"+rel.Header.Name] = rel.File
			}
		}
		var wg sync.WaitGroup
		for key, rq := range pending {
			file, ok := files[key]
			if !ok {
				s.log.Info("drift: not repaired, the release left the repo", "cluster", c.name, "release", key)
				continue
			}
			c.mu.Lock()
			if c.deployingLocked(file, rq.at) {
				c.mu.Unlock()
				s.log.Info("drift: a deploy of the release is under way and repairs it", "cluster", c.name, "release", key)
				continue
			}
			started := time.Now() // the clock of reconcile.Drift.At
			c.repair.started[key] = started
			// A background sync of an older head may be running: it leaves
			// the release alone instead of rolling the repair back.
			c.markAheadLocked(file)
			c.mu.Unlock()
			wg.Go(func() {
				res, err := c.engine.Sync(ctx, r, reconcile.Options{Release: rq.release, Full: true, Background: true})
				c.mu.Lock()
				delete(c.repair.started, key)
				c.mu.Unlock()
				c.repaired(rq, head, started, res, err)
			})
		}
		wg.Wait()
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.log.Error("drift: repair failed", "cluster", c.name, "error", err)
		for _, rq := range pending {
			c.repaired(rq, "", time.Now(), nil, err)
		}
	}
}

// repaired ends the repair of a release: on success the objects of the
// release counted in the drift before the repair began leave the count
// and drift.repaired is sent; a failure is sent as drift.detected with the
// error.
func (c *scheduler) repaired(rq repairRequest, head string, started time.Time, res *reconcile.Result, err error) {
	s := c.s
	key := rq.namespace + "/" + rq.release
	rel := []notify.Release{{Name: rq.release, Namespace: rq.namespace}}
	if err == nil && res.Failed() {
		for _, rr := range res.Releases {
			if rr.Error != "" {
				err = fmt.Errorf("%s: %s", rr.Stage, rr.Error)
				break
			}
		}
	}
	if err != nil {
		if s.ctx.Err() != nil {
			return // stopping: the next holder's check finds the drift
		}
		s.log.Error("drift: repair of a release failed", "cluster", c.name, "release", key, "error", err)
		c.mu.Lock()
		n := len(c.state.drifted)
		c.mu.Unlock()
		s.notify(notify.Event{Type: notify.DriftDetected, Cluster: c.name, Objects: n, Releases: rel,
			Summary: fmt.Sprintf("release %s in %s differs from the repo", key, c.name), Error: "repair: " + err.Error()})
		return
	}
	c.mu.Lock()
	var objects []string
	for subj, m := range c.state.drifted {
		if m.release == key && !m.at.After(started) {
			objects = append(objects, subj)
			delete(c.state.drifted, subj)
		}
	}
	n := len(c.state.drifted)
	c.state.status.Drift, c.state.status.DriftChecked = n, s.cfg.Now()
	c.mu.Unlock()
	slices.Sort(objects)
	s.cfg.Metrics.Drift.WithLabelValues(c.name).Set(float64(n))
	s.log.Info("drift: repaired a release", "cluster", c.name, "release", key, "objects", objects, "head", head)
	s.notify(notify.Event{Type: notify.DriftRepaired, Success: true, Cluster: c.name, Commit: head, Objects: len(objects), Releases: rel,
		Summary: fmt.Sprintf("repaired drift of %d objects of release %s in %s", len(objects), key, c.name)})
}

// setPolicy records the cluster's drift policy and sync mode as read at a
// sync or a drift check.
func (c *scheduler) setPolicy(settings repo.ClusterSettings) {
	c.mu.Lock()
	c.state.policy, c.state.manual = settings.Drift, settings.Sync == repo.SyncManual
	c.mu.Unlock()
}
