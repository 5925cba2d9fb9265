package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// clusterSync serialises and coalesces the syncs of one cluster: whoever
// asks while a sync runs is served by the next one, which covers every
// request made before it started.
type clusterSync struct {
	s      *Service
	name   string
	engine ClusterSyncer

	mu      sync.Mutex
	running bool
	jobs    []*job
	waiters []chan syncOutcome
	full    bool
	// force is set by an explicit sync request: it syncs a cluster whose
	// sync policy is manual too.
	force bool
	// foreground is set by a request somebody waits for: the next sync
	// is a background one (Options.Background) only when no job and no
	// such request is served by it.
	foreground bool
	// inBackground is set while the loop runs a background sync; jobs
	// added meanwhile go to the foreground lane (fgJobs), which syncs
	// just their releases at once instead of after the background sync.
	inBackground bool
	// ahead are the values files the foreground lane synced during the
	// running background sync: at a newer head, so the background sync
	// leaves them alone (Options.Superseded) instead of rolling them back.
	ahead     map[string]bool
	fgJobs    []*job
	fgRunning bool
	// current is the early finisher of the loop's sync in flight and
	// currentHead the head it syncs (once its snapshot is taken): a job
	// pushed meanwhile whose commit that head holds is answered by it
	// instead of by the next sync.
	current     *earlyFinish
	currentHead string
	status      ClusterStatus
	inputs      string // digest of the cluster's files at the last sync
	// skipped is the digest of the cluster's files when an automatic sync
	// was skipped because the cluster syncs manually.
	skipped string
	// drifted are the objects (Kind/namespace/name) counted in
	// status.Drift: those that differed at the last drift check and those
	// the engine's watches saw drift since.
	drifted map[string]driftMark
	// policy and manual are the cluster's drift policy and sync mode at
	// its last sync or drift check: a drift the watches see is repaired
	// (repair) under drift: repair unless the cluster syncs manually.
	policy string
	manual bool
	repair repairs
	// inFlight and fgInFlight are the jobs the loop and the foreground
	// lane are syncing, since inFlightAt and fgInFlightAt (time.Now).
	inFlight, fgInFlight     []*job
	inFlightAt, fgInFlightAt time.Time
	// hold is the context of the syncs while this replica holds the
	// cluster's lease (records shared by several replicas); drop cancels
	// it when the lease is lost, so that a replica that lost the lease
	// stops writing to the cluster before another one takes it.
	hold context.Context
	drop context.CancelFunc
}

// syncOutcome is the result of one sync of a cluster.
type syncOutcome struct {
	res     *reconcile.Result
	head    string
	started time.Time
	timeout time.Duration // the cluster's rollout timeout
	err     error
	// notSynced says why an automatic sync did not run (the cluster syncs
	// manually); res is nil then.
	notSynced string
}

// ClusterStatus is what mgo knows of a cluster.
type ClusterStatus struct {
	Name       string            `json:"name"`
	Head       string            `json:"head,omitempty"` // commit of the last sync
	LastSync   time.Time         `json:"lastSync,omitzero"`
	Failed     bool              `json:"failed"`
	Error      string            `json:"error,omitempty"`
	Releases   int               `json:"releases"`
	LastResult *reconcile.Result `json:"-"`
	// Drift is the number of objects that differed from the repo at the
	// last drift check, plus those the engine's watches saw drift since
	// (reported within moments of the change); DriftChecked is when the
	// count last changed or was checked.
	Drift        int       `json:"drift"`
	DriftChecked time.Time `json:"driftChecked,omitzero"`
	// Manual is set when the cluster syncs only when asked (sync: manual
	// in mygitops.yaml); Pending is then the head an automatic sync
	// skipped, until an explicit sync.
	Manual  bool   `json:"manual,omitempty"`
	Pending string `json:"pending,omitempty"`
}

func newClusterSync(s *Service, name string, e ClusterSyncer) *clusterSync {
	return &clusterSync{s: s, name: name, engine: e, status: ClusterStatus{Name: name}}
}

