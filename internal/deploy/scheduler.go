package deploy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// scheduler runs the syncs of one cluster: it serialises and coalesces
// them (syncQueue: whoever asks while a sync runs is served by the next
// one, which covers every request made before it started), and it has two
// lanes:
//
//   - the loop (loop) runs one sync after another, each serving what was
//     queued when it began: deploys, explicit syncs, and the background
//     syncs of a start-up comparison or a drift check, which deploy
//     syncs go ahead of in the engine's release slots;
//   - the foreground lane (foregroundLoop) syncs, while the loop runs a
//     background sync, the releases of the jobs pushed meanwhile, each by
//     itself and at once, so that a deploy waits for its own releases
//     only.
//
// How it shares the cluster with other replicas is the service's
// replicaPolicy: alone, every sync runs here; with leases, only the
// holder's do, under a context that losing the lease cancels, and what
// the holder gives up is left pushed for the next one.
//
// Answers leave by value: a sync's jobs are finished by its answers (as
// soon as their releases are synced) or by the loop after the sync, never
// on an engine goroutine.
type scheduler struct {
	s      *Service
	name   string
	engine ClusterSyncer
	lease  leaseHold // the context of syncs while the lease is held
	diffs  sharedDiffs

	mu      sync.Mutex
	running bool // the loop runs
	queue   syncQueue
	lane    foregroundLane
	flight  inFlight
	state   clusterState
	repair  repairs
}

// foregroundLane is the state of the lane that syncs deploys beside a
// background sync.
type foregroundLane struct {
	// background is set while the loop runs a background sync: jobs added
	// meanwhile go to the lane, which syncs just their releases at once.
	background bool
	// ahead are the values files synced during the running background
	// sync at a newer head (by the lane or by a repair): the background
	// sync leaves them alone (Options.Superseded) instead of rolling them
	// back.
	ahead   map[string]bool
	jobs    []*job
	running bool
}

// inFlight is what the loop and the lane are syncing: the jobs and since
// when (time.Now), and the loop's answers with the head its sync reads
// (once its snapshot is taken), which a job pushed meanwhile whose commit
// that head holds is answered by instead of by the next sync.
type inFlight struct {
	jobs, laneJobs   []*job
	since, laneSince time.Time
	answers          *answers
	head             string
}

// clusterState is what the syncs and drift checks learnt of the cluster.
type clusterState struct {
	status ClusterStatus
	inputs string // digest of the cluster's files at the last sync
	// skipped is the digest of the cluster's files when an automatic sync
	// was skipped because the cluster syncs manually.
	skipped string
	// drifted are the objects (Kind/namespace/name) counted in
	// status.Drift: those that differed at the last drift check and those
	// the engine's watches saw drift since.
	drifted map[string]driftMark
	// policy and manual are the cluster's drift policy and sync mode at
	// its last sync or drift check: a drift the watches see is repaired
	// (repair.go) under drift: repair unless the cluster syncs manually.
	policy string
	manual bool
}

// leaseHold is the context of a cluster's syncs while this replica holds
// its lease: release cancels it when the lease is lost, so that a replica
// that lost the lease stops writing to the cluster before another one
// takes it.
type leaseHold struct {
	mu   sync.Mutex
	ctx  context.Context
	drop context.CancelFunc
}

// context returns the hold's context, a new one from parent after a
// release.
func (h *leaseHold) context(parent context.Context) context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil || h.ctx.Err() != nil {
		h.ctx, h.drop = context.WithCancel(parent)
	}
	return h.ctx
}

// release cancels the syncs running under the hold.
func (h *leaseHold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.drop != nil {
		h.drop()
		h.ctx, h.drop = nil, nil
	}
}

// errNoNewSyncs refuses a sync request once Shutdown began.
var errNoNewSyncs = fmt.Errorf("%w: no new syncs", ErrClosed)

func newScheduler(s *Service, name string, e ClusterSyncer) *scheduler {
	return &scheduler{s: s, name: name, engine: e, state: clusterState{status: ClusterStatus{Name: name}}}
}

