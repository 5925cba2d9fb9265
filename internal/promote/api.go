package promote

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// View is a candidate in the API's wire format; soak the stage's
// healthyFor (for its end).
func View(d *deploy.Deployment, st *repo.PromotionStage) apitypes.Promotion {
	pr := d.Promotion
	v := apitypes.Promotion{ID: d.ID, Path: pr.Path, From: pr.From, To: pr.To, Stage: pr.Stage,
		TriggerRepo: d.Request.TriggerRepo, ImageRepo: d.Request.ImageRepo, Tag: d.Request.Tag, Digest: d.Request.Digest,
		SourceCommit: d.Request.SourceCommit, Author: d.Request.Author, Source: pr.Source, FromCommit: pr.FromCommit,
		Releases: pr.Releases, Phase: apitypes.PromotionPhase(pr.Phase), Error: d.Error, RolledOut: pr.RolledOut,
		SoakStart: pr.SoakStart, SoakRestarts: pr.SoakRestarts, Deployment: pr.Deployment, Manual: pr.Manual,
		Created: d.Times.Queued, Finished: d.Times.Finished}
	if st != nil && pr.Phase == deploy.PhaseSoaking {
		v.SoakEnds = pr.SoakStart.Add(st.HealthyFor)
	}
	for _, g := range pr.Gates {
		ag := apitypes.PromotionGate{Gate: g.Gate, State: apitypes.GateState(g.State), Detail: g.Detail, Started: g.Started, Finished: g.Finished}
		for _, c := range g.Checks {
			ag.Checks = append(ag.Checks, apitypes.GateCheck{Name: c.Name, Passed: c.Passed, Detail: c.Detail, At: c.At})
		}
		v.Gates = append(v.Gates, ag)
	}
	if a := pr.Approval; a != nil {
		v.Approval = &apitypes.Approval{By: a.By, Via: a.Via, At: a.At, Comment: a.Comment}
	}
	if m := pr.MergeRequest; m != nil {
		v.MergeRequest = &apitypes.MergeRequest{Forge: m.Forge, URL: m.URL, Number: m.Number, Branch: m.Branch, Commit: m.Commit,
			State: m.State, MergeCommit: m.MergeCommit}
	}
	return v
}

func (p *Promoter) candidate(id string) (*deploy.Deployment, error) {
	d, err := p.cfg.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if d.Kind != deploy.KindPromotion || d.Promotion == nil {
		return nil, fmt.Errorf("%w: no promotion candidate %q", deploy.ErrNotFound, id)
	}
	return d, nil
}

func (p *Promoter) stage(ctx context.Context, d *deploy.Deployment) *repo.PromotionStage {
	cfg, _, err := p.cfg.Service.RepoConfig(ctx)
	if err != nil {
		return nil
	}
	path, ok := cfg.Promotion(d.Promotion.Path)
	if !ok || d.Promotion.Stage >= len(path.Stages) {
		return nil
	}
	return &path.Stages[d.Promotion.Stage]
}

// Get returns one candidate.
func (p *Promoter) Get(ctx context.Context, id string) (apitypes.Promotion, error) {
	d, err := p.candidate(id)
	if err != nil {
		return apitypes.Promotion{}, err
	}
	return View(d, p.stage(ctx, d)), nil
}

// Wait returns the candidate once it is finished, or when ctx ends.
func (p *Promoter) Wait(ctx context.Context, id string) (apitypes.Promotion, error) {
	d, err := p.candidate(id)
	if err != nil {
		return apitypes.Promotion{}, err
	}
	if !d.Status.Terminal() {
		ch := make(chan struct{})
		p.mu.Lock()
		p.waiters[id] = append(p.waiters[id], ch)
		p.mu.Unlock()
		// Another replica may finish it: read the record again now and then.
		for done := false; !done; {
			select {
			case <-ch:
				done = true
			case <-ctx.Done():
				return apitypes.Promotion{}, ctx.Err()
			case <-afterTick(p.cfg.Tick):
				if cur, err := p.cfg.Store.Get(id); err == nil && cur.Status.Terminal() {
					done = true
				}
			}
		}
	}
	return p.Get(ctx, id)
}

