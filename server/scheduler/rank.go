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

// Fleets of more than fullScan nodes are not ranked whole: pick ranks the
// first maxCandidates nodes that fit in a shuffled order of the nodes, from
// where the last placement's look ended, as Nomad ranks a few shuffled
// nodes (log2 of the fleet, at least 2) rather than every one. Shuffled,
// so that each look sees every zone however the node ids run. At 10,000
// nodes, ranking all of them for each of 10 replicas of 1,000 instances
// cost the leader seconds of CPU. The choice is the best of those looked
// at: spread across nodes and zones holds (a fleet that large has many
// nodes free of the instance in every zone), bin-packing is per look
// rather than fleet-wide.
const (
	fullScan      = 256
	maxCandidates = 64
)

// pick chooses the node for one replica of demand d among nodes, every
// one looked at (tests; the scheduler calls pickFrom).
func pick(nodes []*nodeState, d *demand) (best *nodeState, why string, ok bool) {
	if len(nodes) > 0 && nodes[0].zoneIdx == 0 {
		numberZones(nodes) // nodes of no table (tests)
	}
	var zones []int
	for _, n := range nodes {
		zones = addZone(zones, n)
	}
	best, why, ok, _ = pickFrom(nodes, nil, zones, 0, d)
	return best, why, ok
}

// addZone adds n's replicas of the instance to zones, by zone number.
func addZone(zones []int, n *nodeState) []int {
	if n.zoneIdx > 0 {
		for len(zones) <= n.zoneIdx {
			zones = append(zones, 0)
		}
		zones[n.zoneIdx] += n.mine
	}
	return zones
}

// pickFrom chooses the node for one replica of demand d: it looks at the
// nodes in order (indexes into nodes; nil for their own order) from start
// on, wrapping, every one in a fleet of up to fullScan, else until
// maxCandidates fit, and returns the best of those that fit and how many
// it looked at. zones counts the instance's replicas by zone
// number. ok is false when no node fits; why then says why, for the
// replica's message. Each look is a comparison of numbers: zones by their
// number, not by name, and why nodes do not fit is counted only when none
// does.
func pickFrom(nodes []*nodeState, order []int, zones []int, start int, d *demand) (best *nodeState, why string, ok bool, looked int) {
	limit := len(nodes)
	if len(nodes) > fullScan {
		limit = maxCandidates
	}
	var choice ranked
	feasible := 0
	for ; looked < len(nodes) && feasible < limit; looked++ {
		i := (start + looked) % len(nodes)
		if order != nil {
			i = order[i]
		}
		n := nodes[i]
		if check(n, d) != "" {
			continue
		}
		c := ranked{n: n, zoneMine: n.mine, fill: fill(n, d)}
		if n.zoneIdx > 0 { // else the node is a zone of its own
			c.zoneMine = 0
			if n.zoneIdx < len(zones) {
				c.zoneMine = zones[n.zoneIdx]
			}
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
		return nil, explainInfeasible(len(nodes), reasons, d), false, looked
	}
	return choice.n, explainChoice(choice, feasible, looked, len(nodes), d), true, looked
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
func explainChoice(c ranked, feasible, looked, total int, d *demand) string {
	var b strings.Builder
	if looked < total {
		fmt.Fprintf(&b, "placed on node %s (best of %d feasible nodes, %d of %d looked at", c.n.name(), feasible, looked, total)
	} else {
		fmt.Fprintf(&b, "placed on node %s (%d of %d nodes feasible", c.n.name(), feasible, total)
	}
	fmt.Fprintf(&b, "; %d %s of the instance there", c.n.mine, plural(c.n.mine, "replica", "replicas"))
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
