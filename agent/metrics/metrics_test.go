package metrics_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/agent/metrics"
	"github.com/drover-dev/drover/internal/promtest"
	"github.com/drover-dev/drover/protocol"
)

// host is a fake agent: its replicas and what each uses.
type host struct {
	replicas []metrics.Replica
	usage    map[string]driver.Usage
}

func (h *host) config() metrics.Config {
	return metrics.Config{
		Replicas: func() []metrics.Replica { return h.replicas },
		Usage: func(id string) (driver.Usage, error) {
			u, ok := h.usage[id]
			if !ok {
				return driver.Usage{}, errors.New("not running")
			}
			return u, nil
		},
		Connected: func() bool { return true },
	}
}

func scrape(t *testing.T, m *metrics.Metrics) promtest.Families {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return promtest.Parse(t, rec.Body.String())
}

const web = "environment=production,instance=web,tenant=acme"

// An instance's CPU counter sums its replicas' and never goes down when
// one restarts (its cgroup counts from zero) or leaves; memory is now's.
func TestUsagePerInstance(t *testing.T) {
	h := &host{usage: map[string]driver.Usage{}}
	rep := func(id, instance, st string) metrics.Replica {
		return metrics.Replica{ID: id, Tenant: "acme", Instance: instance, Environment: "production", State: st}
	}
	h.replicas = []metrics.Replica{rep("r1", "web", protocol.ReplicaHealthy), rep("r2", "web", protocol.ReplicaHealthy), rep("r3", "api", protocol.ReplicaStarting)}
	h.usage["r1"] = driver.Usage{CPUSeconds: 10, MemoryBytes: 100}
	h.usage["r2"] = driver.Usage{CPUSeconds: 5, MemoryBytes: 50}
	m := metrics.New(h.config())
	check := func(when string, cpu, mem float64) {
		t.Helper()
		fs := scrape(t, m)
		if got := fs.Series("drover_replica_cpu_seconds_total")[web]; got != cpu {
			t.Errorf("%s: web's CPU = %v, want %v", when, got, cpu)
		}
		if got := fs.Series("drover_replica_memory_bytes")[web]; got != mem {
			t.Errorf("%s: web's memory = %v, want %v", when, got, mem)
		}
	}
	check("at first", 15, 150)
	if got := scrape(t, m).Series("drover_agent_replicas")["state=healthy"]; got != 2 {
		t.Errorf("healthy replicas = %v, want 2", got)
	}

	delete(h.usage, "r1") // exited, to be restarted
	check("between restarts", 15, 50)
	h.usage["r1"] = driver.Usage{CPUSeconds: 1, MemoryBytes: 10}
	check("after r1's restart", 16, 60)
	h.replicas = h.replicas[1:] // r1 left: what it used stays counted
	check("after r1 left", 16, 50)
	h.usage["r2"] = driver.Usage{CPUSeconds: 7, MemoryBytes: 70}
	check("as r2 runs on", 18, 70)
}

// A thousand restarts, some of them replacements with new ids, add no
// series: no replica id is a label.
func TestRestartsAddNoSeries(t *testing.T) {
	h := &host{usage: map[string]driver.Usage{}}
	m := metrics.New(h.config())
	h.replicas = []metrics.Replica{{ID: "r0", Tenant: "acme", Instance: "web", Environment: "production", State: protocol.ReplicaRunning}}
	h.usage["r0"] = driver.Usage{CPUSeconds: 1}
	m.Restarted("acme", "web", "production")
	before := scrape(t, m)
	for i := 1; i <= 1000; i++ {
		m.Restarted("acme", "web", "production")
		id := "r0"
		if i%10 == 0 {
			id = fmt.Sprintf("r%d", i) // replaced
		}
		h.replicas[0].ID = id
		h.usage = map[string]driver.Usage{id: {CPUSeconds: float64(i % 7), MemoryBytes: int64(i)}}
		if i%100 == 0 {
			scrape(t, m)
		}
	}
	after := scrape(t, m)
	for _, name := range []string{"drover_replica_cpu_seconds_total", "drover_replica_memory_bytes", "drover_agent_replica_restarts_total", "drover_agent_replicas"} {
		if b, a := len(before.Series(name)), len(after.Series(name)); a != b {
			t.Errorf("%s: %d series after 1000 restarts, %d before", name, a, b)
		}
	}
	if got := after.Series("drover_agent_replica_restarts_total")[web]; got != 1001 {
		t.Errorf("restarts = %v, want 1001", got)
	}
}
