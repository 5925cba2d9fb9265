// Package promote moves an image that proved itself in one cluster of a
// promotion path (mygitops.yaml promotions) to the next cluster.
//
// A candidate is a record in the deployment store (a Deployment of kind
// promotion, see deploy.Promotion): the image exactly as the previous
// stage's deploy set it (tag and digest), its trigger repo, source commit
// and author, and the previous stage's gitops commit. It is created when a
// deploy (or a promotion) to a stage's cluster succeeds, under an
// idempotency key of that deployment, so replicas and restarts make one.
//
// The Promoter's loop (one tick a second) advances each candidate whose
// previous cluster this replica holds:
//
//	soaking   the releases stay healthy for healthyFor from the end of their
//	          rollout: every object Current in the engine's watch cache, no
//	          drift, no failed sync (0 requests); the stage's checks run every
//	          checkInterval; an unhealthy moment restarts the soak or fails
//	          the candidate (onUnhealthy)
//	testing   the releases' Helm test hooks run in the previous cluster
//	checking  the checks run once more after the soak
//	          (the previous cluster is free again: the newest deploy held
//	          behind the candidate goes, see deploy.Service.ReleaseHeld)
//	approval  allowedImages of the next cluster; then none: at once; api: an
//	          approve call; merge-request: the branch and merge request
//	          mgo opened are merged
//	promoting the promote deploy (deploy.Service.SubmitPromote) in the next
//	          cluster, under the candidate's key: one commit
//
// Every step is written to the record before the next is taken, so after
// a restart or a lease handover the soak goes on from its recorded start.
package promote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/forge"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// Client is the store client of candidate records and promote deploys:
// their idempotency keys are the source deployment's and the candidate's.
const Client = "mgo-promotion"

// Engine is what a soak reads of the previous cluster (*reconcile.Engine).
type Engine interface {
	Soak(ctx context.Context, namespace, release string) reconcile.SoakHealth
	OnDrift(func(reconcile.Drift))
}

// Tester runs the Helm test hooks of a release in a cluster.
type Tester interface {
	Test(ctx context.Context, cluster, namespace, release string, timeout time.Duration) ([]deploy.CheckResult, error)
}

// Checker runs one check of a stage (HTTP or Prometheus).
type Checker interface {
	Check(ctx context.Context, c repo.PromotionCheck) deploy.CheckResult
}

// Branches pushes the branch of a merge request (*gitrepo.Repo).
type Branches interface {
	PushBranch(ctx context.Context, branch string, change gitrepo.ChangeFunc, info gitrepo.CommitInfo) (gitrepo.BranchResult, error)
}

// Config wires a Promoter.
type Config struct {
	Service *deploy.Service
	Store   deploy.Store
	// Engines are the served clusters' engines, by name.
	Engines map[string]Engine
	// Owns reports whether this replica advances candidates leaving a
	// cluster (the holder of its lease); nil: every cluster.
	Owns    func(cluster string) bool
	Tester  Tester
	Checker Checker
	// Branches and Forges open merge requests (approval: merge-request);
	// Forges is given the stage's settings and the HTTP client to use.
	Branches Branches
	Forge    func(repo.MergeRequestSettings) (*forge.Client, error)
	Notifier deploy.Notifier
	// Refresh asks for a fetch and sync of what changed (the refresher's
	// trigger): after a merge request was merged.
	Refresh func()
	// Tick is how often candidates advance (default 1s); ForgeEvery how
	// often an open merge request's state is read (default 15s).
	Tick       time.Duration
	ForgeEvery time.Duration
	Log        *slog.Logger
}

// Promoter advances the candidates of the promotion paths.
type Promoter struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// drifts are the last drift per release of a cluster ("c/ns/name").
	drifts map[string]time.Time
	// running are the candidates whose tests run now.
	running map[string]bool
	// forgeRead is when each candidate's merge request was last read.
	forgeRead map[string]time.Time
	// lastCheck is when each candidate's checks last ran.
	lastCheck map[string]time.Time
	wake      chan struct{}
	waiters   map[string][]chan struct{}
}

