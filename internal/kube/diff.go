package kube

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
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

// Diff compares obj, as mgo would apply it, with its live object, as
// Cluster.Diff does, but first against the cache: when the cache holds the
// live object and Unchanged decides locally that an apply would leave it
// as it is, no request is sent. Everything else (objects not in the cache,
// changes, what the local comparison cannot decide) goes to the API server
// as a server-side dry-run, which stays the judge of every change and the
// source of every diff shown. An unchanged object comes with its cached
// live copy.
func (ca *Cache) Diff(ctx context.Context, obj *unstructured.Unstructured) (*ssa.ChangeSetEntry, *unstructured.Unstructured, *unstructured.Unstructured, error) {
	if live := ca.decide(ctx, obj); live != nil {
		return &ssa.ChangeSetEntry{Subject: fmtObj(obj), Action: ssa.UnchangedAction}, live, nil, nil
	}
	return ca.cluster.Diff(ctx, obj)
}

// Decide reports whether the cache alone shows that an apply of obj would
// change nothing, and counts the decision (see Decisions).
func (ca *Cache) Decide(ctx context.Context, obj *unstructured.Unstructured) bool {
	return ca.decide(ctx, obj) != nil
}

// decide is Decide, returning the cached live object when it decides.
func (ca *Cache) decide(ctx context.Context, obj *unstructured.Unstructured) *unstructured.Unstructured {
	live, err := ca.Get(ctx, obj.GroupVersionKind(), obj.GetNamespace(), obj.GetName())
	if err != nil || live == nil {
		ca.undecided.Add(1)
		return nil
	}
	want := obj.DeepCopy()
	utils.RemoveCABundleFromCRD(want) // as ssa's Diff does
	if ok, why := Unchanged(want, live, FieldManager); !ok {
		ca.log.Debug("compared by dry-run", "object", fmtObj(obj), "reason", why)
		ca.undecided.Add(1)
		return nil
	}
	ca.decided.Add(1)
	return live
}

// Decisions returns how many comparisons the cache decided alone, and how
// many it left to a server-side dry-run.
func (ca *Cache) Decisions() (local, dryRun int64) {
	return ca.decided.Load(), ca.undecided.Load()
}
