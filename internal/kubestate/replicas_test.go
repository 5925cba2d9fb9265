package kubestate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/reconcile"
)

func request(key string) deploy.Request {
	return deploy.Request{Cluster: "prod", TriggerRepo: "gitlab.com/acme/app", ImageRepo: "registry.acme.io/acme/app",
		Tag: "1.4.2", Client: "ci", Author: "Jane <jane@acme.io>", IdempotencyKey: key}
}

// Two replicas receiving the same idempotency key at the same moment
// store one record, and both answer with it.
func TestTwoReplicasOneKey(t *testing.T) {
	crd(t)
	ns := env.Namespace(t)
	a, b := open(t, ns, "replica-a"), open(t, ns, "replica-b")
	for round := range 5 {
		req := request(fmt.Sprintf("job-%d", round))
		now := time.Now()
		da := &deploy.Deployment{ID: deploy.NewID(), Request: req, Status: deploy.Queued, Times: deploy.Times{Queued: now}}
		db := &deploy.Deployment{ID: deploy.NewID(), Request: req, Status: deploy.Queued, Times: deploy.Times{Queued: now}}
		var pa, pb *deploy.Deployment
		var ea, eb error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; pa, ea = a.Create(da) })
		wg.Go(func() { <-start; pb, eb = b.Create(db) })
		close(start)
		wg.Wait()
		if ea != nil || eb != nil {
			t.Fatal(ea, eb)
		}
		var winner string
		switch {
		case pa == nil && pb != nil && pb.ID == da.ID:
			winner = da.ID
		case pb == nil && pa != nil && pa.ID == db.ID:
			winner = db.ID
		default:
			t.Fatalf("round %d: replica a: prev %v, replica b: prev %v; want exactly one stored and the other answered with it", round, pa, pb)
		}
		list, _ := a.client.List(context.Background(), listOptions(req))
		if len(list.Items) != 1 {
			t.Fatalf("round %d: %d objects for one key", round, len(list.Items))
		}
		// Both replicas see it.
		for _, s := range []*Store{a, b} {
			waitFor(t, func() bool { d, err := s.Get(winner); return err == nil && d.ID == winner })
		}
	}
}

// A replica that did not write a record learns of its changes by the
// watch, and its stale view never overwrites a finished record.
func TestWatchAcrossReplicas(t *testing.T) {
	crd(t)
	ns := env.Namespace(t)
	a, b := open(t, ns, "replica-a"), open(t, ns, "replica-b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan *deploy.Deployment, 16)
	b.Watch(ctx, func(d *deploy.Deployment) { seen <- d })

	d := &deploy.Deployment{ID: deploy.NewID(), Request: request("w"), Status: deploy.Queued, Times: deploy.Times{Queued: time.Now()}}
	if prev, err := a.Create(d); err != nil || prev != nil {
		t.Fatal(prev, err)
	}
	next := func(want deploy.Status) *deploy.Deployment {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case got := <-seen:
				if got.ID == d.ID && got.Status == want {
					return got
				}
			case <-deadline:
				t.Fatalf("replica b never saw %s %s", d.ID, want)
			}
		}
	}
	next(deploy.Queued)
	stale, err := b.Get(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.Status, d.Commit, d.Times.Pushed = deploy.Pushed, "abc", time.Now()
	if err := a.Put(d); err != nil {
		t.Fatal(err)
	}
	next(deploy.Pushed)
	d.Status, d.Times.Finished = deploy.Succeeded, time.Now()
	if err := a.Put(d); err != nil {
		t.Fatal(err)
	}
	next(deploy.Succeeded)
	// b writes from its old copy: refused, the record stays succeeded.
	stale.Status, stale.Error = deploy.Failed, "stale writer"
	if err := b.Put(stale); !errors.Is(err, deploy.ErrFinished) {
		t.Fatalf("stale put: %v, want ErrFinished", err)
	}
	if got, _ := a.Get(d.ID); got.Status != deploy.Succeeded || got.Commit != "abc" {
		t.Fatalf("after a stale put: %+v", got)
	}
}

