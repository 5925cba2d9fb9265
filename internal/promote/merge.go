package promote

import (
	"context"
	"fmt"
	"strings"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/forge"
	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/repo"
)

// mergeRequest opens the candidate's merge request (a branch with the
// promote commit, then the forge's merge request), or reads its state:
// merged is the approval, and the sync of the merged commit (webhook or
// poll) is the promotion; closed rejects the candidate.
func (p *Promoter) mergeRequest(ctx context.Context, st repo.PromotionStage, d *deploy.Deployment) {
	pr := d.Promotion
	if p.cfg.Forge == nil || p.cfg.Branches == nil || st.MergeRequest == nil {
		p.fail(d, deploy.GateApproval, "merge requests are not available in this mgo")
		return
	}
	fc, err := p.cfg.Forge(*st.MergeRequest)
	if err != nil {
		p.fail(d, deploy.GateApproval, "merge request: "+err.Error())
		return
	}
	g := gate(pr, deploy.GateApproval)
	if pr.MergeRequest == nil {
		g.State, g.Started = deploy.GateRunning, p.now()
		req := d.Request
		req.Promoted = &deploy.Promoted{Candidate: d.ID, Path: pr.Path, From: pr.From, FromCommit: pr.FromCommit,
			Gates: gateLine(pr), ApprovedBy: "the merge of its merge request"}
		branch := "mgo/promote-" + strings.ToLower(d.ID)
		var files []string
		res, err := p.cfg.Branches.PushBranch(ctx, branch, func(dir string) (bool, error) {
			var err error
			files, err = req.Edit(dir)
			return len(files) > 0, err
		}, req.CommitInfo(d.ID, files))
		if err != nil {
			p.log.Warn("promotion: pushing the merge request's branch failed; trying again", "id", d.ID, "error", err)
			return
		}
		if !res.Changed {
			pr.Approval = &deploy.Approval{By: "mgo", Via: repo.ApprovalMergeRequest, At: p.now(), Comment: pr.To + " runs the image already"}
			g.State, g.Detail = deploy.GatePassed, "nothing to merge: "+pr.To+" runs the image already"
			p.promote(ctx, d)
			return
		}
		ref, err := fc.Open(ctx, forge.MergeRequest{Branch: branch, Target: "", Title: req.CommitInfo(d.ID, nil).Message.Summary,
			Description: fmt.Sprintf("Promotion of %s from %s (commit %s) to %s, path %s.\n\nGates on %s: %s\n\nCandidate %s. Merging this is the approval; mgo syncs %s from the merged commit.",
				req.Ref(), pr.From, short(pr.FromCommit), pr.To, pr.Path, pr.From, gateLine(pr), d.ID, pr.To)})
		if err != nil {
			p.log.Warn("promotion: opening the merge request failed; trying again", "id", d.ID, "error", err)
			return
		}
		pr.MergeRequest = &deploy.MergeRequest{Forge: fc.Kind(), URL: ref.URL, Number: ref.Number, Branch: branch, Commit: res.Commit, State: forge.StateOpen}
		g.Detail = "waiting for the merge of " + ref.URL
		if p.put(d) == nil {
			p.notify(d, notify.PromotionApproval, "")
		}
		return
	}
	p.mu.Lock()
	due := p.now().Sub(p.forgeRead[d.ID]) >= p.cfg.ForgeEvery
	if due {
		p.forgeRead[d.ID] = p.now()
	}
	p.mu.Unlock()
	if !due {
		return
	}
	s, err := fc.State(ctx, pr.MergeRequest.Number)
	if err != nil {
		p.log.Warn("promotion: reading the merge request failed", "id", d.ID, "url", pr.MergeRequest.URL, "error", err)
		return
	}
	switch s.State {
	case forge.StateMerged:
		now := p.now()
		pr.MergeRequest.State, pr.MergeRequest.MergeCommit = s.State, s.MergeCommit
		pr.Approval = &deploy.Approval{By: "merge of " + pr.MergeRequest.URL, Via: repo.ApprovalMergeRequest, At: now}
		g.State, g.Finished, g.Detail = deploy.GatePassed, now, "merged as "+short(s.MergeCommit)
		pg := gate(pr, deploy.GatePromote)
		pg.State, pg.Finished, pg.Detail = deploy.GatePassed, now, "the merged commit "+short(s.MergeCommit)+" is synced by the refresh of "+pr.To
		pr.Phase = deploy.PhasePromoted
		d.Status, d.Commit, d.Changed, d.Times.Finished = deploy.Succeeded, s.MergeCommit, true, now
		if p.put(d) == nil {
			p.notify(d, notify.PromotionSucceeded, "")
			if p.cfg.Refresh != nil {
				p.cfg.Refresh()
			}
		}
	case forge.StateClosed:
		p.fail(d, deploy.GateApproval, "the merge request "+pr.MergeRequest.URL+" was closed without merging")
	}
}
