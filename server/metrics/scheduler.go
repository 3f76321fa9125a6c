package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/server/scheduler"
)

// schedulerMetrics count what the leader's scheduler did.
type schedulerMetrics struct {
	evaluations *prometheus.CounterVec
	placements  prometheus.Counter
	stops       prometheus.Counter
	commit      prometheus.Histogram
}

func newSchedulerMetrics() *schedulerMetrics {
	m := &schedulerMetrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "scheduler", Name: "evaluations_total",
			Help: "Evaluations the scheduler made, by outcome: committed (its plan was), failed (its plan was not, it is retried) or waiting (nothing to do until a later time)."},
			[]string{"outcome"}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "scheduler", Name: "placements_total",
			Help: "Replicas placed on nodes by committed plans."}),
		stops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "scheduler", Name: "stops_total",
			Help: "Replicas stopped by committed plans."}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "scheduler", Name: "plan_commit_duration_seconds",
			Help:    "Time from proposing a batch of plans to Raft until all were committed and applied.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	for _, o := range []string{"committed", "failed", "waiting"} {
		m.evaluations.WithLabelValues(o)
	}
	return m
}

// ObserveScheduler takes one batch of the scheduler (scheduler.WorkerConfig.Observe).
func (m *Metrics) ObserveScheduler(b scheduler.Batch) {
	s := m.sched
	s.evaluations.WithLabelValues("committed").Add(float64(b.Committed))
	s.evaluations.WithLabelValues("failed").Add(float64(b.Failed))
	s.evaluations.WithLabelValues("waiting").Add(float64(b.Evaluated - b.Committed - b.Failed))
	s.placements.Add(float64(b.Placed))
	s.stops.Add(float64(b.Stopped))
	if b.Committed+b.Failed > 0 {
		s.commit.Observe(b.Commit.Seconds())
	}
}
