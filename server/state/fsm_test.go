package state_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

func TestTenantCommands(t *testing.T) {
	h := newHarness(t)
	created := h.Must(state.CmdTenantUpsert, state.TenantUpsert{Create: true, Tenant: protocol.Tenant{
		Name: "acme", Labels: map[string]string{"tier": "gold"}, Quotas: protocol.Quotas{Instances: 5}}})
	got := h.Snapshot().Tenant("acme")
	if got == nil || got.State != protocol.TenantActive || got.CreateIndex != created || got.ModifyIndex != created ||
		!got.CreatedAt.Equal(t0) || got.Labels["tier"] != "gold" || got.Quotas.Instances != 5 {
		t.Fatalf("created tenant: %+v", got)
	}

	h.fails(state.CmdTenantUpsert, state.TenantUpsert{Create: true, Tenant: protocol.Tenant{Name: "acme"}}, protocol.CodeConflict)
	h.fails(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "nobody"}}, protocol.CodeNotFound)

	// An update replaces the tenant but keeps when it was created.
	h.SetNow(t0.Add(time.Hour))
	updated := h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantSuspended}})
	got = h.Snapshot().Tenant("acme")
	if got.State != protocol.TenantSuspended || got.CreateIndex != created || got.ModifyIndex != updated ||
		!got.CreatedAt.Equal(t0) || got.Labels != nil {
		t.Fatalf("updated tenant: %+v", got)
	}
	if ts := h.Snapshot().Tenants(); len(ts) != 1 {
		t.Fatalf("tenants: %d", len(ts))
	}

	h.fails(state.CmdTenantDelete, state.NameBody{Name: "nobody"}, protocol.CodeNotFound)
	h.Must(state.CmdTenantDelete, state.NameBody{Name: "acme"})
	if h.Snapshot().Tenant("acme") != nil {
		t.Fatal("deleted tenant still there")
	}
}

func TestTenantStateChangeEvaluatesItsInstances(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.tenant("other")
	h.instance("acme", "a", 1)
	h.instance("acme", "b", 1)
	h.instance("other", "c", 1)
	idx := h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantSuspended}})
	for _, id := range []string{"acme/a", "acme/b"} {
		if e := h.Snapshot().Eval(id); e == nil || e.Index != idx || e.TriggeredBy != "tenant-suspended" {
			t.Fatalf("eval of %s: %+v", id, e)
		}
	}
	if e := h.Snapshot().Eval("other/c"); e.Index == idx {
		t.Fatal("suspending acme evaluated another tenant's instance")
	}
	// The same state again is no change: no new evaluation.
	again := h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantSuspended}})
	if e := h.Snapshot().Eval("acme/a"); e.Index == again {
		t.Fatal("an unchanged tenant state evaluated its instances")
	}
	// A suspended tenant gets no new instances and cannot start stopped ones.
	h.fails(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "new", Spec: testSpec("1")}}, protocol.CodeConflict)
}

func TestDeleteTenantWithInstances(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	e := h.fails(state.CmdTenantDelete, state.NameBody{Name: "acme"}, protocol.CodeConflict)
	if !strings.Contains(e.Message, "still has 1 instance;") {
		t.Fatalf("message: %s", e.Message)
	}
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "crm"})
	h.Must(state.CmdTenantDelete, state.NameBody{Name: "acme"})
}

func TestEnvironmentsAndPlans(t *testing.T) {
	h := newHarness(t)
	idx := h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: "production", Protected: true}})
	if e := h.Snapshot().Environment("production"); e == nil || !e.Protected || e.ModifyIndex != idx {
		t.Fatalf("environment: %+v", e)
	}
	idx = h.Must(state.CmdPlanUpsert, state.PlanUpsert{Plan: protocol.Plan{Name: "pro", MaxReplicas: 3, Resources: protocol.Resources{CPUMillis: 500}}})
	if p := h.Snapshot().Plan("pro"); p == nil || p.MaxReplicas != 3 || p.ModifyIndex != idx {
		t.Fatalf("plan: %+v", p)
	}
	h.Must(state.CmdPlanUpsert, state.PlanUpsert{Plan: protocol.Plan{Name: "pro", MaxReplicas: 5}})
	if ps := h.Snapshot().Plans(); len(ps) != 1 || ps[0].MaxReplicas != 5 {
		t.Fatalf("plans after replace: %+v", ps)
	}
	if len(h.Snapshot().Environments()) != 1 {
		t.Fatal("environments")
	}
}

func TestInstanceCreate(t *testing.T) {
	h := newHarness(t)
	h.fails(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "nobody", Name: "crm", Spec: testSpec("1")}}, protocol.CodeNotFound)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	idx := h.Index()
	in := h.Snapshot().Instance("acme/crm")
	if in == nil || in.ID != "acme/crm" || in.Version != 1 || in.Replicas != 2 || in.CreateIndex != idx ||
		in.ModifyIndex != idx || !in.CreatedAt.Equal(t0) || !in.UpdatedAt.Equal(t0) || in.Status != nil {
		t.Fatalf("instance: %+v", in)
	}
	if v := h.Snapshot().Version("acme/crm", 1); v == nil || !reflect.DeepEqual(v.Spec, in.Spec) {
		t.Fatalf("version 1: %+v", v)
	}
	if got := h.eventTypes("acme/crm"); !reflect.DeepEqual(got, []string{"created"}) {
		t.Fatalf("events: %v", got)
	}
	if e := h.Snapshot().Eval("acme/crm"); e == nil || e.Index != idx || e.TriggeredBy != "instance-create" {
		t.Fatalf("eval: %+v", e)
	}
	h.fails(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Spec: testSpec("2")}}, protocol.CodeConflict)
	if got := h.Snapshot().Instances(state.InstanceFilter{Tenant: "acme"}); len(got) != 1 {
		t.Fatalf("instances of acme: %d", len(got))
	}
}

