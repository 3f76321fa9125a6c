package metrics

import (
	"slices"
	"strings"
	"sync"
	"unicode"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft reports through go-metrics' global sink, so the bridge is
// one per process: every server's registry collects the same sink (in
// tests that run several servers in one process, their Raft metrics add
// up).
var (
	raftOnce sync.Once
	raftSink *promSink
)

// raftCollector installs the go-metrics bridge once and returns it.
func raftCollector() prometheus.Collector {
	raftOnce.Do(func() {
		raftSink = &promSink{families: map[string]*family{}}
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false // its own goroutine, and the Go collector has them
		_, _ = gometrics.NewGlobal(conf, raftSink)
	})
	return raftSink
}

// promSink is a go-metrics sink that keeps what it is given as Prometheus
// metrics named in Prometheus' style, so that /metrics passes promlint:
// "raft.commitTime" becomes drover_raft_commit_time_seconds, a histogram
// in seconds (go-metrics times in milliseconds); counters end in _total;
// label names are snake_case. go-metrics' own Prometheus sink keeps
// go-metrics' names (raft_commitTime, counters without _total), which
// promlint refuses.
type promSink struct {
	mu       sync.Mutex
	families map[string]*family
}

// family is one metric of the sink, of the kind and label names of its
// first report; a report of another kind or other label names is dropped.
type family struct {
	kind      kind
	labels    []string
	collector prometheus.Collector
	gauge     *prometheus.GaugeVec
	counter   *prometheus.CounterVec
	histogram *prometheus.HistogramVec
}

type kind int

const (
	gaugeKind kind = iota
	counterKind
	sampleKind
)

func (s *promSink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }
func (s *promSink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.report(gaugeKind, key, float64(val), labels)
}
func (s *promSink) EmitKey(key []string, val float32)     {}
func (s *promSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }
func (s *promSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.report(counterKind, key, float64(val), labels)
}
func (s *promSink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }
func (s *promSink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.report(sampleKind, key, float64(val), labels)
}

func (s *promSink) report(k kind, key []string, val float64, labels []gometrics.Label) {
	// Raft reports each peer's replication twice: with a peer_id label,
	// and with the peer's id in the name. The second would make a metric
	// name per peer.
	if len(labels) == 0 && len(key) > 2 && key[0] == "raft" && key[1] == "replication" {
		return
	}
	names := make([]string, len(labels))
	values := make([]string, len(labels))
	for i, l := range labels {
		names[i], values[i] = snake(l.Name), l.Value
	}
	f := s.family(k, key, names)
	if f == nil {
		return
	}
	if millis(k, key) {
		val /= 1000
	}
	switch k {
	case gaugeKind:
		f.gauge.WithLabelValues(values...).Set(val)
	case counterKind:
		f.counter.WithLabelValues(values...).Add(val)
	case sampleKind:
		f.histogram.WithLabelValues(values...).Observe(val)
	}
}

// millis reports whether a report is a time in milliseconds: samples
// (MeasureSince) but counts and ratios, and gauges of ages and durations.
func millis(k kind, key []string) bool {
	last := key[len(key)-1]
	switch k {
	case sampleKind:
		return last != "saturation" && last != "applyBatchNum"
	case gaugeKind:
		return strings.HasSuffix(last, "Age") || strings.HasSuffix(last, "Duration")
	}
	return false
}

// family returns the metric of key, made on its first report; nil when
// it exists with other label names or of another kind.
func (s *promSink) family(k kind, key []string, labels []string) *family {
	parts := make([]string, 0, len(key)+2)
	parts = append(parts, namespace)
	for _, p := range key {
		parts = append(parts, snake(p))
	}
	help := "hashicorp/raft's " + strings.Join(key, ".") + " (go-metrics)"
	switch {
	case k == counterKind:
		parts = append(parts, "total")
	case millis(k, key):
		parts = append(parts, "seconds")
	}
	name := strings.Join(parts, "_")
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.families[name]; ok {
		if f.kind != k || !slices.Equal(f.labels, labels) {
			return nil
		}
		return f
	}
	f := &family{kind: k, labels: labels}
	switch k {
	case gaugeKind:
		f.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help + "."}, labels)
		f.collector = f.gauge
	case counterKind:
		f.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help + "."}, labels)
		f.collector = f.counter
	case sampleKind:
		buckets := prometheus.ExponentialBuckets(0.0001, 4, 9) // 0.1 ms to 6.6 s
		switch key[len(key)-1] {
		case "saturation":
			buckets = prometheus.LinearBuckets(0.1, 0.1, 10)
		case "applyBatchNum":
			buckets = prometheus.ExponentialBuckets(1, 2, 10)
		}
		f.histogram = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help + ".", Buckets: buckets}, labels)
		f.collector = f.histogram
	}
	s.families[name] = f
	return f
}

// Describe sends nothing: the sink's metrics appear as Raft reports
// them, which makes it an unchecked collector.
func (s *promSink) Describe(chan<- *prometheus.Desc) {}

func (s *promSink) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	fs := make([]prometheus.Collector, 0, len(s.families))
	for _, f := range s.families {
		fs = append(fs, f.collector)
	}
	s.mu.Unlock()
	for _, c := range fs {
		c.Collect(ch)
	}
}

// snake turns go-metrics' camelCase names ("commitTime", "rpcType") into
// snake_case.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		if r == '.' || r == '-' || r == ' ' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}
