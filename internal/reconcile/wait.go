package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/faults"
	"github.com/mygitops/mgo/internal/render"
)

// testHookBeforeWait, set by tests only, is called with a release's name
// when its objects are applied and its rollout wait begins.
var testHookBeforeWait func(release string)

// objectStatus records the kstatus of every rendered object after the
// rollout wait.
func (e *Engine) objectStatus(ctx context.Context, rendered *render.Rendered, ns string, rr *ReleaseResult) {
	byName := map[string]int{}
	for i, o := range rr.Objects {
		byName[o.Subject] = i
	}
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
		i, ok := byName[s]
		if !ok {
			rr.Objects = append(rr.Objects, ObjectResult{Subject: s})
			i = len(rr.Objects) - 1
		}
		st := e.cluster.Status(ctx, obj, key)
		rr.Objects[i].Status, rr.Objects[i].Message = st.Status, st.Message
	}
}

// waitRollout polls the kstatus of every rendered object until all are
// Current or timeout passes; then the error names those that are not.
func (e *Engine) waitRollout(ctx context.Context, rendered *render.Rendered, ns string, timeout time.Duration, rr *ReleaseResult) error {
	faults.Point(faults.RolloutWait)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 200 * time.Millisecond
	for {
		probe := ReleaseResult{Objects: slices.Clone(rr.Objects)}
		e.objectStatus(wctx, rendered, ns, &probe)
		pending := notReady(probe.Objects)
		if pending == "" {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("rollout not ready within %s%s", timeout, pending)
		case <-time.After(interval):
		}
		interval = min(interval*3/2, 2*time.Second)
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
