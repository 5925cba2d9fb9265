package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/mygitops/mgo/internal/notify"
	"github.com/mygitops/mgo/internal/reconcile"
)

// Notifier is told what happened: deploys and rollbacks finished, syncs of
// pushed changes, drift. Notify must return at once and never fail
// (notify.Dispatcher queues); a nil Notifier in Config sends nothing.
type Notifier interface {
	Notify(notify.Event)
}

// notify hands an event to the Notifier, if there is one.
func (s *Service) notify(ev notify.Event) {
	if s.cfg.Notifier == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = s.cfg.Now().UTC()
	}
	s.cfg.Notifier.Notify(ev)
}

// deploymentEvent is the event of a finished deployment.
func deploymentEvent(d *Deployment) notify.Event {
	ok := d.Status == Succeeded
	typ := map[[2]bool]string{
		{false, true}: notify.DeploySucceeded, {false, false}: notify.DeployFailed,
		{true, true}: notify.RollbackSucceeded, {true, false}: notify.RollbackFailed,
	}[[2]bool{d.Kind == KindRollback || d.Kind == KindRevert, ok}]
	req := d.Request
	ev := notify.Event{
		Type: typ, Time: d.Times.Finished.UTC(), Cluster: req.Cluster, Success: ok,
		DeploymentID: d.ID, RollbackOf: d.RollbackOf, TriggerRepo: req.TriggerRepo, Image: req.Ref(),
		Commit: d.Commit, SourceCommit: req.SourceCommit, Project: project(req),
		Author: req.Author, Requester: req.RequestedBy(), Stage: string(d.Stage), Error: d.Error,
		Reverted: d.Reverted, RevertCommit: d.RevertCommit, RevertReason: d.RevertReason, RevertError: d.RevertError,
	}
	var names []string
	for _, r := range d.Releases {
		ev.Releases = append(ev.Releases, notify.Release{Name: r.Name, Namespace: r.Namespace, Action: string(r.Action),
			Revision: r.Revision, Stage: string(r.Stage), Error: r.Error})
		names = append(names, r.Name)
	}
	where := req.Cluster
	if len(names) > 0 {
		where += "/" + strings.Join(names, ",")
	}
	switch {
	case d.Kind == KindRevert && ok:
		ev.Summary = fmt.Sprintf("reverted deployment %s on %s after its rollout failed", d.RollbackOf, where)
	case d.Kind == KindRevert:
		ev.Summary = fmt.Sprintf("revert of deployment %s on %s failed at %s", d.RollbackOf, where, d.Stage)
	case d.Kind == KindRollback && ok:
		ev.Summary = fmt.Sprintf("rolled back deployment %s on %s", d.RollbackOf, where)
	case d.Kind == KindRollback:
		ev.Summary = fmt.Sprintf("rollback of deployment %s on %s failed at %s", d.RollbackOf, where, d.Stage)
	case ok:
		ev.Summary = fmt.Sprintf("deployed %s to %s", req.Ref(), where)
	default:
		ev.Summary = fmt.Sprintf("deploy of %s to %s failed at %s", req.Ref(), where, d.Stage)
	}
	switch {
	case d.Reverted:
		ev.Summary += fmt.Sprintf("; reverted by commit %s", short(d.RevertCommit))
	case d.RevertError != "":
		ev.Summary += "; " + d.RevertError
	case d.Message != "":
		ev.Summary += " (" + d.Message + ")"
	}
	du := d.Times.Durations()
	ev.Seconds = map[string]float64{}
	for k, v := range map[string]float64{"committed": du.Committed, "pushed": du.Pushed, "synced": du.Synced, "rolledOut": du.RolledOut, "total": du.Total} {
		if v > 0 {
			ev.Seconds[k] = v
		}
	}
	return ev
}

// startedEvent is the event of a deploy that was accepted and queued.
func startedEvent(d *Deployment) notify.Event {
	req := d.Request
	return notify.Event{
		Type: notify.DeployStarted, Time: d.Times.Queued.UTC(), Cluster: req.Cluster,
		DeploymentID: d.ID, TriggerRepo: req.TriggerRepo, Image: req.Ref(),
		SourceCommit: req.SourceCommit, Project: project(req), Author: req.Author, Requester: req.RequestedBy(),
		Summary: fmt.Sprintf("deploying %s to %s", req.Ref(), req.Cluster),
	}
}

// project is the forge project of the request's trigger repo: the OIDC
// identity's project, else the trigger repo without its host
// (gitlab.com/acme/app: acme/app).
func project(req Request) string {
	if req.Identity.Project != "" {
		return req.Identity.Project
	}
	host, path, ok := strings.Cut(req.TriggerRepo, "/")
	if ok && strings.Contains(host, ".") {
		return path
	}
	return req.TriggerRepo // no host in it
}

// pushedChangeEvent is the event of a sync of a change someone pushed,
// with the author and subject of the commit it synced and how long the
// sync took.
func (s *Service) pushedChangeEvent(ctx context.Context, cluster string, out syncOutcome, err error) notify.Event {
	ev := syncEvent(cluster, out, err)
	if out.head != "" {
		if c, cerr := s.cfg.Git.Commit(ctx, out.head); cerr == nil {
			ev.Author = c.Author
			ev.Summary += ": " + c.Subject
		} else {
			s.log.Debug("notification: no author for the synced commit", "commit", out.head, "error", cerr)
		}
	}
	if !out.started.IsZero() {
		if d := s.cfg.Now().Sub(out.started).Seconds(); d > 0 {
			ev.Seconds = map[string]float64{"synced": d}
		}
	}
	return ev
}

// syncEvent is the event of a sync of a change someone pushed.
func syncEvent(cluster string, out syncOutcome, err error) notify.Event {
	ev := notify.Event{Type: notify.SyncSucceeded, Cluster: cluster, Success: true, Commit: out.head}
	if err == nil && out.res != nil && out.res.Failed() {
		var failed []string
		for _, rr := range out.res.Releases {
			if rr.Action == reconcile.Failed {
				failed = append(failed, fmt.Sprintf("%s/%s: %s", rr.Namespace, rr.Name, rr.Error))
			}
		}
		if out.res.RawError != "" {
			failed = append(failed, "raw manifests: "+out.res.RawError)
		}
		err = fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	if out.res != nil {
		for _, rr := range out.res.Releases {
			if rr.Action == reconcile.Unchanged {
				continue
			}
			ev.Releases = append(ev.Releases, notify.Release{Name: rr.Name, Namespace: rr.Namespace, Action: string(rr.Action),
				Revision: rr.Revision, Stage: string(rr.Stage), Error: rr.Error})
		}
	}
	ev.Summary = fmt.Sprintf("synced %s at %s", cluster, short(out.head))
	if err != nil {
		ev.Type, ev.Success, ev.Error = notify.SyncFailed, false, err.Error()
		ev.Summary = fmt.Sprintf("sync of %s at %s failed", cluster, short(out.head))
	}
	return ev
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
