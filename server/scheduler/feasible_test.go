package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

func testNode(id string, opts ...func(*protocol.Node)) *protocol.Node {
	n := &protocol.Node{ID: id, Name: id, Status: protocol.NodeReady, Eligible: true, Region: "eu",
		Labels:    map[string]string{"tier": "gold"},
		Resources: protocol.NodeResources{CPUMillis: 2000, MemoryMB: 2048},
		PortRange: protocol.PortRange{Lo: 100, Hi: 103}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func TestFeasibility(t *testing.T) {
	base := &demand{res: protocol.Resources{CPUMillis: 500, MemoryMB: 512}, ports: 1}
	withCons := func(cs ...protocol.Constraints) *demand {
		d := *base
		d.cons = cs
		return &d
	}
	cases := []struct {
		name   string
		node   *protocol.Node
		used   nodeState // reserved cpu, mem, ports
		demand *demand
		want   string
	}{
		{name: "ready node with room", node: testNode("n"), demand: base},
		{name: "down", node: testNode("n", func(n *protocol.Node) { n.Status = protocol.NodeDown }), demand: base, want: reasonDown},
		{name: "draining", node: testNode("n", func(n *protocol.Node) { n.Status = protocol.NodeDraining }), demand: base, want: reasonDraining},
		{name: "drain set", node: testNode("n", func(n *protocol.Node) { n.Drain = &protocol.DrainSpec{} }), demand: base, want: reasonDraining},
		{name: "ineligible", node: testNode("n", func(n *protocol.Node) { n.Eligible = false }), demand: base, want: reasonIneligible},
		{name: "revoked", node: testNode("n", func(n *protocol.Node) { n.Revoked = true }), demand: base, want: reasonIneligible},
		{name: "region matches", node: testNode("n"), demand: withCons(protocol.Constraints{Region: "eu"})},
		{name: "other region", node: testNode("n"), demand: withCons(protocol.Constraints{Region: "us"}), want: reasonRegion},
		{name: "environment's region", node: testNode("n"), demand: withCons(protocol.Constraints{}, protocol.Constraints{Region: "us"}), want: reasonRegion},
		{name: "labels match", node: testNode("n"), demand: withCons(protocol.Constraints{Labels: map[string]string{"tier": "gold"}})},
		{name: "label missing", node: testNode("n"), demand: withCons(protocol.Constraints{Labels: map[string]string{"ssd": "yes"}}), want: reasonLabels},
		{name: "label differs", node: testNode("n"), demand: withCons(protocol.Constraints{Labels: map[string]string{"tier": "silver"}}), want: reasonLabels},
		{name: "environment's label", node: testNode("n"), demand: withCons(protocol.Constraints{}, protocol.Constraints{Labels: map[string]string{"tier": "silver"}}), want: reasonLabels},
		{name: "cpu exactly fits", node: testNode("n"), used: nodeState{cpu: 1500}, demand: base},
		{name: "cpu short", node: testNode("n"), used: nodeState{cpu: 1501}, demand: base, want: reasonCPU},
		{name: "memory exactly fits", node: testNode("n"), used: nodeState{mem: 1536}, demand: base},
		{name: "memory short", node: testNode("n"), used: nodeState{mem: 1537}, demand: base, want: reasonMemory},
		{name: "unknown memory takes none", node: testNode("n", func(n *protocol.Node) { n.Resources.MemoryMB = 0 }), demand: base, want: reasonMemory},
		{name: "unknown memory takes zero", node: testNode("n", func(n *protocol.Node) { n.Resources.MemoryMB = 0 }),
			demand: &demand{res: protocol.Resources{CPUMillis: 100}}},
		{name: "last port", node: testNode("n"), used: nodeState{ports: 3}, demand: base},
		{name: "ports used up", node: testNode("n"), used: nodeState{ports: 4}, demand: base, want: reasonPorts},
		{name: "no port range", node: testNode("n", func(n *protocol.Node) { n.PortRange = protocol.PortRange{} }), demand: base, want: reasonPorts},
		{name: "no port range, no ports needed", node: testNode("n", func(n *protocol.Node) { n.PortRange = protocol.PortRange{} }),
			demand: &demand{res: base.res}},
		{name: "down before too small", node: testNode("n", func(n *protocol.Node) { n.Status = protocol.NodeDown }), used: nodeState{mem: 2048}, demand: base, want: reasonDown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.used
			n.node = tc.node
			if got := check(&n, tc.demand); got != tc.want {
				t.Fatalf("check = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRanking(t *testing.T) {
	d := &demand{res: protocol.Resources{CPUMillis: 500, MemoryMB: 512}}
	ns := func(id string, mine int, mem int64, opts ...func(*nodeState)) *nodeState {
		n := &nodeState{node: testNode(id), mine: mine, mem: mem}
		for _, o := range opts {
			o(n)
		}
		return n
	}
	inZone := func(z string) func(*nodeState) {
		return func(n *nodeState) { n.node.Labels = map[string]string{ZoneLabel: z} }
	}
	failedHere := func(n *nodeState) { n.failed = true }
	down := func(n *nodeState) { n.node.Status = protocol.NodeDown }
	cases := []struct {
		name  string
		nodes []*nodeState
		want  string
	}{
		{name: "spread before packing", nodes: []*nodeState{ns("full", 1, 1024), ns("empty", 0, 0)}, want: "empty"},
		{name: "pack when spread ties", nodes: []*nodeState{ns("a", 0, 0), ns("b", 0, 1024), ns("c", 0, 512)}, want: "b"},
		{name: "zone spread", nodes: []*nodeState{
			ns("a1", 1, 0, inZone("a")), ns("a2", 0, 1024, inZone("a")), ns("b1", 0, 0, inZone("b"))}, want: "b1"},
		{name: "nodes before zones", nodes: []*nodeState{
			ns("a1", 0, 0, inZone("a")), ns("a2", 0, 0, inZone("a")), ns("b1", 1, 0, inZone("b"))}, want: "a1"},
		{name: "avoid node where it failed", nodes: []*nodeState{ns("a", 0, 1024, failedHere), ns("b", 0, 0)}, want: "b"},
		{name: "failed node still beats doubling up", nodes: []*nodeState{ns("a", 0, 0, failedHere), ns("b", 1, 0)}, want: "a"},
		{name: "only feasible nodes", nodes: []*nodeState{ns("a", 0, 0, down), ns("b", 2, 0)}, want: "b"},
		{name: "ties by id", nodes: []*nodeState{ns("b", 0, 0), ns("a", 0, 0)}, want: "a"},
		{name: "too full", nodes: []*nodeState{ns("a", 0, 2000), ns("b", 3, 1536)}, want: "b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why, ok := pick(tc.nodes, d)
			if !ok {
				t.Fatalf("no node picked: %s", why)
			}
			if got.node.ID != tc.want {
				t.Fatalf("picked %s, want %s (%s)", got.node.ID, tc.want, why)
			}
			if !strings.Contains(why, "placed on node "+tc.want) {
				t.Fatalf("explanation %q does not name the node", why)
			}
		})
	}
}

func TestExplanations(t *testing.T) {
	d := &demand{res: protocol.Resources{CPUMillis: 500, MemoryMB: 2048}, cons: []protocol.Constraints{{Region: "eu"}}}
	nodes := []*nodeState{
		{node: testNode("a", func(n *protocol.Node) { n.Status = protocol.NodeDown })},
		{node: testNode("b"), mem: 1},
		{node: testNode("c"), mem: 1024},
		{node: testNode("d", func(n *protocol.Node) { n.Region = "us" })},
	}
	_, why, ok := pick(nodes, d)
	if ok {
		t.Fatal("a node was picked")
	}
	want := "no node can run it: 4 nodes: 1 down, 1 outside region eu, 2 with less than 2048 MB free"
	if why != want {
		t.Fatalf("why = %q\nwant %q", why, want)
	}
	if _, why, _ := pick(nil, d); why != "no node can run it: no nodes registered" {
		t.Fatalf("why = %q", why)
	}

	d.res.MemoryMB = 512
	nodes[3].node.Region = "eu"
	nodes[3].node.Labels = map[string]string{ZoneLabel: "z1"}
	nodes[3].mine = 0
	_, why, ok = pick(nodes[1:], d)
	if !ok {
		t.Fatal(why)
	}
	if want := "placed on node c (3 of 3 nodes feasible; 0 replicas of the instance there; 512 MB and 1500 mCPU free after)"; why != want {
		t.Fatalf("why = %q\nwant %q", why, want)
	}
}

func TestRescheduleDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 4: 40 * time.Second, 7: 5 * time.Minute, 50: 5 * time.Minute} {
		if got := rescheduleDelay(n); got != want {
			t.Errorf("rescheduleDelay(%d) = %s, want %s", n, got, want)
		}
	}
}