func TestInstanceUpdate(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	h.fails(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "nope", Spec: testSpec("2")}, protocol.CodeNotFound)
	e := h.fails(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec("2"), IfVersion: 7}, protocol.CodeConflict)
	if !strings.Contains(e.Message, "version 1") {
		t.Fatalf("message: %s", e.Message)
	}
	h.SetNow(t0.Add(time.Minute))
	idx := h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec("2"), IfVersion: 1, Plan: "pro"})
	in := h.Snapshot().Instance("acme/crm")
	if in.Version != 2 || in.Spec.Version != "2" || in.Plan != "pro" || in.Environment != "default" || in.Replicas != 2 ||
		in.ModifyIndex != idx || !in.UpdatedAt.Equal(h.Now()) || !in.CreatedAt.Equal(t0) {
		t.Fatalf("updated instance: %+v", in)
	}
	if v := h.Snapshot().Version("acme/crm", 2); v == nil || v.Spec.Version != "2" {
		t.Fatalf("version 2: %+v", v)
	}
	if h.Snapshot().Version("acme/crm", 1) == nil {
		t.Fatal("version 1 dropped")
	}
	if e := h.Snapshot().Eval("acme/crm"); e.Index != idx || e.TriggeredBy != "instance-update" {
		t.Fatalf("eval: %+v", e)
	}
	// Environment and replicas change when given; without If-Match any version goes.
	three := 3
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec("3"), Environment: "production", Replicas: &three})
	in = h.Snapshot().Instance("acme/crm")
	if in.Version != 3 || in.Environment != "production" || in.Replicas != 3 {
		t.Fatalf("instance: %+v", in)
	}
	if got := h.eventTypes("acme/crm"); !reflect.DeepEqual(got, []string{"created", "updated", "updated"}) {
		t.Fatalf("events: %v", got)
	}
}

func TestVersionRetention(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	h.node("n1")
	// A replica still runs version 2, and version 3 is the stable one.
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec("2")})
	h.place("acme/crm", "n1", 2, "r-v2")
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec("3")})
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", StableVersion: 3})
	const last = state.MaxVersionsKept + 10
	for v := 4; v <= last; v++ {
		h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec(fmt.Sprint(v))})
	}
	var kept []uint64
	for v := uint64(1); v <= last; v++ {
		if h.Snapshot().Version("acme/crm", v) != nil {
			kept = append(kept, v)
		}
	}
	var want []uint64
	want = append(want, 2, 3)
	for v := uint64(last - state.MaxVersionsKept + 1); v <= last; v++ {
		want = append(want, v)
	}
	if !reflect.DeepEqual(kept, want) {
		t.Fatalf("versions kept: %v\nwant %v", kept, want)
	}
}

func TestInstanceScale(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	h.fails(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "nope", Replicas: 1}, protocol.CodeNotFound)
	idx := h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "crm", Replicas: 5})
	in := h.Snapshot().Instance("acme/crm")
	if in.Replicas != 5 || in.Version != 1 || in.ModifyIndex != idx {
		t.Fatalf("scaled: %+v", in)
	}
	evs := h.Snapshot().Events("acme/crm")
	if last := evs[len(evs)-1]; last.Type != "scaled" || last.Message != "replicas 2 -> 5" {
		t.Fatalf("event: %+v", last)
	}
	if e := h.Snapshot().Eval("acme/crm"); e.Index != idx || e.TriggeredBy != "instance-scale" {
		t.Fatalf("eval: %+v", e)
	}
}

func TestInstanceLifecycle(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	lc := func(action string) state.InstanceLifecycle {
		return state.InstanceLifecycle{Tenant: "acme", Name: "crm", Action: action}
	}
	h.fails(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "nope", Action: "stop"}, protocol.CodeNotFound)
	if e := h.fails(state.CmdInstanceLifecycle, lc("pause"), protocol.CodeInvalidArgument); e.Field != "action" {
		t.Fatalf("bad action: %+v", e)
	}

	restart := h.Must(state.CmdInstanceLifecycle, lc("restart"))
	if in := h.Snapshot().Instance("acme/crm"); in.RestartEpoch != restart || in.Stopped {
		t.Fatalf("restarted: %+v", in)
	}
	h.Must(state.CmdInstanceLifecycle, lc("stop"))
	in := h.Snapshot().Instance("acme/crm")
	if !in.Stopped || in.Replicas != 2 {
		t.Fatalf("stopped: %+v", in)
	}
	if st := h.Snapshot().InstanceStatus(in); st.State != protocol.InstanceStopped || st.Replicas.Desired != 0 {
		t.Fatalf("status of a stopped instance: %+v", st)
	}
	h.fails(state.CmdInstanceLifecycle, lc("restart"), protocol.CodeConflict)

	// A suspended tenant's instance cannot start.
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantSuspended}})
	h.fails(state.CmdInstanceLifecycle, lc("start"), protocol.CodeConflict)
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantActive}})
	idx := h.Must(state.CmdInstanceLifecycle, lc("start"))
	if in := h.Snapshot().Instance("acme/crm"); in.Stopped || in.Replicas != 2 {
		t.Fatalf("started: %+v", in)
	}
	if e := h.Snapshot().Eval("acme/crm"); e.Index != idx || e.TriggeredBy != "instance-start" {
		t.Fatalf("eval: %+v", e)
	}
	if got := h.eventTypes("acme/crm"); !reflect.DeepEqual(got, []string{"created", "restart", "stop", "start"}) {
		t.Fatalf("events: %v", got)
	}
}