// decide records an approval or a rejection of a candidate waiting for one.
func (p *Promoter) decide(ctx context.Context, id string, by deploy.Approver, comment string, approve bool) (apitypes.Promotion, error) {
	d, err := p.candidate(id)
	if err != nil {
		return apitypes.Promotion{}, err
	}
	st := p.stage(ctx, d)
	pr := d.Promotion
	switch {
	case d.Status.Terminal():
		return apitypes.Promotion{}, fmt.Errorf("%w: candidate %s is %s", deploy.ErrConflict, id, pr.Phase)
	case approve && (st == nil || st.Approval != repo.ApprovalAPI):
		return apitypes.Promotion{}, fmt.Errorf("%w: stage %s of path %s is not approved by API (approval: %s)", deploy.ErrConflict, pr.To, pr.Path, approvalOf(st))
	case approve && pr.Phase != deploy.PhaseApproval:
		return apitypes.Promotion{}, fmt.Errorf("%w: candidate %s is %s, not waiting for approval", deploy.ErrConflict, id, pr.Phase)
	case pr.Approval != nil:
		return apitypes.Promotion{}, fmt.Errorf("%w: candidate %s was approved already by %s", deploy.ErrConflict, id, pr.Approval.By)
	}
	now := p.now()
	pr.Approval = &deploy.Approval{By: by.Name(), Via: repo.ApprovalAPI, At: now, Comment: comment}
	g := gate(pr, deploy.GateApproval)
	g.Finished = now
	if approve {
		g.State, g.Detail = deploy.GatePassed, "approved by "+by.Name()
		if err := p.put(d); err != nil {
			return apitypes.Promotion{}, err
		}
		p.log.Info("promotion approved", "id", id, "by", by.Name())
		p.poke()
	} else {
		g.State, g.Detail = deploy.GateFailed, "rejected by "+by.Name()
		pr.Phase = deploy.PhaseRejected
		d.Status, d.Stage, d.Error, d.Times.Finished = deploy.Failed, deploy.Stage(deploy.GateApproval), "rejected by "+by.Name(), now
		if comment != "" {
			d.Error += ": " + comment
		}
		if err := p.put(d); err != nil {
			return apitypes.Promotion{}, err
		}
		p.log.Info("promotion rejected", "id", id, "by", by.Name())
		p.notify(d, "promotion.failed", deploy.GateApproval)
	}
	return View(d, st), nil
}

func approvalOf(st *repo.PromotionStage) string {
	if st == nil {
		return "unknown"
	}
	return st.Approval
}

// Approve lets a candidate waiting for an approve call go on.
func (p *Promoter) Approve(ctx context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error) {
	return p.decide(ctx, id, by, comment, true)
}

// Reject stops a candidate that is not finished.
func (p *Promoter) Reject(ctx context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error) {
	return p.decide(ctx, id, by, comment, false)
}

