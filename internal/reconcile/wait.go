package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/faults"
	"github.com/mygitops/mgo/internal/health"
	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/render"
)

// testHookBeforeWait, set by tests only, is called with a release's name
// when its objects are applied and its rollout wait begins.
var testHookBeforeWait func(release string)

// objectStatus records the status of every rendered object (its health
// rule's, else its kstatus), reading each from the API server.
func (e *Engine) objectStatus(ctx context.Context, rendered *render.Rendered, ns string, rules *health.Rules, rr *ReleaseResult) {
	e.probe(ctx, e.waitTargets(rendered, ns), rules, rr, nil, false)
}

// waitTarget is one object a wait reads: its key (the release's namespace
// when the object is namespaced and has none) and subject.
type waitTarget struct {
	obj     *unstructured.Unstructured
	key     client.ObjectKey
	subject string
}

// waitTargets are the rendered objects as a wait reads them, worked out
// once per wait: a wait reads its objects at every watch event.
func (e *Engine) waitTargets(rendered *render.Rendered, ns string) []waitTarget {
	out := make([]waitTarget, 0, len(rendered.Objects))
	for _, obj := range rendered.Objects {
		key := client.ObjectKey{Namespace: obj.GetNamespace(), Name: obj.GetName()}
		if namespaced, _ := e.cluster.Client.IsObjectNamespaced(obj); namespaced && key.Namespace == "" {
			key.Namespace = ns
		}
		s := subject(obj)
		if key.Namespace != "" && obj.GetNamespace() == "" {
			o := obj.DeepCopy()
			o.SetNamespace(key.Namespace)
			s = subject(o)
		}
		out = append(out, waitTarget{obj: obj, key: key, subject: s})
	}
	return out
}

// probe records the status of every target in rr: by the health rule
// of its kind, else its kstatus. With seen, an object
// whose cached copy is at least as new as the version seen[subject]
// (answered by its apply, or read from the API server) is read from the
// engine's cache; while patient, such an object whose cached copy is older
// (the watch event of the apply is still on its way) is recorded as in
// progress without a read. Any other object is read from the API server,
// and seen records its version.
// It returns how many objects it read from the API server, and those a
// health rule calls Failed (as notReady lists them).
func (e *Engine) probe(ctx context.Context, targets []waitTarget, rules *health.Rules, rr *ReleaseResult, seen map[string]string, patient bool) (int, string) {
	read := 0
	var failed strings.Builder
	record := func(i int, st kube.ObjectStatus) {
		rr.Objects[i].Status, rr.Objects[i].Message = st.Status, st.Message
		if st.ByRule && st.Status == health.Failed {
			fmt.Fprintf(&failed, "; %s is %s: %s", rr.Objects[i].Subject, st.Status, st.Message)
		}
	}
	byName := map[string]int{}
	for i, o := range rr.Objects {
		byName[o.Subject] = i
	}
	for _, t := range targets {
		obj, key, s := t.obj, t.key, t.subject
		i, ok := byName[s]
		if !ok {
			rr.Objects = append(rr.Objects, ObjectResult{Subject: s})
			i = len(rr.Objects) - 1
		}
		if seen != nil && seen[s] != "" && e.cache != nil {
			live, err := e.cache.Get(ctx, obj.GroupVersionKind(), key.Namespace, key.Name)
			if err == nil && live != nil {
				if c, err := resourceversion.CompareResourceVersion(live.GetResourceVersion(), seen[s]); err == nil && c >= 0 {
					record(i, kube.StatusWith(rules, live))
					continue
				}
			}
			if err == nil && patient {
				rr.Objects[i].Status, rr.Objects[i].Message = status.InProgressStatus.String(), "waiting for the watch to see version "+seen[s]
				continue
			}
		}
		st, live := e.cluster.StatusAndObject(ctx, rules, obj, key)
		read++
		record(i, st)
		if seen != nil && live != nil && e.cache != nil {
			seen[s] = live.GetResourceVersion()
		}
	}
	return read, failed.String()
}