func TestInstanceDelete(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	h.instance("acme", "crm2", 1) // a name that shares a prefix must survive
	h.node("n1")
	h.place("acme/crm", "n1", 1, "r1")
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Place: []*protocol.Replica{{ID: "r-pending", Tenant: "acme", Instance: "crm", Version: 1}}})
	h.place("acme/crm2", "n1", 1, "other")
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaRunning})

	h.fails(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "nope"}, protocol.CodeNotFound)
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "crm"})
	s := h.Snapshot()
	if s.Instance("acme/crm") != nil || s.Version("acme/crm", 1) != nil || len(s.Events("acme/crm")) != 0 || s.Eval("acme/crm") != nil {
		t.Fatal("deleted instance left its instance, versions, events or eval")
	}
	// The running replica is told to stop; the one never placed is gone.
	if r := s.Replica("r1"); r == nil || r.Desired != protocol.DesiredStop || r.State != protocol.ReplicaRunning || r.Message != "instance deleted" {
		t.Fatalf("running replica: %+v", r)
	}
	if r := s.Replica("r-pending"); r != nil {
		t.Fatalf("unplaced replica kept: %+v", r)
	}
	if s.Instance("acme/crm2") == nil || s.Version("acme/crm2", 1) == nil || len(s.Events("acme/crm2")) == 0 || s.Replica("other") == nil {
		t.Fatal("deleting acme/crm touched acme/crm2")
	}
	// Once its agent reports it stopped, the replica is forgotten.
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaStopped})
	if r := h.Snapshot().Replica("r1"); r != nil {
		t.Fatalf("stopped replica of a deleted instance kept: %+v", r)
	}
}

func TestNodeRegister(t *testing.T) {
	h := newHarness(t)
	h.fails(state.CmdNodeRegister, state.NodeRegister{Node: protocol.Node{ID: "n1"}}, protocol.CodeInvalidArgument)
	h.node("n1")
	idx := h.Index()
	n := h.Snapshot().Node("n1")
	if n == nil || n.Status != protocol.NodeReady || !n.Eligible || n.CreateIndex != idx || !n.LastSeen.Equal(t0) {
		t.Fatalf("node: %+v", n)
	}
	if c := h.Snapshot().Credential("hash-n1"); c == nil || c.Kind != state.CredentialNode || c.Owner != "n1" {
		t.Fatalf("credential: %+v", c)
	}
	// Maintenance settings survive a new hello, which refreshes the facts.
	h.Must(state.CmdNodeEligibility, state.NodeEligibility{ID: "n1", Eligible: false})
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1", Drain: &protocol.DrainSpec{Deadline: t0.Add(time.Hour)}})
	h.SetNow(t0.Add(time.Minute))
	h.Must(state.CmdNodeRegister, state.NodeRegister{Node: protocol.Node{ID: "n1", Name: "renamed", Eligible: true}})
	n = h.Snapshot().Node("n1")
	if n.Name != "renamed" || n.Eligible || n.Drain == nil || n.Status != protocol.NodeDraining || n.CreateIndex != idx || !n.LastSeen.Equal(h.Now()) {
		t.Fatalf("node after a second hello: %+v", n)
	}
	if len(h.Snapshot().Nodes()) != 1 || h.Snapshot().NodeCount() != 1 {
		t.Fatal("nodes")
	}
	h.node("n2")
	h.node("n3")
	if got := h.Snapshot().NodeCount(); got != 3 {
		t.Fatalf("%d nodes counted after three registered, want 3", got)
	}
}

func TestNodeDownMarksReplicasLost(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 3)
	h.node("n1")
	h.node("n2")
	h.place("acme/crm", "n1", 1, "r1", "r2")
	h.place("acme/crm", "n2", 1, "r3")
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy}, protocol.ReplicaReport{ID: "r2", State: protocol.ReplicaFailed})

	seen := t0.Add(3 * time.Minute)
	idx := h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false, Seen: seen}, {ID: "gone", Up: false}}})
	s := h.Snapshot()
	if n := s.Node("n1"); n.Status != protocol.NodeDown || !n.LastSeen.Equal(seen) {
		t.Fatalf("node: %+v", n)
	}
	if r := s.Replica("r1"); r.State != protocol.ReplicaLost || r.Health != "" || !strings.Contains(r.Message, "missed its heartbeat") || r.ModifyIndex != idx {
		t.Fatalf("live replica of a down node: %+v", r)
	}
	if r := s.Replica("r2"); r.State != protocol.ReplicaFailed {
		t.Fatalf("failed replica of a down node changed: %+v", r)
	}
	if r := s.Replica("r3"); r.State != protocol.ReplicaPending {
		t.Fatalf("replica of another node changed: %+v", r)
	}
	if e := s.Eval("acme/crm"); e.Index != idx || e.TriggeredBy != "node-down" {
		t.Fatalf("eval: %+v", e)
	}
	evs := h.eventTypes("acme/crm")
	if evs[len(evs)-1] != "replica-lost" {
		t.Fatalf("events: %v", evs)
	}

	// Down again is no change.
	before := h.Bytes()
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false}}})
	if d := statetest.Diff(before, h.Bytes()); d != "" {
		t.Fatalf("a second down changed the state: %s", d)
	}

	// Up again: ready, and instances waiting for a node are evaluated.
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: h.Index(), Place: []*protocol.Replica{{ID: "waiting", Tenant: "acme", Instance: "crm", Version: 1}}})
	up := h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: true}}})
	if n := h.Snapshot().Node("n1"); n.Status != protocol.NodeReady {
		t.Fatalf("node up: %+v", n)
	}
	if e := h.Snapshot().Eval("acme/crm"); e.Index != up {
		t.Fatalf("eval after node up: %+v", e)
	}
	// A draining node comes back draining.
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n2", Drain: &protocol.DrainSpec{Deadline: t0.Add(time.Hour)}})
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n2", Up: false}}})
	if n := h.Snapshot().Node("n2"); n.Status != protocol.NodeDown {
		t.Fatalf("draining node down: %+v", n)
	}
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n2", Up: true}}})
	if n := h.Snapshot().Node("n2"); n.Status != protocol.NodeDraining {
		t.Fatalf("draining node up: %+v", n)
	}
}

