package api

import (
	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// The API answers in the types of pkg/apitypes, its wire format; these
// functions turn the service's records and results into them.

// WireDeployment is a deployment record as the API answers it.
func WireDeployment(d *deploy.Deployment) *apitypes.Deployment {
	if d == nil {
		return nil
	}
	out := &apitypes.Deployment{
		ID: d.ID, Kind: apitypes.DeploymentKind(d.Kind), Request: wireRequest(d.Request), RollbackOf: d.RollbackOf,
		Status: apitypes.DeploymentStatus(d.Status), Changed: d.Changed, Commit: d.Commit, Files: d.Files,
		Stage: apitypes.DeploymentStage(d.Stage), Error: d.Error, Synced: d.Synced, Message: d.Message,
		Reverted: d.Reverted, RevertedBy: d.RevertedBy, RevertCommit: d.RevertCommit, RevertReason: d.RevertReason, RevertError: d.RevertError,
		HeldBy: d.HeldBy, Times: apitypes.Times(d.Times), Seconds: apitypes.Seconds(d.Seconds),
	}
	if p := d.Request.Promoted; p != nil {
		pr := apitypes.Promoted(*p)
		out.Promoted = &pr
	}
	for _, r := range d.Releases {
		out.Releases = append(out.Releases, apitypes.ReleaseOutcome{File: r.File, Name: r.Name, Namespace: r.Namespace,
			Action: apitypes.ReleaseAction(r.Action), Revision: r.Revision, Stage: apitypes.ReleaseStage(r.Stage),
			Error: r.Error, Objects: wireObjects(r.Objects), After: r.After})
	}
	return out
}

func wireRequest(r deploy.Request) apitypes.Request {
	out := apitypes.Request{Cluster: r.Cluster, TriggerRepo: r.TriggerRepo, ImageRepo: r.ImageRepo, Tag: r.Tag,
		Digest: r.Digest, Author: r.Author, Client: r.Client, IdempotencyKey: r.IdempotencyKey, Restart: r.Restart,
		SourceCommit: r.SourceCommit, FreezeOverride: r.FreezeOverride}
	if r.Identity != (deploy.Identity{}) {
		id := apitypes.Identity(r.Identity)
		out.Identity = &id
	}
	return out
}

func wireObjects(objs []reconcile.ObjectResult) []apitypes.Object {
	var out []apitypes.Object
	for _, o := range objs {
		out = append(out, apitypes.Object{Subject: o.Subject, Action: apitypes.ObjectAction(o.Action),
			Status: apitypes.ObjectStatus(o.Status), Message: o.Message})
	}
	return out
}

func wireCluster(c deploy.ClusterStatus) apitypes.Cluster {
	return apitypes.Cluster{Name: c.Name, Head: c.Head, LastSync: c.LastSync, Failed: c.Failed, Error: c.Error,
		Releases: c.Releases, Drift: c.Drift, DriftChecked: c.DriftChecked, Manual: c.Manual, Pending: c.Pending}
}

func wireSyncResult(r *reconcile.Result) apitypes.SyncResult {
	out := apitypes.SyncResult{Cluster: r.Cluster, Releases: []apitypes.ReleaseResult{}, Raw: wireObjects(r.Raw),
		RawError: r.RawError, Requests: r.Requests, Seconds: r.Duration.Seconds()}
	for _, rr := range r.Releases {
		out.Releases = append(out.Releases, apitypes.ReleaseResult{File: rr.File, Name: rr.Name, Namespace: rr.Namespace,
			Chart: rr.Chart, ChartVersion: rr.ChartVersion, Action: apitypes.ReleaseAction(rr.Action), Revision: rr.Revision,
			Objects: wireObjects(rr.Objects), Stage: apitypes.ReleaseStage(rr.Stage), Error: rr.Error,
			Recovered: rr.Recovered, Note: rr.Note, After: rr.After, Seconds: rr.Duration.Seconds()})
	}
	return out
}

func wireDiff(d *reconcile.DiffResult) apitypes.Diff {
	out := apitypes.Diff{Releases: []apitypes.ReleaseDiff{}, Raw: wireObjectDiffs(d.Raw), RawError: d.RawError}
	for _, r := range d.Releases {
		out.Releases = append(out.Releases, apitypes.ReleaseDiff{File: r.File, Name: r.Name, Namespace: r.Namespace,
			Objects: wireObjectDiffs(r.Objects), Stage: apitypes.ReleaseStage(r.Stage), Error: r.Error, After: r.After})
	}
	return out
}

func wireObjectDiffs(objs []reconcile.ObjectDiff) []apitypes.ObjectDiff {
	var out []apitypes.ObjectDiff
	for _, o := range objs {
		out = append(out, apitypes.ObjectDiff{Subject: o.Subject, Action: apitypes.ObjectAction(o.Action), Diff: o.Diff})
	}
	return out
}

func wireFreeze(f deploy.FreezeStatus) *apitypes.Freeze {
	if len(f.Windows) == 0 && !f.Invalid {
		return nil
	}
	out := &apitypes.Freeze{Held: f.Held, SyncDuringFreeze: !f.HoldPushes, Invalid: f.Invalid, Windows: []apitypes.FreezeWindow{}}
	if f.Active != nil {
		out.Active = wireFreezePeriod(*f.Active)
	}
	if f.Next != nil {
		out.Next = wireFreezePeriod(*f.Next)
	}
	for _, w := range f.Windows {
		out.Windows = append(out.Windows, wireFreezeWindow(w))
	}
	return out
}

func wireFreezePeriod(p repo.FreezePeriod) *apitypes.FreezePeriod {
	out := &apitypes.FreezePeriod{Reason: p.Describe(), From: p.From, Until: p.Until}
	if p.Window != nil {
		w := wireFreezeWindow(*p.Window)
		out.Window = &w
	}
	return out
}

func wireFreezeWindow(w repo.FreezeWindow) apitypes.FreezeWindow {
	tz := w.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	return apitypes.FreezeWindow{Name: w.Name, Kind: apitypes.FreezeKind(w.Kind), Reason: w.Reason, Schedule: w.Schedule,
		Duration: w.Duration.String(), TimeZone: tz, TriggerRepos: w.TriggerRepos}
}
