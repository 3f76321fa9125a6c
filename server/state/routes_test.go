package state_test

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Fixtures of the routing table's tests.

// addressedNode registers a node the gateways reach at addr ("" for a node
// that has no address).
func (h *harness) addressedNode(id, addr string) {
	h.t.Helper()
	h.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "hash-" + id, Node: protocol.Node{
		ID: id, Name: "host-" + id, Region: "eu-west", Address: addr,
		Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 8192, FreeCPUMillis: 4000, FreeMemoryMB: 8192},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 21000}}})
}

// webSpec is a spec serving on two ports; route names the one the
// gateways use ("" for none: the first).
func webSpec(version, route string) protocol.Spec {
	s := protocol.Spec{Version: version, Command: []string{"/bin/web", version}, Ports: []string{"http", "admin"}}
	if route != "" {
		s.Route = &protocol.RouteSpec{Port: route}
	}
	return s.WithDefaults()
}

func (h *harness) webInstance(tenant, name string, replicas int, spec protocol.Spec, domains ...string) {
	h.t.Helper()
	h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: tenant, Name: name, Environment: "default", Replicas: replicas, Spec: spec, Domains: domains}})
}

// healthy reports replicas running healthy on node with ports.
func (h *harness) healthy(node string, ports map[string]int, ids ...string) uint64 {
	h.t.Helper()
	var reps []protocol.ReplicaReport
	for _, id := range ids {
		reps = append(reps, protocol.ReplicaReport{ID: id, State: protocol.ReplicaHealthy, Health: protocol.HealthPassing, Ports: ports})
	}
	return h.report(node, reps...)
}

// route returns an instance's entry of the routing table; it fails the
// test when the instance is not listed.
func (h *harness) route(instanceID string) protocol.Route {
	h.t.Helper()
	for _, rt := range h.Snapshot().Routes() {
		if protocol.InstanceID(rt.Tenant, rt.Name) == instanceID {
			return rt
		}
	}
	h.t.Fatalf("%s is not in the routing table %+v", instanceID, h.Snapshot().Routes())
	return protocol.Route{}
}

func backends(rt protocol.Route) []string {
	var out []string
	for _, b := range rt.Backends {
		out = append(out, b.Replica+"@"+b.Addr)
	}
	return out
}

func wantBackends(t *testing.T, what string, rt protocol.Route, want ...string) {
	t.Helper()
	if got := backends(rt); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: backends %v, want %v", what, got, want)
	}
}

