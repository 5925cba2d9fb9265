package deploy

import (
	"context"
	"log/slog"
	"time"
)

// RefresherOptions configure a Refresher.
type RefresherOptions struct {
	// Interval refreshes this often without a trigger (the poll; 0: only
	// when triggered).
	Interval time.Duration
	// Timeout bounds one refresh (default 30m).
	Timeout time.Duration
	Log     *slog.Logger
}

// Refresher is the one worker that fetches the repo and syncs the clusters
// whose files changed (Service.Refresh): on every Trigger (a webhook saw a
// push) and every Interval (the poll). Triggers that arrive while a
// refresh runs are served by one next refresh, which starts after them
// and so sees their pushes.
type Refresher struct {
	refresh func(ctx context.Context) ([]string, error)
	o       RefresherOptions
	kick    chan struct{}
}

// NewRefresher returns the refresher of refresh (Service.Refresh in mgo
// serve). Start it with Run.
func NewRefresher(refresh func(ctx context.Context) ([]string, error), o RefresherOptions) *Refresher {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Refresher{refresh: refresh, o: o, kick: make(chan struct{}, 1)}
}

// Trigger asks for a refresh and returns at once.
func (r *Refresher) Trigger() {
	select {
	case r.kick <- struct{}{}:
	default: // one is pending already: it will see this push too
	}
}

// Run refreshes when triggered or polled, one refresh at a time, until ctx
// ends.
func (r *Refresher) Run(ctx context.Context) {
	var tick <-chan time.Time
	if r.o.Interval > 0 {
		t := time.NewTicker(r.o.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		why := "push event"
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-tick:
			why = "poll"
		}
		rctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		synced, err := r.refresh(rctx)
		cancel()
		switch {
		case err != nil:
			r.o.Log.Warn("refresh failed", "after", why, "error", err)
		case len(synced) > 0:
			r.o.Log.Info("refreshed: synced clusters whose files changed", "after", why, "clusters", synced)
		default:
			r.o.Log.Debug("refreshed: nothing changed", "after", why)
		}
	}
}
