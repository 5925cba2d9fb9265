// Package storetest is the behaviour every deploy.Store must have: Run it
// from a test of each implementation.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
)

// Open returns a new, empty store for one test. Stores it returns are
// closed by the test (Close may be called twice).
type Open func(t *testing.T) deploy.Store

// Reopen closes s and opens the same records again as a store of another
// process, as after a restart: the process that wrote s is gone.
type Reopen func(t *testing.T, s deploy.Store) deploy.Store

// Run runs the conformance suite.
func Run(t *testing.T, open Open, reopen Reopen) {
	t.Run("IdempotencyKey", func(t *testing.T) { testIdempotencyKey(t, open(t)) })
	t.Run("RetryAfterFailure", func(t *testing.T) { testRetryAfterFailure(t, open(t)) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testConcurrentCreate(t, open(t)) })
	t.Run("FinishedOnce", func(t *testing.T) { testFinishedOnce(t, open(t)) })
	t.Run("List", func(t *testing.T) { testList(t, open(t)) })
	t.Run("Since", func(t *testing.T) { testSince(t, open(t)) })
	t.Run("Interrupted", func(t *testing.T) { testInterrupted(t, open(t), reopen) })
	t.Run("Collect", func(t *testing.T) { testCollect(t, open(t)) })
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func request(key string) deploy.Request {
	return deploy.Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "r/app", Tag: "1",
		Client: "ci", Author: "ci", IdempotencyKey: key}
}

func record(at time.Time, req deploy.Request, st deploy.Status) *deploy.Deployment {
	d := &deploy.Deployment{ID: newID(at), Kind: deploy.KindDeploy, Request: req, Status: st, Times: deploy.Times{Queued: at}}
	if st.Terminal() {
		d.Times.Finished = at.Add(time.Second)
	}
	return d
}

