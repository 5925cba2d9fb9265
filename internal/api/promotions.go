package api

import (
	"context"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/pkg/apitypes"
)

// Promotions is what the API asks of promotion between clusters:
// *promote.Promoter in mgo serve, a fake in this package's tests. Errors
// wrap deploy.ErrNotFound (unknown path or candidate: 404), ErrInvalid
// (400), ErrConflict (a candidate that is not waiting for approval: 409),
// ErrForbidden (403) and ErrUnprocessable (422).
type Promotions interface {
	// Paths lists the promotion paths with the clusters for which keep
	// is true (the caller's scope); canApprove says whether the caller
	// may approve into a cluster.
	Paths(ctx context.Context, keep func(cluster string) bool, canApprove func(cluster string) bool) ([]apitypes.PromotionPath, error)
	// Get returns one candidate.
	Get(ctx context.Context, id string) (apitypes.Promotion, error)
	// Approve lets a candidate waiting for approval (approval: api) go
	// on; Reject stops it. The API has checked that the caller may deploy
	// to the candidate's To cluster.
	Approve(ctx context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error)
	Reject(ctx context.Context, id string, by deploy.Approver, comment string) (apitypes.Promotion, error)
	// PromoteNow starts a manual promotion of what runs in the cluster
	// before req.To on the path.
	PromoteNow(ctx context.Context, req apitypes.PromoteRequest, by deploy.Approver) (apitypes.Promotion, error)
	// Wait returns the candidate once it is terminal (or ctx ends).
	Wait(ctx context.Context, id string) (apitypes.Promotion, error)
}
