package reconcile

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"helm.sh/helm/v4/pkg/action"
	helmcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
)

// acting is the set of releases this process runs a Helm action on right
// now, by API server and namespace/name: a pending revision of one of them
// is held by a live mgo (this one) and is never recovered.
var acting = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

func (e *Engine) actingKey(ns, name string) string {
	return e.cluster.Config.Host + "|" + ns + "/" + name
}

// hold records a Helm action on a release until the returned func is
// called.
func (e *Engine) hold(ns, name string) func() {
	key := e.actingKey(ns, name)
	acting.Lock()
	acting.m[key]++
	acting.Unlock()
	return func() {
		acting.Lock()
		if acting.m[key]--; acting.m[key] <= 0 {
			delete(acting.m, key)
		}
		acting.Unlock()
	}
}

func (e *Engine) held(ns, name string) bool {
	acting.Lock()
	defer acting.Unlock()
	return acting.m[e.actingKey(ns, name)] > 0
}

// errPendingHeld is a pending release that may still be in the hands of a
// live mgo (or helm).
type errPendingHeld struct{ msg string }

func (e *errPendingHeld) Error() string { return e.msg }

// recoverPending looks at the newest revision of a release before mgo acts
// on it. A revision left pending-install, pending-upgrade or
// pending-rollback (mgo or helm killed during an action) makes every later
// Helm action fail with "another operation is in progress". When no live
// mgo holds it, it is marked failed, and the sync goes on as after a failed
// upgrade (or, without a deployed revision, a failed install: installed
// again). It is not rolled back: the sync that follows upgrades the release
// to what the repository says anyway, and a rollback would only add a
// revision and roll the workloads twice.
//
// No live mgo holds a pending revision when this process is not acting on
// the release and either the revision was stamped by this instance in an
// earlier process (mgo restarted: stale at once) or it is older than
// Config.PendingTimeout. Otherwise an *errPendingHeld says who holds it.
// It returns the revision as it now is and what was recovered ("" when
// nothing).
func (e *Engine) recoverPending(cfg *action.Configuration, last *releasev1.Release) (*releasev1.Release, string, error) {
	if last == nil || last.Info == nil || !last.Info.Status.IsPending() {
		return last, "", nil
	}
	status := last.Info.Status
	since := last.Info.LastDeployed
	if since.IsZero() {
		since = last.Info.FirstDeployed
	}
	age := time.Since(since)
	instance, started := last.Labels[LabelInstance], last.Labels[LabelStarted]
	what := fmt.Sprintf("release %s/%s revision %d is %s since %s (%s ago)", last.Namespace, last.Name, last.Version, status,
		since.UTC().Format(time.RFC3339), age.Round(time.Second))
	if instance != "" {
		what += fmt.Sprintf(", left by mgo instance %q", instance)
	}
	var why string
	switch {
	case e.held(last.Namespace, last.Name):
		return last, "", &errPendingHeld{what + ": a Helm action of this mgo is still running on it"}
	case instance == e.cfg.InstanceID && started == e.cfg.startedLabel():
		why = "its Helm action in this mgo process ended without finishing it"
	case instance == e.cfg.InstanceID && startedBefore(started, since, e.cfg.StartedAt):
		why = fmt.Sprintf("this mgo instance restarted since (at %s)", e.cfg.StartedAt.UTC().Format(time.RFC3339))
	case age >= e.cfg.PendingTimeout:
		why = fmt.Sprintf("it is older than %s", e.cfg.PendingTimeout)
	default:
		return last, "", &errPendingHeld{fmt.Sprintf("%s: another operation may be in progress; it is recovered once it is older than %s",
			what, e.cfg.PendingTimeout)}
	}
	last.Info.Status = helmcommon.StatusFailed
	last.Info.Description = fmt.Sprintf("mgo: marked failed: left %s (%s)", status, why)
	if err := cfg.Releases.Update(last); err != nil {
		last.Info.Status = status
		return last, "", fmt.Errorf("%s: marking it failed: %w", what, err)
	}
	msg := fmt.Sprintf("%s; marked failed because %s", what, why)
	e.log.Warn("recovered a pending Helm release", "release", last.Name, "namespace", last.Namespace,
		"revision", last.Version, "status", status, "reason", why)
	return last, msg, nil
}

// startedBefore reports whether the process that stamped a revision
// (started: its Unix start time, or else the revision's own time) started
// before this process.
func startedBefore(started string, since, ours time.Time) bool {
	if s, err := strconv.ParseInt(started, 10, 64); err == nil {
		return s < ours.Unix()
	}
	return !since.IsZero() && since.Before(ours)
}

// releaseLabels are the labels of every Helm revision mgo creates.
func (e *Engine) releaseLabels(digest string) map[string]string {
	labels := e.owner.Labels()
	labels[LabelManagedBy] = managedBy
	labels[LabelDigest] = digest
	labels[LabelInstance] = e.cfg.InstanceID
	labels[LabelStarted] = e.cfg.startedLabel()
	return labels
}