// newID is a deployment id of time at, as deploy makes them.
func newID(at time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func create(t *testing.T, s deploy.Store, d *deploy.Deployment) {
	t.Helper()
	if prev, err := s.Create(d); err != nil || prev != nil {
		t.Fatalf("create %s: prev %v, %v", d.ID, prev, err)
	}
}

func get(t *testing.T, s deploy.Store, id string) *deploy.Deployment {
	t.Helper()
	d, err := s.Get(id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return d
}

func testIdempotencyKey(t *testing.T, s deploy.Store) {
	defer s.Close()
	req := request("k1")
	a := record(t0, req, deploy.Queued)
	create(t, s, a)
	b := record(t0.Add(time.Second), req, deploy.Queued)
	prev, err := s.Create(b)
	if err != nil || prev == nil || prev.ID != a.ID {
		t.Fatalf("same idempotency key: %+v %v, want the first deployment", prev, err)
	}
	if _, err := s.Get(b.ID); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("the repeated request was stored: %v", err)
	}
	if got, err := s.Lookup("ci", "k1"); err != nil || got == nil || got.ID != a.ID {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if got, err := s.Lookup("ci", "k2"); err != nil || got != nil {
		t.Fatalf("lookup of an unused key: %+v %v", got, err)
	}
	other := req
	other.Client = "someone-else"
	c := record(t0.Add(2*time.Second), other, deploy.Queued)
	create(t, s, c)
	if got := get(t, s, c.ID); got.Request != other || got.Status != deploy.Queued || !got.Times.Queued.Equal(c.Times.Queued) {
		t.Fatalf("stored %+v, want %+v", got, c)
	}
	// Another request under a used key: the earlier one is returned, the
	// service answers conflict.
	changed := req
	changed.Tag = "2"
	if prev, err := s.Create(record(t0.Add(3*time.Second), changed, deploy.Queued)); err != nil || prev == nil || prev.ID != a.ID {
		t.Fatalf("other request, same key: %+v %v", prev, err)
	}
	// Without a key every request is its own deployment.
	create(t, s, record(t0.Add(4*time.Second), request(""), deploy.Queued))
	create(t, s, record(t0.Add(5*time.Second), request(""), deploy.Queued))
	if list, err := s.List(10, nil); err != nil || len(list) != 4 {
		t.Fatalf("list: %d %v, want 4", len(list), err)
	}
}

func testRetryAfterFailure(t *testing.T, s deploy.Store) {
	defer s.Close()
	req := request("k1")
	a := record(t0, req, deploy.Queued)
	create(t, s, a)
	a.Status, a.Stage, a.Error, a.Times.Finished = deploy.Failed, deploy.StagePush, "remote down", t0.Add(time.Second)
	if err := s.Put(a); err != nil {
		t.Fatal(err)
	}
	b := record(t0.Add(time.Minute), req, deploy.Queued)
	create(t, s, b) // the retry of a failed deployment is a new one
	if got, err := s.Lookup("ci", "k1"); err != nil || got == nil || got.ID != b.ID {
		t.Fatalf("lookup after the retry: %+v %v, want %s", got, err, b.ID)
	}
	if got := get(t, s, a.ID); got.Status != deploy.Failed {
		t.Fatalf("the failed deployment: %+v", got)
	}
	// A failed key reused for another request is a conflict, not a retry.
	b.Status, b.Times.Finished = deploy.Failed, t0.Add(2*time.Minute)
	if err := s.Put(b); err != nil {
		t.Fatal(err)
	}
	changed := req
	changed.Tag = "2"
	if prev, err := s.Create(record(t0.Add(3*time.Minute), changed, deploy.Queued)); err != nil || prev == nil || prev.ID != b.ID {
		t.Fatalf("another request under a failed key: %+v %v", prev, err)
	}
}

func testConcurrentCreate(t *testing.T, s deploy.Store) {
	defer s.Close()
	const n = 8
	req := request("same")
	var wg sync.WaitGroup
	prevs := make([]*deploy.Deployment, n)
	recs := make([]*deploy.Deployment, n)
	errs := make([]error, n)
	for i := range n {
		recs[i] = record(t0.Add(time.Duration(i)*time.Millisecond), req, deploy.Queued)
		wg.Go(func() { prevs[i], errs[i] = s.Create(recs[i]) })
	}
	wg.Wait()
	var winner string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if prevs[i] == nil {
			if winner != "" {
				t.Fatalf("two creates with the same key both stored a deployment: %s and %s", winner, recs[i].ID)
			}
			winner = recs[i].ID
		}
	}
	if winner == "" {
		t.Fatal("no create stored the deployment")
	}
	for i := range n {
		if prevs[i] != nil && prevs[i].ID != winner {
			t.Errorf("create %d answered %s, want %s", i, prevs[i].ID, winner)
		}
	}
	list, err := s.List(100, nil)
	if err != nil || len(list) != 1 || list[0].ID != winner {
		t.Fatalf("records: %v %v, want only %s", ids(list), err, winner)
	}
}

func testFinishedOnce(t *testing.T, s deploy.Store) {
	defer s.Close()
	d := record(t0, request("k"), deploy.Queued)
	create(t, s, d)
	pushed := *d
	pushed.Status, pushed.Commit, pushed.Changed, pushed.Times.Pushed = deploy.Pushed, "abc", true, t0.Add(time.Second)
	if err := s.Put(&pushed); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, d.ID); got.Status != deploy.Pushed || got.Commit != "abc" || got.Seconds.Pushed != 1 {
		t.Fatalf("after put: %+v", got)
	}
	// Two writers finish it at once: one wins, the other is told.
	ok, failed := pushed, pushed
	ok.Status, ok.Times.Finished = deploy.Succeeded, t0.Add(2*time.Second)
	failed.Status, failed.Error, failed.Times.Finished = deploy.Failed, "interrupted", t0.Add(3*time.Second)
	var wg sync.WaitGroup
	var errOK, errFailed error
	wg.Go(func() { errOK = s.Put(&ok) })
	wg.Go(func() { errFailed = s.Put(&failed) })
	wg.Wait()
	got := get(t, s, d.ID)
	switch {
	case errOK == nil && errors.Is(errFailed, deploy.ErrFinished):
		if got.Status != deploy.Succeeded {
			t.Fatalf("succeeded won, stored %s", got.Status)
		}
	case errFailed == nil && errors.Is(errOK, deploy.ErrFinished):
		if got.Status != deploy.Failed {
			t.Fatalf("failed won, stored %s", got.Status)
		}
	default:
		t.Fatalf("two puts finishing one deployment: %v and %v, want one nil and one ErrFinished", errOK, errFailed)
	}
	again := *got
	again.Error = "changed"
	if err := s.Put(&again); !errors.Is(err, deploy.ErrFinished) {
		t.Fatalf("put over a finished record: %v", err)
	}
}