// New returns a Promoter; Run starts it. It registers with the engines'
// drift events and as the service's holder of deploys.
func New(cfg Config) (*Promoter, error) {
	if cfg.Service == nil || cfg.Store == nil {
		return nil, errors.New("promote: the deploy service and store are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.ForgeEvery <= 0 {
		cfg.ForgeEvery = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Owns == nil {
		cfg.Owns = func(string) bool { return true }
	}
	p := &Promoter{cfg: cfg, log: cfg.Log, drifts: map[string]time.Time{}, running: map[string]bool{},
		forgeRead: map[string]time.Time{}, lastCheck: map[string]time.Time{}, wake: make(chan struct{}, 1),
		waiters: map[string][]chan struct{}{}}
	for name, e := range cfg.Engines {
		e.OnDrift(func(d reconcile.Drift) {
			p.mu.Lock()
			p.drifts[name+"/"+d.Namespace+"/"+d.Release] = d.At
			p.mu.Unlock()
		})
	}
	cfg.Service.SetHolder(p)
	return p, nil
}

// Run advances candidates until ctx ends.
func (p *Promoter) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		p.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.wake:
		}
	}
}

// poke makes the loop run now.
func (p *Promoter) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Promoter) now() time.Time { return p.cfg.Service.Now() }

// scanWindow bounds how far back the loop looks for deploys without a
// candidate and for candidates.
const scanWindow = 7 * 24 * time.Hour

// tick creates the candidates of newly succeeded deploys and advances the
// ones in flight.
func (p *Promoter) tick(ctx context.Context) {
	cfg, _, err := p.cfg.Service.RepoConfig(ctx)
	if err != nil || len(cfg.Promotions) == 0 {
		return
	}
	recent, err := p.cfg.Store.Since(p.now().Add(-scanWindow), 100000)
	if err != nil {
		p.log.Error("promotion: reading deployments", "error", err)
		return
	}
	p.candidates(ctx, cfg, recent)
	for _, d := range recent {
		if d.Kind != deploy.KindPromotion || d.Promotion == nil {
			continue
		}
		if d.Status.Terminal() {
			p.release(ctx, d)
			continue
		}
		if !p.cfg.Owns(d.Promotion.From) {
			continue
		}
		path, ok := cfg.Promotion(d.Promotion.Path)
		if !ok || path.Invalid || d.Promotion.Stage >= len(path.Stages) || path.Stages[d.Promotion.Stage].Cluster != d.Promotion.To {
			p.fail(d, deploy.GatePromote, fmt.Sprintf("promotion path %s no longer has stage %s after %s in %s", d.Promotion.Path, d.Promotion.To, d.Promotion.From, repo.ConfigFile))
			continue
		}
		p.advance(ctx, cfg, path.Stages[d.Promotion.Stage], d)
	}
	// Deploys held behind candidates that are gone (finished while this
	// replica was down) are let go.
	for _, d := range recent {
		if d.Status == deploy.Held && p.cfg.Owns(d.Request.Cluster) && p.HeldBy(d.Request) == "" {
			if _, err := p.cfg.Service.ReleaseHeld(ctx, d.Request.Cluster, d.Request.TriggerRepo); err != nil {
				p.log.Error("promotion: releasing held deploys", "cluster", d.Request.Cluster, "error", err)
			}
		}
	}
}

// candidates creates a candidate for the newest succeeded deploy (or
// promotion) of each trigger repo in each stage's cluster that has a next
// stage, unless it has one, and supersedes older candidates still soaking
// there (what they proved no longer runs).
func (p *Promoter) candidates(ctx context.Context, cfg *repo.Config, recent []*deploy.Deployment) {
	newest := map[[2]string]*deploy.Deployment{}
	has := map[string]bool{}
	for _, d := range recent {
		switch {
		case d.Kind == deploy.KindPromotion && d.Promotion != nil:
			has[d.Promotion.Source] = true
		case (d.Kind == deploy.KindDeploy || d.Kind == deploy.KindPromote) && d.Status == deploy.Succeeded && d.Synced != nil && *d.Synced:
			k := [2]string{d.Request.Cluster, d.Request.TriggerRepo}
			if prev := newest[k]; prev == nil || !d.Times.Queued.Before(prev.Times.Queued) {
				newest[k] = d
			}
		}
	}
	for k, d := range newest {
		if has[d.ID] || !p.cfg.Owns(k[0]) {
			continue
		}
		path, next, ok := cfg.Next(k[0], k[1])
		if !ok {
			continue
		}
		p.create(ctx, path, next, d, false, "")
	}
}