func TestNodeDrainAndEligibility(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	h.node("n1")
	h.place("acme/crm", "n1", 1, "r1")
	h.fails(state.CmdNodeDrain, state.NodeDrain{ID: "nope"}, protocol.CodeNotFound)
	h.fails(state.CmdNodeEligibility, state.NodeEligibility{ID: "nope"}, protocol.CodeNotFound)

	idx := h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1", Drain: &protocol.DrainSpec{StartedAt: t0, Deadline: t0.Add(time.Hour)}})
	n := h.Snapshot().Node("n1")
	if n.Status != protocol.NodeDraining || n.Drain == nil || !n.Drain.Deadline.Equal(t0.Add(time.Hour)) || n.ModifyIndex != idx {
		t.Fatalf("draining: %+v", n)
	}
	if e := h.Snapshot().Eval("acme/crm"); e.Index != idx || e.TriggeredBy != "node-drain" {
		t.Fatalf("eval: %+v", e)
	}
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1"})
	if n := h.Snapshot().Node("n1"); n.Status != protocol.NodeReady || n.Drain != nil {
		t.Fatalf("drain ended: %+v", n)
	}
	// A drain of a down node keeps it down.
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1"}}})
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1", Drain: &protocol.DrainSpec{}})
	if n := h.Snapshot().Node("n1"); n.Status != protocol.NodeDown || n.Drain == nil {
		t.Fatalf("drain of a down node: %+v", n)
	}

	h.Must(state.CmdNodeEligibility, state.NodeEligibility{ID: "n1", Eligible: false})
	if h.Snapshot().Node("n1").Eligible {
		t.Fatal("still eligible")
	}
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: h.Index(), Place: []*protocol.Replica{{ID: "waiting", Tenant: "acme", Instance: "crm"}}})
	idx = h.Must(state.CmdNodeEligibility, state.NodeEligibility{ID: "n1", Eligible: true})
	if !h.Snapshot().Node("n1").Eligible {
		t.Fatal("not eligible")
	}
	if e := h.Snapshot().Eval("acme/crm"); e == nil || e.Index != idx || e.TriggeredBy != "node-capacity" {
		t.Fatalf("eval of a waiting replica: %+v", e)
	}
}

// The replicas waiting for a node are those without one that are to run:
// not those placed, nor those stopped before they found one.
func TestWaitingReplicas(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 3)
	h.node("n1")
	h.place("acme/crm", "n1", 1, "placed")
	h.place("acme/crm", "", 1, "w1", "w2")
	ids := func() []string {
		var out []string
		for _, r := range h.Snapshot().WaitingReplicas() {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(); !slices.Equal(got, []string{"w1", "w2"}) {
		t.Fatalf("waiting %v, want w1 w2", got)
	}
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: h.Index(), Stop: []state.ReplicaStop{{ID: "w1", Message: "scaled in"}}})
	if got := ids(); !slices.Equal(got, []string{"w2"}) {
		t.Fatalf("waiting %v after w1 stopped, want w2", got)
	}
}

func TestNodeRevoke(t *testing.T) {
	h := newHarness(t)
	h.node("n1")
	h.fails(state.CmdNodeRevoke, state.NameBody{Name: "nope"}, protocol.CodeNotFound)
	h.Must(state.CmdNodeRevoke, state.NameBody{Name: "n1"})
	n := h.Snapshot().Node("n1")
	if !n.Revoked || n.Eligible {
		t.Fatalf("revoked node: %+v", n)
	}
	if c := h.Snapshot().Credential("hash-n1"); c != nil {
		t.Fatalf("revoked node keeps its credential: %+v", c)
	}
	h.fails(state.CmdNodeRegister, state.NodeRegister{Node: protocol.Node{ID: "n1"}, SecretHash: "new"}, protocol.CodePermissionDenied)
}

func TestReplicaReports(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	h.node("n1")
	h.node("n2")
	h.place("acme/crm", "n1", 1, "r1")

	h.SetNow(t0.Add(time.Minute))
	started := t0.Add(30 * time.Second)
	idx := h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy, Health: "ok", Ports: map[string]int{"http": 20001}, StartedAt: started})
	r := h.Snapshot().Replica("r1")
	if r.State != protocol.ReplicaHealthy || r.Ports["http"] != 20001 || !r.StartedAt.Equal(started) ||
		!r.HealthySince.Equal(h.Now()) || r.ModifyIndex != idx || r.Desired != protocol.DesiredRun {
		t.Fatalf("reported replica: %+v", r)
	}
	if n := h.Snapshot().Node("n1"); !n.LastSeen.Equal(h.Now()) {
		t.Fatalf("node last seen: %v", n.LastSeen)
	}
	if e := h.Snapshot().Eval("acme/crm"); e.Index != idx || e.TriggeredBy != "replica-healthy" {
		t.Fatalf("eval: %+v", e)
	}
	evs := h.Snapshot().Events("acme/crm")
	if last := evs[len(evs)-1]; last.Type != "replica-healthy" || last.Replica != "r1" || last.Node != "n1" || last.Message != "pending -> healthy" {
		t.Fatalf("event: %+v", last)
	}
	if st := h.Snapshot().InstanceStatus(h.Snapshot().Instance("acme/crm")); st.Replicas.Healthy != 1 || st.Replicas.Running != 1 || st.State != protocol.InstanceDegraded {
		t.Fatalf("status: %+v", st)
	}

	// The same observation again writes nothing.
	h.SetNow(t0.Add(2 * time.Minute))
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy, Health: "ok", Ports: map[string]int{"http": 20001}, StartedAt: started})
	if r := h.Snapshot().Replica("r1"); r.ModifyIndex != idx || !r.HealthySince.Equal(t0.Add(time.Minute)) {
		t.Fatalf("repeated report rewrote the replica: %+v", r)
	}
	// Another node cannot report it, and unknown replicas are ignored.
	h.report("n2", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaFailed}, protocol.ReplicaReport{ID: "ghost", State: protocol.ReplicaRunning})
	if r := h.Snapshot().Replica("r1"); r.State != protocol.ReplicaHealthy {
		t.Fatalf("report of another node applied: %+v", r)
	}
	if h.Snapshot().Replica("ghost") != nil {
		t.Fatal("unknown replica created")
	}
	// Unhealthy with a restart: health time reset, restart in the event.
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaUnhealthy, Restarts: 1, Message: "check failed"})
	r = h.Snapshot().Replica("r1")
	if !r.HealthySince.IsZero() || r.Restarts != 1 || r.Ports["http"] != 20001 || !r.StartedAt.Equal(started) {
		t.Fatalf("unhealthy replica: %+v", r)
	}
	evs = h.Snapshot().Events("acme/crm")
	if last := evs[len(evs)-1]; last.Message != "healthy -> unhealthy: check failed (restart 1)" {
		t.Fatalf("event: %+v", last)
	}
}

