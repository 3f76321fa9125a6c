package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/metrics"
	"github.com/drover-dev/drover/server/state"
)

// A scrape shows what the state holds, in the Prometheus text format.
func TestScrape(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Servers: 1, Bare: true})
	s := c.Leader()
	c.MustPropose(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true})
	c.MustPropose(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "beta"}, Create: true})
	h := metrics.Handler(metrics.Source{Store: s.Store, IsLeader: s.Cluster.IsLeader, AppliedIndex: s.Cluster.AppliedIndex,
		Sessions: func() int { return 7 }, Connects: func() int64 { return 9 }})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"# TYPE drover_tenants gauge\ndrover_tenants 2\n",
		"drover_raft_leader 1\n",
		"drover_agent_sessions 7\n",
		"# TYPE drover_agent_connects_total counter\ndrover_agent_connects_total 9\n",
		"# TYPE go_goroutines gauge\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
}