// A backend is a replica the scheduler wants running, that its agent
// reports healthy, on a node that is up and has an address, at that
// address and the route's port. Every other replica is left out, and an
// instance without one is still listed with no backends.
func TestRoutesBackends(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.addressedNode("n1", "10.0.0.1")
	h.addressedNode("n2", "10.0.0.2")
	h.addressedNode("n3", "") // no address: the gateways cannot reach it
	h.webInstance("acme", "crm", 6, webSpec("1", ""))
	h.webInstance("acme", "idle", 1, webSpec("1", ""))

	if rt := h.route("acme/idle"); rt.Backends == nil || len(rt.Backends) != 0 {
		t.Fatalf("an instance without replicas: %+v, want listed with an empty (not null) backends list", rt)
	}

	h.place("acme/crm", "n1", 1, "r1", "r2")
	h.place("acme/crm", "n2", 1, "r3", "r4")
	h.place("acme/crm", "n3", 1, "r5")
	wantBackends(t, "placed, nothing reported", h.route("acme/crm"))

	h.report("n1", protocol.ReplicaReport{ID: "r2", State: protocol.ReplicaRunning, Health: protocol.HealthUnknown, Ports: map[string]int{"http": 20010, "admin": 20011}})
	h.healthy("n1", map[string]int{"http": 20001, "admin": 20002}, "r1")
	h.healthy("n2", map[string]int{"http": 20003, "admin": 20004}, "r3")
	h.healthy("n2", map[string]int{"http": 20005, "admin": 20006}, "r4")
	h.healthy("n3", map[string]int{"http": 20007, "admin": 20008}, "r5")
	wantBackends(t, "reported", h.route("acme/crm"), "r1@10.0.0.1:20001", "r3@10.0.0.2:20003", "r4@10.0.0.2:20005")
	if got := h.route("acme/idle"); len(got.Backends) != 0 {
		t.Fatalf("another instance's replicas routed to idle: %+v", got)
	}

	// Unhealthy: out; healthy again: in.
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaUnhealthy, Health: protocol.HealthFailing, Ports: map[string]int{"http": 20001, "admin": 20002}})
	wantBackends(t, "r1 unhealthy", h.route("acme/crm"), "r3@10.0.0.2:20003", "r4@10.0.0.2:20005")
	h.healthy("n1", map[string]int{"http": 20001, "admin": 20002}, "r1")

	// A replica the scheduler stops leaves the table in that entry, while
	// its agent still reports it healthy (it drains).
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: h.Index(), Stop: []state.ReplicaStop{{ID: "r4", Message: "scale down"}}})
	if r := h.Snapshot().Replica("r4"); r.State != protocol.ReplicaHealthy || r.Desired != protocol.DesiredStop {
		t.Fatalf("r4 after the stop: %+v", r)
	}
	wantBackends(t, "r4 stopped", h.route("acme/crm"), "r1@10.0.0.1:20001", "r3@10.0.0.2:20003")

	// A node marked down: its replicas are out, even when a late report
	// calls one healthy again.
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n2", Up: false}}})
	wantBackends(t, "n2 down", h.route("acme/crm"), "r1@10.0.0.1:20001")
	h.healthy("n2", map[string]int{"http": 20003, "admin": 20004}, "r3")
	if r := h.Snapshot().Replica("r3"); r.State != protocol.ReplicaHealthy {
		t.Fatalf("r3 after the late report: %+v", r)
	}
	wantBackends(t, "late report from n2 while down", h.route("acme/crm"), "r1@10.0.0.1:20001")
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n2", Up: true}}})
	wantBackends(t, "n2 up again", h.route("acme/crm"), "r1@10.0.0.1:20001", "r3@10.0.0.2:20003")

	// A draining node still serves what it runs.
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1", Drain: &protocol.DrainSpec{StartedAt: t0, Deadline: t0.Add(time.Hour)}})
	wantBackends(t, "n1 draining", h.route("acme/crm"), "r1@10.0.0.1:20001", "r3@10.0.0.2:20003")

	// A node that says hello from a new address moves its backends.
	h.addressedNode("n1", "10.0.9.1")
	wantBackends(t, "n1 moved", h.route("acme/crm"), "r1@10.0.9.1:20001", "r3@10.0.0.2:20003")

	// A deleted instance leaves the table.
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "crm"})
	for _, rt := range h.Snapshot().Routes() {
		if rt.Name == "crm" {
			t.Fatalf("deleted instance still routed: %+v", rt)
		}
	}
}

// The port a backend serves on is the one its own version's spec routes
// to (spec.route.port, else the first port): during an update, old and new
// replicas may serve on different ports.
func TestRoutesPortOfEachVersion(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.addressedNode("n1", "10.0.0.1")
	h.webInstance("acme", "crm", 2, webSpec("1", "admin"))
	h.place("acme/crm", "n1", 1, "r1")
	h.healthy("n1", map[string]int{"http": 20001, "admin": 20002}, "r1")
	wantBackends(t, "route.port admin", h.route("acme/crm"), "r1@10.0.0.1:20002")

	// Version 2 routes to its first port.
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: webSpec("2", ""), Environment: "default"})
	if in := h.Snapshot().Instance("acme/crm"); in.Version != 2 {
		t.Fatalf("version %d after the update", in.Version)
	}
	wantBackends(t, "version 1's replica after the update", h.route("acme/crm"), "r1@10.0.0.1:20002")
	h.place("acme/crm", "n1", 2, "r2")
	h.healthy("n1", map[string]int{"http": 20011, "admin": 20012}, "r2")
	wantBackends(t, "both versions", h.route("acme/crm"), "r1@10.0.0.1:20002", "r2@10.0.0.1:20011")

	// A replica whose agent reports no port of that name is not routed.
	h.healthy("n1", map[string]int{"admin": 20012}, "r2")
	wantBackends(t, "r2 without its route's port", h.route("acme/crm"), "r1@10.0.0.1:20002")

	// An instance without ports has nothing to route to.
	h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: "acme", Name: "worker", Environment: "default", Replicas: 1, Spec: testSpec("1")}})
	h.place("acme/worker", "n1", 1, "w1")
	h.healthy("n1", nil, "w1")
	wantBackends(t, "an instance without ports", h.route("acme/worker"))
}