// add queues a pushed job for the next sync (an automatic one: a cluster
// that syncs manually is not synced for it). False when the service has
// stopped and no sync can start.
func (c *clusterSync) add(j *job) bool {
	c.mu.Lock()
	if cur := c.current; cur != nil && c.currentHead != "" && len(j.files) > 0 && c.s.shared == nil && (j.head == c.currentHead || j.d.Commit == c.currentHead) {
		// The sync in flight syncs a tree holding the job's commit.
		c.mu.Unlock()
		cur.adopt(j)
		return true
	}
	defer c.mu.Unlock()
	// With records shared by several replicas the lane stays off: the
	// holder's syncs after taking a lease also finish adopted records, and
	// two lanes over one cluster lost Helm revisions to each other in the
	// failover test ("release: already exists"); those jobs wait for the
	// next sync as before.
	if c.inBackground && len(j.files) > 0 && c.s.shared == nil {
		if !c.fgRunning {
			if !c.s.syncStarted() {
				return false
			}
			c.fgRunning = true
			go c.foregroundLoop()
		}
		c.fgJobs = append(c.fgJobs, j)
		return true
	}
	if !c.startLocked() {
		return false
	}
	c.jobs = append(c.jobs, j)
	return true
}

// foregroundLoop syncs the releases of the jobs added while a background
// sync runs (a start-up comparison, a drift repair), each release by
// itself (Options.Release), so that a deploy waits for its own releases
// only. Raw manifests and uninstalls, which a deploy does not change, are
// left to the cluster's next full sync.
func (c *clusterSync) foregroundLoop() {
	defer c.s.syncEnded()
	for {
		c.mu.Lock()
		jobs := c.fgJobs
		c.fgJobs, c.fgInFlight, c.fgInFlightAt = nil, jobs, time.Now()
		if len(jobs) == 0 {
			c.fgRunning = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		early := newEarlyFinish(c.s, jobs)
		out := c.syncReleases(jobs, early.onRelease)
		c.mu.Lock()
		c.fgInFlight = nil
		c.mu.Unlock()
		for _, j := range jobs {
			switch {
			case out.notSynced != "":
				c.s.finishNotSynced(j, out)
			case early.done(j):
			default:
				c.s.finishSynced(j, c.restart(j, out))
			}
		}
	}
}

// superseded reports whether the foreground lane synced a values file
// during the running background sync.
func (c *clusterSync) superseded(file string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ahead[file]
}

// syncReleases syncs the releases of the jobs' values files at the
// current head, each release by itself and all at once (the engine's
// slots bound them, before any background sync's releases). onRelease is
// called with each release's result as soon as it is synced, so that a
// job is answered when its own releases are.
func (c *clusterSync) syncReleases(jobs []*job, onRelease func(reconcile.ReleaseResult)) syncOutcome {
	ctx := c.s.ctx
	out := syncOutcome{started: c.s.cfg.Now()}
	err := c.s.withSnapshot(ctx, func(dir, head string) error {
		out.head = head
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: c.name, Cache: c.s.parsed})
		if err != nil {
			return err
		}
		settings := r.Config.Cluster(c.name)
		out.timeout = settings.Timeout
		c.setPolicy(settings)
		if settings.Sync == repo.SyncManual {
			out.notSynced = fmt.Sprintf("not synced: cluster %s syncs manually (sync: %s in %s); POST /api/v1/clusters/%s/sync to sync it",
				c.name, repo.SyncManual, repo.ConfigFile, c.name)
			return nil
		}
		files := map[string]bool{}
		for _, j := range jobs {
			for _, f := range j.files {
				files[f] = true
			}
		}
		var names []string
		c.mu.Lock()
		if rc, ok := r.Clusters[c.name]; ok {
			for _, rel := range rc.Releases {
				if files[rel.File] && !slices.Contains(names, rel.Header.Name) {
					names = append(names, rel.Header.Name)
				}
				if files[rel.File] && c.ahead != nil {
					c.ahead[rel.File] = true
				}
			}
		}
		c.mu.Unlock()
		res := &reconcile.Result{Cluster: c.name}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for _, name := range names {
			wg.Go(func() {
				rr, err := c.engine.Sync(ctx, r, reconcile.Options{Release: name, OnRelease: onRelease})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				res.Releases = append(res.Releases, rr.Releases...)
			})
		}
		wg.Wait()
		out.res = res
		return errors.Join(errs...)
	})
	out.err = err
	result := "succeeded"
	if err != nil || (out.res != nil && out.res.Failed()) {
		result = "failed"
	}
	if out.notSynced == "" {
		c.s.cfg.Metrics.Syncs.WithLabelValues(c.name, result).Observe(c.s.cfg.Now().Sub(out.started).Seconds())
	}
	if err != nil {
		c.s.log.Error("sync of deployed releases failed", "cluster", c.name, "error", err)
	}
	return out
}

