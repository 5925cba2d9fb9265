package deploy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the service's Prometheus metrics.
type Metrics struct {
	Deploys         *prometheus.CounterVec   // by result: succeeded, failed, refused
	QueueDepth      prometheus.Gauge         // requests waiting for the git worker
	Stage           *prometheus.HistogramVec // duration of a stage (push: one ApplyBatch)
	StageFromQueued *prometheus.HistogramVec // time from queued until a stage was reached
	Syncs           *prometheus.HistogramVec // sync duration by cluster and result
	Drift           *prometheus.GaugeVec     // objects differing at the last drift check
}

// NewMetrics creates the metrics and registers them with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	m := &Metrics{
		Deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mgo_deploys_total", Help: "Deploy requests by result (succeeded, failed, refused).",
		}, []string{"result"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mgo_deploy_queue_depth", Help: "Deploy requests waiting for the git worker.",
		}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mgo_deploy_stage_duration_seconds", Help: "Duration of a deploy stage (push: fetch, edit, commit and push of one batch).", Buckets: buckets,
		}, []string{"stage"}),
		StageFromQueued: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mgo_deploy_stage_reached_seconds", Help: "Time from the request until a stage was reached (commit, sync, rollout, total).", Buckets: buckets,
		}, []string{"stage"}),
		Syncs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mgo_sync_duration_seconds", Help: "Duration of a cluster sync, by cluster and result.", Buckets: buckets,
		}, []string{"cluster", "result"}),
		Drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mgo_drift_objects", Help: "Objects that differed from the repo at the last drift check.",
		}, []string{"cluster"}),
	}
	if reg != nil {
		reg.MustRegister(m.Deploys, m.QueueDepth, m.Stage, m.StageFromQueued, m.Syncs, m.Drift)
	}
	return m
}
