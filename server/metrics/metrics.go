// Package metrics is a server's Prometheus metrics (GET /metrics and
// GET /v1/tenants/{tenant}/metrics) through prometheus/client_golang, on a
// registry of the server's own: Raft's go-metrics bridged, the API's
// requests, the scheduler's batches, and series read from the state at
// each scrape (per tenant, rollouts, nodes).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-dev/drover/server/state"
)

// namespace starts the name of every metric of Drover's own.
const namespace = "drover"

// Config says what a server's metrics are read from. Nil functions leave
// their series out.
type Config struct {
	Store        *state.Store
	IsLeader     func() bool
	AppliedIndex func() uint64
	Sessions     func() int   // connected agents (on the leader)
	Connects     func() int64 // agents' connection attempts since start
	Assigned     func() int64 // replicas sent in assignments since start
	Held         func() int64 // nodes past their deadline held up in a disruption
}

// Metrics is a server's registry and the instruments the server's parts
// update.
type Metrics struct {
	store *state.Store
	reg   *prometheus.Registry
	http  *httpMetrics
	sched *schedulerMetrics
}

// New returns a server's metrics on a registry of its own.
func New(cfg Config) *Metrics {
	m := &Metrics{store: cfg.Store, reg: prometheus.NewRegistry(), http: newHTTPMetrics(), sched: newSchedulerMetrics()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		raftCollector(),
		&stateCollector{store: cfg.Store},
		m.http.requests, m.http.duration,
		m.sched.evaluations, m.sched.placements, m.sched.stops, m.sched.commit,
	)
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() int64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(f()) }))
	}
	if cfg.IsLeader != nil {
		gauge("raft_leader", "1 when this server is the Raft leader.", func() float64 {
			if cfg.IsLeader() {
				return 1
			}
			return 0
		})
	}
	if cfg.AppliedIndex != nil {
		gauge("raft_applied_index", "Last Raft index applied to this server's state.", func() float64 { return float64(cfg.AppliedIndex()) })
	}
	if cfg.Sessions != nil {
		gauge("agent_sessions", "Agents connected to this server.", func() float64 { return float64(cfg.Sessions()) })
	}
	if cfg.Connects != nil {
		counter("agent_connects_total", "Agent connection attempts to this server since it started.", cfg.Connects)
	}
	if cfg.Assigned != nil {
		counter("agent_assigned_replicas_total", "Replicas this server has sent agents in assignments (each of a whole set, each added or changed one of changes) since it started.", cfg.Assigned)
	}
	if cfg.Held != nil {
		gauge("agent_nodes_held", "Nodes past their heartbeat deadline the leader keeps up because fewer than half of the fleet is connected to it.", func() float64 { return float64(cfg.Held()) })
	}
	return m
}

// Handler serves every metric of the server in the Prometheus formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gatherer gathers every metric of the server (for tests and checks).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// TenantHandler serves the per-tenant series of one tenant only.
func (m *Metrics) TenantHandler(tenant string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&stateCollector{store: m.store, tenant: tenant})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