// create records a new candidate of source's image for stage next of path.
func (p *Promoter) create(ctx context.Context, path *repo.PromotionPath, next int, source *deploy.Deployment, manual bool, by string) (*deploy.Deployment, error) {
	now := p.now()
	req := source.Request
	to := path.Stages[next].Cluster
	cand := &deploy.Deployment{ID: deploy.NewID(), Kind: deploy.KindPromotion, Status: deploy.Promoting,
		Request: deploy.Request{Cluster: to, TriggerRepo: req.TriggerRepo, ImageRepo: req.ImageRepo, Tag: req.Tag, Digest: req.Digest,
			Author: req.Author, Client: Client, IdempotencyKey: "candidate/" + path.Name + "/" + source.ID, SourceCommit: req.SourceCommit,
			Identity: req.Identity},
		Times: deploy.Times{Queued: now}}
	if manual {
		cand.Request.IdempotencyKey += "/manual/" + now.UTC().Format(time.RFC3339Nano)
	}
	rolled := source.Times.RolledOut
	if rolled.IsZero() {
		rolled = source.Times.Finished
	}
	pr := &deploy.Promotion{Path: path.Name, From: source.Request.Cluster, To: to, Stage: next, Source: source.ID,
		FromCommit: source.Commit, RolledOut: rolled, SoakStart: rolled, Phase: deploy.PhaseSoaking, Manual: manual}
	if manual {
		// What runs now is vouched for from now on: the soak starts here.
		pr.SoakStart = now
	}
	for _, r := range source.Releases {
		pr.Releases = append(pr.Releases, r.Namespace+"/"+r.Name)
	}
	cand.Promotion = pr
	if manual {
		cand.Message = "promote now, asked by " + by
	}
	prev, err := p.cfg.Store.Create(cand)
	if err != nil {
		p.log.Error("promotion: recording a candidate", "source", source.ID, "error", err)
		return nil, err
	}
	if prev != nil {
		return prev, nil
	}
	p.log.Info("promotion candidate", "id", cand.ID, "path", path.Name, "from", pr.From, "to", to, "image", req.Ref(), "source", source.ID)
	p.supersede(cand)
	p.notify(cand, notify.PromotionStarted, "")
	return cand, nil
}

// supersede fails the older candidates of the same trigger repo still
// gated in the same cluster.
func (p *Promoter) supersede(cand *deploy.Deployment) {
	older, err := p.cfg.Store.List(1000, func(d *deploy.Deployment) bool {
		return d.Kind == deploy.KindPromotion && d.Promotion != nil && d.ID != cand.ID && !d.Status.Terminal() &&
			d.Promotion.From == cand.Promotion.From && d.Request.TriggerRepo == cand.Request.TriggerRepo && gated(d.Promotion.Phase)
	})
	if err != nil {
		return
	}
	for _, d := range older {
		p.fail(d, deploy.GateHealthy, fmt.Sprintf("superseded: %s now runs %s (candidate %s)", cand.Promotion.From, cand.Request.Ref(), cand.ID))
	}
}

// gated reports a phase in which the candidate is still proven in its
// previous cluster.
func gated(ph deploy.PromotionPhase) bool {
	return ph == deploy.PhaseSoaking || ph == deploy.PhaseTesting || ph == deploy.PhaseChecking
}

// HeldBy holds a deploy to a cluster where a candidate of its trigger repo
// is still gated (deploy.Holder).
func (p *Promoter) HeldBy(req deploy.Request) string {
	gatedHere, err := p.cfg.Store.List(1, func(d *deploy.Deployment) bool {
		return d.Kind == deploy.KindPromotion && d.Promotion != nil && !d.Status.Terminal() && gated(d.Promotion.Phase) &&
			d.Promotion.From == req.Cluster && d.Request.TriggerRepo == req.TriggerRepo
	})
	if err != nil || len(gatedHere) == 0 {
		return ""
	}
	return gatedHere[0].ID
}

