package kube

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/mygitops/mgo/internal/repo"
)

// metricsCluster connects a Cluster to the test control plane that
// reports to fresh metrics of its own.
func metricsCluster(t *testing.T, cfg *rest.Config, budget repo.Budget) (*Cluster, *Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	c, err := NewCluster(env.Context, cfg, budget, WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	return c, m, reg
}

// Every request of a cluster's clients is counted by cluster, verb and
// status code, by the same round tripper as the request counter.
func TestMetricsCountRequestsByVerbAndCode(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	c, m, _ := metricsCluster(t, env.Config, repo.Budget{QPS: 50, Burst: 100})
	cms := c.Clientset.CoreV1().ConfigMaps(ns)
	if _, err := cms.Get(ctx, "absent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get of an absent ConfigMap: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counted"}, Data: map[string]string{"a": "1"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "counted", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ verb, code string }{
		{"get", "404"}, {"dryrun-create", "201"}, {"create", "201"}, {"get", "200"},
	} {
		if got := testutil.ToFloat64(m.Requests.WithLabelValues(env.Context, want.verb, want.code)); got != 1 {
			t.Errorf("mgo_kube_requests_total{cluster=%q,verb=%q,code=%q} = %v, want 1", env.Context, want.verb, want.code, got)
		}
	}
	if got, want := testutil.ToFloat64(m.Requests.WithLabelValues(env.Context, "get", "200"))+
		testutil.ToFloat64(m.Requests.WithLabelValues(env.Context, "get", "404")), float64(c.Requests.Snapshot()["get"]); got != want {
		t.Errorf("metrics count %v gets, the request counter %v", got, want)
	}
	if got := testutil.ToFloat64(m.BudgetQPS.WithLabelValues(env.Context)); got != 50 {
		t.Errorf("mgo_kube_budget_qps = %v, want 50", got)
	}

	// A request that gets no answer counts as code "error".
	down, err := NewCluster("down", &rest.Config{Host: "http://127.0.0.1:1"}, repo.Budget{}, WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Clientset.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err == nil {
		t.Fatal("a get from a closed port succeeded")
	}
	if got := testutil.ToFloat64(m.Requests.WithLabelValues("down", "get", "error")); got < 1 {
		t.Errorf(`mgo_kube_requests_total{cluster="down",verb="get",code="error"} = %v, want at least 1`, got)
	}
}

// Requests beyond the budget's burst wait for the token bucket, and the
// wait is observed for the cluster.
func TestMetricsObserveThrottleWait(t *testing.T) {
	ctx := context.Background()
	c, _, reg := metricsCluster(t, env.Config, repo.Budget{QPS: 5, Burst: 1})
	for range 4 {
		if _, err := c.Clientset.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// One token at once, then one every 200ms: three waits of about 200ms.
	count, sum := throttleWait(t, reg, env.Context)
	if count < 4 {
		t.Errorf("%d waits observed for 4 requests", count)
	}
	if sum < 0.4 {
		t.Errorf("%.3fs waited in all for 4 requests at 5 per second with a burst of 1, want about 0.6s", sum)
	}
}

// throttleWait reads the count and sum of a cluster's
// mgo_kube_throttle_wait_seconds.
func throttleWait(t *testing.T, reg *prometheus.Registry, cluster string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mgo_kube_throttle_wait_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" && l.GetValue() == cluster {
					return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	t.Fatalf("no mgo_kube_throttle_wait_seconds{cluster=%q}", cluster)
	return 0, 0
}

// A watch of the cache cut by a network outage is counted as closed, each
// attempt to watch again while the API server cannot be reached as an
// error; afterwards the watch resumes.
func TestMetricsCountWatchRestarts(t *testing.T) {
	ns := env.Namespace(t)
	direct := newCluster(t)
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	cfg := rest.CopyConfig(env.Config)
	u.Host = p.addr
	cfg.Host = u.String()
	c, m, _ := metricsCluster(t, cfg, repo.Budget{QPS: 50, Burst: 100})
	owner := c.OwnerFor("restarts-" + ns)
	ca, err := c.NewCache(owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	obj := cm(t, owner, ns, "watched", "1")
	applyAs(t, direct, FieldManager, obj)
	waitCached(t, direct, ca, obj)
	restarts := func(reason string) float64 {
		return testutil.ToFloat64(m.WatchRestarts.WithLabelValues(env.Context, reason))
	}
	eventually(t, "the cache's watch is open", func() bool {
		return testutil.ToFloat64(m.Requests.WithLabelValues(env.Context, "watch", "200")) >= 1
	})
	for _, r := range watchReasons {
		if got := restarts(r); got != 0 {
			t.Errorf("%s restarts before the outage: %v", r, got)
		}
	}

	p.cut()
	eventually(t, "the cut watch counted as closed", func() bool { return restarts(WatchClosed) >= 1 })
	eventually(t, "a refused watch counted as an error", func() bool { return restarts(WatchError) >= 1 })
	p.resume()

	applyAs(t, direct, FieldManager, cm(t, owner, ns, "watched", "2"))
	if got := waitCached(t, direct, ca, obj); got == nil || got.Object["data"].(map[string]any)["value"] != "2" {
		t.Errorf("changed after the outage: cached %v", got)
	}
	if got := restarts(WatchClosed); got != 1 {
		t.Errorf("closed restarts %v for one outage, want 1", got)
	}
	if got := restarts(WatchExpired) + restarts(WatchTimeout); got != 0 {
		t.Errorf("expired or timeout restarts after a short outage: %v", got)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// How a watch ends gives the reason of its restart; a watch stopped by its
// reader is no restart.
func TestCountWatchReasons(t *testing.T) {
	status := func(err error) *metav1.Status { s := err.(apierrors.APIStatus).Status(); return &s }
	tests := []struct {
		name    string
		timeout time.Duration
		end     func(*watch.FakeWatcher)
		want    string
	}{
		{"closed early", time.Hour, func(w *watch.FakeWatcher) { w.Stop() }, WatchClosed},
		{"closed at its timeout", time.Nanosecond, func(w *watch.FakeWatcher) { time.Sleep(time.Millisecond); w.Stop() }, WatchTimeout},
		{"closed without a timeout", 0, func(w *watch.FakeWatcher) { w.Stop() }, WatchClosed},
		{"410 Gone", time.Hour, func(w *watch.FakeWatcher) {
			w.Error(status(apierrors.NewResourceExpired("too old resource version: 1 (2)")))
		}, WatchExpired},
		{"an error", time.Hour, func(w *watch.FakeWatcher) {
			w.Error(status(apierrors.NewInternalError(errors.New("stream broken"))))
		}, WatchError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := watch.NewFake()
			got := make(chan string, 2)
			w := countWatch(inner, time.Now(), tt.timeout, func(r string) { got <- r })
			go tt.end(inner)
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					break // as the reflector does
				}
			}
			select {
			case r := <-got:
				if r != tt.want {
					t.Errorf("reason %q, want %q", r, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the end of the watch was not counted")
			}
			w.Stop()
			select {
			case r := <-got:
				t.Errorf("counted again: %q", r)
			case <-time.After(50 * time.Millisecond):
			}
		})
	}

	inner := watch.NewFake()
	got := make(chan string, 1)
	w := countWatch(inner, time.Now(), time.Hour, func(r string) { got <- r })
	w.Stop()
	for range w.ResultChan() {
	}
	select {
	case r := <-got:
		t.Errorf("a watch stopped by its reader counted as a restart: %q", r)
	case <-time.After(50 * time.Millisecond):
	}
}
