package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/mygitops/mgo/internal/faults"
)

// ChangeFunc edits files in the work tree at worktree (an absolute path)
// and reports whether it changed anything. It may run more than once for
// one request: after a lost push race it runs again on a fresh tree, so it
// must compute its edit from the files it finds, not replay a diff. It must
// not touch .git.
type ChangeFunc func(worktree string) (changed bool, err error)

// CommitInfo describes the commit for one change.
type CommitInfo struct {
	// Author is the requester as given (see ParseAuthor).
	Author string `json:"author"`
	Message
}

// Change is one request of a batch.
type Change struct {
	Func ChangeFunc
	Info CommitInfo
}

// Result is the outcome of Apply or Revert.
type Result struct {
	// Changed reports whether a commit was pushed.
	Changed bool `json:"changed"`
	// Commit is the pushed commit ("" when nothing changed).
	Commit string `json:"commit,omitempty"`
	// Head is the remote branch head afterwards: Commit, or the head found
	// when nothing changed.
	Head string `json:"head"`
	// Attempts counts pushes (0 when nothing changed; more than 1 when
	// pushes lost races and the change was re-applied).
	Attempts int `json:"attempts"`
}

// BatchResult is the outcome of ApplyBatch.
type BatchResult struct {
	// Head is the remote branch head afterwards.
	Head string `json:"head"`
	// Attempts counts pushes, as in Result.
	Attempts int `json:"attempts"`
	// Changes holds one result per change, in order.
	Changes []ChangeResult `json:"changes"`
}

// ChangeResult is the outcome of one change of a batch.
type ChangeResult struct {
	Changed bool   `json:"changed"`
	Commit  string `json:"commit,omitempty"`
	// Err is the change's own failure (invalid author or message, or its
	// ChangeFunc failed, wrapped in ErrChange); it was not committed.
	Err error `json:"-"`
}

// Apply fetches, resets the work tree to the remote branch head, runs
// change, and when it changed something commits it (author info.Author,
// committer Options.Committer) and pushes. A push that loses a race is
// retried on the new head with change run again, up to
// Options.PushRetries times. When change reports no change, or the tree is
// identical, nothing is committed: Result.Changed is false and Result.Head
// is the current remote head.
func (r *Repo) Apply(ctx context.Context, change ChangeFunc, info CommitInfo) (Result, error) {
	br, err := r.ApplyBatch(ctx, []Change{{Func: change, Info: info}})
	res := Result{Head: br.Head, Attempts: br.Attempts}
	if len(br.Changes) == 1 {
		res.Changed, res.Commit = br.Changes[0].Changed, br.Changes[0].Commit
		if err == nil {
			err = br.Changes[0].Err
		}
	}
	return res, err
}

// ApplyBatch applies changes in order, each as its own commit with its own
// author, and pushes once. On a lost push race all of them are applied
// again on the new head. A change whose info is invalid or whose ChangeFunc
// fails is skipped (its ChangeResult.Err says why) and the others go on.
// The returned error is for the batch as a whole (fetch, push, retries
// exhausted); then nothing was pushed.
func (r *Repo) ApplyBatch(ctx context.Context, changes []Change) (BatchResult, error) {
	res := BatchResult{Changes: make([]ChangeResult, len(changes))}
	if err := r.lockW(ctx); err != nil {
		return res, err
	}
	defer r.unlockW()
	if err := r.openLocked(ctx); err != nil {
		return res, err
	}
	res.Head = r.head.String()
	ps := make([]prepared, len(changes))
	for i, c := range changes {
		ps[i], res.Changes[i].Err = r.prepare(c)
	}
	base, err := r.fetchLocked(ctx)
	if err != nil {
		return res, r.restore(err)
	}
	err = r.commitAndPush(ctx, &res, ps, base)
	return res, err
}

// prepared is a change with its author parsed and message validated.
type prepared struct {
	fn     ChangeFunc
	author Identity
	msg    string
	ok     bool
}

