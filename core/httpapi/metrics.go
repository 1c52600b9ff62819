package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, on a registry of its own so
// that several servers can live in one process (as they do in tests).
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	actionExec    *prometheus.CounterVec
	actionLatency *prometheus.HistogramVec
	actionErrors  *prometheus.CounterVec
}

func newMetrics(load Load) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_http_requests_total",
			Help: "HTTP requests answered, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_http_request_duration_seconds",
			Help:    "Time from reading a request to handing back its response, by method, route template and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route", "status"}),
	}
	m.actionExec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "action_exec_total",
		Help: "Action executions that ended, by action and run status.",
	}, []string{"action", "status"})
	m.actionLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "action_latency_seconds",
		Help:    "Time a connector took to execute an action, by action.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"action"})
	m.actionErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "action_error_total",
		Help: "Action executions that failed, by action and error code.",
	}, []string{"action", "code"})
	m.registry.MustRegister(
		m.requests, m.latency, m.actionExec, m.actionLatency, m.actionErrors,
		newLoadCollector(load),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