// request asks for a sync (full: compare every release with the live
// cluster; force: also when the cluster syncs manually; background: a
// start-up or drift check that deploy syncs go ahead of) and returns where
// its outcome will be sent. It is ErrClosed once Shutdown began.
func (c *clusterSync) request(full, force, background bool) (<-chan syncOutcome, error) {
	if c.s.isClosed() {
		return nil, fmt.Errorf("%w: no new syncs", ErrClosed)
	}
	ch := make(chan syncOutcome, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.startLocked() {
		return nil, fmt.Errorf("%w: no new syncs", ErrClosed)
	}
	c.waiters = append(c.waiters, ch)
	c.full = c.full || full
	c.force = c.force || force
	c.foreground = c.foreground || !background
	return ch, nil
}

// startLocked starts the sync goroutine unless it runs; false when the
// service has stopped.
func (c *clusterSync) startLocked() bool {
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

func (c *clusterSync) loop() {
	defer c.s.syncEnded()
	for {
		c.mu.Lock()
		jobs, waiters, full, force := c.jobs, c.waiters, c.full, c.force
		background := len(jobs) == 0 && !c.foreground
		c.jobs, c.waiters, c.full, c.force, c.foreground = nil, nil, false, false, false
		if len(jobs) == 0 && len(waiters) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ctx, held := c.holdContext()
		if !held {
			c.handBack(jobs, waiters, "its cluster's lease is held by another replica")
			continue
		}
		c.mu.Lock()
		c.inBackground, c.ahead, c.inFlight, c.inFlightAt = background, map[string]bool{}, jobs, time.Now()
		c.mu.Unlock()

		early := newEarlyFinish(c.s, jobs)
		var onHead func(string)
		if !background {
			onHead = func(head string) {
				c.mu.Lock()
				c.current, c.currentHead = early, head
				c.mu.Unlock()
			}
		}
		out := c.sync(ctx, full, force, background, early.onRelease, onHead)
		c.mu.Lock()
		c.inBackground, c.ahead, c.inFlight = false, nil, nil
		c.current, c.currentHead = nil, ""
		c.mu.Unlock()
		jobs = early.all() // with those adopted during the sync
		if c.lostDuring(ctx) {
			var left []*job
			for _, j := range jobs {
				if !early.done(j) {
					left = append(left, j)
				}
			}
			c.handBack(left, waiters, "its cluster's lease was lost during the sync")
			continue
		}
		if out.notSynced != "" {
			for _, j := range jobs {
				c.s.finishNotSynced(j, out)
			}
			for _, ch := range waiters {
				ch <- out
			}
			continue
		}
		for _, j := range jobs {
			if early.done(j) {
				continue
			}
			c.s.finishSynced(j, c.restart(j, out))
		}
		for _, ch := range waiters {
			ch <- out
		}
	}
}

// sync syncs the cluster from a snapshot of the tree at the current head.
// Unless force is set, a cluster whose sync policy at that head is manual
// is not synced: the outcome says so in notSynced.
func (c *clusterSync) sync(ctx context.Context, full, force, background bool, onRelease func(reconcile.ReleaseResult), onHead func(string)) syncOutcome {
	out := syncOutcome{started: c.s.cfg.Now()}
	var inputs string
	manual := false
	err := c.s.withSnapshot(ctx, func(dir, head string) error {
		out.head = head
		if onHead != nil {
			onHead(head)
		}
		var err error
		if inputs, err = clusterInputs(dir, c.name); err != nil {
			return err
		}
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: c.name, Cache: c.s.parsed})
		if err != nil {
			return err
		}
		settings := r.Config.Cluster(c.name)
		out.timeout = settings.Timeout
		manual = settings.Sync == repo.SyncManual
		c.setPolicy(settings)
		if manual && !force {
			out.notSynced = fmt.Sprintf("not synced: cluster %s syncs manually (sync: %s in %s); POST /api/v1/clusters/%s/sync to sync it",
				c.name, repo.SyncManual, repo.ConfigFile, c.name)
			return nil
		}
		opts := reconcile.Options{Full: full, Background: background, OnRelease: onRelease}
		if background {
			opts.Superseded = c.superseded
		}
		out.res, err = c.engine.Sync(ctx, r, opts)
		return err
	})
	out.err = err
	if err == nil && out.notSynced != "" {
		c.mu.Lock()
		c.skipped = inputs
		c.status.Manual, c.status.Pending = true, out.head
		c.mu.Unlock()
		c.s.log.Info("automatic sync skipped: the cluster syncs manually", "cluster", c.name, "head", out.head)
		return out
	}
	result := "succeeded"
	if err != nil || out.res.Failed() {
		result = "failed"
	}
	c.s.cfg.Metrics.Syncs.WithLabelValues(c.name, result).Observe(c.s.cfg.Now().Sub(out.started).Seconds())

	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.status
	st.LastSync, st.Head, st.Failed, st.Error = c.s.cfg.Now(), out.head, result == "failed", ""
	if err != nil {
		st.Error = err.Error()
		c.s.log.Error("sync failed", "cluster", c.name, "error", err)
		return out
	}
	c.inputs = inputs
	st.Manual, st.Pending = manual, ""
	st.LastResult, st.Releases = out.res, len(out.res.Releases)
	if out.res.RawError != "" {
		st.Error = "raw manifests: " + out.res.RawError
	}
	return out
}

