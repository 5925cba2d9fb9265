package gitrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/gittest"
)

// readerLatency calls Head and Read in a loop until stop is closed and
// returns the longest either took.
func readerLatency(t *testing.T, r *Repo, stop <-chan struct{}) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		ctx := context.Background()
		for n := 0; ; n++ {
			select {
			case <-stop:
				if n == 0 {
					t.Error("no read ran")
				}
				out <- worst
				return
			case <-time.After(5 * time.Millisecond):
			}
			start := time.Now()
			head, err := r.Head(ctx)
			if err == nil {
				err = r.Read(ctx, func(dir, h string) error {
					if h != head {
						return errors.New("Read and Head disagree with no change running")
					}
					_, err := os.Stat(filepath.Join(dir, valuesFile))
					return err
				})
			}
			if err != nil {
				t.Error(err)
			}
			worst = max(worst, time.Since(start))
		}
	}()
	return out
}

// maxReadLatency bounds Head and Read while a fetch or push hangs: they
// take microseconds; the bound leaves room for a loaded machine, and is
// far below the network timeout.
const maxReadLatency = 250 * time.Millisecond

// A remote that accepts requests and never answers: Fetch and Apply fail
// with an error naming the stage once the per-operation timeout is over,
// while Head and Read answer at once throughout; LastFetch reports the
// failure without a lock and clears it on the next success.
func TestHangingRemote(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	f.opts.Timeout = time.Second
	r, _ := f.repo(t)
	ctx := testContext(t)
	before := time.Now()
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	seed := f.remote.Head(t)
	ok0, err := r.LastFetch()
	if ok0.Before(before) || err != nil {
		t.Fatalf("LastFetch after the clone: %v, %v", ok0, err)
	}

	f.server.SetMode(gittest.Hang)
	stop := make(chan struct{})
	worst := readerLatency(t, r, stop)

	start := time.Now()
	_, err = r.Fetch(ctx)
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "fetch ") {
		t.Fatalf("fetch from a hanging remote: %v; want a fetch timeout", err)
	}
	if took < f.opts.Timeout || took > f.opts.Timeout+2*time.Second {
		t.Errorf("fetch failed after %v, want the timeout of %v", took, f.opts.Timeout)
	}
	if ok, lerr := r.LastFetch(); !ok.Equal(ok0) || !errors.Is(lerr, ErrTimeout) {
		t.Errorf("LastFetch while hanging: %v, %v", ok, lerr)
	}

	start = time.Now()
	res, err := r.Apply(ctx, setTag("2.0.0"), info("jane", "deploy 2.0.0", "dep-1"))
	took = time.Since(start)
	if !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "fetch ") || res.Changed || res.Head != seed {
		t.Fatalf("apply against a hanging remote: %+v, %v; want a fetch timeout", res, err)
	}
	if took > f.opts.Timeout+2*time.Second {
		t.Errorf("apply failed after %v, want the timeout of %v", took, f.opts.Timeout)
	}
	close(stop)
	if d := <-worst; d > maxReadLatency {
		t.Errorf("Head and Read took up to %v while the remote hung", d)
	} else {
		t.Logf("Head and Read took at most %v while the remote hung", d)
	}

	// Down: 503 at once.
	f.server.SetMode(gittest.Down)
	start = time.Now()
	_, err = r.Apply(ctx, setTag("2.0.0"), info("jane", "deploy 2.0.0", "dep-1"))
	if err == nil || !strings.HasPrefix(err.Error(), "fetch ") || time.Since(start) > 2*time.Second {
		t.Fatalf("apply against a remote that is down: %v after %v", err, time.Since(start))
	}
	if _, lerr := r.LastFetch(); lerr == nil {
		t.Error("LastFetch: no error while the remote is down")
	}

	// Back up: the next deploy goes through.
	f.server.SetMode(gittest.Up)
	res, err = r.Apply(ctx, setTag("2.0.0"), info("jane", "deploy 2.0.0", "dep-1"))
	if err != nil || !res.Changed || res.Commit != f.remote.Head(t) {
		t.Fatalf("apply after recovery: %+v, %v", res, err)
	}
	if ok, lerr := r.LastFetch(); !ok.After(ok0) || lerr != nil {
		t.Errorf("LastFetch after recovery: %v, %v", ok, lerr)
	}
	checkClone(t, f.opts, f.remote)
}