// gate returns the candidate's result of gate name, adding it.
func gate(pr *deploy.Promotion, name string) *deploy.GateResult {
	for i := range pr.Gates {
		if pr.Gates[i].Gate == name {
			return &pr.Gates[i]
		}
	}
	pr.Gates = append(pr.Gates, deploy.GateResult{Gate: name, State: deploy.GatePending})
	return &pr.Gates[len(pr.Gates)-1]
}

// put stores the candidate and wakes those waiting for it when finished.
func (p *Promoter) put(d *deploy.Deployment) error {
	if err := p.cfg.Store.Put(d); err != nil {
		if !errors.Is(err, deploy.ErrFinished) {
			p.log.Error("promotion: storing candidate", "id", d.ID, "error", err)
		}
		return err
	}
	if d.Status.Terminal() {
		p.mu.Lock()
		ws := p.waiters[d.ID]
		delete(p.waiters, d.ID)
		p.mu.Unlock()
		for _, w := range ws {
			close(w)
		}
	}
	return nil
}

// fail finishes the candidate failed at gate with the evidence.
func (p *Promoter) fail(d *deploy.Deployment, gateName, why string) {
	now := p.now()
	g := gate(d.Promotion, gateName)
	g.State, g.Detail, g.Finished = deploy.GateFailed, why, now
	d.Promotion.Phase = deploy.PhaseFailed
	d.Status, d.Stage, d.Error, d.Times.Finished = deploy.Failed, deploy.Stage(gateName), gateName+": "+why, now
	if p.put(d) == nil {
		p.log.Warn("promotion failed", "id", d.ID, "gate", gateName, "why", why)
		p.notify(d, notify.PromotionFailed, gateName)
	}
}

// release lets the newest deploy held behind a finished or promoted
// candidate go.
func (p *Promoter) release(ctx context.Context, d *deploy.Deployment) {
	if !p.cfg.Owns(d.Promotion.From) {
		return
	}
	if p.HeldBy(deploy.Request{Cluster: d.Promotion.From, TriggerRepo: d.Request.TriggerRepo}) != "" {
		return
	}
	held, err := p.cfg.Service.HeldDeploys(d.Promotion.From, d.Request.TriggerRepo)
	if err != nil || len(held) == 0 {
		return
	}
	id, err := p.cfg.Service.ReleaseHeld(ctx, d.Promotion.From, d.Request.TriggerRepo)
	if err != nil {
		p.log.Error("promotion: releasing held deploys", "cluster", d.Promotion.From, "error", err)
		return
	}
	p.log.Info("held deploy released: the candidate left the cluster's gates", "cluster", d.Promotion.From, "candidate", d.ID, "deployment", id)
}

// advance takes the candidate's next step.
func (p *Promoter) advance(ctx context.Context, cfg *repo.Config, st repo.PromotionStage, d *deploy.Deployment) {
	pr := d.Promotion
	switch pr.Phase {
	case deploy.PhaseSoaking:
		p.soak(ctx, st, d)
	case deploy.PhaseTesting:
		p.test(ctx, st, d)
	case deploy.PhaseChecking:
		if p.checks(ctx, st, d, true) {
			pr.Phase = deploy.PhaseApproval
			if p.put(d) == nil {
				p.release(ctx, d)
				p.approval(ctx, cfg, st, d)
			}
		}
	case deploy.PhaseApproval:
		p.approval(ctx, cfg, st, d)
	case deploy.PhasePromoting:
		p.promoted(d)
	}
}

