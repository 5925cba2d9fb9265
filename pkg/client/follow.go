package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mygitops/mgo/pkg/apitypes"
)

// FollowOptions bound how Follow retries and polls.
type FollowOptions struct {
	// PollInterval is the time between two looks at the deployment
	// (default 1s).
	PollInterval time.Duration
	// Attempts bounds the sends of the deploy request (default 6).
	Attempts int
	// Backoff is the wait before the second send, doubled before each
	// further one up to MaxBackoff (defaults 1s and 30s).
	Backoff, MaxBackoff time.Duration
	// OnChange is called with the deployment whenever its status changed
	// (and first with the queued deployment); nil: not called.
	OnChange func(*apitypes.Deployment)
	// OnRetry is called before a retry with the error that caused it.
	OnRetry func(err error, wait time.Duration)
}

func (o *FollowOptions) defaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 6
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
}

// NewIdempotencyKey returns a random key for one deploy request.
func NewIdempotencyKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "mgo-" + hex.EncodeToString(b[:])
}

// Retryable reports whether err is worth sending the same request again:
// the connection failed or broke, or a gateway or a server that cannot
// take the request now answered 502, 503 or 504. A refusal (4xx) and an
// ended context are not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	return true // no answer: the network, a closed connection, a restarting server
}

// Follow sends req (wait false, with an idempotency key: req's or a new
// one) and follows the deployment to its end. When sending fails in a way
// worth retrying (Retryable), it sends the same request with the same key
// again, with backoff, at most Attempts times: the server answers the
// deployment the key already points at, so a request that reached it
// before the connection broke is not deployed twice. While it follows,
// failed looks are retried until ctx ends. It returns the ended
// deployment (succeeded or failed), or an error when there is none.
func (c *Client) Follow(ctx context.Context, req apitypes.DeployRequest, o FollowOptions) (*apitypes.Deployment, error) {
	o.defaults()
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	req.Wait = false
	var d *apitypes.Deployment
	wait := o.Backoff
	for attempt := 1; ; attempt++ {
		var err error
		d, err = c.Deploy(ctx, req)
		if err == nil {
			break
		}
		if !Retryable(err) || attempt >= o.Attempts {
			if attempt > 1 {
				return nil, fmt.Errorf("after %d attempts with idempotency key %s: %w", attempt, req.IdempotencyKey, err)
			}
			return nil, err
		}
		if o.OnRetry != nil {
			o.OnRetry(err, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(2*wait, o.MaxBackoff)
	}
	return c.follow(ctx, d, o)
}

// FollowDeployment follows a deployment that already exists to its end.
func (c *Client) FollowDeployment(ctx context.Context, id string, o FollowOptions) (*apitypes.Deployment, error) {
	o.defaults()
	return c.follow(ctx, &apitypes.Deployment{ID: id}, o)
}

func (c *Client) follow(ctx context.Context, d *apitypes.Deployment, o FollowOptions) (*apitypes.Deployment, error) {
	if o.OnChange != nil && d.Status != "" {
		o.OnChange(d)
	}
	last := d.Status
	for !d.Status.Terminal() {
		if err := sleep(ctx, o.PollInterval); err != nil {
			return d, fmt.Errorf("deployment %s still %s: %w", d.ID, d.Status, err)
		}
		next, err := c.Deployment(ctx, d.ID)
		if err != nil {
			if Retryable(err) {
				if o.OnRetry != nil {
					o.OnRetry(err, o.PollInterval)
				}
				continue // the server restarting or the network: keep asking
			}
			return d, err
		}
		d = next
		if d.Status != last {
			last = d.Status
			if o.OnChange != nil {
				o.OnChange(d)
			}
		}
	}
	return d, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
