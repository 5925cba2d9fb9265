package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AnnotationImmutable on an object says what to do when an update changes
// an immutable field: "recreate" deletes and recreates it. Without it the
// sync fails and names the object and field. StatefulSets are always
// recreated, orphaning their pods and volumes.
const AnnotationImmutable = "mgo.io/immutable"

// IsImmutableFieldError reports whether the API server refused an update
// (or its dry-run) because it changes an immutable field.
func IsImmutableFieldError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "field is immutable") || strings.Contains(msg, "Forbidden: updates to statefulset spec")
}

// RecreateImmutable finds the objects whose update the API server refuses
// (by a server-side dry-run apply) and deletes them so the next apply
// recreates them: StatefulSets with orphan propagation (their pods and
// PVCs stay and are adopted by the new StatefulSet, which then rolls them),
// other objects only with the opt-in annotation AnnotationImmutable. The
// objects are as they will be applied. It returns how many it deleted, or
// an error naming each object it may not recreate; it deletes nothing then.
func (c *Cluster) RecreateImmutable(ctx context.Context, objects []*unstructured.Unstructured) (int, error) {
	type victim struct {
		obj    *unstructured.Unstructured
		policy metav1.DeletionPropagation
	}
	var victims []victim
	var refused []error
	for _, o := range objects {
		_, _, _, err := c.Resources.Diff(ctx, o, ssa.DefaultDiffOptions())
		if err == nil || !IsImmutableFieldError(err) {
			continue
		}
		switch {
		case o.GetKind() == "StatefulSet" && o.GroupVersionKind().Group == "apps":
			victims = append(victims, victim{o, metav1.DeletePropagationOrphan})
		case o.GetAnnotations()[AnnotationImmutable] == "recreate":
			victims = append(victims, victim{o, metav1.DeletePropagationBackground})
		default:
			refused = append(refused, fmt.Errorf("%s: an immutable field changed (%v); annotate the object %s: recreate to let mgo delete and recreate it", fmtObj(o), err, AnnotationImmutable))
		}
	}
	// All or nothing: no object is deleted when one may not be recreated.
	if len(refused) > 0 {
		return 0, errors.Join(refused...)
	}
	var deleted []*unstructured.Unstructured
	for _, v := range victims {
		if err := c.Client.Delete(ctx, v.obj, client.PropagationPolicy(v.policy)); err != nil && !apierrors.IsNotFound(err) {
			return len(deleted), fmt.Errorf("%s: delete for recreate: %w", fmtObj(v.obj), err)
		}
		deleted = append(deleted, v.obj)
	}
	if len(deleted) > 0 {
		if err := c.WaitForTermination(deleted, time.Minute); err != nil {
			return len(deleted), fmt.Errorf("waiting for objects to be deleted for recreate: %w", err)
		}
	}
	return len(deleted), nil
}