// soak checks the releases' health now; once healthyFor passed healthy,
// the candidate goes on to its tests or checks.
func (p *Promoter) soak(ctx context.Context, st repo.PromotionStage, d *deploy.Deployment) {
	pr := d.Promotion
	now := p.now()
	g := gate(pr, deploy.GateHealthy)
	if g.State == deploy.GatePending {
		g.State, g.Started = deploy.GateRunning, pr.SoakStart
	}
	e := p.cfg.Engines[pr.From]
	if e == nil {
		p.fail(d, deploy.GateHealthy, fmt.Sprintf("cluster %s is not served here", pr.From))
		return
	}
	known := true
	for _, rel := range pr.Releases {
		ns, name, _ := strings.Cut(rel, "/")
		h := e.Soak(ctx, ns, name)
		if !h.Known {
			known = false // after a restart, until the start-up sync has read it
			continue
		}
		ok, why := h.Healthy()
		p.mu.Lock()
		drift := p.drifts[pr.From+"/"+rel]
		p.mu.Unlock()
		if ok && drift.After(pr.SoakStart) {
			ok, why = false, fmt.Sprintf("drift at %s", drift.UTC().Format(time.RFC3339))
		}
		if ok {
			continue
		}
		why = fmt.Sprintf("%s in %s: %s", rel, pr.From, why)
		if st.OnUnhealthy == repo.UnhealthyFail {
			p.fail(d, deploy.GateHealthy, "unhealthy during the soak: "+why)
			return
		}
		if pr.SoakStart.Before(now.Add(-time.Second)) || g.Detail == "" {
			pr.SoakStart, pr.SoakRestarts = now, pr.SoakRestarts+1
			g.Detail = fmt.Sprintf("soak restarted at %s (%d times): %s", now.UTC().Format(time.RFC3339), pr.SoakRestarts, why)
			p.log.Info("promotion soak restarted: unhealthy", "id", d.ID, "why", why)
			_ = p.put(d)
		}
		return
	}
	if len(st.Checks) > 0 && !p.checks(ctx, st, d, false) {
		return
	}
	if !known || now.Before(pr.SoakStart.Add(st.HealthyFor)) {
		if g.Started.IsZero() || d.Times.Committed.IsZero() {
			d.Times.Committed = now // first step recorded
			_ = p.put(d)
		}
		return
	}
	g.State, g.Finished = deploy.GatePassed, now
	g.Detail = fmt.Sprintf("healthy for %s in %s from %s (%d restarts)", st.HealthyFor, pr.From, pr.SoakStart.UTC().Format(time.RFC3339), pr.SoakRestarts)
	pr.Phase = deploy.PhaseChecking
	if st.Tests {
		pr.Phase = deploy.PhaseTesting
	}
	if p.put(d) == nil {
		p.poke()
	}
}

// test runs the releases' Helm tests (once at a time per candidate).
func (p *Promoter) test(ctx context.Context, st repo.PromotionStage, d *deploy.Deployment) {
	p.mu.Lock()
	busy := p.running[d.ID]
	p.running[d.ID] = true
	p.mu.Unlock()
	if busy {
		return
	}
	pr := d.Promotion
	g := gate(pr, deploy.GateTests)
	g.State, g.Started = deploy.GateRunning, p.now()
	_ = p.put(d)
	go func() {
		defer func() {
			p.mu.Lock()
			delete(p.running, d.ID)
			p.mu.Unlock()
		}()
		var results []deploy.CheckResult
		var err error
		if p.cfg.Tester == nil {
			err = errors.New("Helm tests are not available in this mgo")
		}
		for _, rel := range pr.Releases {
			if err != nil {
				break
			}
			ns, name, _ := strings.Cut(rel, "/")
			var rs []deploy.CheckResult
			rs, err = p.cfg.Tester.Test(ctx, pr.From, ns, name, st.TestTimeout)
			results = append(results, rs...)
		}
		cur, gerr := p.cfg.Store.Get(d.ID)
		if gerr != nil || cur.Status.Terminal() || cur.Promotion == nil || cur.Promotion.Phase != deploy.PhaseTesting {
			return
		}
		g := gate(cur.Promotion, deploy.GateTests)
		g.Checks, g.Finished = results, p.now()
		failed := slices.IndexFunc(results, func(r deploy.CheckResult) bool { return !r.Passed })
		switch {
		case err != nil:
			p.fail(cur, deploy.GateTests, err.Error())
		case failed >= 0:
			p.fail(cur, deploy.GateTests, fmt.Sprintf("test %s failed: %s", results[failed].Name, results[failed].Detail))
		default:
			g.State, g.Detail = deploy.GatePassed, fmt.Sprintf("%d tests passed in %s", len(results), pr.From)
			cur.Promotion.Phase = deploy.PhaseChecking
			if p.put(cur) == nil {
				p.poke()
			}
		}
	}()
}