func TestTerminalReplicasAreCollected(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	h.node("n1")
	const n = state.MaxTerminalPerInstance + 3
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, fmt.Sprintf("r%02d", i))
	}
	h.place("acme/crm", "n1", 1, ids...)
	var stops []state.ReplicaStop
	var reports []protocol.ReplicaReport
	for _, id := range ids {
		stops = append(stops, state.ReplicaStop{ID: id, Message: "scaled down"})
		reports = append(reports, protocol.ReplicaReport{ID: id, State: protocol.ReplicaStopped})
	}
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Stop: stops})
	if got := len(h.Snapshot().Replicas("acme/crm")); got != n {
		t.Fatalf("replicas told to stop but still running were collected: %d left", got)
	}
	h.report("n1", reports...)
	var left []string
	for _, r := range h.Snapshot().Replicas("acme/crm") {
		left = append(left, r.ID)
	}
	if !reflect.DeepEqual(left, ids[n-state.MaxTerminalPerInstance:]) {
		t.Fatalf("terminal replicas kept: %v, want the newest %d", left, state.MaxTerminalPerInstance)
	}
}

func TestPlanApply(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	h.node("n1")
	evalIdx := h.Snapshot().Eval("acme/crm").Index

	dep := &protocol.Deployment{ID: "d1", FromVersion: 0, ToVersion: 1, State: protocol.DeploymentRunning}
	idx := h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: evalIdx,
		Place: []*protocol.Replica{
			{ID: "r1", Tenant: "acme", Instance: "crm", Node: "n1", Version: 1},
			{ID: "r2", Tenant: "acme", Instance: "crm", Version: 1}, // no node has room
		},
		Deployment: dep,
		Events:     []protocol.Event{{Tenant: "acme", Instance: "crm", Type: "placement-failed", Replica: "r2", Message: "no node has 2048 MB free"}},
	})
	s := h.Snapshot()
	for _, id := range []string{"r1", "r2"} {
		r := s.Replica(id)
		if r == nil || r.Desired != protocol.DesiredRun || r.State != protocol.ReplicaPending || r.CreateIndex != idx || !r.CreatedAt.Equal(t0) {
			t.Fatalf("placed %s: %+v", id, r)
		}
	}
	if got := s.NodeReplicas("n1"); len(got) != 1 || got[0].ID != "r1" {
		t.Fatalf("node replicas: %+v", got)
	}
	in := s.Instance("acme/crm")
	if in.Deployment == nil || in.Deployment.ID != "d1" || in.ModifyIndex != idx {
		t.Fatalf("deployment: %+v", in)
	}
	if st := s.InstanceStatus(in); st.State != protocol.InstanceDeploying || st.Replicas.Pending != 2 {
		t.Fatalf("status: %+v", st)
	}
	if evs := s.Events("acme/crm"); evs[len(evs)-1].Message != "no node has 2048 MB free" {
		t.Fatalf("events: %+v", evs)
	}
	if e := s.Eval("acme/crm"); e != nil {
		t.Fatalf("a finished evaluation was kept: %+v", e)
	}

	// Stop: a placed replica is asked to stop, an unplaced one stops at once.
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Stop: []state.ReplicaStop{{ID: "r1", Message: "scaled down"}, {ID: "r2", Message: "scaled down"}, {ID: "ghost"}}})
	s = h.Snapshot()
	if r := s.Replica("r1"); r.Desired != protocol.DesiredStop || r.State != protocol.ReplicaPending || r.Message != "scaled down" {
		t.Fatalf("stopped placed replica: %+v", r)
	}
	if r := s.Replica("r2"); r.Desired != protocol.DesiredStop || r.State != protocol.ReplicaStopped {
		t.Fatalf("stopped unplaced replica: %+v", r)
	}
}

func TestPlanEvalRetention(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	read := h.Snapshot().Eval("acme/crm").Index

	// A trigger that arrives while the scheduler works is kept.
	newer := h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "crm", Replicas: 2})
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: read})
	if e := h.Snapshot().Eval("acme/crm"); e == nil || e.Index != newer {
		t.Fatalf("newer eval: %+v", e)
	}
	// Retry asks for another pass: the eval stays, at the plan's index.
	retry := h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: newer, Retry: true})
	if e := h.Snapshot().Eval("acme/crm"); e == nil || e.Index != retry || e.TriggeredBy != "instance-scale" {
		t.Fatalf("retried eval: %+v", e)
	}
	// Done: removed.
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: retry})
	if e := h.Snapshot().Eval("acme/crm"); e != nil {
		t.Fatalf("done eval kept: %+v", e)
	}
	if len(h.Snapshot().Evals()) != 0 {
		t.Fatal("evals left")
	}
}

func TestPlanRollback(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: testSpec("2")})
	eval := h.Snapshot().Eval("acme/crm").Index

	idx := h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: eval, Rollback: 1, StableVersion: 1,
		Deployment: &protocol.Deployment{ID: "d2", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentRolledBack}})
	in := h.Snapshot().Instance("acme/crm")
	if in.Version != 3 || in.Spec.Version != "1" || in.StableVersion != 1 || in.Deployment.State != protocol.DeploymentRolledBack {
		t.Fatalf("rolled back: %+v", in)
	}
	if v := h.Snapshot().Version("acme/crm", 3); v == nil || v.Spec.Version != "1" {
		t.Fatalf("version 3: %+v", v)
	}
	// The new version needs a deployment: the eval stays.
	if e := h.Snapshot().Eval("acme/crm"); e == nil || e.Index != idx {
		t.Fatalf("eval after rollback: %+v", e)
	}
	// A rollback to a version that is gone changes nothing, not even the
	// replicas the same plan would place.
	h.fails(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Rollback: 99,
		Place: []*protocol.Replica{{ID: "r9", Tenant: "acme", Instance: "crm"}}}, protocol.CodeConflict)
}

