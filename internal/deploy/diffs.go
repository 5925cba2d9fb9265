package deploy

import (
	"context"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
)

// diffTimeout bounds a diff asked for through the API (GET .../diff).
const diffTimeout = 10 * time.Minute

// sharedDiffs runs the diffs asked for by callers (the API, the
// dashboard) of one cluster so that at most one runs at a time: a caller
// who asks while one runs waits for the next, which every caller who
// asked meanwhile shares. Each caller gets the result of a diff that began
// after it asked, and a burst of requests costs two renders and dry runs
// of the cluster, not one per request: a diff reads every release, so
// without this anyone allowed to read a cluster's diff could spend the
// cluster's API budget and mgo's CPU at will.
type sharedDiffs struct {
	mu      sync.Mutex
	running bool
	next    *diffCall // the diff that starts when the running one ends
}

type diffCall struct {
	done    chan struct{}
	callers int // who wait for it
	res     *reconcile.DiffResult
	err     error
}

// waiting is how many callers wait for the next diff.
func (d *sharedDiffs) waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.next == nil {
		return 0
	}
	return d.next.callers
}

// do returns the result of a run of diff that begins after the call. The
// run goes on for the others when a caller's ctx ends; it is bounded by
// base (the service's life) and diffTimeout.
func (d *sharedDiffs) do(ctx, base context.Context, diff func(context.Context) (*reconcile.DiffResult, error)) (*reconcile.DiffResult, error) {
	d.mu.Lock()
	c := d.next
	if c == nil {
		c = &diffCall{done: make(chan struct{})}
		d.next = c
		if !d.running {
			d.startLocked(base, diff)
		}
	}
	c.callers++
	d.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *sharedDiffs) startLocked(base context.Context, diff func(context.Context) (*reconcile.DiffResult, error)) {
	c := d.next
	d.next, d.running = nil, true
	go func() {
		ctx, cancel := context.WithTimeout(base, diffTimeout)
		c.res, c.err = diff(ctx)
		cancel()
		close(c.done)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.running = false
		if d.next != nil {
			d.startLocked(base, diff)
		}
	}()
}
