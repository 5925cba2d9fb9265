package deploy

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/repo"
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

// Refresh fetches the repo and syncs every cluster whose files changed
// since its last sync (a push by a person, seen by a webhook or a poll),
// except those that sync manually and those held by a freeze
// (syncDuringFreeze: false in mygitops.yaml, see holdPush): their sync
// runs when the freeze ends. It returns the clusters it synced.
func (s *Service) Refresh(ctx context.Context) ([]string, error) {
	if _, err := s.cfg.Git.Fetch(ctx); err != nil {
		return nil, err
	}
	changed, err := s.changedClusters(ctx, s.Clusters())
	if err != nil {
		return nil, err
	}
	return s.syncPushed(ctx, changed), nil
}

// changedClusters returns those of names whose inputs at the clone's head
// differ from their last sync and that no freeze holds.
func (s *Service) changedClusters(ctx context.Context, names []string) ([]string, error) {
	var changed []string
	err := s.cfg.Git.Read(ctx, func(dir, _ string) error {
		cfg, _ := repo.LoadConfig(dir)
		for _, name := range names {
			if !s.owns(name) {
				continue // its lease holder syncs it
			}
			d, err := clusterInputs(dir, name)
			if err != nil {
				return err
			}
			c := s.clusters[name]
			c.mu.Lock()
			differs := d != c.state.inputs && d != c.state.skipped
			c.mu.Unlock()
			if differs && !s.holdPush(name, cfg.Cluster(name)) {
				changed = append(changed, name)
			}
		}
		return nil
	})
	return changed, err
}

// syncPushed syncs the clusters and notifies each outcome as a sync of
// the pushed change; it returns the clusters synced.
func (s *Service) syncPushed(ctx context.Context, changed []string) []string {
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
	return synced
}
