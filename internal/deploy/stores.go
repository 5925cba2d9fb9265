package deploy

import (
	"context"
	"errors"
	"time"
)

// Store keeps deployment records. Two implementations exist: BoltStore, a
// local file for one mgo (the default, and the command line), and
// internal/kubestate, custom resources in the Kubernetes API shared by
// several replicas. internal/deploy/storetest holds the behaviour both
// must have.
type Store interface {
	// Lookup returns the deployment an idempotency key of a client points
	// at, or nil.
	Lookup(client, key string) (*Deployment, error)
	// Create stores a new deployment. When d.Request has an idempotency
	// key the same client already used, the earlier deployment is returned
	// and nothing is stored, unless the earlier one failed and asked for
	// the same thing: then d is stored and the key points at it. Two
	// concurrent Creates with the same key store one deployment.
	Create(d *Deployment) (prev *Deployment, err error)
	// Put stores d, replacing the record of the same id. A record that is
	// already finished (Status.Terminal) is never replaced: Put returns
	// ErrFinished and leaves it as it is, so of two writers finishing the
	// same deployment the first one wins.
	Put(d *Deployment) error
	// Get returns the deployment with id, or ErrNotFound.
	Get(id string) (*Deployment, error)
	// List returns up to limit deployments for which keep is true (every
	// one when keep is nil), newest first.
	List(limit int, keep func(*Deployment) bool) ([]*Deployment, error)
	// Since returns up to limit deployments asked for at or after t (ids
	// start with the time they were queued), oldest first.
	Since(t time.Time, limit int) ([]*Deployment, error)
	// Interrupted marks as failed the deployments that no running mgo will
	// finish any more, and returns how many.
	Interrupted(now time.Time) (int, error)
	// Collect deletes finished deployments that finished more than maxAge
	// before now (none when maxAge is 0), and the oldest finished ones
	// beyond keep (none when keep is 0). It returns how many it deleted.
	Collect(now time.Time, maxAge time.Duration, keep int) (int, error)
	// Recovered says whether the store started empty because its data was
	// corrupt (nil: it was not).
	Recovered() *Recovery
	Close() error
}

// Watcher is a Store shared by several mgo replicas: Watch calls fn with
// every record another replica (or this one) created or changed, until ctx
// ends. fn must not block.
type Watcher interface {
	Watch(ctx context.Context, fn func(*Deployment))
}

// ErrFinished is a Put of a deployment whose stored record is already
// finished.
var ErrFinished = errors.New("the deployment is already finished")

// SameRequest reports whether a retry under an idempotency key asks for
// the same thing as the deployment the key points at (the caller's CI
// identity may differ in detail); for other implementations of Store.
func SameRequest(a, b Request) bool { return sameRequest(a, b) }
