package deploy

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Owner says which served clusters this replica syncs when several mgo
// replicas share their records (a Store that is a Watcher): the holder of
// a cluster's lease syncs it, runs its drift checks and finishes its
// deployments; any replica accepts, commits and pushes.
type Owner interface {
	Holds(cluster string) bool
}

// shared is what a Service does when it shares its records with other
// replicas: hand pushed deployments of clusters it does not hold to their
// holder, take over those of clusters it holds, and answer waiting callers
// from the records whichever replica finishes them.
type shared struct {
	s     *Service
	owner Owner
	store Watcher

	mu       sync.Mutex
	inflight map[string]bool // deployments this replica works on
	events   []*Deployment
	wake     chan struct{}
	// adopted are jobs taken over, waiting for a fetch: their commits were
	// pushed by other replicas, the clone must have them before the sync.
	adopted   []*job
	fetchWake chan struct{}
}

// startShared watches the records; nil when the service is alone.
func (s *Service) startShared() {
	w, ok := s.cfg.Store.(Watcher)
	if s.cfg.Owner == nil || !ok {
		return
	}
	sh := &shared{s: s, owner: s.cfg.Owner, store: w, inflight: map[string]bool{}, wake: make(chan struct{}, 1),
		fetchWake: make(chan struct{}, 1)}
	s.shared, s.replicas = sh, sh
	w.Watch(s.ctx, sh.observe)
	go sh.loop(s.ctx)
	go sh.fetchLoop(s.ctx)
}

// owns reports whether this replica syncs cluster.
func (s *Service) owns(cluster string) bool {
	return s.replicas.holds(cluster)
}

func (sh *shared) holds(cluster string) bool { return sh.owner.Holds(cluster) }

// overlap is false: see replicaPolicy.
func (sh *shared) overlap() bool { return false }

// hold is the lease's context, taken before the lease is looked at, so a
// loss after the look cancels it.
func (sh *shared) hold(ctx context.Context, h *leaseHold, cluster string) (context.Context, bool) {
	hc := h.context(ctx)
	return hc, sh.owner.Holds(cluster)
}

// lostDuring is not told of the service's stop: that is no loss of the
// lease.
func (sh *shared) lostDuring(ctx context.Context, cluster string) bool {
	if sh.s.ctx.Err() != nil {
		return false
	}
	return ctx.Err() != nil || !sh.owner.Holds(cluster)
}

// Owns reports whether this replica syncs cluster (always, unless it
// shares the clusters with other replicas by leases).
func (s *Service) Owns(cluster string) bool { return s.owns(cluster) }

// notOwned is the error of a sync asked of a replica that does not hold
// the cluster's lease.
func notOwned(cluster string) error {
	return fmt.Errorf("%w: cluster %s is synced by another mgo replica (the holder of its Lease); ask again, or ask that replica", ErrConflict, cluster)
}

func (sh *shared) track(id string) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	sh.inflight[id] = true
	sh.mu.Unlock()
}

func (sh *shared) untrack(id string) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	delete(sh.inflight, id)
	sh.mu.Unlock()
}

func (sh *shared) tracked(id string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.inflight[id]
}

// observe queues a record the store saw change; it never blocks.
func (sh *shared) observe(d *Deployment) {
	sh.mu.Lock()
	sh.events = append(sh.events, d)
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shared) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sh.wake:
		}
		sh.mu.Lock()
		events := sh.events
		sh.events = nil
		sh.mu.Unlock()
		for _, d := range events {
			sh.handle(d)
		}
	}
}

// handle answers the waiters of a finished record and takes over a pushed
// one of a cluster this replica holds.
func (sh *shared) handle(d *Deployment) {
	switch {
	case d.Status.Terminal():
		if !sh.tracked(d.ID) {
			sh.s.wake(d.ID)
		}
	case d.Status == Pushed && sh.owner.Holds(d.Request.Cluster):
		sh.adopt(d)
	}
}

// wake closes the waiters of a deployment another replica finished.
func (s *Service) wake(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.waiters[id]; ch != nil {
		close(ch)
		delete(s.waiters, id)
	}
}

// adopt takes a pushed deployment of a held cluster into its sync.
func (sh *shared) adopt(d *Deployment) {
	s := sh.s
	if _, err := s.cluster(d.Request.Cluster); err != nil {
		return // not served here
	}
	sh.mu.Lock()
	if sh.inflight[d.ID] {
		sh.mu.Unlock()
		return
	}
	sh.inflight[d.ID] = true
	sh.mu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sh.untrack(d.ID)
		return // stopping: the next holder takes it
	}
	s.running.Add(1)
	if s.waiters[d.ID] == nil {
		s.waiters[d.ID] = make(chan struct{})
	}
	s.mu.Unlock()
	j := &job{d: d, files: d.Files, edited: true}
	s.log.Info("deployment taken over for its cluster's sync", "id", d.ID, "cluster", d.Request.Cluster, "commit", d.Commit)
	sh.mu.Lock()
	sh.adopted = append(sh.adopted, j)
	sh.mu.Unlock()
	select {
	case sh.fetchWake <- struct{}{}:
	default:
	}
}

