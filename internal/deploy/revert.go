package deploy

import (
	"fmt"
	"strings"
	"time"

	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// A deploy whose rollout failed, under the failure policy revert
// (onFailure in mygitops.yaml or the values header), is undone so that git
// and the cluster agree again:
//
//  1. its settle (finishSynced) finds the rollout failed: the deploy is
//     recorded reverting (not terminal: its caller keeps waiting), with its
//     failure, and a revert job is queued (kind revert, RollbackOf the
//     deploy, author mgo's committer);
//  2. the git worker reverts the deploy's commit alone (Reverts-Deployment
//     and Revert-Reason trailers) and pushes it, as for a rollback: the
//     commits of deploys batched with it stay;
//  3. the cluster's sync rolls its releases back and waits for them;
//  4. when the revert job is finished, so is the deploy: failed, with
//     Reverted, RevertCommit, or RevertError when the revert failed.
//
// A revert is never reverted, nor is a rollback: a failed revert is
// reported and left as it is.

// revertPolicies are the values files of cluster whose failure policy is
// revert in r.
func revertPolicies(r *repo.Repo, cluster string) map[string]bool {
	c := r.Clusters[cluster]
	if c == nil {
		return nil
	}
	out := map[string]bool{}
	for _, rel := range c.Releases {
		if r.Config.OnFailure(cluster, rel.Header) == repo.FailureRevert {
			out[rel.File] = true
		}
	}
	return out
}

// revertFailed starts the revert of j when its sync outcome fails its
// rollout and the failure policy of every release that failed is revert:
// j is recorded reverting and a revert job is queued. It reports whether
// it took j over (j is then finished when its revert is).
func (s *Service) revertFailed(j *job, out syncOutcome, end time.Time) bool {
	if j.d.Kind != KindDeploy || !j.d.Changed || j.d.Commit == "" || out.err != nil || out.res == nil {
		return false
	}
	d := *j.d
	d.Times.Synced, d.Synced = out.started, new(true)
	Settle(&d, j.files, out.res, end)
	if d.Status != Failed || d.Stage != StageRollout {
		return false
	}
	for _, r := range d.Releases {
		if r.Action == reconcile.Failed && !out.revert[r.File] {
			return false
		}
	}
	reason := revertReason(d.Stage, d.Error)
	req := d.Request
	req.Author, req.Client, req.IdempotencyKey, req.Restart = s.cfg.Committer, "mgo", "", false
	req.Identity, req.SourceCommit = Identity{}, ""
	rev := &Deployment{ID: newID(s.cfg.Now()), Kind: KindRevert, Request: req, RollbackOf: d.ID,
		RevertReason: reason, Status: Queued}
	d.Status, d.Times.Finished = Reverting, time.Time{}
	d.RevertedBy, d.RevertReason = rev.ID, reason
	s.mu.Lock()
	*j.d = d
	err := s.cfg.Store.Put(j.d)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("storing deployment", "id", d.ID, "error", err)
	}
	s.log.Warn("deployment's rollout failed: reverting its commit (onFailure: revert)", "id", d.ID,
		"commit", d.Commit, "revert", rev.ID, "reason", reason)
	if _, err := s.enqueue(&job{d: rev, files: d.Files, revert: d.Commit, revertOf: j}); err != nil {
		s.finish(j, func(d *Deployment) {
			d.Status, d.RevertedBy = Failed, ""
			d.RevertError = "the revert was not queued: " + err.Error()
		})
	}
	return true
}

// reverted finishes the deploy a finished revert job undid: failed, and
// reverted when the revert succeeded.
func (s *Service) reverted(rj *job) {
	r := rj.d
	s.finish(rj.revertOf, func(d *Deployment) {
		d.Status = Failed
		if r.Changed || r.Status == Succeeded {
			d.RevertCommit = r.Commit
		}
		if r.Status == Succeeded {
			d.Reverted = true
			d.Message = fmt.Sprintf("reverted by deployment %s (commit %s)", r.ID, short(r.Commit))
			return
		}
		d.RevertError = fmt.Sprintf("the revert (deployment %s) failed at %s: %s", r.ID, r.Stage, r.Error)
	})
}

// revertLeft finishes the deploy of a revert job this replica handed to
// the holder of its cluster's lease, which finishes the revert.
func (s *Service) revertLeft(rj *job) {
	if rj.revertOf == nil {
		return
	}
	orig, r := rj.revertOf, rj.d
	rj.revertOf = nil
	s.finish(orig, func(d *Deployment) {
		d.Status = Failed
		d.RevertCommit = r.Commit
		d.RevertError = fmt.Sprintf("the revert (deployment %s) was pushed and left to the replica holding the lease of cluster %s: that deployment says how it ended",
			r.ID, r.Request.Cluster)
	})
}

// revertReason is the failed stage and the first line of the error, short
// enough for a commit trailer.
func revertReason(stage Stage, msg string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	const max = 300
	if len(line) > max {
		line = strings.ToValidUTF8(line[:max], "") + "..."
	}
	return fmt.Sprintf("%s: %s", stage, line)
}
