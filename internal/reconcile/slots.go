package reconcile

import (
	"context"
	"sync"
)

// slots bounds how many releases of a cluster sync at once
// (MaxConcurrentReleases), across all syncs of an engine, and hands a free
// slot to a waiting foreground sync before any background one
// (Options.Background): a deploy never waits behind the start-up
// comparison or a drift check for more than the releases already running.
type slots struct {
	mu         sync.Mutex
	free       int
	foreground []chan struct{}
	background []chan struct{}
}

func newSlots(n int) *slots { return &slots{free: max(1, n)} }

// acquire waits for a slot; the error is ctx's.
func (s *slots) acquire(ctx context.Context, background bool) error {
	s.mu.Lock()
	if s.free > 0 && len(s.foreground) == 0 && (background && len(s.background) == 0 || !background) {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if background {
		s.background = append(s.background, ch)
	} else {
		s.foreground = append(s.foreground, ch)
	}
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.drop(ch) {
			return ctx.Err()
		}
		// Handed a slot just now: give it back.
		s.releaseLocked()
		return ctx.Err()
	}
}

// drop removes a waiter; false when it was already handed a slot.
func (s *slots) drop(ch chan struct{}) bool {
	for _, q := range []*[]chan struct{}{&s.foreground, &s.background} {
		for i, c := range *q {
			if c == ch {
				*q = append((*q)[:i], (*q)[i+1:]...)
				return true
			}
		}
	}
	return false
}

// release frees a slot, to the first foreground waiter if any.
func (s *slots) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *slots) releaseLocked() {
	for _, q := range []*[]chan struct{}{&s.foreground, &s.background} {
		if len(*q) > 0 {
			ch := (*q)[0]
			*q = (*q)[1:]
			close(ch)
			return
		}
	}
	s.free++
}