// fetchLoop fetches the repo for the jobs taken over since the last fetch
// (one fetch for all of them: each was pushed before the fetch began),
// then hands them to their clusters' syncs. A failed fetch is retried:
// a sync without the job's commit would report what it did not deploy.
func (sh *shared) fetchLoop(ctx context.Context) {
	s := sh.s
	for {
		select {
		case <-ctx.Done():
			sh.mu.Lock()
			jobs := sh.adopted
			sh.adopted = nil
			sh.mu.Unlock()
			for _, j := range jobs {
				sh.leave(j, "mgo is stopping")
			}
			return
		case <-sh.fetchWake:
		}
		sh.mu.Lock()
		jobs := sh.adopted
		sh.adopted = nil
		sh.mu.Unlock()
		if len(jobs) == 0 {
			continue
		}
		if _, err := s.cfg.Git.Fetch(ctx); err != nil {
			s.log.Warn("fetch for deployments taken over failed; retrying", "deployments", len(jobs), "error", err)
			sh.mu.Lock()
			sh.adopted = append(jobs, sh.adopted...)
			sh.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			select {
			case sh.fetchWake <- struct{}{}:
			default:
			}
			continue
		}
		for _, j := range jobs {
			c, _ := s.cluster(j.d.Request.Cluster)
			if !c.add(j) {
				sh.leave(j, "mgo is stopping")
			}
		}
	}
}

// handOff leaves a pushed job to the replica that holds its cluster; false
// when this replica holds it (or is alone) and syncs it itself.
func (s *Service) handOff(j *job) bool {
	sh := s.shared
	if sh == nil || sh.owner.Holds(j.d.Request.Cluster) {
		return false
	}
	sh.untrack(j.d.ID)
	s.log.Info("deployment handed to the holder of its cluster's lease", "id", j.d.ID, "cluster", j.d.Request.Cluster)
	s.running.Done()
	// The holder may have finished it before the hand-off: look once.
	if d, err := s.cfg.Store.Get(j.d.ID); err == nil && d.Status.Terminal() {
		s.wake(d.ID)
	} else if err == nil && d.Status == Pushed && sh.owner.Holds(d.Request.Cluster) {
		sh.adopt(d) // the lease came here meanwhile
	}
	return true
}

// waitRemote returns a channel closed when a deployment another replica
// works on is finished; nil when it is finished or the service is alone.
func (s *Service) waitRemote(id string) chan struct{} {
	if s.shared == nil {
		return nil
	}
	s.mu.Lock()
	ch := s.waiters[id]
	if ch == nil {
		ch = make(chan struct{})
		s.waiters[id] = ch
	}
	s.mu.Unlock()
	// Finished before the waiter existed: the watch event is gone.
	if d, err := s.cfg.Store.Get(id); err != nil || d.Status.Terminal() {
		s.wake(id)
	}
	return ch
}

// Acquired is told that this replica took the lease of cluster: it takes
// over every deployment left pushed for it (by a replica that died or
// handed it over) and syncs the cluster in full, as at start.
func (s *Service) Acquired(ctx context.Context, cluster string) {
	if s.shared == nil {
		return
	}
	// The clone may lag behind what other replicas pushed: a sync at an
	// older head would roll the cluster back.
	for {
		_, err := s.cfg.Git.Fetch(ctx)
		if err == nil {
			break
		}
		s.log.Warn("fetch after taking a cluster failed; retrying", "cluster", cluster, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	left, err := s.cfg.Store.List(1<<30, func(d *Deployment) bool {
		return d.Status == Pushed && d.Request.Cluster == cluster
	})
	if err != nil {
		s.log.Error("listing deployments left pushed", "cluster", cluster, "error", err)
	}
	for _, d := range left {
		s.shared.adopt(d)
	}
	s.log.Info("cluster taken over: syncing it", "cluster", cluster, "pushedDeployments", len(left))
	out, err := s.sync(ctx, cluster, true, false, true)
	switch {
	case err != nil:
		s.log.Error("sync after taking the cluster failed", "cluster", cluster, "error", err)
	case out.notSynced != "":
		s.log.Info("sync after taking the cluster skipped: the cluster syncs manually", "cluster", cluster)
	default:
		s.log.Info("sync after taking the cluster done", "cluster", cluster, "head", out.head, "failed", out.res.Failed())
	}
}

// leave gives up a job (the service stops, or the cluster's lease is
// not held): its record stays pushed for the holder of the cluster's
// lease, which takes it over; a caller waiting here is answered from the
// record that replica finishes.
func (sh *shared) leave(j *job, why string) {
	sh.untrack(j.d.ID)
	sh.s.log.Info("deployment left pushed for the holder of its cluster's lease", "id", j.d.ID, "cluster", j.d.Request.Cluster, "reason", why)
	sh.s.running.Done()
	if d, err := sh.s.cfg.Store.Get(j.d.ID); err == nil && d.Status.Terminal() {
		sh.s.wake(d.ID) // finished by the holder already
	} else if err == nil && d.Status == Pushed && sh.owner.Holds(d.Request.Cluster) {
		sh.adopt(d) // the lease came back meanwhile
	}
}

// Lost is told that this replica gave up or lost the lease of cluster: its
// syncs of the cluster are cancelled, and the deployments they had not
// finished are left pushed for the new holder. A loss told after the
// lease was taken again is ignored.
func (s *Service) Lost(cluster string) {
	c, err := s.cluster(cluster)
	if err != nil || s.shared == nil || s.owns(cluster) {
		return
	}
	s.log.Warn("cluster's lease lost: its syncs here stop, its holder finishes their deployments", "cluster", cluster)
	c.lost()
}

// Busy reports whether a sync of cluster runs or waits to run, or
// deployments taken over wait for their fetch: the replica keeps the
// cluster's lease until it is idle.
func (s *Service) Busy(cluster string) bool {
	c, err := s.cluster(cluster)
	if err != nil {
		return false
	}
	busy := c.busy()
	if busy || s.shared == nil {
		return busy
	}
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	for _, j := range s.shared.adopted {
		if j.d.Request.Cluster == cluster {
			return true
		}
	}
	return false
}