func TestTokens(t *testing.T) {
	h := newHarness(t)
	tok := protocol.Token{ID: "t1", Secret: "s3cret", Role: protocol.RoleOperator, Description: "ci"}
	idx := h.Must(state.CmdTokenCreate, state.TokenCreate{Token: tok, SecretHash: "h1"})
	got := h.Snapshot().Token("t1")
	if got == nil || got.Secret != "" || got.Role != protocol.RoleOperator || got.CreateIndex != idx || !got.CreatedAt.Equal(t0) {
		t.Fatalf("token: %+v", got)
	}
	if strings.Contains(string(h.Bytes()), "s3cret") {
		t.Fatal("the state holds a token's secret")
	}
	if c := h.Snapshot().Credential("h1"); c == nil || c.Kind != state.CredentialToken || c.Owner != "t1" {
		t.Fatalf("credential: %+v", c)
	}
	h.fails(state.CmdTokenCreate, state.TokenCreate{Token: tok, SecretHash: "h2"}, protocol.CodeConflict)
	h.fails(state.CmdTokenDelete, state.NameBody{Name: "nope"}, protocol.CodeNotFound)
	h.Must(state.CmdTokenDelete, state.NameBody{Name: "t1"})
	if h.Snapshot().Token("t1") != nil || h.Snapshot().Credential("h1") != nil || len(h.Snapshot().Tokens()) != 0 {
		t.Fatal("deleted token left")
	}
}

func TestACLBootstrapOnce(t *testing.T) {
	h := newHarness(t)
	idx := h.Must(state.CmdACLBootstrap, state.ACLBootstrap{Token: protocol.Token{ID: "root", Role: protocol.RoleManagement}, SecretHash: "rh", JoinTokenHash: "jh"})
	if m := h.Snapshot().Meta(state.MetaACLBootstrapped); m == nil || m.N != idx {
		t.Fatalf("bootstrap flag: %+v", m)
	}
	if m := h.Snapshot().Meta(state.MetaJoinTokenHash); m == nil || m.Value != "jh" {
		t.Fatalf("join token hash: %+v", m)
	}
	if tok := h.Snapshot().Token("root"); tok == nil || tok.Role != protocol.RoleManagement {
		t.Fatalf("root token: %+v", tok)
	}
	h.fails(state.CmdACLBootstrap, state.ACLBootstrap{Token: protocol.Token{ID: "again", Role: protocol.RoleManagement}, SecretHash: "x"}, protocol.CodeConflict)
	if h.Snapshot().Token("again") != nil {
		t.Fatal("second bootstrap created a token")
	}
}

func TestAuditRecords(t *testing.T) {
	h := newHarness(t)
	rec := func(action string) *protocol.AuditRecord {
		return &protocol.AuditRecord{Time: t0, TokenID: "t1", Role: protocol.RoleManagement, Tenant: "acme", Action: action, Target: "acme", Source: "127.0.0.1"}
	}
	create := state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true}
	if err := h.ApplyAudited(state.CmdTenantUpsert, create, rec("tenant.upsert")); err != nil {
		t.Fatal(err)
	}
	okIdx := h.Index()
	before := h.Bytes()
	if err := h.ApplyAudited(state.CmdTenantUpsert, create, rec("tenant.upsert")); err == nil {
		t.Fatal("duplicate tenant accepted")
	}
	failIdx := h.Index()
	if d := statetest.Diff(before, h.Bytes()); d != "" {
		t.Fatalf("refused command changed the state: %s", d)
	}
	// Refused requests that never reached the FSM's tables are appended too.
	h.Must(state.CmdAudit, state.AuditAppend{Records: []protocol.AuditRecord{
		{Action: "instance.create", Target: "acme/x", Result: "permission_denied", Tenant: "acme"},
		{Action: "token.create", Target: "t9", Result: "invalid_argument"},
	}})
	all := h.Snapshot().Audit(state.AuditFilter{})
	var got []string
	for _, r := range all {
		got = append(got, fmt.Sprintf("%d %s %s", r.Index, r.Action, r.Result))
	}
	want := []string{
		fmt.Sprintf("%d tenant.upsert ok", okIdx),
		fmt.Sprintf("%d tenant.upsert conflict", failIdx),
		fmt.Sprintf("%d instance.create permission_denied", h.Index()),
		fmt.Sprintf("%d token.create invalid_argument", h.Index()),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := all[0]; r.TokenID != "t1" || r.Source != "127.0.0.1" || !r.Time.Equal(t0) || r.ID == "" {
		t.Fatalf("record: %+v", r)
	}
	if r := all[3]; !r.Time.Equal(h.Now()) {
		t.Fatalf("a record without a time gets the command's: %+v", r)
	}
	if got := h.Snapshot().Audit(state.AuditFilter{Tenant: "acme"}); len(got) != 3 {
		t.Fatalf("audit of acme: %d records", len(got))
	}
	if got := h.Snapshot().Audit(state.AuditFilter{Limit: 1}); len(got) != 1 || got[0].Action != "token.create" {
		t.Fatalf("audit limit 1: %+v", got)
	}
	if got := h.Snapshot().Audit(state.AuditFilter{Since: t0.Add(time.Second).UnixNano()}); len(got) != 0 {
		t.Fatalf("audit since later: %d records", len(got))
	}
}

// An audit append carrying its own audit record keeps every record.
func TestAuditAppendWithAuditRecord(t *testing.T) {
	h := newHarness(t)
	if err := h.ApplyAudited(state.CmdAudit, state.AuditAppend{Records: []protocol.AuditRecord{{Action: "a", Result: "ok"}, {Action: "b", Result: "ok"}}},
		&protocol.AuditRecord{Action: "envelope"}); err != nil {
		t.Fatal(err)
	}
	got := h.Snapshot().Audit(state.AuditFilter{})
	if len(got) != 3 {
		t.Fatalf("audit records: %d, want 3", len(got))
	}
	if m := h.Snapshot().Meta("audit_count"); m == nil || m.N != 3 {
		t.Fatalf("audit count: %+v", m)
	}
}

