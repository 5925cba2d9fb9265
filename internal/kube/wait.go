package kube

import (
	"context"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mygitops/mgo/internal/health"
)

// Status values of ObjectStatus besides kstatus's own.
const (
	StatusUnknown  = "Unknown"  // the API server did not answer
	StatusNotFound = "NotFound" // the object does not exist
)

// ObjectStatus is the kstatus of one live object: Current, InProgress,
// Failed, ... or StatusNotFound and StatusUnknown, with kstatus's message
// or the error.
type ObjectStatus struct {
	Status  string
	Message string
	// ByRule is set when a health rule gave the status (StatusWith).
	ByRule bool
}

// Current reports whether the object is rolled out.
func (s ObjectStatus) Current() bool { return s.Status == status.CurrentStatus.String() }

// Status reads the live object of obj's kind at key and computes its
// kstatus.
func (c *Cluster) Status(ctx context.Context, obj *unstructured.Unstructured, key client.ObjectKey) ObjectStatus {
	st, _ := c.StatusAndObject(ctx, nil, obj, key)
	return st
}

// StatusAndObject is Status with health rules (StatusWith), and the live
// object (nil when it could not be read).
func (c *Cluster) StatusAndObject(ctx context.Context, rules *health.Rules, obj *unstructured.Unstructured, key client.ObjectKey) (ObjectStatus, *unstructured.Unstructured) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	if err := c.Client.Get(ctx, key, live); err != nil {
		st := StatusUnknown
		if apierrors.IsNotFound(err) {
			st = StatusNotFound
		}
		return ObjectStatus{Status: st, Message: err.Error()}, nil
	}
	return StatusWith(rules, live), live
}

// StatusWith is the status of a live object by the health rule for its
// apiVersion and kind, and its kstatus when rules have none for it (or is
// nil).
func StatusWith(rules *health.Rules, live *unstructured.Unstructured) ObjectStatus {
	if st, msg, ok := rules.Status(live); ok {
		return ObjectStatus{Status: st, Message: msg, ByRule: true}
	}
	return StatusOf(live)
}

// StatusOf computes the kstatus of a live object.
func StatusOf(live *unstructured.Unstructured) ObjectStatus {
	st, err := status.Compute(live)
	if err != nil {
		return ObjectStatus{Status: StatusUnknown, Message: err.Error()}
	}
	return ObjectStatus{Status: st.Status.String(), Message: st.Message}
}

// WaitForTermination waits until every object is gone from the cluster, or
// timeout passes.
func (c *Cluster) WaitForTermination(objects []*unstructured.Unstructured, timeout time.Duration) error {
	opts := ssa.DefaultWaitOptions()
	opts.Timeout = timeout
	return c.Resources.WaitForTermination(objects, opts)
}
