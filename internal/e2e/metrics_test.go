package e2e

// Metrics (issue 14): what Prometheus scrapes from a real server and a
// real agent, and the Grafana dashboard that queries them.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/drover-dev/drover/internal/promtest"
)

// dashboard is the Grafana dashboard shipped in the repository.
const dashboard = "../../packaging/grafana/drover.json"

// scrapeURL gets a /metrics page and parses it, checked by promlint.
func scrapeURL(t *testing.T, url string) promtest.Families {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %s", url, resp.StatusCode, b)
	}
	return promtest.Parse(t, string(b))
}

// exprs returns every query of a Grafana dashboard: its panels' targets
// (rows' nested panels too) and its query variables.
func exprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: panel: %v", path, err)
			}
			for _, tg := range p.Targets {
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query) // the older form: a plain string
		}
		// label_values(METRIC{...}, label): the metric is the query.
		if inner, ok := strings.CutPrefix(q.Query, "label_values("); ok {
			if i := strings.LastIndex(inner, ","); i >= 0 {
				q.Query = inner[:i]
			}
		}
		out = append(out, q.Query)
	}
	return out
}

// After a small scenario (two tenants' instances on a real agent, a
// replica killed and restarted by the agent), the server and the agent
// expose every metric the dashboard queries, both pass promlint, and the
// restarts added no series to either.
func TestMetricsDashboardAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and an agent, and waits for restarts")
	}
	c := StartCluster(t, 1)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	agentMetrics := "http://127.0.0.1:" + strconv.Itoa(ports[0]) + "/metrics"
	StartAgent(t, c, WithAgentArgs("-metrics-addr", "127.0.0.1:"+strconv.Itoa(ports[0])))
	s := c.Server(0)
	createInstance(t, s, "acme", demoInstance("web", 2))
	createInstance(t, s, "beta", demoInstance("api", 1))
	waitHealthy(t, c, "acme", "web", 2)
	r := waitHealthy(t, c, "beta", "api", 1)[0]

	serverMetrics := s.URL() + "/metrics"
	web := "environment=staging,instance=web,tenant=acme"
	eventually(t, waitTimeout, "the agent's metrics to show acme/web's CPU and memory", func() (bool, string) {
		fs := scrapeURL(t, agentMetrics)
		mem := fs.Series("drover_replica_memory_bytes")[web]
		_, cpu := fs.Series("drover_replica_cpu_seconds_total")[web]
		return mem > 0 && cpu, fmt.Sprintf("memory %v, cpu present %v", mem, cpu)
	})
	tenantFamilies := func(fs promtest.Families) map[string]int {
		out := map[string]int{}
		for _, name := range []string{"drover_instances", "drover_replicas", "drover_instance_info",
			"drover_replica_cpu_seconds_total", "drover_replica_memory_bytes", "drover_agent_replica_restarts_total", "drover_agent_replicas"} {
			if n := len(fs.Series(name)); n > 0 {
				out[name] = n
			}
		}
		return out
	}
	// The first restart makes the restart counter's series; the others
	// must add none.
	restart := func(n int) {
		t.Helper()
		for i := range n {
			info := mustInfo(t, r.Ports["http"])
			if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			want := r.Restarts + 1
			r = waitReplicas(t, c, "beta", "api", 1, fmt.Sprintf("restart %d to be healthy", i+1), func(x apiReplica) bool {
				return x.ID == r.ID && x.Restarts == want && x.State == "healthy"
			})[0]
		}
	}
	restart(1)
	before := fmt.Sprint(tenantFamilies(scrapeURL(t, serverMetrics)), tenantFamilies(scrapeURL(t, agentMetrics)))
	restart(4)
	serverFs, agentFs := scrapeURL(t, serverMetrics), scrapeURL(t, agentMetrics)
	if after := fmt.Sprint(tenantFamilies(serverFs), tenantFamilies(agentFs)); after != before {
		t.Errorf("restarts added series: before %s, after %s", before, after)
	}
	if got := agentFs.Series("drover_agent_replica_restarts_total")["environment=staging,instance=api,tenant=beta"]; got != 5 {
		t.Errorf("the agent counted %v restarts of beta/api, want 5", got)
	}

	qs := exprs(t, dashboard)
	if len(qs) < 10 {
		t.Fatalf("%s has %d queries", dashboard, len(qs))
	}
	for _, q := range qs {
		names := promtest.MetricNames(q)
		if len(names) == 0 {
			t.Errorf("dashboard query %q names no metric", q)
		}
		for _, name := range names {
			if !serverFs.Has(name) && !agentFs.Has(name) {
				t.Errorf("dashboard query %q names %s, which neither the server nor the agent exposes", q, name)
			}
		}
	}
}
