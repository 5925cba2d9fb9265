package kube

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Diff compares obj, as mgo would apply it, with its live object by a
// server-side dry-run apply with mgo's field manager (FieldManager), and
// returns the change an apply would make, the live object and what it would
// become. A namespaced object whose namespace does not exist yet is one an
// apply will create. The error names the object; an immutable field the
// API server refuses to update is reported by ImmutableFieldError.
func (c *Cluster) Diff(ctx context.Context, obj *unstructured.Unstructured) (*ssa.ChangeSetEntry, *unstructured.Unstructured, *unstructured.Unstructured, error) {
	entry, live, merged, err := c.Resources.Diff(ctx, obj, ssa.DefaultDiffOptions())
	if err != nil {
		if apierrors.IsNotFound(err) && obj.GetNamespace() != "" {
			// Its namespace does not exist yet: the object will be created.
			return &ssa.ChangeSetEntry{Subject: fmtObj(obj), Action: ssa.CreatedAction}, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("%s: %w", fmtObj(obj), err)
	}
	entry.Subject = fmtObj(obj)
	return entry, live, merged, nil
}