// add queues a pushed job for the next sync (an automatic one: a cluster
// that syncs manually is not synced for it). False when the service has
// stopped and no sync can start.
func (c *scheduler) add(j *job) bool {
	overlap := c.s.replicas.overlap() && len(j.files) > 0
	c.mu.Lock()
	if cur := c.flight.answers; overlap && cur != nil && c.flight.head != "" && (j.head == c.flight.head || j.d.Commit == c.flight.head) {
		// The sync in flight syncs a tree holding the job's commit.
		c.mu.Unlock()
		if cur.adopt(j) {
			return true
		}
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if overlap && c.lane.background {
		if !c.lane.running {
			if !c.s.syncStarted() {
				return false
			}
			c.lane.running = true
			go c.foregroundLoop()
		}
		c.lane.jobs = append(c.lane.jobs, j)
		return true
	}
	if !c.startLocked() {
		return false
	}
	c.queue.addJob(j)
	return true
}

// request asks for a sync (full: compare every release with the live
// cluster; force: also when the cluster syncs manually; background: a
// start-up or drift check that deploy syncs go ahead of) and returns where
// its outcome will be sent. It is ErrClosed once Shutdown began.
func (c *scheduler) request(full, force, background bool) (<-chan syncOutcome, error) {
	if c.s.isClosed() {
		return nil, errNoNewSyncs
	}
	ch := make(chan syncOutcome, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.startLocked() {
		return nil, errNoNewSyncs
	}
	c.queue.addRequest(ch, full, force, background)
	return ch, nil
}

// startLocked starts the loop unless it runs; false when the service has
// stopped.
func (c *scheduler) startLocked() bool {
	if c.running {
		return true
	}
	if !c.s.syncStarted() {
		return false
	}
	c.running = true
	go c.loop()
	return true
}

// loop runs the cluster's syncs until the queue is empty.
func (c *scheduler) loop() {
	defer c.s.syncEnded()
	for {
		c.mu.Lock()
		b, ok := c.queue.take()
		if !ok {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ctx, held := c.s.replicas.hold(c.s.ctx, &c.lease, c.name)
		if !held {
			c.handBack(b.jobs, b.waiters, "its cluster's lease is held by another replica")
			continue
		}
		c.serve(ctx, b)
	}
}

// serve runs the sync of one batch and answers it.
func (c *scheduler) serve(ctx context.Context, b syncBatch) {
	c.mu.Lock()
	c.lane.background, c.lane.ahead = b.background, map[string]bool{}
	c.flight.jobs, c.flight.since = b.jobs, time.Now()
	c.mu.Unlock()

	ans := newAnswers(c.s, b.jobs)
	var onHead func(string)
	if !b.background {
		onHead = func(head string) {
			c.mu.Lock()
			c.flight.answers, c.flight.head = ans, head
			c.mu.Unlock()
		}
	}
	out := c.sync(ctx, b.full, b.force, b.background, ans.onRelease, onHead, ans.setRevert)
	c.mu.Lock()
	c.lane.background, c.lane.ahead = false, nil
	c.flight.jobs, c.flight.answers, c.flight.head = nil, nil, ""
	c.mu.Unlock()
	ans.close()
	jobs := ans.all() // with those adopted during the sync
	if c.s.replicas.lostDuring(ctx, c.name) {
		var left []*job
		for _, j := range jobs {
			if !ans.answered(j) {
				left = append(left, j)
			}
		}
		c.handBack(left, b.waiters, "its cluster's lease was lost during the sync")
		return
	}
	c.finish(jobs, ans, out)
	for _, ch := range b.waiters {
		ch <- out
	}
}

// foregroundLoop syncs the releases of the jobs added while a background
// sync runs (a start-up comparison, a drift repair), each release by
// itself (Options.Release), so that a deploy waits for its own releases
// only. Raw manifests and uninstalls, which a deploy does not change, are
// left to the cluster's next full sync.
func (c *scheduler) foregroundLoop() {
	defer c.s.syncEnded()
	for {
		c.mu.Lock()
		jobs := c.lane.jobs
		c.lane.jobs, c.flight.laneJobs, c.flight.laneSince = nil, jobs, time.Now()
		if len(jobs) == 0 {
			c.lane.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ans := newAnswers(c.s, jobs)
		out := c.syncReleases(jobs, ans.onRelease, ans.setRevert)
		ans.close()
		c.mu.Lock()
		c.flight.laneJobs = nil
		c.mu.Unlock()
		c.finish(jobs, ans, out)
	}
}

// finish finishes, with the outcome of their sync, the jobs its answers
// did not answer already.
func (c *scheduler) finish(jobs []*job, ans *answers, out syncOutcome) {
	for _, j := range jobs {
		switch {
		case out.notSynced != "":
			c.s.finishNotSynced(j, out)
		case ans.answered(j):
		default:
			c.s.finishSynced(j, c.restart(j, out))
		}
	}
}

// superseded reports whether a values file was synced at a newer head
// during the running background sync.
func (c *scheduler) superseded(file string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lane.ahead[file]
}

// markAheadLocked records that file is synced at a newer head than the
// running background sync's, if one runs.
func (c *scheduler) markAheadLocked(file string) {
	if c.lane.ahead != nil {
		c.lane.ahead[file] = true
	}
}

// lost cancels the syncs of a cluster whose lease this replica lost.
func (c *scheduler) lost() { c.lease.release() }

// handBack leaves jobs to the holder of the cluster's lease, their records
// pushed (it takes them over and finishes them), and tells waiting sync
// requests that this replica does not sync the cluster.
func (c *scheduler) handBack(jobs []*job, waiters []chan syncOutcome, why string) {
	for _, j := range jobs {
		c.s.replicas.leave(j, why)
		c.s.revertLeft(j)
	}
	for _, ch := range waiters {
		ch <- syncOutcome{err: notOwned(c.name)}
	}
}

// busy reports whether a sync runs or waits to run.
func (c *scheduler) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running || c.lane.running || !c.queue.empty()
}

// deployingLocked reports whether a deploy that changed the values file
// repairs a drift seen at: one queued, or one whose sync began after the
// drift (a sync compares the release with the live cluster after it began
// and applies the repo's state).
func (c *scheduler) deployingLocked(file string, at time.Time) bool {
	return c.queue.covers(file) || changes(c.lane.jobs, file) ||
		(at.Before(c.flight.since) && changes(c.flight.jobs, file)) || (at.Before(c.flight.laneSince) && changes(c.flight.laneJobs, file))
}

// changes reports whether one of jobs changed file.
func changes(jobs []*job, file string) bool {
	for _, j := range jobs {
		if j.d.Changed && slices.Contains(j.files, file) {
			return true
		}
	}
	return false
}
