package scheduler

import (
	"cmp"
	"fmt"
	"strings"
)

// ranked is a feasible node with the facts it is ranked by.
type ranked struct {
	n *nodeState
	// zoneMine counts the instance's replicas in the node's zone; a node
	// without a zone label is a zone of its own.
	zoneMine int
	// fill is how full the node would be with the replica, 0 to 1: the mean
	// of its CPU and memory shares.
	fill float64
}

// compareRanked orders nodes best first: the fewest replicas of the
// instance on the node (spread across nodes), then a node where none of
// them failed recently, then the fewest in its zone (spread across zones),
// then the fullest node (bin-packing, so that large replicas still find
// room elsewhere), then the node with the fewest replicas (spreading those
// that reserve nothing, which bin-packing cannot tell apart), then the
// node id, so that plans are deterministic.
func compareRanked(a, b ranked) int {
	if c := cmp.Compare(a.n.mine, b.n.mine); c != 0 {
		return c
	}
	if a.n.failed != b.n.failed {
		if a.n.failed {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.zoneMine, b.zoneMine); c != 0 {
		return c
	}
	if c := cmp.Compare(b.fill, a.fill); c != 0 {
		return c
	}
	if c := cmp.Compare(a.n.count, b.n.count); c != 0 {
		return c
	}
	if a.n.rank != b.n.rank { // the table's id order
		return cmp.Compare(a.n.rank, b.n.rank)
	}
	return cmp.Compare(a.n.node.ID, b.n.node.ID)
}

func fill(n *nodeState, d *demand) float64 {
	var sum float64
	var dims int
	if t := n.node.Resources.CPUMillis; t > 0 {
		sum += float64(n.cpu+d.res.CPUMillis) / float64(t)
		dims++
	}
	if t := n.node.Resources.MemoryMB; t > 0 {
		sum += float64(n.mem+d.res.MemoryMB) / float64(t)
		dims++
	}
	if dims == 0 {
		return 0
	}
	return sum / float64(dims)
}

// pick chooses the node for one replica of demand d. ok is false when no
// node fits; why then says why, for the replica's message. It looks at
// every node, so each look is kept to comparisons of numbers: zones are
// counted by their number, not in a map by name, and why nodes do not fit
// is counted only when none does.
func pick(nodes []*nodeState, d *demand) (best *nodeState, why string, ok bool) {
	if len(nodes) > 0 && nodes[0].zoneIdx == 0 {
		numberZones(nodes) // nodes of no table (tests)
	}
	var zones []int // the instance's replicas by zone number
	for _, n := range nodes {
		if n.zoneIdx > 0 {
			for len(zones) <= n.zoneIdx {
				zones = append(zones, 0)
			}
			zones[n.zoneIdx] += n.mine
		}
	}
	var choice ranked
	feasible := 0
	for _, n := range nodes {
		if check(n, d) != "" {
			continue
		}
		c := ranked{n: n, zoneMine: n.mine, fill: fill(n, d)}
		if n.zoneIdx > 0 {
			c.zoneMine = zones[n.zoneIdx]
		}
		if feasible == 0 || compareRanked(c, choice) < 0 {
			choice = c
		}
		feasible++
	}
	if feasible == 0 {
		reasons := map[string]int{}
		for _, n := range nodes {
			reasons[check(n, d)]++
		}
		return nil, explainInfeasible(len(nodes), reasons, d), false
	}
	return choice.n, explainChoice(choice, feasible, len(nodes), d), true
}

// numberZones numbers the nodes' zones (zoneIdx), 1 up; -1 for a node
// without one.
func numberZones(nodes []*nodeState) {
	seen := map[string]int{}
	for _, n := range nodes {
		z := n.zone()
		if z == "" {
			n.zoneIdx = -1
			continue
		}
		if seen[z] == 0 {
			seen[z] = len(seen) + 1
		}
		n.zoneIdx = seen[z]
	}
}

// explainChoice says why a replica went where it went, e.g. "placed on
// node web-2 (2 of 3 nodes feasible; 0 replicas of the instance there,
// 1 in zone b; 1536 MB and 1500 mCPU free after)".
func explainChoice(c ranked, feasible, total int, d *demand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "placed on node %s (%d of %d nodes feasible; %d %s of the instance there", c.n.name(), feasible, total, c.n.mine, plural(c.n.mine, "replica", "replicas"))
	if z := c.n.zone(); z != "" {
		fmt.Fprintf(&b, ", %d in zone %s", c.zoneMine, z)
	}
	if c.n.failed {
		b.WriteString(", where one failed recently: no better node")
	}
	fmt.Fprintf(&b, "; %d MB and %d mCPU free after)", c.n.freeMem()-d.res.MemoryMB, c.n.freeCPU()-d.res.CPUMillis)
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