// holdContext returns the context of a sync and whether this replica may
// sync the cluster: always when it is alone; with shared records, while
// it holds the cluster's lease, with a context cancelled when the lease
// is lost (lost). The context is taken before ownership is looked at, so
// a loss after the look cancels it.
func (c *clusterSync) holdContext() (context.Context, bool) {
	s := c.s
	if s.shared == nil {
		return s.ctx, true
	}
	c.mu.Lock()
	if c.hold == nil || c.hold.Err() != nil {
		c.hold, c.drop = context.WithCancel(s.ctx)
	}
	ctx := c.hold
	c.mu.Unlock()
	return ctx, s.owns(c.name)
}

// lost cancels the syncs of a cluster whose lease this replica lost.
func (c *clusterSync) lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drop != nil {
		c.drop()
		c.hold, c.drop = nil, nil
	}
}

// lostDuring reports whether the lease of the cluster was lost while a
// sync with ctx ran (not whether the service stopped): what the sync did
// not finish is the new holder's to finish.
func (c *clusterSync) lostDuring(ctx context.Context) bool {
	s := c.s
	if s.shared == nil || s.ctx.Err() != nil {
		return false
	}
	return ctx.Err() != nil || !s.owns(c.name)
}

// handBack leaves jobs to the holder of the cluster's lease, their records
// pushed (it takes them over and finishes them), and tells waiting sync
// requests that this replica does not sync the cluster.
func (c *clusterSync) handBack(jobs []*job, waiters []chan syncOutcome, why string) {
	for _, j := range jobs {
		c.s.shared.leave(j, why)
	}
	for _, ch := range waiters {
		ch <- syncOutcome{err: notOwned(c.name)}
	}
}