// The queued and reverting records of a replica that is gone are failed
// by Interrupted on another one; those of a live replica and pushed ones
// are left alone.
func TestInterruptedOnlyForGoneReplicas(t *testing.T) {
	crd(t)
	ns := env.Namespace(t)
	live, gone := open(t, ns, "live"), open(t, ns, "gone")
	mk := func(s *Store, key string, st deploy.Status) *deploy.Deployment {
		d := &deploy.Deployment{ID: deploy.NewID(), Request: request(key), Status: st, Times: deploy.Times{Queued: time.Now()}}
		if _, err := s.Create(d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	ql, qg, pg := mk(live, "a", deploy.Queued), mk(gone, "b", deploy.Queued), mk(gone, "c", deploy.Pushed)
	rl, rg := mk(live, "d", deploy.Reverting), mk(gone, "e", deploy.Reverting)
	third, err := Open(context.Background(), env.Config, Options{Namespace: ns, Replica: "third",
		Live: func(r string) bool { return r == "live" }})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	n, err := third.Interrupted(time.Now())
	if err != nil || n != 2 {
		t.Fatalf("interrupted: %d %v, want 2", n, err)
	}
	if got, _ := third.Get(rg.ID); !strings.Contains(got.RevertError, "the mgo replica gone stopped while it reverted the deployment") {
		t.Errorf("reverting record of a gone replica: %+v", got)
	}
	for _, c := range []struct {
		d    *deploy.Deployment
		want deploy.Status
	}{{ql, deploy.Queued}, {qg, deploy.Failed}, {pg, deploy.Pushed}, {rl, deploy.Reverting}, {rg, deploy.Failed}} {
		if got, _ := third.Get(c.d.ID); got.Status != c.want {
			t.Errorf("%s: %s, want %s", c.d.Request.IdempotencyKey, got.Status, c.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkDeployRecord runs the writes of one deployment (create queued,
// pushed, succeeded with a release outcome) b.N times and reports the API
// requests each cost and the bytes each record takes in etcd (the JSON the
// API server stores, managed fields included). Run with
// -bench DeployRecord -benchtime=1000x for the footprint of 1,000 records.
func BenchmarkDeployRecord(b *testing.B) {
	crd(b)
	ns := env.Namespace(b)
	s, err := Open(context.Background(), env.Config, Options{Namespace: ns, Replica: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	before := s.Requests().Total()
	b.ResetTimer()
	for i := range b.N {
		now := time.Now()
		d := &deploy.Deployment{ID: deploy.NewID(), Kind: deploy.KindDeploy, Request: request(fmt.Sprintf("pipeline-%d", i)),
			Status: deploy.Queued, Times: deploy.Times{Queued: now}}
		if _, err := s.Create(d); err != nil {
			b.Fatal(err)
		}
		d.Status, d.Changed, d.Commit = deploy.Pushed, true, "4f2a9c1e0b7d3a5f6e8c9d0a1b2c3d4e5f6a7b8c"
		d.Files = []string{"installations/prod/app-values.yaml"}
		d.Times.Committed, d.Times.Pushed = now, now
		if err := s.Put(d); err != nil {
			b.Fatal(err)
		}
		d.Status, d.Synced = deploy.Succeeded, new(true)
		d.Releases = []deploy.ReleaseOutcome{{File: d.Files[0], Name: "app", Namespace: "prod", Action: "upgraded", Revision: 7,
			Objects: []reconcile.ObjectResult{{Subject: "Deployment/prod/app", Action: "configured", Status: "Current"}}}}
		d.Times.Synced, d.Times.RolledOut, d.Times.Finished = now, now, now
		if err := s.Put(d); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.Requests().Total()-before)/float64(b.N), "requests/deploy")
	raw, err := s.client.List(context.Background(), listAll())
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	for _, it := range raw.Items {
		j, _ := it.MarshalJSON()
		total += len(j)
	}
	b.ReportMetric(float64(total)/float64(len(raw.Items)), "bytes/record")

	// The memory a replica's cache holds per record: a second store's
	// heap after it listed them all.
	var before2, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before2)
	s2, err := Open(context.Background(), env.Config, Options{Namespace: ns, Replica: "bench-2"})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := len(s2.snapshot())
	s2.Close()
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before2.HeapAlloc))/float64(n), "heap-bytes/record")
}

func listOptions(req deploy.Request) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: labelKey + "=" + keyHash(req.Client, req.IdempotencyKey)}
}

func listAll() metav1.ListOptions { return metav1.ListOptions{} }
