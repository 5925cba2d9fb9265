package kubestate

import (
	"strings"

	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func leases(t *testing.T, ns, replica string, clusters []string, acquired chan<- string) *Leases {
	t.Helper()
	l, err := NewLeases(env.Config, LeaseOptions{Namespace: ns, Replica: replica, Clusters: clusters,
		Duration: 2 * time.Second, Period: 200 * time.Millisecond,
		OnAcquire: func(c string) { acquired <- replica + "/" + c }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Two replicas share two clusters one each; when one dies without
// releasing, the other takes its cluster after the lease expires; when
// one stops, it releases its clusters at once.
func TestLeasesShareAndFailOver(t *testing.T) {
	ns := env.Namespace(t)
	clusters := []string{"alpha", "beta"}
	acquired := make(chan string, 16)
	a, b := leases(t, ns, "replica-a", clusters, acquired), leases(t, ns, "replica-b", clusters, acquired)

	// a runs alone first: it takes both.
	actx, akill := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // a loop that dies without releasing, like kill -9
		for actx.Err() == nil {
			a.round(actx)
			select {
			case <-actx.Done():
			case <-time.After(a.opts.Period):
			}
		}
	})
	defer wg.Wait()
	defer akill()
	waitFor(t, func() bool { return len(a.Held()) == 2 })

	bctx, bstop := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { b.Run(bctx); close(bdone) }()
	// b joins: a gives one up, b takes it; never both on one cluster.
	waitFor(t, func() bool {
		ha, hb := a.Held(), b.Held()
		for _, c := range ha {
			if slices.Contains(hb, c) {
				t.Fatalf("cluster %s held by both replicas", c)
			}
		}
		return len(ha) == 1 && len(hb) == 1
	})
	if !b.Live("replica-a") || !a.Live("replica-b") {
		t.Fatal("the replicas do not see each other's heartbeat")
	}
	aHeld := a.Held()[0]

	akill()
	killed := time.Now()
	waitFor(t, func() bool { return b.Holds(aHeld) })
	t.Logf("failover: replica-b took %s %s after replica-a stopped renewing (lease duration %s)",
		aHeld, time.Since(killed).Round(10*time.Millisecond), b.opts.Duration)
	waitFor(t, func() bool { return !b.Live("replica-a") })

	// A graceful stop releases at once.
	c := leases(t, ns, "replica-c", clusters, acquired)
	cctx, cstop := context.WithCancel(context.Background())
	cdone := make(chan struct{})
	go func() { c.Run(cctx); close(cdone) }()
	waitFor(t, func() bool { return len(c.Held()) == 1 && len(b.Held()) == 1 })
	bstop()
	<-bdone
	waitFor(t, func() bool { return len(c.Held()) == 2 })
	cstop()
	<-cdone
}

func TestLeaseName(t *testing.T) {
	for in, want := range map[string]string{"prod": "mgo-cluster-prod", "kind-dev": "mgo-cluster-kind-dev"} {
		if got := LeaseName(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if a, b := LeaseName("arn:aws:eks:eu/Prod"), LeaseName("arn:aws:eks:eu/prod"); a == b || len(a) > 253 {
		t.Errorf("names of clusters differing in case: %s %s", a, b)
	}
}

// A lease above the fair share is given back only when its cluster is
// idle: a replica joining never makes two replicas sync one cluster.
func TestLeaseKeptWhileBusy(t *testing.T) {
	ns := env.Namespace(t)
	clusters := []string{"alpha", "beta"}
	acquired := make(chan string, 16)
	a, b := leases(t, ns, "replica-a", clusters, acquired), leases(t, ns, "replica-b", clusters, acquired)
	var mu sync.Mutex
	busy := true
	a.SetBusy(func(string) bool { mu.Lock(); defer mu.Unlock(); return busy })
	ctx := context.Background()
	a.round(ctx)
	if len(a.Held()) != 2 {
		t.Fatalf("alone, a holds %v", a.Held())
	}
	for range 5 {
		b.round(ctx)
		a.round(ctx)
	}
	if len(a.Held()) != 2 || len(b.Held()) != 0 {
		t.Fatalf("while busy: a holds %v, b %v; want a to keep both", a.Held(), b.Held())
	}
	mu.Lock()
	busy = false
	mu.Unlock()
	a.round(ctx)
	b.round(ctx)
	if len(a.Held()) != 1 || len(b.Held()) != 1 {
		t.Fatalf("idle: a holds %v, b %v; want one each", a.Held(), b.Held())
	}
}

// Healthy fails once the home API server has not answered the lease loop
// for two lease durations (readiness), and never for holding no lease.
func TestLeasesHealthy(t *testing.T) {
	ns := env.Namespace(t)
	ok, err := NewLeases(env.Config, LeaseOptions{Namespace: ns, Replica: "ok", Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ok.round(context.Background())
	if err := ok.Healthy(); err != nil || len(ok.Held()) != 0 {
		t.Fatalf("a replica serving no cluster: %v, holds %v", err, ok.Held())
	}
	dead := rest.CopyConfig(env.Config)
	dead.Host = "https://127.0.0.1:1"
	gone, err := NewLeases(dead, LeaseOptions{Namespace: ns, Replica: "cut-off", Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		gone.round(context.Background())
		return gone.Healthy() != nil
	})
	if err := gone.Healthy(); !strings.Contains(err.Error(), "has not answered") {
		t.Fatalf("healthy: %v", err)
	}
}
