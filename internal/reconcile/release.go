package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"helm.sh/helm/v4/pkg/action"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/mygitops/mgo/internal/health"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// releaseSync is one sync of one release: what it found out so far (its
// facts, and what they were found in) and the result it builds.
type releaseSync struct {
	e        *Engine
	ctx      context.Context
	r        *repo.Repo
	rel      *repo.Release
	renderer *render.Renderer
	opts     Options
	key      string // namespace/name
	log      *slog.Logger
	start    time.Time
	rr       ReleaseResult

	facts releaseFacts
	// Of the release's last successful sync (facts.Synced) and of its
	// last failed one.
	lastDigest string
	prev       lastInputs
	lastFailed failure
	inputs     string // of this sync (inputs.go)

	ch       *render.Chart
	rendered *render.Rendered
	cmps     []comparison
	cachedAt int // the newest revision, as the cache holds it (facts.CachedInSync)
	cfg      *action.Configuration
	last     *releasev1.Release // Helm's newest revision (facts.Read), or nil
	held     error              // who may hold its pending revision (stateLocked)

	health    *health.Rules // its health rules (health.go)
	healthErr error         // why they do not compile: the render fails
}

// syncRelease makes one release equal to the repo, in three stages: plan
// (chart, render, compare with the live cluster), apply (Helm install or
// upgrade with server-side apply, only when the plan found a change) and
// wait (the rollout of every object). Which of them run is the release's
// state's to say (state.go): the sync finds out, step by step, what the
// state needs to be known, until the state picks the action that ends
// the sync. A failure names its stage.
func (e *Engine) syncRelease(ctx context.Context, r *repo.Repo, rel *repo.Release, renderer *render.Renderer, in *inputs, opts Options) ReleaseResult {
	s := e.newReleaseSync(ctx, r, rel, renderer, in, opts)
	mask := rel.Masker() // values of its secrets files: never in a result or a log line
	s.log = mask.Logger(e.log).With("release", rel.Header.Name, "namespace", rel.Header.Namespace)
	rr := s.run()
	rr.Duration = time.Since(s.start)
	return maskResult(rr, mask)
}

func (e *Engine) newReleaseSync(ctx context.Context, r *repo.Repo, rel *repo.Release, renderer *render.Renderer, in *inputs, opts Options) *releaseSync {
	s := &releaseSync{e: e, ctx: ctx, r: r, rel: rel, renderer: renderer, opts: opts, start: time.Now(),
		key: rel.Header.Namespace + "/" + rel.Header.Name,
		rr:  ReleaseResult{File: rel.File, Name: rel.Header.Name, Namespace: rel.Header.Namespace, Chart: rel.Header.Chart}}
	s.facts = releaseFacts{Valid: rel.Valid, Full: opts.Full, DryRun: opts.DryRun}
	if !rel.Valid {
		return s
	}
	e.mu.Lock()
	s.lastDigest, s.facts.Synced = e.applied[s.key]
	s.prev = e.inputsOf[s.key]
	e.mu.Unlock()
	s.health, s.healthErr = e.healthFor(r, rel)
	s.inputs = in.release(r, rel)
	s.facts.SameInputs = s.inputs != "" && s.inputs == s.prev.inputs
	return s
}

// run determines the release's state and does its action until an action
// ends the sync.
func (s *releaseSync) run() ReleaseResult {
	for {
		state := determineState(s.facts)
		var err error
		switch state.action(s.opts.DryRun) {
		case actRender:
			err = s.render()
		case actCompare:
			err = s.compare()
		case actRead:
			err = s.read()
		case actReadHistory:
			s.facts.HistoryRead, s.facts.DeployedBefore = true, hasDeployedRevision(s.cfg, s.rel.Header.Name)
		case actRecover:
			err = s.recover()
		case actFail:
			return s.fail(s.stateError(state))
		case actSkip:
			return s.skip()
		case actRepeatFailure:
			return s.repeatFailure()
		case actLeaveAlone:
			return s.leaveAlone()
		case actReport:
			s.rr.Action, s.rr.Revision = WouldChange, s.lastRevision()
			return s.rr
		case actInstall:
			return s.install()
		case actUpgrade:
			return s.upgrade()
		}
		if err != nil {
			return s.fail(err)
		}
	}
}

// render loads the chart and renders it: local work, no request to the
// cluster.
func (s *releaseSync) render() error {
	if s.healthErr != nil {
		return s.healthErr
	}
	ch, rendered, err := s.e.loadAndRender(s.ctx, s.r, s.rel, s.renderer, s.facts.Synced)
	if ch != nil {
		s.rr.ChartVersion = ch.Version
	}
	if err != nil {
		return err
	}
	s.ch, s.rendered = ch, rendered
	s.e.mu.Lock()
	f, failedBefore := s.e.failed[s.key]
	s.e.mu.Unlock()
	s.lastFailed = f
	s.facts.Rendered = true
	s.facts.SameRendering = s.facts.Synced && s.lastDigest == rendered.Digest
	s.facts.FailedRendering = failedBefore && f.digest == rendered.Digest
	return nil
}