// earlyFinish answers a job as soon as all of its releases are synced,
// instead of when the whole cluster is: in a batch touching many releases,
// each request waits only for its own.
type earlyFinish struct {
	s        *Service
	started  time.Time
	mu       sync.Mutex
	jobs     []*job
	results  map[string]reconcile.ReleaseResult // by values file
	finished map[*job]bool
}

func newEarlyFinish(s *Service, jobs []*job) *earlyFinish {
	return &earlyFinish{s: s, started: s.cfg.Now(), jobs: jobs, results: map[string]reconcile.ReleaseResult{}, finished: map[*job]bool{}}
}

func (f *earlyFinish) onRelease(rr reconcile.ReleaseResult) {
	f.mu.Lock()
	f.results[rr.File] = rr
	f.answerLocked()
}

// adopt adds a job pushed while the sync runs, at a head the sync's tree
// holds; it is answered at once when its releases are synced already.
func (f *earlyFinish) adopt(j *job) {
	f.mu.Lock()
	f.jobs = append(f.jobs, j)
	f.answerLocked()
}

// all returns the jobs, those adopted included.
func (f *earlyFinish) all() []*job {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs)
}

// answerLocked answers the jobs whose releases are all synced; it unlocks
// f.mu.
func (f *earlyFinish) answerLocked() {
	var ready []*job
	for _, j := range f.jobs {
		if f.finished[j] || len(j.files) == 0 || (j.d.Request.Restart && !j.d.Changed) {
			continue // restarts are finished after the sync
		}
		complete := true
		for _, file := range j.files {
			if _, ok := f.results[file]; !ok {
				complete = false
				break
			}
		}
		if complete {
			f.finished[j] = true
			ready = append(ready, j)
		}
	}
	if len(ready) == 0 {
		f.mu.Unlock()
		return
	}
	res := &reconcile.Result{}
	for _, r := range f.results {
		res.Releases = append(res.Releases, r)
	}
	f.mu.Unlock()
	for _, j := range ready {
		f.s.finishSynced(j, syncOutcome{res: res, started: f.started})
	}
}

func (f *earlyFinish) done(j *job) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished[j]
}

// restart rolls the workloads of the job's releases when the job asked
// for a restart and changed nothing (a changed image rolls them anyway),
// and returns the outcome to finish the job with: the sync's, with the
// restart's results for those releases.
func (c *clusterSync) restart(j *job, out syncOutcome) syncOutcome {
	if !j.d.Request.Restart || j.d.Changed || out.err != nil {
		return out
	}
	// The sync's outcome is shared by the batch: this job gets its own copy.
	res := *out.res
	res.Releases = slices.Clone(out.res.Releases)
	out.res = &res
	for i, rr := range res.Releases {
		if !slices.Contains(j.files, rr.File) || rr.Action == reconcile.Failed {
			continue
		}
		objs, err := c.engine.Restart(c.s.ctx, rr.Namespace, rr.Name, out.timeout)
		rr.Objects = objs
		rr.Action = reconcile.Restarted
		if err != nil {
			rr.Action, rr.Stage, rr.Error = reconcile.Failed, reconcile.StageWait, err.Error()
		}
		res.Releases[i] = rr
	}
	return out
}

// Status returns what mgo knows of the cluster.
func (c *clusterSync) Status() ClusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// finishNotSynced finishes a job of a cluster that syncs manually: the
// change is committed and pushed, the cluster was not synced for it.
func (s *Service) finishNotSynced(j *job, out syncOutcome) {
	s.finish(j, func(d *Deployment) {
		d.Status, d.Synced, d.Message = Succeeded, new(false), out.notSynced
		if d.Request.Restart && !d.Changed {
			d.Message += "; the restart was not done"
		}
	})
}

