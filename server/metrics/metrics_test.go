package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/promtest"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/metrics"
	"github.com/drover-dev/drover/server/scheduler"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// fleet is a state with two tenants whose instances are in different
// states, made through the FSM as the servers and agents make it.
type fleet struct {
	*statetest.Harness
	t   *testing.T
	seq int
}

func newFleet(t *testing.T) *fleet {
	f := &fleet{Harness: statetest.New(t), t: t}
	f.Must(state.CmdNodeRegister, state.NodeRegister{Node: protocol.Node{ID: "n1", Name: "n1",
		Resources: protocol.NodeResources{CPUMillis: 100000, MemoryMB: 100000}, PortRange: protocol.PortRange{Lo: 20000, Hi: 20999}},
		SecretHash: "hash-n1"})
	for _, tenant := range []string{"acme", "beta"} {
		f.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: tenant}, Create: true})
	}
	// acme: web runs healthy (2), api failed (1); beta: db is stopped,
	// cache is degraded (running, not healthy) in staging.
	f.instance("acme", "web", "production", 2)
	f.instance("acme", "api", "production", 1)
	f.instance("beta", "db", protocol.DefaultEnvironment, 1)
	f.instance("beta", "cache", "staging", 1)
	f.settle()
	for _, id := range []string{"acme/web", "acme/api", "beta/db", "beta/cache"} {
		f.report(id, protocol.ReplicaHealthy, 0)
	}
	f.settle()
	f.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "beta", Name: "db", Action: state.ActionStop})
	f.settle()
	f.report("beta/db", protocol.ReplicaStopped, 0)
	f.report("beta/cache", protocol.ReplicaRunning, 0)
	f.report("acme/api", protocol.ReplicaFailed, 0)
	return f
}

// instance creates an instance.
func (f *fleet) instance(tenant, name, env string, replicas int) {
	f.t.Helper()
	sp := protocol.Spec{Version: "1." + name, Command: []string{"/bin/app"}, Resources: protocol.Resources{CPUMillis: 10, MemoryMB: 10}}
	f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: tenant, Name: name, Environment: env, Replicas: replicas, Spec: sp.WithDefaults()}})
}

// settle applies the scheduler's plans until they change nothing.
func (f *fleet) settle() {
	f.t.Helper()
	for range 20 {
		progress := false
		for _, e := range f.Snapshot().Evals() {
			p := scheduler.Schedule(f.Snapshot(), e, f.Now(), func() string { f.seq++; return fmt.Sprintf("r%d", f.seq) })
			if p.Retry && len(p.Place) == 0 && len(p.Stop) == 0 {
				continue
			}
			f.Must(state.CmdPlanApply, p)
			progress = true
		}
		if !progress {
			return
		}
	}
	f.t.Fatal("the scheduler keeps changing its mind")
}

// report makes node n1 report the instance's live replicas in state st
// with restarts restarts.
func (f *fleet) report(instance, st string, restarts int) {
	f.t.Helper()
	var reps []protocol.ReplicaReport
	for _, r := range f.Snapshot().Replicas(instance) {
		if !r.Ended() && r.Node != "" {
			health := ""
			if st == protocol.ReplicaHealthy {
				health = protocol.HealthPassing
			}
			reps = append(reps, protocol.ReplicaReport{ID: r.ID, State: st, Health: health, Restarts: restarts})
		}
	}
	f.Must(state.CmdReplicaReports, state.ReplicaReports{Reports: []state.NodeReport{{Node: "n1", Replicas: reps}}})
}

// scrape returns what h serves, checked by promlint.
func scrape(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	promtest.Parse(t, rec.Body.String())
	return rec.Body.String()
}

// series returns the series of a gathered family by their labels.
func series(t *testing.T, g prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	return promtest.Gather(t, g).Series(name)
}

// The per-tenant series count the instances and replicas by tenant,
// environment and state, with zeros for the states nothing is in.
func TestTenantSeries(t *testing.T) {
	f := newFleet(t)
	m := metrics.New(metrics.Config{Store: f.Store})
	want := map[string]map[string]float64{
		"drover_instances": {
			"environment=production,state=running,tenant=acme": 1,
			"environment=production,state=failed,tenant=acme":  1,
			"environment=production,state=stopped,tenant=acme": 0,
			"environment=default,state=stopped,tenant=beta":    1,
			"environment=staging,state=degraded,tenant=beta":   1,
			"environment=staging,state=running,tenant=beta":    0,
		},
		"drover_replicas": {
			"environment=production,state=healthy,tenant=acme": 2,
			"environment=production,state=failed,tenant=acme":  1,
			"environment=staging,state=running,tenant=beta":    1,
			"environment=staging,state=healthy,tenant=beta":    0,
			// beta/db's replica was stopped: it ended, and is history.
			"environment=default,state=stopped,tenant=beta": 0,
		},
		"drover_instance_info": {
			"environment=production,instance=web,product=,tenant=acme,version=1.web":  1,
			"environment=staging,instance=cache,product=,tenant=beta,version=1.cache": 1,
		},
	}
	for name, w := range want {
		got := series(t, m.Gatherer(), name)
		for k, v := range w {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s{%s} = %v (present %v), want %v; all: %v", name, k, g, ok, v, got)
			}
		}
	}
	if n := len(series(t, m.Gatherer(), "drover_instances")); n != 3*5 {
		t.Errorf("drover_instances has %d series, want 5 states for each of 3 (tenant, environment)", n)
	}
}

