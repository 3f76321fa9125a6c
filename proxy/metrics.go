package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series. Instances are labelled by
// tenant and instance; replicas never are (their ids churn).
type metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	ejections  *prometheus.CounterVec
	routes     prometheus.Gauge
	tableIndex prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gateway_requests_total", Help: "Requests routed to an instance, by status class.",
		}, []string{"tenant", "instance", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drover_gateway_request_duration_seconds", Help: "Time to answer requests routed to an instance, to the end of the answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"tenant", "instance"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gateway_retries_total", Help: "Requests sent again to another replica after a failure.",
		}, []string{"tenant", "instance"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gateway_ejections_total", Help: "Replicas taken out of a pool for a while after failing to connect or answer.",
		}, []string{"tenant", "instance"}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_gateway_routes", Help: "Instances in the routing table.",
		}),
		tableIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_gateway_table_index", Help: "Raft index of the routing table in use.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.retries, m.ejections, m.routes, m.tableIndex)
	}
	return m
}

func (m *metrics) observe(rt *route, code int, d time.Duration) {
	if rt.gone.Load() {
		return
	}
	if code == 499 {
		code = http.StatusBadRequest // the client left; count it as its fault
	}
	m.requests.WithLabelValues(rt.tenant, rt.name, statusClass(code)).Inc()
	m.duration.WithLabelValues(rt.tenant, rt.name).Observe(d.Seconds())
	if rt.gone.Load() {
		m.forget(rt) // it left the table meanwhile
	}
}

// forget drops the series of an instance that left the table.
func (m *metrics) forget(rt *route) {
	l := prometheus.Labels{"tenant": rt.tenant, "instance": rt.name}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
}