// finishSynced finishes a job with the outcome of its cluster's sync: the
// results of the job's releases, failed when any of them failed.
func (s *Service) finishSynced(j *job, out syncOutcome) {
	end := s.cfg.Now()
	s.finish(j, func(d *Deployment) {
		d.Times.Synced, d.Synced = out.started, new(true)
		if out.err != nil {
			d.Status, d.Stage, d.Error = Failed, StageSync, out.err.Error()
			return
		}
		settle(d, j.files, out.res, end)
	})
}

// Sync syncs a cluster now (full: compare every release with the live
// cluster) and returns the result. It is an explicit request: a cluster
// that syncs manually is synced too.
func (s *Service) Sync(ctx context.Context, cluster string, full bool) (*reconcile.Result, error) {
	out, err := s.sync(ctx, cluster, full, true, false)
	return out.res, err
}

// sync requests a sync and waits for its outcome; without force, a
// cluster that syncs manually is not synced (outcome.notSynced). A
// background sync (start-up, drift check) gives way to deploy syncs.
func (s *Service) sync(ctx context.Context, cluster string, full, force, background bool) (syncOutcome, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return syncOutcome{}, err
	}
	if !s.owns(cluster) {
		return syncOutcome{}, notOwned(cluster)
	}
	ch, err := c.request(full, force, background)
	if err != nil {
		return syncOutcome{}, err
	}
	select {
	case out := <-ch:
		return out, out.err
	case <-ctx.Done():
		return syncOutcome{}, ctx.Err()
	}
}

// StartupSync syncs every served cluster once (full), as mgo serve does at
// start, except those that sync manually, and waits for them. It logs
// each outcome.
func (s *Service) StartupSync(ctx context.Context) {
	var wg sync.WaitGroup
	for _, name := range s.Clusters() {
		wg.Go(func() {
			out, err := s.sync(ctx, name, true, false, true)
			switch {
			case err != nil:
				s.log.Error("initial sync failed", "cluster", name, "error", err)
			case out.notSynced != "":
				s.log.Info("initial sync skipped: the cluster syncs manually", "cluster", name)
			case out.res.Failed():
				s.log.Warn("initial sync: some releases failed", "cluster", name, "result", out.res.String())
			default:
				s.log.Info("initial sync done", "cluster", name, "head", out.head)
			}
		})
	}
	wg.Wait()
}

// Diff compares a cluster with the repo at the current head.
func (s *Service) Diff(ctx context.Context, cluster string) (*reconcile.DiffResult, error) {
	res, _, err := s.diff(ctx, cluster, false)
	return res, err
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
		if od.Action != "unchanged" {
			drifted[od.Subject] = driftMark{at: now}
		}
	}
	for _, rd := range res.Releases {
		for _, od := range rd.Objects {
			if od.Action != "unchanged" {
				drifted[od.Subject] = driftMark{release: rd.Namespace + "/" + rd.Name, at: now}
			}
		}
	}
	c.mu.Lock()
	// A drift the watches reported after this diff began may be newer than
	// what the diff compared (through the cache): it stays counted.
	for subj, m := range c.drifted {
		if _, ok := drifted[subj]; !ok && m.at.After(began) {
			drifted[subj] = m
		}
	}
	n := len(drifted)
	c.status.Drift, c.status.DriftChecked, c.drifted = n, now, drifted
	c.mu.Unlock()
	s.cfg.Metrics.Drift.WithLabelValues(cluster).Set(float64(n))
	return res, policy, nil
}

// ClusterStatus returns the status of one cluster.
func (s *Service) ClusterStatus(cluster string) (ClusterStatus, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return ClusterStatus{}, err
	}
	return c.Status(), nil
}

// cluster returns the sync of a served cluster, or a *NotFoundError.
func (s *Service) cluster(name string) (*clusterSync, error) {
	c, ok := s.clusters[name]
	if !ok {
		return nil, &NotFoundError{What: "cluster", Name: name, Known: s.Clusters()}
	}
	return c, nil
}

