package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/repo"
)

// ErrFrozen: the cluster is in a deploy freeze (a deny window of its
// freezes in mygitops.yaml, or outside its allow windows): 423. Nothing
// was written.
var ErrFrozen = errors.New("deploy freeze")

// FrozenError refuses a deploy or rollback during a freeze: which cluster,
// the freeze (its window) and when it ends.
type FrozenError struct {
	Cluster string
	Period  repo.FreezePeriod
}

func (e *FrozenError) Error() string {
	until := "no end within a year"
	if !e.Period.Until.IsZero() {
		until = "until " + e.Period.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s: cluster %s is frozen (%s, %s); nothing was written; a token with freezeOverride may deploy",
		ErrFrozen, e.Cluster, e.Period.Describe(), until)
}

func (e *FrozenError) Unwrap() error { return ErrFrozen }

// freezeOverrideBy is the Freeze-Override trailer of a request that went
// through a freeze: "<window> by <client>", at most 1000 bytes (a trailer
// holds 1024).
func freezeOverrideBy(p repo.FreezePeriod, client string) string {
	what := "outside the allow windows"
	if p.Window != nil {
		what = p.Window.Label()
	}
	if client == "" {
		client = "unknown"
	}
	s := what + " by " + client
	if len(s) > 1000 {
		s = strings.ToValidUTF8(s[:1000], "")
	}
	return s
}

// checkFreeze is the freeze step of Check, on the tree at dir: a request
// to a frozen cluster is a *FrozenError unless it may override the freeze
// (Request.OverrideFreeze); then req.FreezeOverride records what it
// overrode. A cluster whose freezes have errors takes no deploy: a freeze
// with a typo must not lift.
func checkFreeze(dir string, req *Request, now time.Time) error {
	req.FreezeOverride = ""
	cfg, _ := repo.LoadConfig(dir)
	s := cfg.Cluster(req.Cluster)
	if s.Freezes.Invalid {
		return fmt.Errorf("%w: the freezes of cluster %s in %s (line %d) have errors; fix them first (mgo validate)",
			ErrUnprocessable, req.Cluster, repo.ConfigFile, s.Freezes.Line)
	}
	st := s.Freeze(now, req.TriggerRepo)
	if st.Active == nil {
		return nil
	}
	if !req.OverrideFreeze {
		return &FrozenError{Cluster: req.Cluster, Period: *st.Active}
	}
	req.FreezeOverride = freezeOverrideBy(*st.Active, req.Client)
	return nil
}

// CheckFreeze refuses req as Check would for a freeze alone, at the clone's
// head (rollbacks: they change the cluster as a deploy does).
func (a *DeployAction) CheckFreeze(ctx context.Context, req *Request) error {
	return a.Git.Read(ctx, func(dir, _ string) error {
		return checkFreeze(dir, req, a.now())
	})
}

func (a *DeployAction) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// freezeOverrideKey carries a caller's freezeOverride permission to
// RollbackBy.
type freezeOverrideKey struct{}

// WithFreezeOverride returns ctx saying whether the caller may deploy or
// roll back during a freeze (a token or claim rule with freezeOverride).
// Submit reads the permission from Request.OverrideFreeze, RollbackBy from
// its context.
func WithFreezeOverride(ctx context.Context, allowed bool) context.Context {
	return context.WithValue(ctx, freezeOverrideKey{}, allowed)
}

func freezeOverrideOf(ctx context.Context) bool {
	ok, _ := ctx.Value(freezeOverrideKey{}).(bool)
	return ok
}

// FreezeStatus is the freeze of a cluster now, for the clusters' answers.
type FreezeStatus struct {
	repo.FreezeState
	// Windows are the cluster's windows (those limited to trigger repos
	// included: the state above counts only the others).
	Windows []repo.FreezeWindow
	// HoldPushes is syncDuringFreeze: false; Held is then set when changes
	// pushed to git wait for the freeze to end.
	HoldPushes, Held bool
	// Invalid is set when a window has errors: deploys are refused.
	Invalid bool
}