// waitRollout waits until every rendered object is Current (by its health
// rule, else kstatus), a health rule calls one Failed, or timeout passes;
// then the error names those that are not (waitCurrent), and otherwise rr
// holds the objects' statuses. known are the versions (by
// subject) the objects are known at: answered by their apply, or, for those
// the plan found unchanged and the apply did not touch, as the plan read
// them.
func (e *Engine) waitRollout(ctx context.Context, rendered *render.Rendered, ns string, rules *health.Rules, timeout time.Duration, rr *ReleaseResult, known map[string]string) error {
	faults.Point(faults.RolloutWait)
	objs, err := e.waitCurrent(ctx, rendered, ns, rules, timeout, rr, known)
	if err == nil {
		rr.Objects = objs
	}
	return err
}

// watchPatience is how long a rollout wait waits for the watch event of an
// object's known version before it reads the object from the API server.
const watchPatience = 2 * time.Second

// waitCurrent waits until every object of rendered is Current or timeout
// passes; then the error names those that are not. An object's status is
// its health rule's (rules), else its kstatus; when a rule calls an object
// Failed the wait ends at once, the error naming it. Objects whose version is
// in known (answered by their apply, or found unchanged by the plan) are
// read from the engine's cache once it holds that version, each time a
// watch event arrives, without a request; one it does not hold at that
// version within watchPatience is read from the API server. Other objects
// are read once from the API server; then, for the kinds the cache
// watches, from the cache at each watch event; objects the cache does not
// hold are polled (200 ms backing off to 2 s). It returns rr's objects
// with the status last seen; rr itself is left as it is.
func (e *Engine) waitCurrent(ctx context.Context, rendered *render.Rendered, ns string, rules *health.Rules, timeout time.Duration, rr *ReleaseResult, known map[string]string) ([]ObjectResult, error) {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 200 * time.Millisecond
	seen := maps.Clone(known)
	if seen == nil {
		seen = map[string]string{}
	}
	targets := e.waitTargets(rendered, ns)
	var last []ObjectResult
	for first := true; ; first = false {
		var changed <-chan struct{}
		if e.cache != nil {
			changed = e.cache.Changed() // before the probe: no event is missed
		}
		probe := ReleaseResult{Objects: slices.Clone(rr.Objects)}
		read, failed := e.probe(wctx, targets, rules, &probe, seen, time.Since(start) < watchPatience)
		last = probe.Objects
		pending := notReady(probe.Objects)
		if pending == "" {
			return last, nil
		}
		if failed != "" {
			// A health rule's failed expression holds: waiting longer
			// would not make the object ready.
			return last, fmt.Errorf("rollout failed%s", failed)
		}
		// Poll while some object is read from the API server (not in the
		// cache, or the cache not yet as new as the apply).
		// Probe again on a timer, too, while waiting for the watch to
		// see a version: its event may never come (the object deleted, or
		// its labels taken off by another writer), then it is read.
		polled := e.cache == nil || first || read > 0 || time.Since(start) < watchPatience
		var tick <-chan time.Time
		if polled {
			tick = time.After(interval)
			interval = min(interval*3/2, 2*time.Second)
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, fmt.Errorf("rollout not ready within %s%s", timeout, pending)
		case <-changed:
		case <-tick:
		}
	}
}

// notReady lists the objects that are not Current, with their status and
// message; "" when all are.
func notReady(objs []ObjectResult) string {
	var b strings.Builder
	for _, o := range objs {
		if o.Status != "" && o.Status != status.CurrentStatus.String() {
			fmt.Fprintf(&b, "; %s is %s", o.Subject, o.Status)
			if o.Message != "" {
				fmt.Fprintf(&b, ": %s", o.Message)
			}
		}
	}
	return b.String()
}
