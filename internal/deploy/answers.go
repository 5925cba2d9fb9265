package deploy

import (
	"slices"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
)

// answers answers the jobs of one sync as soon as all of their releases
// are synced, instead of when the whole cluster is: in a batch touching
// many releases, each request waits only for its own.
//
// The engine hands each release's result to onRelease on a goroutine of
// its own, while it holds the release's slot: onRelease only records the
// result and wakes the answerer, a goroutine that the scheduler starts
// with the sync and ends after it (close). Every store write, waiter close
// and notification of an answer happens there or in the scheduler's loop,
// never on an engine goroutine.
type answers struct {
	s       *Service
	started time.Time
	kick    chan struct{} // a result or a job arrived
	stop    chan struct{} // the sync ended (close)
	done    chan struct{} // the answerer returned

	mu       sync.Mutex
	closed   bool
	jobs     []*job
	results  map[string]reconcile.ReleaseResult // by values file
	finished map[*job]bool
	revert   map[string]bool // values files whose failure policy is revert
}

// newAnswers starts the answerer of a sync serving jobs.
func newAnswers(s *Service, jobs []*job) *answers {
	a := &answers{s: s, started: s.cfg.Now(), jobs: jobs, results: map[string]reconcile.ReleaseResult{}, finished: map[*job]bool{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// setRevert records the values files whose failure policy is revert in
// the tree the sync read, before it syncs them.
func (a *answers) setRevert(files map[string]bool) {
	a.mu.Lock()
	a.revert = files
	a.mu.Unlock()
}

// onRelease records a release's result (reconcile.Options.OnRelease); it
// never blocks.
func (a *answers) onRelease(rr reconcile.ReleaseResult) {
	a.mu.Lock()
	a.results[rr.File] = rr
	a.mu.Unlock()
	a.wake()
}

// adopt adds a job pushed while the sync runs, at a head the sync's tree
// holds; it is answered as soon as its releases are synced, at once when
// they are already. False once the sync ended: the job waits for the next.
func (a *answers) adopt(j *job) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.jobs = append(a.jobs, j)
	a.mu.Unlock()
	a.wake()
	return true
}

func (a *answers) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *answers) run() {
	defer close(a.done)
	for {
		select {
		case <-a.kick:
			a.answer()
		case <-a.stop:
			a.answer()
			return
		}
	}
}

// close ends the answerer once it answered every job whose releases the
// sync synced; call it when the sync returned, before done and all.
func (a *answers) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
}

// answer finishes the jobs whose releases are all synced.
func (a *answers) answer() {
	a.mu.Lock()
	var ready []*job
	for _, j := range a.jobs {
		if a.finished[j] || len(j.files) == 0 || (j.d.Request.Restart && !j.d.Changed) {
			continue // restarts are finished after the sync
		}
		complete := true
		for _, file := range j.files {
			if _, ok := a.results[file]; !ok {
				complete = false
				break
			}
		}
		if complete {
			a.finished[j] = true
			ready = append(ready, j)
		}
	}
	if len(ready) == 0 {
		a.mu.Unlock()
		return
	}
	res := &reconcile.Result{}
	for _, r := range a.results {
		res.Releases = append(res.Releases, r)
	}
	revert := a.revert
	a.mu.Unlock()
	for _, j := range ready {
		a.s.finishSynced(j, syncOutcome{res: res, started: a.started, revert: revert})
	}
}

// all returns the jobs, those adopted included.
func (a *answers) all() []*job {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.jobs)
}

// answered reports whether j was answered before the sync ended.
func (a *answers) answered(j *job) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.finished[j]
}

// restart rolls the workloads of the job's releases when the job asked
// for a restart and changed nothing (a changed image rolls them anyway),
// and returns the outcome to finish the job with: the sync's, with the
// restart's results for those releases.
func (c *scheduler) restart(j *job, out syncOutcome) syncOutcome {
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
	if s.revertFailed(j, out, end) {
		return // finished when its revert is
	}
	s.finish(j, func(d *Deployment) {
		d.Times.Synced, d.Synced = out.started, new(true)
		if out.err != nil {
			d.Status, d.Stage, d.Error = Failed, StageSync, out.err.Error()
			return
		}
		Settle(d, j.files, out.res, end)
	})
}
