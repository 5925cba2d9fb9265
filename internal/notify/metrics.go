package notify

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus metrics of notification delivery.
type Metrics struct {
	// Notifications counts deliveries by receiver and result: sent, retried
	// (an attempt failed, another follows), dropped (given up, queue full,
	// or the receiver could not be set up).
	Notifications *prometheus.CounterVec
	QueueDepth    prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mgo_notifications_total", Help: "Notification deliveries by receiver and result (sent, retried, dropped).",
		}, []string{"receiver", "result"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mgo_notification_queue_depth", Help: "Notifications waiting to be sent.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Notifications, m.QueueDepth)
	}
	return m
}
