package kube

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultRequestTimeout bounds every ordinary request to a cluster (from
// sending it to reading the whole answer) when the rest.Config given to
// NewCluster sets no Timeout. Watches are not bounded by it.
const DefaultRequestTimeout = 30 * time.Second

// requestTimeout gives every request but watches a deadline. It replaces
// rest.Config.Timeout, which is an http.Client timeout and would cut every
// watch after that time too.
func requestTimeout(timeout time.Duration) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if isWatch(r) {
				return next.RoundTrip(r)
			}
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			resp, err := next.RoundTrip(r.WithContext(ctx))
			if err != nil {
				cancel()
				return nil, err
			}
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		})
	}
}

// isWatch reports whether a request is a watch (or another stream that
// lives as long as its caller wants).
func isWatch(r *http.Request) bool {
	q := r.URL.Query()
	switch q.Get("watch") {
	case "true", "1":
		return true
	}
	if q.Get("follow") == "true" {
		return true
	}
	return strings.Contains(r.URL.Path, "/watch/")
}

// cancelOnClose releases a request's deadline when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
