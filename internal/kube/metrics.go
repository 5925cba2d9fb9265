package kube

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/flowcontrol"
)

// Metrics are the Prometheus metrics of the clusters' API requests: what
// each cluster's budget is spent on, how long requests wait for it, and
// how often the live-state cache has to watch again. Labels are bounded:
// the cluster name (a kubeconfig context), the verb (RequestCounter's
// names), the HTTP status code and the reason of a watch restart; never a
// namespace or an object name.
type Metrics struct {
	// Requests counts API requests by cluster, verb and code: the HTTP
	// status code, or "error" when no response came (connection refused or
	// lost, deadline).
	Requests *prometheus.CounterVec
	// ThrottleWait is the time a request waited for a token of its
	// cluster's shared token bucket (its budget), by cluster.
	ThrottleWait *prometheus.HistogramVec
	// BudgetQPS is the cluster's budget in requests per second.
	BudgetQPS *prometheus.GaugeVec
	// WatchRestarts counts the watches of the live-state cache that ended
	// without the cache being closed (the watch is started again), by
	// cluster and reason (see the Watch* reasons).
	WatchRestarts *prometheus.CounterVec
}

// Reasons of a watch restart.
const (
	// WatchTimeout: the API server ended the watch at the timeout the
	// client asked for (every 5 to 10 minutes per kind): routine.
	WatchTimeout = "timeout"
	// WatchClosed: the watch ended early without an error: the API server
	// went away or the connection was lost.
	WatchClosed = "closed"
	// WatchExpired: the resourceVersion the watch resumes from is gone
	// (410 Gone): the kind is listed again.
	WatchExpired = "expired"
	// WatchError: the watch ended with another error, or could not be
	// started (each attempt of a retry counts).
	WatchError = "error"
)

var watchReasons = []string{WatchTimeout, WatchClosed, WatchExpired, WatchError}

// NewMetrics creates the metrics and registers them with reg (none when
// reg is nil). Clusters built WithMetrics report to them.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mgo_kube_requests_total", Help: "Kubernetes API requests by cluster, verb (dry-runs as dryrun-<verb>) and HTTP status code (error: no response).",
		}, []string{"cluster", "verb", "code"}),
		ThrottleWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mgo_kube_throttle_wait_seconds", Help: "Time API requests waited for a token of the cluster's budget (its shared token bucket).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"cluster"}),
		BudgetQPS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mgo_kube_budget_qps", Help: "The cluster's API budget in requests per second (budget.qps).",
		}, []string{"cluster"}),
		WatchRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mgo_kube_watch_restarts_total", Help: "Watches of the live-state cache that ended and are started again, by cluster and reason (timeout, closed, expired, error).",
		}, []string{"cluster", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.ThrottleWait, m.BudgetQPS, m.WatchRestarts)
	}
	return m
}

// clusterMetrics are the metrics of one cluster, its label set; a nil
// *clusterMetrics records nothing.
type clusterMetrics struct {
	requests *prometheus.CounterVec // curried with the cluster
	wait     prometheus.Observer
	restarts *prometheus.CounterVec // curried with the cluster
}

// forCluster returns the metrics of a cluster, with its series of waits
// and restarts present from the start (so that rates and increases see
// the first one); nil when m is nil.
func (m *Metrics) forCluster(name string, qps float32) *clusterMetrics {
	if m == nil {
		return nil
	}
	l := prometheus.Labels{"cluster": name}
	cm := &clusterMetrics{
		requests: m.Requests.MustCurryWith(l),
		wait:     m.ThrottleWait.With(l),
		restarts: m.WatchRestarts.MustCurryWith(l),
	}
	m.BudgetQPS.With(l).Set(float64(qps))
	for _, r := range watchReasons {
		cm.restarts.WithLabelValues(r)
	}
	return cm
}

// request counts one request of a verb by its outcome.
func (cm *clusterMetrics) request(verb string, resp *http.Response, err error) {
	if cm == nil {
		return
	}
	code := "error"
	if err == nil && resp != nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	cm.requests.WithLabelValues(verb, code).Inc()
}

func (cm *clusterMetrics) watchRestarted(reason string) {
	if cm == nil {
		return
	}
	cm.restarts.WithLabelValues(reason).Inc()
}

// ClusterOption is an option of NewCluster and FromKubeconfig.
type ClusterOption func(*clusterOptions)

type clusterOptions struct {
	metrics *Metrics
}

// WithMetrics makes the cluster report its requests, throttling waits and
// watch restarts to m (nothing when m is nil).
func WithMetrics(m *Metrics) ClusterOption {
	return func(o *clusterOptions) { o.metrics = m }
}

// measuredLimiter is a rate limiter that observes how long Wait and
// Accept block; the rest is its limiter's.
type measuredLimiter struct {
	flowcontrol.RateLimiter
	wait prometheus.Observer
}

var _ flowcontrol.RateLimiter = (*measuredLimiter)(nil)

func (l *measuredLimiter) Wait(ctx context.Context) error {
	start := time.Now()
	err := l.RateLimiter.Wait(ctx)
	l.wait.Observe(time.Since(start).Seconds())
	return err
}

func (l *measuredLimiter) Accept() {
	start := time.Now()
	l.RateLimiter.Accept()
	l.wait.Observe(time.Since(start).Seconds())
}

// countedWatch passes a watch's events on and, when the watch ends by
// itself rather than by Stop, counts the restart with its reason.
type countedWatch struct {
	w        watch.Interface
	out      chan watch.Event
	done     chan struct{}
	stopped  atomic.Bool
	stopOnce sync.Once
}

// countWatch wraps a watch started at start with the timeout it asked the
// API server for (0: none). ended is called once with the reason when the
// watch ends before Stop.
func countWatch(w watch.Interface, start time.Time, timeout time.Duration, ended func(reason string)) watch.Interface {
	cw := &countedWatch{w: w, out: make(chan watch.Event), done: make(chan struct{})}
	go func() {
		defer close(cw.out)
		counted := false
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error && !counted && !cw.stopped.Load() {
				// The reflector stops a watch at its first error.
				counted = true
				reason := WatchError
				if isExpired(apierrors.FromObject(ev.Object)) {
					reason = WatchExpired
				}
				ended(reason)
			}
			select {
			case cw.out <- ev:
			case <-cw.done:
				return
			}
		}
		if counted || cw.stopped.Load() {
			return // stopped by its reader: the cache closed or moved on
		}
		reason := WatchClosed
		if timeout > 0 && time.Since(start) >= timeout {
			reason = WatchTimeout
		}
		ended(reason)
	}()
	return cw
}

func (cw *countedWatch) ResultChan() <-chan watch.Event { return cw.out }

func (cw *countedWatch) Stop() {
	cw.stopOnce.Do(func() {
		cw.stopped.Store(true)
		close(cw.done)
		cw.w.Stop()
	})
}

// isExpired reports a 410: the resourceVersion asked for is gone.
func isExpired(err error) bool { return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) }
