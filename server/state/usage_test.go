package state_test

import (
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// checkUsage asserts that each node's usage row is the sum of what the
// replicas holding a place on it reserve.
func checkUsage(t *testing.T, h *harness, nodes ...string) {
	t.Helper()
	s := h.Snapshot()
	for _, n := range nodes {
		var want protocol.Reservation
		count := 0
		for _, r := range s.NodeReplicas(n) {
			if r.Holds() {
				want.CPUMillis += r.Reserved.CPUMillis
				want.MemoryMB += r.Reserved.MemoryMB
				want.Ports += r.Reserved.Ports
				count++
			}
		}
		if got := s.NodeUsage(n); got != want {
			t.Fatalf("usage of %s = %+v, want %+v", n, got, want)
		}
		if got := s.NodeReplicaCount(n); got != count {
			t.Fatalf("%s holds %d replicas, the usage table says %d", n, count, got)
		}
	}
	// The rows read in one pass are those read one by one, in the order
	// of the nodes' ids (the scheduler reads them beside Nodes).
	prev := ""
	for _, u := range s.NodeUsages() {
		if u.Node <= prev {
			t.Fatalf("usage rows out of the nodes' order: %s after %s", u.Node, prev)
		}
		prev = u.Node
		if got := s.NodeUsageRow(u.Node); got != *u {
			t.Fatalf("usage row of %s read in one pass %+v, alone %+v", u.Node, *u, got)
		}
	}
}

// The usage table follows every way a replica takes or leaves its place.
func TestNodeUsageFollowsReplicas(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	for _, name := range []string{"crm", "web"} {
		sp := testSpec("1")
		sp.Resources = protocol.Resources{CPUMillis: 250, MemoryMB: 128}
		sp.Ports = []string{"http"}
		h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
			Tenant: "acme", Name: name, Environment: "default", Replicas: 2, Spec: sp}})
	}
	h.node("n1")
	h.node("n2")
	h.place("acme/crm", "n1", 1, "r1", "r2")
	h.place("acme/crm", "n2", 1, "r3")
	h.place("acme/web", "n1", 1, "w1")
	if got := h.Snapshot().Replica("r1").Reserved; got == (protocol.Reservation{}) {
		t.Fatalf("a placed replica reserves nothing: %+v", got)
	}
	if h.Snapshot().NodeUsage("n1") == (protocol.Reservation{}) {
		t.Fatal("no usage on n1")
	}
	checkUsage(t, h, "n1", "n2")
	// The table is part of snapshots: a restored state holds the same rows.
	checkUsageAfterRestore(t, h)

	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy}, protocol.ReplicaReport{ID: "r2", State: protocol.ReplicaFailed})
	checkUsage(t, h, "n1", "n2")
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Stop: []state.ReplicaStop{{ID: "r3", Message: "scaled down"}}})
	checkUsage(t, h, "n1", "n2")
	if u := h.Snapshot().NodeUsage("n2"); u != (protocol.Reservation{}) {
		t.Fatalf("n2 still holds %+v after its only replica stopped", u)
	}
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false}}})
	checkUsage(t, h, "n1", "n2")
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "web"})
	checkUsage(t, h, "n1", "n2")
}

func checkUsageAfterRestore(t *testing.T, h *harness) {
	t.Helper()
	before := h.Snapshot().NodeUsage("n1")
	if got := restored(t, h.Bytes()).Snapshot().NodeUsage("n1"); got != before {
		t.Fatalf("restored usage %+v, want %+v", got, before)
	}
}
