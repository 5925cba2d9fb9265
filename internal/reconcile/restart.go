package reconcile

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/render"
)

// RestartedAtAnnotation is set on the pod template of every workload a
// restart rolls, like `kubectl rollout restart` does with its own key.
const RestartedAtAnnotation = "mgo.io/restartedAt"

// restartManager owns the restart annotation, apart from the fields mgo
// applies, so a later sync neither sees it as drift nor removes it.
const restartManager = "mgo-restart"

// Restart rolls every Deployment, StatefulSet and DaemonSet of a Helm
// release (by Helm's release annotations) by stamping its pod template, then
// waits until each is Current or timeout passes, from watch events as the
// rollout wait of a sync does. It returns each
// workload's status; the error names those that did not become ready.
func (e *Engine) Restart(ctx context.Context, namespace, release string, timeout time.Duration) ([]ObjectResult, error) {
	now := time.Now().UTC().Format(time.RFC3339)
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, RestartedAtAnnotation, now)
	var rolled []*unstructured.Unstructured
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("apps/v1")
		list.SetKind(kind + "List")
		if err := e.cluster.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("restart %s/%s: list %ss: %w", namespace, release, kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			a := obj.GetAnnotations()
			if a[helmReleaseNameAnnotation] != release || a[helmReleaseNamespaceAnnotation] != namespace {
				continue
			}
			if err := e.cluster.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(restartManager)); err != nil {
				return nil, fmt.Errorf("restart %s: %w", subject(obj), err)
			}
			rolled = append(rolled, obj)
		}
	}
	results := make([]ObjectResult, len(rolled))
	for i, obj := range rolled {
		results[i] = ObjectResult{Subject: subject(obj), Action: ObjectRestarted}
	}
	// The rollout wait of a sync: from watch events once the patched
	// objects are read back.
	last, err := e.waitCurrent(ctx, &render.Rendered{Objects: rolled}, namespace, e.liveHealth(namespace, release), timeout, &ReleaseResult{Objects: results}, nil)
	for i := range results {
		for _, o := range last {
			if o.Subject == results[i].Subject {
				results[i].Status, results[i].Message = o.Status, o.Message
			}
		}
	}
	if err != nil && ctx.Err() != nil {
		return results, fmt.Errorf("restart of %s/%s: %w", namespace, release, ctx.Err())
	}
	if msg := notReady(results); msg != "" {
		return results, fmt.Errorf("restart of %s/%s not ready within %s%s", namespace, release, timeout, msg)
	}
	return results, nil
}
