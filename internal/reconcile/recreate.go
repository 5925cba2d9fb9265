package reconcile

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mygitops/mgo/internal/render"
)

// recreateImmutable deletes the rendered objects of a release whose update
// the API server refuses, so that the next apply recreates them
// (kube.RecreateImmutable).
func (e *Engine) recreateImmutable(ctx context.Context, rendered *render.Rendered, release, ns string) (int, error) {
	var objs []*unstructured.Unstructured
	for _, obj := range rendered.Objects {
		o, err := e.prepareIn(rendered, obj, release, ns)
		if err != nil {
			continue
		}
		objs = append(objs, o)
	}
	return e.cluster.RecreateImmutable(ctx, objs)
}