// PromoteNow starts a candidate of what runs now in the cluster before
// req.To: the newest succeeded deploy or promotion of the trigger repo
// there. Its soak starts now; with SkipGates (the caller's permission) the
// gates are skipped and it goes to the approval.
func (p *Promoter) PromoteNow(ctx context.Context, req apitypes.PromoteRequest, by deploy.Approver) (apitypes.Promotion, error) {
	cfg, _, err := p.cfg.Service.RepoConfig(ctx)
	if err != nil {
		return apitypes.Promotion{}, err
	}
	path, ok := cfg.Promotion(req.Path)
	if !ok {
		return apitypes.Promotion{}, fmt.Errorf("%w: no promotion path %q in %s", deploy.ErrNotFound, req.Path, repo.ConfigFile)
	}
	if path.Invalid {
		return apitypes.Promotion{}, fmt.Errorf("%w: promotion path %q has errors (mgo validate)", deploy.ErrUnprocessable, req.Path)
	}
	next := path.StageOf(req.To)
	if next < 1 {
		return apitypes.Promotion{}, &deploy.FieldError{Field: "to", Msg: fmt.Sprintf("%q is not a stage after the first of path %s", req.To, req.Path)}
	}
	if !path.Matches(req.TriggerRepo) {
		return apitypes.Promotion{}, &deploy.FieldError{Field: "triggerRepo", Msg: fmt.Sprintf("%q does not flow along path %s (%s)", req.TriggerRepo, req.Path, strings.Join(path.TriggerRepos, ", "))}
	}
	if req.SkipGates && !by.SkipGates {
		return apitypes.Promotion{}, fmt.Errorf("%w: skipGates needs the skipGates permission", deploy.ErrForbidden)
	}
	from := path.Stages[next-1].Cluster
	runs, err := p.cfg.Store.List(1, func(d *deploy.Deployment) bool {
		return (d.Kind == deploy.KindDeploy || d.Kind == deploy.KindPromote) && d.Status == deploy.Succeeded &&
			d.Request.Cluster == from && d.Request.TriggerRepo == req.TriggerRepo
	})
	if err != nil {
		return apitypes.Promotion{}, err
	}
	if len(runs) == 0 {
		return apitypes.Promotion{}, fmt.Errorf("%w: no deploy of %s to %s is recorded: nothing to promote", deploy.ErrNotFound, req.TriggerRepo, from)
	}
	d, err := p.create(ctx, path, next, runs[0], true, by.Name())
	if err != nil {
		return apitypes.Promotion{}, err
	}
	if req.SkipGates {
		now := p.now()
		for _, name := range []string{deploy.GateHealthy, deploy.GateTests, deploy.GateChecks} {
			g := gate(d.Promotion, name)
			g.State, g.Finished, g.Detail = deploy.GateSkipped, now, "skipped by "+by.Name()
		}
		d.Promotion.Phase = deploy.PhaseApproval
		if err := p.put(d); err != nil {
			return apitypes.Promotion{}, err
		}
	}
	p.poke()
	return View(d, &path.Stages[next]), nil
}

// Paths lists the promotion paths with the clusters keep accepts.
func (p *Promoter) Paths(ctx context.Context, keep, canApprove func(string) bool) ([]apitypes.PromotionPath, error) {
	cfg, _, err := p.cfg.Service.RepoConfig(ctx)
	if err != nil {
		return nil, err
	}
	recent, err := p.cfg.Store.Since(p.now().Add(-scanWindow), 100000)
	if err != nil {
		return nil, err
	}
	out := []apitypes.PromotionPath{}
	for _, path := range cfg.Promotions {
		v := apitypes.PromotionPath{Name: path.Name, TriggerRepos: path.TriggerRepos, Stages: []apitypes.PromotionStageView{}}
		for i, st := range path.Stages {
			if keep != nil && !keep(st.Cluster) {
				continue
			}
			sv := apitypes.PromotionStageView{Cluster: st.Cluster, CanApprove: canApprove != nil && canApprove(st.Cluster)}
			if i > 0 {
				sv.HealthyForSeconds, sv.Tests, sv.Checks, sv.Approval = st.HealthyFor.Seconds(), st.Tests, len(st.Checks), st.Approval
			}
			for _, d := range slices.Backward(recent) {
				switch {
				case sv.Image == "" && (d.Kind == deploy.KindDeploy || d.Kind == deploy.KindPromote) && d.Status == deploy.Succeeded &&
					d.Request.Cluster == st.Cluster && path.Matches(d.Request.TriggerRepo):
					sv.Image, sv.ImageSource = d.Request.Ref(), d.ID
				case sv.Candidate == nil && d.Kind == deploy.KindPromotion && d.Promotion != nil && d.Promotion.Path == path.Name && d.Promotion.To == st.Cluster:
					c := View(d, &path.Stages[i])
					sv.Candidate = &c
				case d.Status == deploy.Held && d.Request.Cluster == st.Cluster && path.Matches(d.Request.TriggerRepo):
					sv.Held++
				}
			}
			v.Stages = append(v.Stages, sv)
		}
		out = append(out, v)
	}
	return out, nil
}
