package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/internal/secrets"
)

// DeployAction is the deploy pipeline of one request, read top to bottom:
// check (the values files of the cluster that list the trigger repo, at
// the remote head, and that they are valid), change (edit, commit with
// the requester as author and the deployment's trailers), push, and
// optionally sync the cluster and settle the deployment with its
// releases' results.
//
// Its steps are the deploy pipeline of mgo: mgo deploy --repo runs them
// all for one request (Run); the service runs the same steps (Check when
// a request arrives, Change for each request of the git worker's batch,
// which it pushes once, Settle when the cluster's sync answers), so both
// make the same commits and the same deployments.
type DeployAction struct {
	// Git is the clone of the gitops repo.
	Git GitWriter
	// NewSyncer, when set, returns the syncer of the request's cluster
	// (loaded from the pushed tree): the cluster is then synced after the
	// push and the deployment carries its releases' results. A syncer with
	// a Close method (an engine's watches) is closed once the sync is done.
	NewSyncer func(r *repo.Repo) (ClusterSyncer, error)
	// SecretKeys decrypt SOPS-encrypted secrets files, so that one that does
	// not decrypt refuses the deploy before the commit (see Targets).
	SecretKeys secrets.Keys
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Cache, when set, keeps what the values files say between checks and
	// edits (a service loads the tree for every request).
	Cache *repo.ParseCache
}

// Run deploys req and returns its deployment. A request refused before
// anything was written is an error that wraps ErrInvalid, ErrNotFound,
// ErrForbidden, ErrUnprocessable or gitrepo.ErrChange (see Refused); a git
// failure is another error. A failed sync or rollout is not an error: the
// deployment is failed then, with its stage.
func (a *DeployAction) Run(ctx context.Context, req Request) (*Deployment, error) {
	now := a.Now
	if now == nil {
		now = time.Now
	}
	if err := req.Normalize(); err != nil {
		return nil, err
	}
	d := &Deployment{ID: newID(now()), Kind: KindDeploy, Request: req, Status: Queued, Times: Times{Queued: now()}}
	if _, err := a.Git.Fetch(ctx); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	files, err := a.Check(ctx, &req)
	if err != nil {
		return nil, err
	}
	var changed []string
	res, err := a.Git.ApplyBatch(ctx, []gitrepo.Change{a.Change(req, d.ID, files, nil, func(c []string) { changed = c })})
	if err == nil {
		err = res.Changes[0].Err
	}
	if err != nil {
		return nil, err
	}
	d.Status, d.Changed, d.Commit, d.Files = Pushed, res.Changes[0].Changed, res.Changes[0].Commit, changed
	if !d.Changed {
		d.Commit, d.Files = res.Head, files
	}
	d.Times.Committed, d.Times.Pushed = now(), now()
	if a.NewSyncer == nil {
		d.Status, d.Times.Finished = Succeeded, now()
		return d, nil
	}
	d.Times.Synced = now()
	var out *reconcile.Result
	err = a.Git.Read(ctx, func(dir, _ string) error {
		r, err := repo.Load(dir, repo.LoadOptions{Cluster: req.Cluster, Keys: a.SecretKeys})
		if err != nil {
			return err
		}
		e, err := a.NewSyncer(r)
		if err != nil {
			return err
		}
		if c, ok := e.(interface{ Close() }); ok {
			defer c.Close()
		}
		out, err = e.Sync(ctx, r, reconcile.Options{Full: true})
		return err
	})
	if err != nil {
		d.Status, d.Stage, d.Error, d.Times.Finished = Failed, StageSync, err.Error(), now()
		return d, nil
	}
	Settle(d, d.Files, out, now())
	return d, nil
}

// Check is the pipeline's first step: the values files of req's cluster
// that list its trigger repo, at the clone's head, refused as Targets
// says when they are not there or not valid, and refused with a
// *FrozenError while the cluster is frozen for the trigger repo (see
// repo.FreezePolicy) unless req.OverrideFreeze: req.FreezeOverride then
// names the freeze, for the commit's Freeze-Override trailer. Nothing is
// written.
func (a *DeployAction) Check(ctx context.Context, req *Request) ([]string, error) {
	var files []string
	err := a.Git.Read(ctx, func(dir, _ string) error {
		var err error
		if files, err = targets(dir, *req, a.SecretKeys, a.Cache); err != nil {
			return err
		}
		return checkFreeze(dir, req, a.now())
	})
	return files, err
}

// Refused reports whether err (of DeployAction.Run) refused the request
// as it was: bad input, an unknown cluster or trigger repo, a values file
// with errors, an image outside allowedImages, a freeze. Sending it again
// does not help (until the freeze ends).
func Refused(err error) bool {
	for _, target := range []error{ErrInvalid, ErrNotFound, ErrForbidden, ErrUnprocessable, ErrFrozen, gitrepo.ErrChange, gitrepo.ErrInvalidAuthor} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Change is the pipeline's commit of a deploy request, for ApplyBatch: its
// edit of files, run again on a fresh tree after a lost push race, and its
// commit info. before, when set, runs before each edit and may refuse it;
// changed receives the files each run of the edit changed.
func (a *DeployAction) Change(req Request, id string, files []string, before func() error, changed func([]string)) gitrepo.Change {
	cache := a.Cache
	return gitrepo.Change{
		Func: func(dir string) (bool, error) {
			if before != nil {
				if err := before(); err != nil {
					return false, err
				}
			}
			files, err := req.edit(dir, cache)
			if err != nil {
				return false, err
			}
			if changed != nil {
				changed(files)
			}
			return len(files) > 0, nil
		},
		Info: req.CommitInfo(id, files),
	}
}

// Settle is the pipeline's last step: it finishes d with its releases'
// results in a sync result (those of files): succeeded when every one of them was rolled out, else failed at
// stage rollout (a release that did not become ready) or sync (one that
// could not be rendered or applied).
func Settle(d *Deployment, files []string, res *reconcile.Result, end time.Time) {
	d.Releases = nil
	var failed []string
	stage := StageRollout
	for _, rr := range res.Releases {
		if !slices.Contains(files, rr.File) {
			continue
		}
		d.Releases = append(d.Releases, Outcome(rr))
		if rr.Action == reconcile.Failed {
			failed = append(failed, fmt.Sprintf("%s/%s: %s", rr.Namespace, rr.Name, rr.Error))
			if rr.Stage != reconcile.StageWait {
				stage = StageSync
			}
		}
	}
	d.Synced = new(true)
	d.Times.Finished = end
	if len(failed) > 0 {
		d.Status, d.Stage = Failed, stage
		d.Error = fmt.Errorf("%w: %s", ErrRollout, strings.Join(failed, "; ")).Error()
		return
	}
	d.Status, d.Times.RolledOut = Succeeded, end
}