// checks runs the stage's checks when due (always with final); it
// reports whether they passed, failing the candidate when one did not.
func (p *Promoter) checks(ctx context.Context, st repo.PromotionStage, d *deploy.Deployment, final bool) bool {
	if len(st.Checks) == 0 {
		return true
	}
	now := p.now()
	p.mu.Lock()
	due := final || now.Sub(p.lastCheck[d.ID]) >= st.CheckInterval
	if due {
		p.lastCheck[d.ID] = now
	}
	p.mu.Unlock()
	if !due {
		return true
	}
	g := gate(d.Promotion, deploy.GateChecks)
	if g.Started.IsZero() {
		g.Started = now
	}
	g.State = deploy.GateRunning
	if p.cfg.Checker == nil {
		p.fail(d, deploy.GateChecks, "checks are not available in this mgo")
		return false
	}
	var results []deploy.CheckResult
	for _, c := range st.Checks {
		r := p.cfg.Checker.Check(ctx, c)
		results = append(results, r)
		if !r.Passed {
			g.Checks = results
			p.fail(d, deploy.GateChecks, fmt.Sprintf("check %s: %s", r.Name, r.Detail))
			return false
		}
	}
	g.Checks = results
	if final {
		g.State, g.Finished = deploy.GatePassed, now
		g.Detail = fmt.Sprintf("%d checks passed through the soak", len(results))
	}
	return p.put(d) == nil
}

// approval checks the next cluster's allowedImages, then waits for the
// stage's approval, then queues the promote deploy.
func (p *Promoter) approval(ctx context.Context, cfg *repo.Config, st repo.PromotionStage, d *deploy.Deployment) {
	pr := d.Promotion
	if set := cfg.Cluster(pr.To); !set.ImageAllowed(d.Request.ImageRepo) {
		p.fail(d, deploy.GateAllowed, fmt.Sprintf("image repository %s may not be deployed to %s: its allowedImages are %s",
			d.Request.ImageRepo, pr.To, strings.Join(set.AllowedImages, ", ")))
		return
	}
	switch {
	case pr.Approval != nil:
		p.promote(ctx, d)
	case st.Approval == repo.ApprovalNone || st.Approval == "":
		pr.Approval = &deploy.Approval{By: "mgo", Via: repo.ApprovalNone, At: p.now()}
		gate(pr, deploy.GateApproval).State = deploy.GatePassed
		p.promote(ctx, d)
	case st.Approval == repo.ApprovalAPI:
		g := gate(pr, deploy.GateApproval)
		if g.State == deploy.GatePending {
			g.State, g.Started, g.Detail = deploy.GateRunning, p.now(), "waiting for an approve call"
			if p.put(d) == nil {
				p.notify(d, notify.PromotionApproval, "")
			}
		}
	case st.Approval == repo.ApprovalMergeRequest:
		p.mergeRequest(ctx, st, d)
	}
}

// promote queues the promote deploy in the next cluster (once: under the
// candidate's key) and records it.
func (p *Promoter) promote(ctx context.Context, d *deploy.Deployment) {
	pr := d.Promotion
	req := d.Request
	req.Client, req.IdempotencyKey = Client, "promote/"+d.ID
	req.Promoted = &deploy.Promoted{Candidate: d.ID, Path: pr.Path, From: pr.From, FromCommit: pr.FromCommit,
		Gates: gateLine(pr), ApprovedBy: approvedBy(pr)}
	dep, err := p.cfg.Service.SubmitPromote(ctx, req)
	if err != nil {
		if deploy.Refused(err) {
			p.fail(d, deploy.GatePromote, err.Error())
		} else {
			p.log.Warn("promotion: the promote deploy was not queued; trying again", "id", d.ID, "error", err)
		}
		return
	}
	pr.Phase, pr.Deployment = deploy.PhasePromoting, dep.ID
	gate(pr, deploy.GatePromote).State = deploy.GateRunning
	gate(pr, deploy.GatePromote).Started = p.now()
	if p.put(d) == nil {
		p.log.Info("promotion: promote deploy queued", "id", d.ID, "deployment", dep.ID, "to", pr.To)
	}
}

