// Package metrics is an agent's Prometheus metrics (-metrics-addr): the
// CPU and memory its replicas use, read from their cgroups at each scrape
// and summed per instance, their restarts, and the agent's own state.
//
// Series carry tenant, instance and environment, never a replica's id:
// the node is the scrape target, and an instance's replicas on one node
// add up, so that restarts and replacements add no series.
package metrics

import (
	"net/http"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/protocol"
)

// Replica is one replica the agent runs, as the metrics see it.
type Replica struct {
	ID, Tenant, Instance, Environment, State string
}

// Config says where an agent's metrics are read from.
type Config struct {
	// Replicas lists the agent's replicas at a scrape.
	Replicas func() []Replica
	// Usage reads what a replica's processes use (driver.Driver.Usage).
	Usage func(id string) (driver.Usage, error)
	// Connected reports whether the agent has a session with a server.
	Connected func() bool
	Logger    hclog.Logger
}

// Metrics is an agent's registry.
type Metrics struct {
	reg      *prometheus.Registry
	restarts *prometheus.CounterVec
}

var instanceLabels = []string{"tenant", "instance", "environment"}

// New returns an agent's metrics on a registry of their own.
func New(cfg Config) *Metrics {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_agent_replica_restarts_total",
			Help: "Restarts of replicas by this agent (its restart policy), by instance."}, instanceLabels),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.restarts,
		&usageCollector{cfg: cfg, logger: cfg.Logger.Named("metrics"), last: map[string]sample{}, retired: map[instanceKey]float64{}},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "drover_agent_connected",
			Help: "1 while the agent has a session with a server."}, func() float64 {
			if cfg.Connected != nil && cfg.Connected() {
				return 1
			}
			return 0
		}),
	)
	return m
}

// Restarted counts a restart of a replica of an instance.
func (m *Metrics) Restarted(tenant, instance, environment string) {
	m.restarts.WithLabelValues(tenant, instance, environment).Inc()
}

// Handler serves the metrics in the Prometheus formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	cpuDesc = prometheus.NewDesc("drover_replica_cpu_seconds_total",
		"CPU time the instance's replicas on this node have used (their cgroups' accounting), summed; it keeps what replicas that restarted or left had used.",
		instanceLabels, nil)
	memoryDesc = prometheus.NewDesc("drover_replica_memory_bytes",
		"Memory the instance's replicas on this node use now (their cgroups' accounting), summed.", instanceLabels, nil)
	replicasDesc = prometheus.NewDesc("drover_agent_replicas", "Replicas this agent runs, by state.", []string{"state"}, nil)
)

type instanceKey struct{ tenant, instance, environment string }

func (k instanceKey) values() []string { return []string{k.tenant, k.instance, k.environment} }

// sample is the last CPU time read of a replica.
type sample struct {
	key instanceKey
	cpu float64
}

// usageCollector reads the replicas' usage at each scrape. An instance's
// CPU counter is the sum of its replicas' cgroup counters, which start
// again from zero when a replica's process restarts (a new cgroup) or
// leave with the replica; what those had counted moves to retired, so
// that the sum never goes down.
type usageCollector struct {
	cfg    Config
	logger hclog.Logger

	mu      sync.Mutex
	last    map[string]sample // by replica id
	retired map[instanceKey]float64
	source  string // of the last usage read, to log its changes
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cpuDesc
	ch <- memoryDesc
	ch <- replicasDesc
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	states := map[string]int{}
	for _, s := range protocol.ReplicaStates {
		states[s] = 0
	}
	cpu := map[instanceKey]float64{}
	memory := map[instanceKey]float64{}
	present := map[string]bool{}
	for _, r := range c.cfg.Replicas() {
		states[r.State]++
		k := instanceKey{r.Tenant, r.Instance, r.Environment}
		present[r.ID] = true
		cpu[k] += 0
		memory[k] += 0
		u, err := c.cfg.Usage(r.ID)
		if err != nil {
			// Not running now (between restarts): what it used stays
			// counted until it runs again or leaves.
			cpu[k] += c.last[r.ID].cpu
			continue
		}
		c.noteSource(u.Source)
		if prev, ok := c.last[r.ID]; ok && u.CPUSeconds < prev.cpu {
			c.retired[k] += prev.cpu
		}
		c.last[r.ID] = sample{key: k, cpu: u.CPUSeconds}
		cpu[k] += u.CPUSeconds
		memory[k] += float64(u.MemoryBytes)
	}
	for id, s := range c.last {
		if !present[id] {
			c.retired[s.key] += s.cpu
			delete(c.last, id)
		}
	}
	for k, v := range c.retired {
		if _, ok := cpu[k]; !ok {
			delete(c.retired, k) // no replica of it here any more: its series ends
			continue
		}
		cpu[k] += v
	}
	for k, v := range cpu {
		ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.CounterValue, v, k.values()...)
		ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, memory[k], k.values()...)
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(replicasDesc, prometheus.GaugeValue, float64(n), s)
	}
}

// noteSource logs where usage is read from when it changes: once on a
// host without cgroup accounting.
func (c *usageCollector) noteSource(s string) {
	if s == c.source {
		return
	}
	c.source = s
	if s == driver.UsageProc {
		c.logger.Warn("replica CPU and memory are read from /proc: this host has no cgroup accounting for them; CPU of exited child processes may be missed")
		return
	}
	c.logger.Info("replica CPU and memory are read from cgroups", "source", s)
}