// Refresh fetches the repo and syncs every cluster whose files changed
// since its last sync (a push by a person, seen by a webhook or a poll),
// except those that sync manually. It returns the clusters it synced.
func (s *Service) Refresh(ctx context.Context) ([]string, error) {
	if _, err := s.cfg.Git.Fetch(ctx); err != nil {
		return nil, err
	}
	var changed []string
	err := s.cfg.Git.Read(ctx, func(dir, _ string) error {
		for _, name := range s.Clusters() {
			if !s.owns(name) {
				continue // its lease holder syncs it
			}
			d, err := clusterInputs(dir, name)
			if err != nil {
				return err
			}
			c := s.clusters[name]
			c.mu.Lock()
			if d != c.inputs && d != c.skipped {
				changed = append(changed, name)
			}
			c.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var synced []string
	for _, name := range changed {
		wg.Go(func() {
			out, err := s.sync(ctx, name, false, false, false)
			if err == nil && out.notSynced != "" {
				return
			}
			if ctx.Err() == nil {
				s.notify(s.pushedChangeEvent(ctx, name, out, err))
			}
			mu.Lock()
			synced = append(synced, name)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(synced)
	return synced, nil
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
func (c *clusterSync) onDrift(d reconcile.Drift) {
	s := c.s
	if s.isClosed() || !s.owns(c.name) {
		return
	}
	c.mu.Lock()
	c.repairLaterLocked(d)
	if m, ok := c.drifted[d.Subject]; ok {
		m.at = d.At // seen again: not covered by a repair that began before
		c.drifted[d.Subject] = m
		c.mu.Unlock()
		return
	}
	if c.drifted == nil {
		c.drifted = map[string]driftMark{}
	}
	c.drifted[d.Subject] = driftMark{release: d.Namespace + "/" + d.Release, at: d.At}
	n := len(c.drifted)
	c.status.Drift, c.status.DriftChecked = n, s.cfg.Now()
	c.mu.Unlock()
	s.cfg.Metrics.Drift.WithLabelValues(c.name).Set(float64(n))
	s.log.Warn("drift: an object of a release changed behind mgo's back", "cluster", c.name,
		"release", d.Namespace+"/"+d.Release, "object", d.Subject, "change", d.Change, "objects", n)
	s.notify(notify.Event{Type: notify.DriftDetected, Cluster: c.name, Objects: n,
		Releases: []notify.Release{{Name: d.Release, Namespace: d.Namespace}},
		Summary:  fmt.Sprintf("%s of release %s/%s %s behind mgo's back; %d objects in %s differ from the repo", d.Subject, d.Namespace, d.Release, d.Change, n, c.name)})
}

// withSnapshot brings a private copy of the checked-out tree (at the last
// fetched head) up to date (snapshots) and runs fn on it, so fn may take
// as long as a rollout without blocking commits.
func (s *Service) withSnapshot(ctx context.Context, fn func(dir, head string) error) error {
	var head string
	var sn *snapshot
	err := s.cfg.Git.Read(ctx, func(src, h string) error {
		head = h
		var err error
		sn, err = s.snapshots.take(src)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot of the repo: %w", err)
	}
	defer s.snapshots.give(sn)
	return fn(sn.dir, head)
}

// clusterInputs digests everything a sync of cluster reads: its
// installations directory, the repo's charts and mygitops.yaml.
func clusterInputs(dir, cluster string) (string, error) {
	h := sha256.New()
	for _, root := range []string{filepath.Join(repo.InstallationsDir, cluster), "charts", repo.ConfigFile} {
		err := filepath.WalkDir(filepath.Join(dir, root), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if d.Type()&fs.ModeSymlink != 0 {
				// A link is an input too: the loader refuses it.
				to, err := os.Readlink(p)
				fmt.Fprintf(h, "%s\x00link\x00%s\x00", filepath.ToSlash(rel), to)
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
