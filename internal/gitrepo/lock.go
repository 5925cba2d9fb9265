package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Locking. A Repo has two locks, so that readers never wait for the
// network:
//
//   - the writer lock (wlock) serialises Open, Fetch, ApplyBatch and
//     Revert from start to end, network I/O included; waiting for it
//     honours the caller's context;
//   - mu guards the work tree and head that Read and Head see. Writers hold
//     it only for local steps (checkout, running the ChangeFuncs, commit),
//     never across a fetch or a push. While a push runs, the work tree is
//     back at the base the new commits were built on, so readers never see
//     a commit that is not on the remote.
//
// Fields only writers touch (repo, objs, remoteHead, loose, wtTree) need the
// writer lock alone; head is written under both and read under either.

// lockW takes the writer lock, or gives up when ctx ends first.
func (r *Repo) lockW(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for the git operation in progress: %w", err)
	}
	select {
	case r.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the git operation in progress: %w", ctx.Err())
	}
}

func (r *Repo) unlockW() { <-r.wlock }

// local runs fn, a local step that changes the work tree or head, with
// readers kept out, and publishes the head it leaves for Head. It must not
// be nested, and fn must do no network I/O.
func (r *Repo) local(fn func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := fn()
	h := r.head.String()
	r.published.Store(&h)
	return err
}

// ErrTimeout is wrapped by the error of a network operation (clone, fetch,
// push) that got no complete answer within Options.Timeout. Such errors
// also match context.DeadlineExceeded.
var ErrTimeout = errors.New("the git remote did not answer in time")

// netContext bounds one network operation by d (Options.Timeout, or
// CloneTimeout for the clone); the cause of its expiry wraps ErrTimeout,
// so netErr can tell it from the caller's own deadline or cancellation.
func (r *Repo) netContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d,
		fmt.Errorf("%w (no answer within %v): %w", ErrTimeout, d, context.DeadlineExceeded))
}

// netStatus is the outcome of the network operations so far.
type netStatus struct {
	ok  time.Time // the last successful exchange with the remote
	err error     // the last failure, when later than ok
}

// noteNet records the outcome of a network operation for LastFetch. A
// failure because the caller's own context ended (a client that left) says
// nothing about the remote and is not recorded.
func (r *Repo) noteNet(caller context.Context, err error) {
	switch {
	case err == nil:
		r.net.Store(&netStatus{ok: time.Now()})
	case caller.Err() != nil:
	default:
		st := netStatus{err: err}
		if old := r.net.Load(); old != nil {
			st.ok = old.ok
		}
		r.net.Store(&st)
	}
}

// LastFetch reports when mgo last exchanged with the remote successfully (a
// clone, fetch or push; zero before the first) and the error of the last
// network operation when it failed after that (nil otherwise). It takes no
// lock, so a health check can call it while a fetch or push hangs.
func (r *Repo) LastFetch() (time.Time, error) {
	st := r.net.Load()
	if st == nil {
		return time.Time{}, nil
	}
	return st.ok, st.err
}

// newSession opens a transport session, giving up when ctx ends first.
// go-git's SSH transport dials and shakes hands without a context (only
// the TCP connect has a timeout), so a server that accepts and never
// answers would block the caller; the session it may still open later is
// closed.
func newSession[S interface{ Close() error }](ctx context.Context, open func() (S, error)) (S, error) {
	type result struct {
		s   S
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := open()
		done <- result{s, err}
	}()
	select {
	case res := <-done:
		return res.s, res.err
	case <-ctx.Done():
		go func() {
			if res := <-done; res.err == nil {
				res.s.Close()
			}
		}()
		var zero S
		return zero, ctx.Err()
	}
}