func (r *Repo) prepare(c Change) (prepared, error) {
	if c.Func == nil {
		return prepared{}, fmt.Errorf("%w: no change function", ErrChange)
	}
	author, err := ParseAuthor(c.Info.Author)
	if err != nil {
		return prepared{}, err
	}
	if err := c.Info.Message.Validate(); err != nil {
		return prepared{}, err
	}
	return prepared{fn: c.Func, author: author, msg: c.Info.Message.String(), ok: true}, nil
}

// commitAndPush is the write path from a freshly fetched base: per attempt
// reset to base, commit every change, push; on a lost race back off, fetch
// and go again. The commits are made with readers held off (local); the
// work tree then goes back to base for the push, so that Read never sees
// a commit that is not on the remote nor waits for the network, and moves
// to the new head once the push landed.
func (r *Repo) commitAndPush(ctx context.Context, res *BatchResult, changes []prepared, base plumbing.Hash) error {
	res.Head = base.String()
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		var commits int
		var tip plumbing.Hash
		err := r.local(func() error {
			var err error
			if commits, err = r.commitAll(base, res, changes); err != nil || commits == 0 {
				return err
			}
			tip = r.head
			faults.Point(faults.AfterCommit)
			return r.checkout(base)
		})
		if err != nil {
			return r.fail(res, err)
		}
		if commits == 0 {
			// Nothing to push; the tree is at base.
			res.Head = base.String()
			if err := r.persist(); err != nil {
				return r.fail(res, err)
			}
			return nil
		}
		res.Attempts = attempt
		t1 := time.Now()
		pushErr := r.push(ctx, base, tip)
		r.log.Debug("push attempt", "attempt", attempt, "base", base.String(), "commits", commits,
			"commitDuration", t1.Sub(t0), "pushDuration", time.Since(t1), "ok", pushErr == nil)
		if pushErr == nil {
			r.landed(res, tip, attempt)
			return nil
		}
		if ctx.Err() != nil || errors.Is(pushErr, ErrAuth) || errors.Is(pushErr, ErrHostKey) {
			return r.fail(res, pushErr)
		}
		// The push failed: it lost a race if the branch moved since base.
		last := attempt > r.opts.PushRetries
		if !last {
			if err := sleep(ctx, r.backoff(attempt)); err != nil {
				return r.fail(res, fmt.Errorf("%w (waiting to retry: %w)", pushErr, err))
			}
		}
		newBase, err := r.fetchLocked(ctx)
		if err != nil {
			return r.fail(res, fmt.Errorf("%w; then %w", pushErr, err))
		}
		if newBase == tip {
			// The push landed although its answer was lost.
			r.log.Info("push failed but its commits are on the remote", "cause", pushErr.Error())
			r.landed(res, tip, attempt)
			return nil
		}
		if newBase == base {
			if _, refused := errors.AsType[refusal](pushErr); refused {
				return r.fail(res, fmt.Errorf("%w: %w", ErrPushRejected, pushErr))
			}
			// No answer (a timeout, a dropped connection, an error
			// status): not a refusal of the update.
			return r.fail(res, pushErr)
		}
		if last {
			return r.fail(res, fmt.Errorf("%w: the branch moved during each of %d attempts; last error: %w", ErrTooManyRetries, attempt, pushErr))
		}
		r.log.Info("push lost a race, re-applying on the new head",
			"attempt", attempt, "base", base.String(), "newHead", newBase.String(), "cause", pushErr.Error())
		base = newBase
	}
}

// commitAll checks base out and commits each prepared change on top of
// the previous one, recording its result. It returns how many commits it
// made.
func (r *Repo) commitAll(base plumbing.Hash, res *BatchResult, changes []prepared) (int, error) {
	if err := r.resetTo(base, false); err != nil {
		return 0, err
	}
	r.objs.drop() // the commits of an earlier attempt
	commits := 0
	for i := range changes {
		p := &changes[i]
		if !p.ok {
			continue
		}
		cr := &res.Changes[i]
		*cr = ChangeResult{}
		h, err := r.commitOne(p)
		if errors.Is(err, ErrChange) {
			cr.Err = err
			err = r.resetTo(r.head, true) // drop what the failed change left behind
		}
		if err != nil {
			if cr.Err == nil {
				return 0, err
			}
			return 0, errors.Join(cr.Err, err)
		}
		if !h.IsZero() {
			cr.Changed, cr.Commit = true, h.String()
			commits++
		}
	}
	return commits, nil
}