// A custom domain routes to one instance in the whole cluster: taking one
// that another instance (of any tenant) has is a conflict naming the
// domain's field, on create and on update, and changes nothing. An update
// without domains keeps them; an empty list frees them.
func TestDomainsAreUnique(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.tenant("globex")
	h.webInstance("acme", "crm", 1, webSpec("1", ""), "crm.example.com", "www.crm.example.com")
	if rt := h.route("acme/crm"); !reflect.DeepEqual(rt.Domains, []string{"crm.example.com", "www.crm.example.com"}) {
		t.Fatalf("route of acme/crm: %+v", rt)
	}

	create := func(tenant, name string, domains ...string) state.InstanceCreate {
		return state.InstanceCreate{Instance: protocol.Instance{Tenant: tenant, Name: name, Environment: "default",
			Replicas: 1, Spec: webSpec("1", ""), Domains: domains}}
	}
	wantConflict := func(e *protocol.Error, field string) {
		t.Helper()
		if e.Field != field || !strings.Contains(e.Message, "already routed to another instance") {
			t.Fatalf("conflict %+v, want one on %s", e, field)
		}
		if strings.Contains(e.Message, "acme") {
			t.Fatalf("the conflict names the other instance, which may be another tenant's: %s", e.Message)
		}
	}
	wantConflict(h.fails(state.CmdInstanceCreate, create("globex", "shop", "shop.example.com", "www.crm.example.com"), protocol.CodeConflict), "domains[1]")
	wantConflict(h.fails(state.CmdInstanceCreate, create("acme", "crm2", "crm.example.com"), protocol.CodeConflict), "domains[0]")
	if h.Snapshot().Instance("globex/shop") != nil {
		t.Fatal("a refused create made the instance")
	}

	h.Must(state.CmdInstanceCreate, create("globex", "shop", "shop.example.com"))
	update := func(domains *[]string) state.InstanceUpdate {
		return state.InstanceUpdate{Tenant: "globex", Name: "shop", Spec: webSpec("2", ""), Environment: "default", Domains: domains}
	}
	wantConflict(h.fails(state.CmdInstanceUpdate, update(&[]string{"shop.example.com", "crm.example.com"}), protocol.CodeConflict), "domains[1]")
	if in := h.Snapshot().Instance("globex/shop"); in.Version != 1 || !reflect.DeepEqual(in.Domains, []string{"shop.example.com"}) {
		t.Fatalf("refused update changed the instance: version %d domains %v", in.Version, in.Domains)
	}

	// An instance keeps its own domains through updates: nil keeps them,
	// a list that names them again is no conflict with itself.
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: webSpec("2", ""), Environment: "default"})
	if in := h.Snapshot().Instance("acme/crm"); !reflect.DeepEqual(in.Domains, []string{"crm.example.com", "www.crm.example.com"}) {
		t.Fatalf("an update without domains changed them: %v", in.Domains)
	}
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: webSpec("3", ""), Environment: "default",
		Domains: &[]string{"www.crm.example.com", "crm.example.com"}})
	// Dropping one frees it for another instance at once.
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: webSpec("4", ""), Environment: "default",
		Domains: &[]string{"crm.example.com"}})
	h.Must(state.CmdInstanceUpdate, update(&[]string{"shop.example.com", "www.crm.example.com"}))
	if rt := h.route("globex/shop"); !reflect.DeepEqual(rt.Domains, []string{"shop.example.com", "www.crm.example.com"}) {
		t.Fatalf("route of globex/shop: %+v", rt)
	}
	// An empty list clears them.
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: webSpec("5", ""), Environment: "default",
		Domains: &[]string{}})
	if in := h.Snapshot().Instance("acme/crm"); len(in.Domains) != 0 {
		t.Fatalf("an empty list kept domains %v", in.Domains)
	}
	h.Must(state.CmdInstanceCreate, create("acme", "crm2", "crm.example.com"))

	// A deleted instance's domains are free.
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "globex", Name: "shop"})
	h.Must(state.CmdInstanceCreate, create("acme", "crm3", "www.crm.example.com"))
}

// The unique index of domains survives a snapshot and its restore: a
// follower restored from a snapshot refuses the same duplicates.
func TestDomainsUniqueAfterRestore(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.webInstance("acme", "crm", 1, webSpec("1", ""), "crm.example.com")
	snap := h.Bytes()

	r := newHarness(t)
	if err := r.FSM.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r.SetIndex(h.Index())
	e := r.fails(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "other",
		Environment: "default", Replicas: 1, Spec: webSpec("1", ""), Domains: []string{"crm.example.com"}}}, protocol.CodeConflict)
	if e.Field != "domains[0]" {
		t.Fatalf("conflict on %q, want domains[0]", e.Field)
	}
	if rt := r.route("acme/crm"); !reflect.DeepEqual(rt.Domains, []string{"crm.example.com"}) {
		t.Fatalf("restored route: %+v", rt)
	}
}