// A command of more than 10000 audit records lists them in order.
func TestAuditOrderWithinOneCommand(t *testing.T) {
	h := newHarness(t)
	recs := make([]protocol.AuditRecord, 10_050)
	for i := range recs {
		recs[i] = protocol.AuditRecord{Action: fmt.Sprint(i), Result: "ok"}
	}
	h.Must(state.CmdAudit, state.AuditAppend{Records: recs})
	got := h.Snapshot().Audit(state.AuditFilter{Limit: 100})
	for i, r := range got {
		if want := fmt.Sprint(len(recs) - 100 + i); r.Action != want {
			t.Fatalf("record %d of the last 100 is %s, want %s", i, r.Action, want)
		}
	}
}

func TestServers(t *testing.T) {
	h := newHarness(t)
	h.Must(state.CmdServerUpsert, state.ServerUpsert{Member: protocol.Member{ID: "s1", HTTPAddr: "10.0.0.1:4700", RaftAddr: "10.0.0.1:4701", Voter: true, State: "leader"}})
	h.Must(state.CmdServerUpsert, state.ServerUpsert{Member: protocol.Member{ID: "s2", HTTPAddr: "10.0.0.2:4700"}})
	if m := h.Snapshot().Server("s1"); m == nil || m.HTTPAddr != "10.0.0.1:4700" || m.State != "" {
		t.Fatalf("server: %+v", m)
	}
	h.Must(state.CmdServerRemove, state.NameBody{Name: "s1"})
	h.Must(state.CmdServerRemove, state.NameBody{Name: "s1"}) // gone already: no error
	if got := h.Snapshot().Servers(); len(got) != 1 || got[0].ID != "s2" {
		t.Fatalf("servers: %+v", got)
	}
}

func TestEventRetention(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	h.instance("acme", "other", 1)
	for i := 0; i < state.MaxEventsPerInstance+20; i++ {
		h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "crm", Replicas: i})
	}
	evs := h.Snapshot().Events("acme/crm")
	if len(evs) != state.MaxEventsPerInstance {
		t.Fatalf("events kept: %d", len(evs))
	}
	if last := evs[len(evs)-1]; last.Message != fmt.Sprintf("replicas %d -> %d", state.MaxEventsPerInstance+18, state.MaxEventsPerInstance+19) {
		t.Fatalf("newest event: %+v", last)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].ID <= evs[i-1].ID {
			t.Fatal("events out of order")
		}
	}
	if got := h.eventTypes("acme/other"); !reflect.DeepEqual(got, []string{"created"}) {
		t.Fatalf("another instance's events: %v", got)
	}
}

func TestUnknownAndUndecodableCommands(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	before := h.Bytes()
	for _, b := range []string{`not json`, `{"type":""}`, `{"type":"tenant.upsert","body":"x"}`, `{"type":"tenant.upsert","body":{"tenant":{"name":1}}}`} {
		err := h.Raw([]byte(b))
		if e := protocol.AsError(err); err == nil || e.Code != protocol.CodeInvalidArgument {
			t.Fatalf("%s: %v", b, err)
		}
	}
	if d := statetest.Diff(before, h.Bytes()); d != "" {
		t.Fatalf("bad commands changed the state: %s", d)
	}
	// Every entry moves the index, so a write's index is always readable.
	if got := h.Snapshot().Index(); got != h.Index()-1 && got != h.Index() {
		t.Fatalf("state index %d after entry %d", got, h.Index())
	}
	// Entries that are not commands change nothing.
	if resp := h.Entry(&raft.Log{Type: raft.LogNoop}); resp != nil {
		t.Fatalf("noop: %v", resp)
	}
}

// A server that meets a command type it does not know (written by a newer
// Drover) stops with an error that says so, rather than skip the entry and
// go on with a state that differs from the other servers'.
func TestUnknownCommandStopsTheServer(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	defer func() {
		e, ok := recover().(*state.UnknownCommandError)
		if !ok || e.Type != "launch.missiles" || !strings.Contains(e.Error(), "does not know") || !strings.Contains(e.Error(), "Upgrade this server") {
			t.Fatalf("the FSM stopped with %v, want an UnknownCommandError naming the type and what to do", e)
		}
	}()
	_ = h.Raw([]byte(`{"type":"launch.missiles","body":{}}`))
	t.Fatal("an entry of an unknown type was applied")
}

// The cluster's log version starts at 1 (a cluster older than log
// versions) and only rises; what came with version 2, such as the event
// stream, happens only from the entry that raised it on.
func TestLogVersion(t *testing.T) {
	h := newBareHarness(t)
	if v := h.Snapshot().LogVersion(); v != 1 {
		t.Fatalf("an empty state is at log version %d, want 1", v)
	}
	h.tenant("acme")
	if evs := h.Snapshot().FeedAfter(protocol.EventID{}, 10); len(evs) != 0 {
		t.Fatalf("events at log version 1: %+v", evs)
	}
	h.Must(state.CmdLogVersion, state.LogVersionSet{Version: 2})
	h.instance("acme", "web", 1)
	if evs := h.Snapshot().FeedAfter(protocol.EventID{}, 10); len(evs) == 0 {
		t.Fatal("no events after log version 2")
	}
	h.Must(state.CmdLogVersion, state.LogVersionSet{Version: 1})
	if v := h.Snapshot().LogVersion(); v != 2 {
		t.Fatalf("log version lowered to %d", v)
	}
	h.fails(state.CmdLogVersion, state.LogVersionSet{Version: state.LogVersion + 1}, protocol.CodeInvalidArgument)
}