func testList(t *testing.T, s deploy.Store) {
	defer s.Close()
	var all []string
	for i := range 12 {
		req := request(fmt.Sprintf("k%d", i))
		if i%3 == 0 {
			req.Cluster = "staging"
		}
		d := record(t0.Add(time.Duration(i)*time.Minute), req, deploy.Succeeded)
		create(t, s, d)
		all = append(all, d.ID)
	}
	slices.Reverse(all)
	list, err := s.List(5, nil)
	if err != nil || !slices.Equal(ids(list), all[:5]) {
		t.Fatalf("list 5: %v %v, want %v", ids(list), err, all[:5])
	}
	staging, err := s.List(3, func(d *deploy.Deployment) bool { return d.Request.Cluster == "staging" })
	if err != nil || len(staging) != 3 {
		t.Fatalf("filtered: %v %v", ids(staging), err)
	}
	for i, d := range staging {
		if d.Request.Cluster != "staging" || (i > 0 && d.ID >= staging[i-1].ID) {
			t.Fatalf("filtered list %v: not staging or not newest first", ids(staging))
		}
	}
	if list, err := s.List(100, nil); err != nil || len(list) != 12 {
		t.Fatalf("list all: %d %v", len(list), err)
	}
}

func testSince(t *testing.T, s deploy.Store) {
	defer s.Close()
	var all []string
	for i := range 6 {
		d := record(t0.Add(time.Duration(i)*time.Hour), request(fmt.Sprintf("s%d", i)), deploy.Succeeded)
		create(t, s, d)
		all = append(all, d.ID)
	}
	got, err := s.Since(t0.Add(2*time.Hour), 100)
	if err != nil || !slices.Equal(ids(got), all[2:]) {
		t.Fatalf("since the third: %v %v, want %v oldest first", ids(got), err, all[2:])
	}
	if got, err := s.Since(t0.Add(2*time.Hour), 2); err != nil || !slices.Equal(ids(got), all[2:4]) {
		t.Fatalf("since the third, two: %v %v, want %v", ids(got), err, all[2:4])
	}
	if got, err := s.Since(t0.Add(24*time.Hour), 10); err != nil || len(got) != 0 {
		t.Fatalf("since tomorrow: %v %v", ids(got), err)
	}
}

func testInterrupted(t *testing.T, s deploy.Store, reopen Reopen) {
	queued := record(t0, request("q"), deploy.Queued)
	done := record(t0.Add(time.Second), request("d"), deploy.Succeeded)
	create(t, s, queued)
	create(t, s, done)
	s = reopen(t, s)
	defer s.Close()
	n, err := s.Interrupted(t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("interrupted: %d %v, want 1", n, err)
	}
	if got := get(t, s, queued.ID); got.Status != deploy.Failed || got.Error == "" || got.Times.Finished.IsZero() {
		t.Fatalf("the unfinished deployment: %+v", got)
	}
	if got := get(t, s, done.ID); got.Status != deploy.Succeeded || got.Error != "" {
		t.Fatalf("a finished deployment changed: %+v", got)
	}
	// Its key is free for a retry.
	create(t, s, record(t0.Add(2*time.Hour), request("q"), deploy.Queued))
}

func testCollect(t *testing.T, s deploy.Store) {
	defer s.Close()
	var finished []*deploy.Deployment
	for i := range 10 {
		d := record(t0.Add(time.Duration(i)*time.Hour), request(fmt.Sprintf("k%d", i)), deploy.Succeeded)
		create(t, s, d)
		finished = append(finished, d)
	}
	open := record(t0, request("open"), deploy.Pushed) // unfinished: never collected
	create(t, s, open)
	now := t0.Add(10 * time.Hour)
	// Older than 5h30m: the first five (finished at 0h..4h, plus a second).
	n, err := s.Collect(now, 5*time.Hour+30*time.Minute, 0)
	if err != nil || n != 5 {
		t.Fatalf("collect by age: %d %v, want 5", n, err)
	}
	for _, d := range finished[:5] {
		if _, err := s.Get(d.ID); !errors.Is(err, deploy.ErrNotFound) {
			t.Fatalf("%s was not collected: %v", d.ID, err)
		}
	}
	if got, err := s.Lookup("ci", "k0"); err != nil || got != nil {
		t.Fatalf("the key of a collected record: %+v %v, want free", got, err)
	}
	create(t, s, record(now, request("k0"), deploy.Queued))
	// Keep the newest 2 finished ones.
	n, err = s.Collect(now, 0, 2)
	if err != nil || n != 3 {
		t.Fatalf("collect by count: %d %v, want 3", n, err)
	}
	list, err := s.List(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{finished[9].ID, finished[8].ID}
	var gotFinished []string
	for _, d := range list {
		if d.Status.Terminal() {
			gotFinished = append(gotFinished, d.ID)
		}
	}
	if !slices.Equal(gotFinished, want) || len(list) != 4 {
		t.Fatalf("after collect: %v, want finished %v and the two unfinished", ids(list), want)
	}
	if got := get(t, s, open.ID); got.Status != deploy.Pushed {
		t.Fatalf("an unfinished record: %+v", got)
	}
}

func ids(ds []*deploy.Deployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}