// commitOne runs one change on the work tree and commits the result on
// top of the branch head; a zero hash means it changed nothing. Errors of
// the ChangeFunc wrap ErrChange.
func (r *Repo) commitOne(p *prepared) (plumbing.Hash, error) {
	changed, err := runChange(p.fn, r.treeDir)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: %w", ErrChange, err)
	}
	if !changed {
		// Discard anything it touched while saying it changed nothing.
		return plumbing.ZeroHash, r.resetTo(r.head, true)
	}
	now := r.opts.Now()
	h, err := r.commitTree(p.msg,
		object.Signature{Name: p.author.Name, Email: p.author.Email, When: now},
		object.Signature{Name: r.opts.Committer.Name, Email: r.opts.Committer.Email, When: now})
	if err != nil {
		// The work tree is in an unknown state; the next checkout compares
		// every file.
		r.wtTree = plumbing.ZeroHash
		return plumbing.ZeroHash, fmt.Errorf("commit: %w", err)
	}
	return h, nil
}

// resetTo checks out h: the branch points at it and the work tree holds
// its tree. dirty says a ChangeFunc may have edited the work tree since it
// was last checked out or committed, so every file is compared with h's
// tree rather than only the difference between the two trees applied.
func (r *Repo) resetTo(h plumbing.Hash, dirty bool) error {
	if dirty {
		r.wtTree = plumbing.ZeroHash
	}
	return r.checkout(h)
}

// runChange calls fn, turning a panic into an error so that the clone is
// reset and the lock released as after any failure.
func runChange(fn ChangeFunc, dir string) (changed bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(dir)
}

// fail restores the clone after a failure of the batch and records in res
// that nothing was pushed: no change has a commit, and Head is the remote
// head as last fetched.
func (r *Repo) fail(res *BatchResult, cause error) error {
	err := r.restore(cause)
	for i := range res.Changes {
		res.Changes[i].Changed, res.Changes[i].Commit = false, ""
	}
	if !r.head.IsZero() {
		res.Head = r.head.String()
	}
	return err
}

// landed records pushed commits: tip is the remote head, checked out, its
// objects written to the repository and the refs moved there. A failure
// to store them locally does not undo the push: it is logged, and the
// clone goes back to the last stored head (the next fetch brings the
// commits back).
func (r *Repo) landed(res *BatchResult, tip plumbing.Hash, attempts int) {
	res.Head = tip.String()
	r.logPushed(res, attempts)
	r.remoteHead = tip
	err := r.local(func() error { return r.checkout(tip) })
	if err == nil {
		err = r.persist()
	}
	if err != nil {
		r.log.Error("storing pushed commits locally", "error", err.Error())
		_ = r.restore(err)
	}
}

// restore puts the clone back at the last known remote head after a
// failure, forgetting commits not pushed, and returns cause (joined with
// restore's own error, if any).
func (r *Repo) restore(cause error) error {
	if r.repo == nil {
		return cause
	}
	h := r.knownRemoteHead()
	err := r.local(func() error { return r.resetTo(h, true) })
	r.objs.drop()
	if err == nil {
		r.remoteHead = h
		err = r.persist()
	}
	if err != nil {
		return errors.Join(cause, fmt.Errorf("restoring the clone: %w", err))
	}
	return cause
}

// backoff returns the delay before retry number attempt (1-based):
// RetryBackoff doubled per retry, capped at MaxRetryBackoff, jittered
// uniformly in [d/2, d).
func (r *Repo) backoff(attempt int) time.Duration {
	d := r.opts.RetryBackoff
	for i := 1; i < attempt && d < r.opts.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, r.opts.MaxRetryBackoff)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Repo) logPushed(res *BatchResult, attempts int) {
	var commits []string
	for _, c := range res.Changes {
		if c.Changed {
			commits = append(commits, c.Commit)
		}
	}
	r.log.Info("pushed", "head", res.Head, "commits", commits, "attempts", attempts)
}