// Since log version 3 each version records when it was made and the
// instance's product reference (what a rollback restores); versions made
// before lack both and are stored as they were.
func TestVersionsRecordTimeAndProduct(t *testing.T) {
	h := newBareHarness(t)
	h.Must(state.CmdLogVersion, state.LogVersionSet{Version: 2})
	h.tenant("acme")
	h.instance("acme", "web", 1)
	h.instance("acme", "web2", 1)
	v1 := h.Snapshot().Version("acme/web", 1)
	if !v1.CreatedAt.IsZero() || v1.ProductRef != nil {
		t.Fatalf("version made at log version 2: %+v", v1)
	}
	h.Must(state.CmdLogVersion, state.LogVersionSet{Version: 3})
	h.SetNow(t0.Add(time.Hour))
	h.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: "crm"}})
	h.Must(state.CmdReleasePublish, state.ReleasePublish{Release: protocol.Release{Product: "crm", Version: "1.0.0", Command: []string{"/bin/crm"}}})
	ref := protocol.ProductRef{Product: "crm", Release: "1.0.0", Parameters: map[string]string{"SEATS": "5"}}
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "web", Spec: testSpec("2"), ProductRef: ref})
	vs := h.Snapshot().Versions("acme/web")
	if len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Fatalf("versions of acme/web (not acme/web2's): %+v", vs)
	}
	if v := vs[1]; !v.CreatedAt.Equal(h.Now()) || v.ProductRef == nil || !reflect.DeepEqual(*v.ProductRef, ref) {
		t.Fatalf("version 2: %+v", v)
	}
}

func TestOnApply(t *testing.T) {
	h := newHarness(t)
	var got []string
	h.FSM.OnApply(func(typ state.CommandType, index uint64) { got = append(got, fmt.Sprintf("%s@%d", typ, index)) })
	h.tenant("acme")
	h.Apply(state.CmdTenantDelete, state.NameBody{Name: "nope"})
	if want := []string{"tenant.upsert@2", "tenant.delete@3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("OnApply calls: %v", got)
	}
}

// A plan made before its node went down does not place on it: the replica
// waits without a node and the evaluation stays, so it is placed again.
func TestPlanApplyToNodeThatWentDown(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 1)
	h.node("n1")
	evalIdx := h.Snapshot().Eval("acme/crm").Index
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false}}})
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: evalIdx,
		Place: []*protocol.Replica{{ID: "r1", Tenant: "acme", Instance: "crm", Node: "n1", Version: 1}}})
	s := h.Snapshot()
	if r := s.Replica("r1"); r == nil || r.Node != "" || r.State != protocol.ReplicaPending || !strings.Contains(r.Message, "became unavailable") {
		t.Fatalf("replica placed on a down node: %+v", r)
	}
	if e := s.Eval("acme/crm"); e == nil {
		t.Fatal("the evaluation was dropped; nothing would place the replica again")
	}
}

// A write the store refuses part-way through a command aborts the whole
// entry: the rows the command wrote before it are not kept either, and the
// answer is an error, not a panic.
func TestRefusedWriteAbortsTheWholeEntry(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	before := h.Bytes()
	// A node without an id: its credential is written first, then the
	// node row is refused.
	e := h.fails(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h2", Node: protocol.Node{Name: "nameless"}}, protocol.CodeInternal)
	if strings.Contains(e.Message, "panic") {
		t.Fatalf("a refused write answered as a panic: %v", e)
	}
	if d := statetest.Diff(before, h.Bytes()); d != "" {
		t.Fatalf("the aborted entry changed the state: %s", d)
	}
}

// Since log version 4 a replica that starts or turns healthy makes an
// evaluation only while the scheduler waits for its instance's replicas;
// one that ends always makes one, and before version 4 every change did.
func TestReportsEvaluateOnlyWhatIsAwaited(t *testing.T) {
	atLogVersions(t, func(t *testing.T, h *harness, v int) {
		h.node("n1")
		h.instance("acme", "web", 2)
		h.place("acme/web", "n1", 1, "r1", "r2")
		evaluated := func(why string, want bool, reports ...protocol.ReplicaReport) {
			t.Helper()
			h.report("n1", reports...)
			e := h.Snapshot().Eval("acme/web")
			if got := e != nil; got != want {
				t.Fatalf("%s: evaluation %v, want one: %v", why, e, want)
			}
			if e != nil { // the scheduler's empty plan
				h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/web", EvalIndex: e.Index})
			}
		}
		healthy := func(id string) protocol.ReplicaReport {
			return protocol.ReplicaReport{ID: id, State: protocol.ReplicaHealthy, Health: protocol.HealthPassing}
		}
		// Version 1 is not yet stable: its deployment waits for health.
		evaluated("first version rolling out", true, healthy("r1"), healthy("r2"))
		h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/web", EvalIndex: h.Index(), StableVersion: 1})
		settled := v < 4 // before version 4, every change is evaluated
		evaluated("settled instance, a replica's check fails", settled,
			protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaRunning, Health: protocol.HealthFailing})
		evaluated("settled instance, a replica healthy again", settled, healthy("r1"))
		// A drain's replacement, placed beside the replica it replaces.
		h.place("acme/web", "n1", 1, "r3")
		evaluated("replacement healthy", true, healthy("r3"))
		h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/web", EvalIndex: h.Index(), Stop: []state.ReplicaStop{{ID: "r1", Message: "drained"}}})
		evaluated("replaced replica stopped", true, protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaStopped})
		evaluated("replica failed", true, protocol.ReplicaReport{ID: "r2", State: protocol.ReplicaFailed, Message: "exit 1"})
	})
}

// Since log version 4 an instance created with no replicas waits for its
// first evaluation until it is scaled: there is nothing to schedule.
func TestCreateOfNoReplicasEvaluatesAtScale(t *testing.T) {
	atLogVersions(t, func(t *testing.T, h *harness, v int) {
		h.instance("acme", "idle", 0)
		h.instance("acme", "web", 1)
		if e := h.Snapshot().Eval("acme/idle"); (e != nil) != (v < 4) {
			t.Fatalf("evaluation of an instance created with no replicas: %+v", e)
		}
		if h.Snapshot().Eval("acme/web") == nil {
			t.Fatal("an instance created with a replica has no evaluation")
		}
		h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "idle", Replicas: 2})
		if e := h.Snapshot().Eval("acme/idle"); e == nil || e.TriggeredBy != "instance-scale" {
			t.Fatalf("evaluation after the scale: %+v", e)
		}
	})
}