// promoted finishes the candidate once its promote deploy ended.
func (p *Promoter) promoted(d *deploy.Deployment) {
	pr := d.Promotion
	if pr.Deployment == "" {
		return
	}
	dep, err := p.cfg.Store.Get(pr.Deployment)
	if err != nil || !dep.Status.Terminal() {
		return
	}
	if dep.Status == deploy.Failed {
		p.fail(d, deploy.GatePromote, fmt.Sprintf("deployment %s failed at %s: %s", dep.ID, dep.Stage, dep.Error))
		return
	}
	now := p.now()
	g := gate(pr, deploy.GatePromote)
	g.State, g.Finished = deploy.GatePassed, now
	g.Detail = fmt.Sprintf("deployment %s, commit %s", dep.ID, short(dep.Commit))
	if dep.Synced != nil && !*dep.Synced {
		g.Detail += ": " + dep.Message
	}
	pr.Phase = deploy.PhasePromoted
	d.Status, d.Commit, d.Changed, d.Times.Finished, d.Times.RolledOut = deploy.Succeeded, dep.Commit, dep.Changed, now, dep.Times.RolledOut
	d.Releases = dep.Releases
	if p.put(d) == nil {
		p.log.Info("promoted", "id", d.ID, "to", pr.To, "image", d.Request.Ref(), "deployment", dep.ID)
		p.notify(d, notify.PromotionSucceeded, "")
	}
}

// gateLine is the Promotion-Gates trailer: each passed gate, one line.
func gateLine(pr *deploy.Promotion) string {
	var parts []string
	for _, g := range pr.Gates {
		if g.Gate == deploy.GatePromote || g.Gate == deploy.GateApproval {
			continue
		}
		s := g.Gate + " " + string(g.State)
		if g.Detail != "" {
			s += " (" + g.Detail + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none"
	}
	line := strings.Join(parts, "; ")
	if len(line) > 1000 {
		line = strings.ToValidUTF8(line[:1000], "")
	}
	return line
}

func approvedBy(pr *deploy.Promotion) string {
	if pr.Approval == nil {
		return ""
	}
	return fmt.Sprintf("%s (%s)", pr.Approval.By, pr.Approval.Via)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// notify sends a promotion event.
func (p *Promoter) notify(d *deploy.Deployment, typ, gateName string) {
	if p.cfg.Notifier == nil {
		return
	}
	pr := d.Promotion
	ev := notify.Event{Type: typ, Time: p.now().UTC(), Cluster: pr.To, From: pr.From, Promotion: d.ID,
		Success: typ == notify.PromotionSucceeded, TriggerRepo: d.Request.TriggerRepo, Image: d.Request.Ref(),
		SourceCommit: d.Request.SourceCommit, Author: d.Request.Author, Gate: gateName, Error: d.Error, Commit: d.Commit,
		DeploymentID: pr.Deployment}
	if pr.MergeRequest != nil {
		ev.MergeRequest = pr.MergeRequest.URL
	}
	switch typ {
	case notify.PromotionStarted:
		ev.Summary = fmt.Sprintf("promotion of %s from %s to %s started (path %s)", ev.Image, pr.From, pr.To, pr.Path)
	case notify.PromotionApproval:
		ev.Summary = fmt.Sprintf("promotion of %s to %s waits for approval", ev.Image, pr.To)
		if ev.MergeRequest != "" {
			ev.Summary += ": merge " + ev.MergeRequest
		}
	case notify.PromotionSucceeded:
		ev.Summary = fmt.Sprintf("promoted %s from %s to %s", ev.Image, pr.From, pr.To)
	case notify.PromotionFailed:
		ev.Summary = fmt.Sprintf("promotion of %s from %s to %s failed at %s", ev.Image, pr.From, pr.To, gateName)
	}
	p.cfg.Notifier.Notify(ev)
}

// afterTick is a timer channel of one tick.
func afterTick(d time.Duration) <-chan time.Time { return time.After(d) }