// compare compares every rendered object with the live cluster. A
// release Helm has no revision of (not even in the cache) is installed:
// its objects are not compared one by one first (a first sync of a
// thousand releases sent eight requests per release for nothing). A dry
// run compares them, to say what an install would do.
func (s *releaseSync) compare() error {
	e, rel := s.e, s.rel
	installing := false
	if !s.opts.DryRun && e.cache != nil {
		if version, _ := e.newestCachedRevision(s.ctx, rel); version == 0 {
			if err := s.read(); err != nil {
				return err
			}
			installing = s.last == nil
		}
	}
	var err error
	if installing {
		s.cmps = e.installPlan(s.r, rel, s.rendered)
	} else if s.cmps, err = e.compareRelease(s.ctx, s.r, rel, s.rendered); err != nil {
		return atStage(StageDiff, fmt.Errorf("%s: %w", rel.File, err))
	}
	if !s.opts.DryRun {
		e.planned(rel.Header.Namespace, rel.Header.Name, s.cmps)
	}
	s.rr.Objects = objectResults(s.cmps)
	s.facts.Compared = true
	s.facts.Changed, _ = changes(s.cmps)
	if revision, ok := e.cachedRevision(s.ctx, rel); ok && !s.facts.Changed {
		// Every object as mgo applied it and the newest revision deployed
		// and this engine's: nothing to read from Helm's storage.
		s.facts.CachedInSync, s.cachedAt = true, revision
	}
	return nil
}

// read reads the newest revision of the release from Helm's storage.
func (s *releaseSync) read() error {
	cfg, last, err := s.e.helmRelease(s.rel)
	if err != nil {
		return atStage(StageDiff, fmt.Errorf("%s: %w", s.rel.File, err))
	}
	s.cfg, s.last = cfg, last
	s.facts.Read, s.facts.Last = true, statusOf(last)
	return nil
}

// recover recovers a revision left pending by a killed mgo, which blocks
// every Helm action on the release, when no live mgo holds it
// (recoverPending); when one may, the release is locked.
func (s *releaseSync) recover() error {
	last, recovered, err := s.e.recoverPending(s.cfg, s.last)
	s.rr.Recovered = recovered
	if herr := (*errPendingHeld)(nil); errors.As(err, &herr) {
		s.facts.Last, s.held = revisionHeld, err
		return nil
	}
	if err != nil {
		return atStage(StageApply, fmt.Errorf("%s: %w", s.rel.File, err))
	}
	s.last = last
	s.facts.Last = statusOf(last)
	return nil
}

// stateError is the error of a state whose action is to fail.
func (s *releaseSync) stateError(state releaseState) error {
	if state == stateInvalid {
		return atStage(StageValidate, invalidRelease(s.r, s.rel))
	}
	// stateLocked: another Helm action may still be in progress.
	return atStage(StageApply, fmt.Errorf("%s: %w", s.rel.File, s.held))
}

// fail ends the sync with a failure at the stage err names. A failure of
// a rendering after it was compared is remembered (stateFailedUnchanged),
// but for a locked release: the next sync looks again.
func (s *releaseSync) fail(err error) ReleaseResult {
	stage := stageOf(err)
	s.rr.Action, s.rr.Stage, s.rr.Error = Failed, stage, err.Error()
	s.rr.Duration = time.Since(s.start)
	s.log.Error("release sync failed", "stage", stage, "error", err)
	if herr := (*errPendingHeld)(nil); s.rendered != nil && stage != StageDiff && !errors.As(err, &herr) {
		s.e.mu.Lock()
		s.e.failed[s.key] = failure{digest: s.rendered.Digest, at: time.Now(), result: s.rr}
		s.e.mu.Unlock()
	}
	if stage == StageApply || stage == StageWait {
		// Helm may have changed the release: its last successful sync no
		// longer says what the cluster runs, and a sync back to that
		// sync's inputs (a revert, a rollback) must compare and upgrade.
		s.e.mu.Lock()
		delete(s.e.applied, s.key)
		delete(s.e.inputsOf, s.key)
		s.e.mu.Unlock()
	}
	return s.rr
}

// skip ends the sync of a release rendered (or to be rendered) from the
// same inputs as at its last successful sync: the same objects (changes
// in the cluster are found by the watches and full syncs).
func (s *releaseSync) skip() ReleaseResult {
	s.rr.Action = UpToDate
	if !s.facts.Rendered {
		s.rr.ChartVersion = s.prev.chartVersion
	}
	return s.rr
}

// repeatFailure ends the sync of a release that failed with this very
// rendering with that failure's result.
func (s *releaseSync) repeatFailure() ReleaseResult {
	rr := s.lastFailed.result
	rr.Error = fmt.Sprintf("unchanged since its failed sync at %s (retried on the next full sync): %s",
		s.lastFailed.at.UTC().Format(time.RFC3339), rr.Error)
	return rr
}

// lastRevision is the version of Helm's newest revision, 0 when unknown.
func (s *releaseSync) lastRevision() int {
	if s.last == nil {
		return 0
	}
	return s.last.Version
}

// remember records the sync's rendering and inputs as the release's last
// successful sync.
func (s *releaseSync) remember() {
	s.e.remember(s.key, s.rendered.Digest, lastInputs{inputs: s.inputs, chartVersion: s.rr.ChartVersion})
}