// The tenant's own endpoint has its series only, and none of the
// operators' series.
func TestTenantHandler(t *testing.T) {
	f := newFleet(t)
	m := metrics.New(metrics.Config{Store: f.Store})
	body := scrape(t, m.TenantHandler("beta"), "/v1/tenants/beta/metrics")
	if !strings.Contains(body, `drover_instances{environment="staging",state="degraded",tenant="beta"} 1`) {
		t.Errorf("beta's metrics lack its degraded instance:\n%s", body)
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, `tenant="beta"`) {
			t.Errorf("beta's metrics hold a series not of beta: %s", line)
		}
		if name, _, _ := strings.Cut(line, "{"); name != "drover_instances" && name != "drover_replicas" && name != "drover_instance_info" {
			t.Errorf("beta's metrics hold %s, not a per-tenant family", name)
		}
	}
}

// Everything the server exposes passes promlint: its own series, Raft's
// through the go-metrics bridge, the API's and the scheduler's.
func TestPromlint(t *testing.T) {
	f := newFleet(t)
	m := metrics.New(metrics.Config{Store: f.Store, IsLeader: func() bool { return true }, AppliedIndex: func() uint64 { return 9 },
		Sessions: func() int { return 7 }, Connects: func() int64 { return 3 }, Assigned: func() int64 { return 11 }})
	// What hashicorp/raft reports, in its shapes.
	gometrics.IncrCounter([]string{"raft", "apply"}, 1)
	gometrics.MeasureSince([]string{"raft", "commitTime"}, time.Now().Add(-3*time.Millisecond))
	gometrics.MeasureSinceWithLabels([]string{"raft", "net", "rpcDecode"}, time.Now(), []gometrics.Label{{Name: "rpcType", Value: "AppendEntries"}})
	gometrics.MeasureSince([]string{"raft", "replication", "heartbeat", "peer-1"}, time.Now())
	gometrics.SetGauge([]string{"raft", "leader", "oldestLogAge"}, 1500)
	gometrics.AddSample([]string{"raft", "thread", "main", "saturation"}, 0.5)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tenants/{tenant}", func(w http.ResponseWriter, r *http.Request) {})
	m.Instrument(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/tenants/acme", nil))
	m.ObserveScheduler(scheduler.Batch{Evaluated: 3, Committed: 2, Placed: 4, Commit: time.Millisecond})

	body := scrape(t, m.Handler(), "/metrics")
	for _, want := range []string{
		"drover_raft_leader 1\n", "drover_raft_applied_index 9\n", "drover_agent_sessions 7\n",
		"drover_agent_connects_total 3\n", "drover_agent_assigned_replicas_total 11\n", "drover_tenants 2\n", `drover_nodes{status="ready"} 1`,
		"drover_raft_apply_total", "drover_raft_commit_time_seconds_bucket",
		`drover_raft_net_rpc_decode_seconds_count{rpc_type="AppendEntries"}`,
		"drover_raft_leader_oldest_log_age_seconds 1.5\n",
		`drover_http_requests_total{code="200",method="get",route="/v1/tenants/{tenant}"} 1`,
		`drover_scheduler_evaluations_total{outcome="waiting"} 1`, "drover_scheduler_placements_total 4\n",
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "peer-1") {
		t.Errorf("a peer's id became a metric name:\n%s", body)
	}
}

// Requests are counted by the pattern that served them: names in paths
// add no series.
func TestRoutes(t *testing.T) {
	m := metrics.New(metrics.Config{Store: state.NewStore()})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tenants/{tenant}/instances/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "missing" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	h := m.Instrument(mux)
	for i := range 50 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/v1/tenants/t%d/instances/i%d", i, i), nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/tenants/a/instances/missing", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nowhere/at/all", nil))
	got := series(t, m.Gatherer(), "drover_http_requests_total")
	want := map[string]float64{
		"code=200,method=get,route=/v1/tenants/{tenant}/instances/{name}": 50,
		"code=404,method=get,route=/v1/tenants/{tenant}/instances/{name}": 1,
		"code=404,method=get,route=unmatched":                             1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("drover_http_requests_total = %v, want %v", got, want)
	}
}

// A thousand replica restarts, and replicas replaced after failing, add
// no series: no replica or node id is a label.
func TestRestartsAddNoSeries(t *testing.T) {
	f := newFleet(t)
	m := metrics.New(metrics.Config{Store: f.Store})
	before := promtest.Gather(t, m.Gatherer()).Count()
	states := []string{protocol.ReplicaStarting, protocol.ReplicaRunning, protocol.ReplicaHealthy, protocol.ReplicaUnhealthy}
	for i := 1; i <= 1000; i++ {
		f.report("acme/web", states[i%len(states)], i)
		if i%100 == 0 {
			// Now and then a replica fails for good and is replaced.
			f.report("beta/cache", protocol.ReplicaFailed, i)
			f.settle()
			f.report("beta/cache", protocol.ReplicaRunning, 0)
		}
		if i%250 == 0 {
			if after := promtest.Gather(t, m.Gatherer()).Count(); after != before {
				t.Fatalf("after %d restarts: %d series, %d before", i, after, before)
			}
		}
	}
	var restarts int
	for _, r := range f.Snapshot().Replicas("acme/web") {
		restarts = max(restarts, r.Restarts)
	}
	if restarts != 1000 {
		t.Fatalf("acme/web's replicas report %d restarts, want 1000: the scenario did not happen", restarts)
	}
}
