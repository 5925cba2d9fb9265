package deploy

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestDiffsOfACallerBurstAreShared: 30 callers asking for a cluster's diff
// at once cost two diffs (the one running and the next, which all who
// asked meanwhile share), not 30; each caller's answer comes from a diff
// that began after it asked; a caller who leaves does not cut the diff
// short for the others.
func TestDiffsOfACallerBurstAreShared(t *testing.T) {
	e := &fakeSyncer{DiffGate: make(chan struct{}), DiffStarted: make(chan struct{}, 10)}
	svc := newFakeService(t, newFakeGit(t, fakeFiles(autoConfig)), e)
	ctx := fakeContext(t)

	first := make(chan error, 1)
	go func() { _, err := svc.Diff(ctx, "prod"); first <- err }()
	select {
	case <-e.DiffStarted: // the first diff runs, held by the gate
	case err := <-first:
		t.Fatalf("the first diff ended before it reached the engine: %v", err)
	}

	leaving, leave := context.WithCancel(ctx)
	left := make(chan error, 1)
	go func() { _, err := svc.Diff(leaving, "prod"); left <- err }()

	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for range 29 {
		wg.Go(func() {
			res, err := svc.Diff(ctx, "prod")
			if err == nil && res == nil {
				t.Error("a shared diff answered no result")
			}
			errs <- err
		})
	}
	sched, err := svc.cluster("prod")
	if err != nil {
		t.Fatal(err)
	}
	for sched.diffs.waiting() < 30 {
		time.Sleep(time.Millisecond)
	}
	leave()
	if err := <-left; err == nil {
		t.Error("the caller who left got an answer instead of its context's error")
	}
	e.DiffGate <- struct{}{} // the first diff ends; the shared one starts
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-e.DiffStarted
	e.DiffGate <- struct{}{}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	n := e.diffs
	e.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d diffs ran for 31 callers, want 2", n)
	}
}