// The remote hangs once the change is committed, during the push: the
// push fails with a push timeout (the check whether it landed then times
// out too), readers meanwhile see the fetched head and its tree, never the
// commit that is not on the remote, and the clone is left at that head.
func TestHangingPush(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	f.opts.Timeout = time.Second
	r, _ := f.repo(t)
	ctx := testContext(t)
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	seed := f.remote.Head(t)
	change := func(dir string) (bool, error) {
		f.server.SetMode(gittest.Hang)
		return setTag("3.0.0")(dir)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := r.Apply(ctx, change, info("jane", "deploy 3.0.0", "dep-1"))
		done <- err
	}()
	for f.server.Count("hung") == 0 {
		time.Sleep(2 * time.Millisecond)
	}
	// The push hangs: readers see the seed.
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		head, err := r.Head(ctx)
		if err != nil || head != seed {
			t.Fatalf("Head during the push: %s, %v; want the seed %s", head, err, seed)
		}
		err = r.Read(ctx, func(dir, h string) error {
			b, err := os.ReadFile(filepath.Join(dir, valuesFile))
			if h != seed || strings.Contains(string(b), "3.0.0") {
				t.Errorf("Read during the push at %s sees %q", h, b)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > maxReadLatency {
			t.Errorf("Head and Read took %v during the push", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := <-done
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "push ") || errors.Is(err, ErrPushRejected) {
		t.Fatalf("apply with a hanging push: %v; want a push timeout", err)
	}
	if took > 2*f.opts.Timeout+3*time.Second {
		t.Errorf("failed after %v", took)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
	f.server.SetMode(gittest.Up)
	if f.remote.Head(t) != seed {
		t.Fatal("the remote moved")
	}
	checkClone(t, f.opts, f.remote)
}

// The caller's context ends while a fetch hangs (and while another change
// waits for it): both return at once with the context's error, which is
// not taken for a failure of the remote.
func TestHangingRemoteCancel(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	f.opts.Timeout = time.Minute
	r, _ := f.repo(t)
	if err := r.Open(testContext(t)); err != nil {
		t.Fatal(err)
	}
	f.server.SetMode(gittest.Hang)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 2)
	took := make([]time.Duration, 2)
	start := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, errs[0] = r.Fetch(ctx)
		took[0] = time.Since(start)
	}()
	for f.server.Count("hung") == 0 {
		time.Sleep(2 * time.Millisecond)
	}
	go func() {
		defer wg.Done()
		// Queued behind the hanging fetch.
		_, errs[1] = r.Apply(ctx, setTag("4.0.0"), info("jane", "deploy", "dep-1"))
		took[1] = time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%d: %v, want context.Canceled", i, err)
		}
		if took[i] > 100*time.Millisecond+2*time.Second {
			t.Errorf("%d: returned %v after the start, cancelled after 100ms", i, took[i])
		}
	}
	if !strings.HasPrefix(errs[0].Error(), "fetch ") {
		t.Errorf("fetch error %q does not name the stage", errs[0])
	}
	if _, err := r.LastFetch(); err != nil {
		t.Errorf("LastFetch records the caller's cancellation: %v", err)
	}
	f.server.SetMode(gittest.Up)
	if _, err := r.Fetch(testContext(t)); err != nil {
		t.Fatal(err)
	}
	checkClone(t, f.opts, f.remote)
}

// A first clone from a server that accepts the connection and never
// answers fails after the timeout and leaves nothing behind.
func TestCloneFromHangingServer(t *testing.T) {
	t.Parallel()
	s := gittest.NewHangingServer(t)
	opts := DefaultOptions()
	opts.URL = s.HTTPURL
	opts.InsecureAllowHTTP = true
	opts.Dir = filepath.Join(t.TempDir(), "clone")
	opts.Timeout = time.Minute
	opts.CloneTimeout = 500 * time.Millisecond
	r, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = r.Open(testContext(t))
	if !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "clone ") || time.Since(start) > 3*time.Second {
		t.Fatalf("clone: %v after %v", err, time.Since(start))
	}
	if s.Accepted() == 0 {
		t.Error("no connection reached the server")
	}
	if _, err := os.Stat(opts.Dir); !os.IsNotExist(err) {
		t.Errorf("clone directory left behind: %v", err)
	}
}
