package reconcile

import (
	"context"
	"sync"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mygitops/mgo/internal/kube"
)

// Drift is an object of a release that changed in the cluster behind mgo's
// back, seen by a watch of the engine's cache within moments of the change,
// without polling: another field manager changed a field mgo applies, or
// deleted the object.
type Drift struct {
	Namespace, Release string // the release the object belongs to
	Subject            string // Kind/namespace/name
	Change             string // DriftChanged or DriftDeleted
	At                 time.Time
}

// Changes of a Drift.
const (
	DriftChanged = "changed"
	DriftDeleted = "deleted"
)

// desired is what the engine last planned to apply for an object: the
// object before its ignored fields took their live values (as JSON: a
// thousand releases' objects as maps took tens of megabytes), and its
// rules.
type desired struct {
	obj                []byte
	ignore             kube.Ignore
	namespace, release string
}

// object decodes the desired object.
func (d desired) object() (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	return u, u.UnmarshalJSON(d.obj)
}

// drifts follows the cache's events for objects the engine applied.
type drifts struct {
	mu        sync.Mutex
	want      map[string]desired  // by subject
	byRelease map[string][]string // namespace/release -> subjects in want
	handlers  []func(Drift)
	queue     chan kube.CacheEvent
	count     int64
}

// OnDrift registers a function called with each drift the engine's watches
// see (from one goroutine, in order). The periodic full comparison (a sync
// with Options.Full, or Diff) stays the safety net: a drift that happened
// while mgo was not running is found by it. Without a cache
// (Config.NoCache) it is never called.
func (e *Engine) OnDrift(f func(Drift)) {
	e.drift.mu.Lock()
	e.drift.handlers = append(e.drift.handlers, f)
	e.drift.mu.Unlock()
}

// Drifts returns how many drifts the engine's watches have seen.
func (e *Engine) Drifts() int64 {
	e.drift.mu.Lock()
	defer e.drift.mu.Unlock()
	return e.drift.count
}

// startDrift follows the cache's events until the cache closes.
func (e *Engine) startDrift(ctx context.Context) {
	e.drift.want = map[string]desired{}
	e.drift.byRelease = map[string][]string{}
	e.drift.queue = make(chan kube.CacheEvent, 1024)
	e.cache.OnEvent(func(ev kube.CacheEvent) {
		if ev.Type == kube.CacheAdded {
			return
		}
		if ev.Type == kube.CacheUpdated && ev.Old != nil && sameSpec(ev.Old, ev.Object) {
			return // the status only (a rollout progressing)
		}
		e.drift.mu.Lock()
		_, ours := e.drift.want[subject(ev.Object)]
		e.drift.mu.Unlock()
		if !ours {
			return
		}
		select {
		case e.drift.queue <- ev:
		default:
			e.log.Warn("drift events dropped: too many at once; the periodic drift check finds them", "object", subject(ev.Object))
		}
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-e.drift.queue:
				e.checkDrift(ctx, ev)
			}
		}
	}()
}

// planned records the objects a release is about to have (before its
// apply, so that the apply's own events match them).
func (e *Engine) planned(namespace, release string, cmps []comparison) {
	if e.cache == nil {
		return
	}
	want := map[string]desired{}
	for _, c := range cmps {
		obj := c.Prepared
		if obj == nil {
			obj = c.Wanted
		}
		if obj == nil {
			continue
		}
		b, err := obj.MarshalJSON()
		if err != nil {
			continue // not watched for drift; the periodic check compares it
		}
		want[subject(obj)] = desired{obj: b, ignore: c.Ignore, namespace: namespace, release: release}
	}
	key := namespace + "/" + release
	e.drift.mu.Lock()
	defer e.drift.mu.Unlock()
	for _, s := range e.drift.byRelease[key] {
		if d, ok := e.drift.want[s]; ok && d.namespace == namespace && d.release == release {
			delete(e.drift.want, s)
		}
	}
	delete(e.drift.byRelease, key)
	for s, d := range want {
		e.drift.want[s] = d
		e.drift.byRelease[key] = append(e.drift.byRelease[key], s)
	}
}

// forget drops the objects of a release that is uninstalled.
func (e *Engine) forget(namespace, release string) {
	e.planned(namespace, release, nil)
}

// checkDrift decides whether an event is a drift: the object is gone, or
// differs from what mgo applies (locally, or when the local comparison
// cannot tell, by a server-side dry-run), its ignored fields taken from
// the object as the event has it (a field the rules leave alone is never
// drift).
func (e *Engine) checkDrift(ctx context.Context, ev kube.CacheEvent) {
	s := subject(ev.Object)
	e.drift.mu.Lock()
	d, ok := e.drift.want[s]
	e.drift.mu.Unlock()
	if !ok || e.held(d.namespace, d.release) {
		return // not ours, or mgo is acting on its release right now
	}
	change := DriftDeleted
	if ev.Type != kube.CacheDeleted {
		obj, err := d.object()
		if err != nil {
			return
		}
		wanted, _ := d.ignore.Respect(obj, ev.Object)
		if same, _ := kube.Unchanged(wanted, ev.Object, kube.FieldManager); same {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, e.cfg.DiffTimeout)
		r, err := e.diffRespecting(cctx, e.cluster.Diff, obj, d.ignore, ev.Object)
		cancel()
		if err == nil && r.entry.Action == ssa.UnchangedAction {
			return
		}
		change = DriftChanged
	}
	dr := Drift{Namespace: d.namespace, Release: d.release, Subject: s, Change: change, At: time.Now()}
	e.log.Warn("drift: an object changed behind mgo's back", "release", d.namespace+"/"+d.release, "object", s, "change", change)
	e.drift.mu.Lock()
	e.drift.count++
	handlers := e.drift.handlers
	e.drift.mu.Unlock()
	for _, h := range handlers {
		h(dr)
	}
}

// sameSpec reports whether two versions of an object differ at most in
// their status and in what the server maintains.
func sameSpec(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		m := make(map[string]any, len(u.Object))
		for k, v := range u.Object {
			if k != "status" && k != "metadata" {
				m[k] = v
			}
		}
		return m
	}
	return a.GetGeneration() == b.GetGeneration() &&
		equality.Semantic.DeepEqual(a.GetLabels(), b.GetLabels()) &&
		equality.Semantic.DeepEqual(a.GetAnnotations(), b.GetAnnotations()) &&
		equality.Semantic.DeepEqual(strip(a), strip(b))
}