// Freeze returns the freeze of a served cluster now, by the mygitops.yaml
// at the clone's head.
func (s *Service) Freeze(ctx context.Context, cluster string) (FreezeStatus, error) {
	c, err := s.cluster(cluster)
	if err != nil {
		return FreezeStatus{}, err
	}
	var st FreezeStatus
	err = s.cfg.Git.Read(ctx, func(dir, _ string) error {
		cfg, _ := repo.LoadConfig(dir)
		set := cfg.Cluster(cluster)
		st = FreezeStatus{FreezeState: set.Freeze(s.cfg.Now(), ""), Windows: set.Freezes.Windows,
			HoldPushes: set.Freezes.HoldPushes, Invalid: set.Freezes.Invalid}
		if st.Active == nil || !st.HoldPushes {
			return nil
		}
		in, err := clusterInputs(dir, cluster)
		if err != nil {
			return err
		}
		c.mu.Lock()
		st.Held = in != c.state.inputs
		c.mu.Unlock()
		return nil
	})
	return st, err
}

// freezeHolds are the timers of the clusters whose pushed changes a
// freeze holds: each fires when its freeze ends and syncs what is still
// held then (a freeze that goes on arms the timer again, so a held change
// is never lost between windows). The poll or a webhook may sync it first.
type freezeHolds struct {
	mu     sync.Mutex
	timers map[string]*heldTimer
}

type heldTimer struct {
	t     *time.Timer
	until time.Time
}

// holdPush reports whether the cluster's pushed changes are held now: it
// syncs them during freezes only with syncDuringFreeze (the default); a
// freeze counts its windows without triggerRepos. A held cluster gets a
// timer for the freeze's end.
func (s *Service) holdPush(cluster string, set repo.ClusterSettings) bool {
	if !set.Freezes.HoldPushes {
		return false
	}
	now := s.cfg.Now()
	st := set.Freeze(now, "")
	if st.Active == nil {
		return false
	}
	until := st.Active.Until
	log := s.log.With("cluster", cluster, "freeze", st.Active.Describe(), "until", until)
	if until.IsZero() {
		// No end within a year: the next refresh looks again.
		log.Info("pushed change held: the cluster is frozen and syncDuringFreeze is false")
		return true
	}
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timers == nil {
		h.timers = map[string]*heldTimer{}
	}
	if prev, ok := h.timers[cluster]; ok {
		if prev.until.Equal(until) {
			log.Debug("pushed change still held")
			return true
		}
		prev.t.Stop()
	}
	log.Info("pushed change held: the cluster is frozen and syncDuringFreeze is false; it syncs when the freeze ends")
	// A second past the end: the clock's freeze has ended by then.
	h.timers[cluster] = &heldTimer{until: until, t: time.AfterFunc(until.Sub(now)+time.Second, func() { s.releaseHeld(cluster, until) })}
	return true
}

// releaseHeld syncs a held cluster once its freeze ended, unless it is
// held again (a following freeze) or nothing is pending any more.
func (s *Service) releaseHeld(cluster string, until time.Time) {
	h := &s.holds
	h.mu.Lock()
	if t, ok := h.timers[cluster]; ok && t.until.Equal(until) {
		delete(h.timers, cluster)
	}
	h.mu.Unlock()
	ctx := s.ctx
	if ctx.Err() != nil || s.isClosed() {
		return
	}
	changed, err := s.changedClusters(ctx, []string{cluster})
	if err != nil {
		s.log.Warn("sync of a change held by a freeze failed", "cluster", cluster, "error", err)
		return
	}
	if len(changed) > 0 {
		s.log.Info("freeze ended: syncing the held change", "cluster", cluster)
		s.syncPushed(ctx, changed)
	}
}

// pushesHeld reports whether the cluster holds pushed changes now: a drift
// repair then waits too, since it would sync them.
func (s *Service) pushesHeld(set repo.ClusterSettings) bool {
	return set.Freezes.HoldPushes && set.Freeze(s.cfg.Now(), "").Active != nil
}

// pushesHeldAt is pushesHeld by the mygitops.yaml at the clone's head.
func (s *Service) pushesHeldAt(ctx context.Context, cluster string) bool {
	held := false
	_ = s.cfg.Git.Read(ctx, func(dir, _ string) error {
		cfg, _ := repo.LoadConfig(dir)
		held = s.pushesHeld(cfg.Cluster(cluster))
		return nil
	})
	return held
}
