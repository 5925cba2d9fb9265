package deploy

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestRefresherCoalesces: triggers that arrive while a refresh runs are
// served by one next refresh.
func TestRefresherCoalesces(t *testing.T) {
	var runs atomic.Int32
	started, release := make(chan struct{}, 10), make(chan struct{})
	r := NewRefresher(func(context.Context) ([]string, error) {
		runs.Add(1)
		started <- struct{}{}
		<-release
		return []string{"prod"}, nil
	}, RefresherOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	r.Trigger()
	<-started // the first refresh runs
	for range 5 {
		r.Trigger()
	}
	release <- struct{}{}
	<-started // one more for the five
	release <- struct{}{}
	waitFor(t, "the second refresh to end", func() bool { return len(r.kick) == 0 })
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d refreshes, want 2", n)
	}
	r.Trigger() // and a later push gets its own
	<-started
	release <- struct{}{}
	if n := runs.Load(); n != 3 {
		t.Fatalf("%d refreshes, want 3", n)
	}
}
