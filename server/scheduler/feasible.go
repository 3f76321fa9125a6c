package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-dev/drover/protocol"
)

// ZoneLabel is the node label replicas of one instance are spread across.
const ZoneLabel = "zone"

// nodeState is a node with what the replicas it runs, or will run once the
// plan under construction is applied, reserve on it.
//
// Capacity comes from the state, never from what the agent measures: a
// replica reserves its spec's resources and ports from the moment it is
// placed (Desired=run) until it is stopped or ends, so that plans are
// deterministic and never over-commit. A node that reports zero CPU or
// memory (its agent could not read them) has no capacity in that
// dimension: only replicas that ask for none of it fit there.
type nodeState struct {
	node  *protocol.Node
	cpu   int64 // mCPU reserved
	mem   int64 // MB reserved
	ports int   // ports reserved
	count int   // replicas holding a place on it
	// zoneIdx numbers the node's zone among the table's (-1: none; 0: not
	// numbered yet), and rank is its place in the table, in id order
	// (0: none): ranking compares these ints rather than the strings.
	zoneIdx int
	rank    int
	// mine counts the replicas of the instance being scheduled on the node;
	// failed says one of them failed here recently.
	mine   int
	failed bool
}

func (n *nodeState) freeCPU() int64 { return n.node.Resources.CPUMillis - n.cpu }
func (n *nodeState) freeMem() int64 { return n.node.Resources.MemoryMB - n.mem }
func (n *nodeState) freePorts() int { return portCount(n.node.PortRange) - n.ports }

// zone returns the node's ZoneLabel. Ranking reads it once per node per
// table (numberZones) and compares zones by their number.
func (n *nodeState) zone() string { return n.node.Labels[ZoneLabel] }

func (n *nodeState) name() string { return nodeName(n.node, n.node.ID) }

func (n *nodeState) reserve(d *demand, sign int) {
	n.cpu += int64(sign) * d.res.CPUMillis
	n.mem += int64(sign) * d.res.MemoryMB
	n.ports += sign * d.ports
	n.count += sign
}

// portCount is the number of ports a range holds; a missing range holds none.
func portCount(r protocol.PortRange) int {
	if r.Lo < 1 || r.Hi < r.Lo {
		return 0
	}
	return r.Hi - r.Lo + 1
}

// nodeName is how messages name a node: its name, else its id.
func nodeName(n *protocol.Node, id string) string {
	if n != nil && n.Name != "" {
		return n.Name
	}
	return id
}

// demand is what one replica needs of its node.
type demand struct {
	res   protocol.Resources
	ports int
	// cons all must hold: the spec's and the environment's constraints.
	cons []protocol.Constraints
}

func newDemand(spec *protocol.Spec, env *protocol.Environment, tenant *protocol.Tenant) *demand {
	d := &demand{res: spec.Resources, ports: len(spec.Ports), cons: []protocol.Constraints{spec.Constraints}}
	if env != nil {
		d.cons = append(d.cons, env.Constraints)
	}
	if tenant != nil && tenant.Region != "" {
		// Residency: the tenant's region binds every instance of it,
		// whatever its spec says and whenever the region was set.
		d.cons = append(d.cons, protocol.Constraints{Region: tenant.Region})
	}
	return d
}

// Reasons a node cannot take a replica, in the order they are checked.
const (
	reasonDown       = "down"
	reasonDraining   = "draining"
	reasonIneligible = "ineligible"
	reasonRegion     = "region"
	reasonLabels     = "labels"
	reasonCPUSize    = "cpu-size"
	reasonMemorySize = "memory-size"
	reasonCPU        = "cpu"
	reasonMemory     = "memory"
	reasonPorts      = "ports"
)

var reasonOrder = []string{reasonDown, reasonDraining, reasonIneligible, reasonRegion, reasonLabels,
	reasonCPUSize, reasonMemorySize, reasonCPU, reasonMemory, reasonPorts}

// check returns "" when the node can take a replica with demand d, else
// the first reason it cannot.
func check(n *nodeState, d *demand) string {
	node := n.node
	switch {
	case node.Status == protocol.NodeDown:
		return reasonDown
	case node.Status == protocol.NodeDraining || node.Drain != nil:
		return reasonDraining
	case node.Status != protocol.NodeReady || !node.Eligible || node.Revoked:
		return reasonIneligible
	}
	for _, c := range d.cons {
		if c.Region != "" && c.Region != node.Region {
			return reasonRegion
		}
	}
	for _, c := range d.cons {
		for k, v := range c.Labels {
			if got, ok := node.Labels[k]; !ok || got != v {
				return reasonLabels
			}
		}
	}
	switch {
	case node.Resources.CPUMillis > 0 && d.res.CPUMillis > node.Resources.CPUMillis:
		return reasonCPUSize // it would not fit on the node empty
	case node.Resources.MemoryMB > 0 && d.res.MemoryMB > node.Resources.MemoryMB:
		return reasonMemorySize
	case d.res.CPUMillis > n.freeCPU():
		return reasonCPU
	case d.res.MemoryMB > n.freeMem():
		return reasonMemory
	case d.ports > n.freePorts():
		return reasonPorts
	}
	return ""
}

// describe says in words why nodes failed for reason.
func (d *demand) describe(reason string) string {
	switch reason {
	case reasonDown, reasonDraining, reasonIneligible:
		return reason
	case reasonRegion:
		var regions []string
		for _, c := range d.cons {
			if c.Region != "" && !slices.Contains(regions, c.Region) {
				regions = append(regions, c.Region)
			}
		}
		return "outside region " + strings.Join(regions, " and ")
	case reasonLabels:
		var want []string
		for _, c := range d.cons {
			for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
				if kv := k + "=" + c.Labels[k]; !slices.Contains(want, kv) {
					want = append(want, kv)
				}
			}
		}
		return "without labels " + strings.Join(want, ",")
	case reasonCPUSize:
		return fmt.Sprintf("with less than %d mCPU in all", d.res.CPUMillis)
	case reasonMemorySize:
		return fmt.Sprintf("with less than %d MB in all", d.res.MemoryMB)
	case reasonCPU:
		return fmt.Sprintf("with less than %d mCPU free", d.res.CPUMillis)
	case reasonMemory:
		return fmt.Sprintf("with less than %d MB free", d.res.MemoryMB)
	case reasonPorts:
		return fmt.Sprintf("with fewer than %d ports free", d.ports)
	}
	return reason
}

// explainInfeasible summarises why no node could take a replica, e.g.
// "no node can run it: 3 nodes: 1 down, 2 with less than 2048 MB free".
func explainInfeasible(total int, reasons map[string]int, d *demand) string {
	if total == 0 {
		return "no node can run it: no nodes registered"
	}
	parts := make([]string, 0, len(reasons))
	for _, r := range reasonOrder {
		if n := reasons[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, d.describe(r)))
		}
	}
	noun := "nodes"
	if total == 1 {
		noun = "node"
	}
	lead := "no node can run it"
	if reasons[reasonCPUSize]+reasons[reasonMemorySize] == total {
		// Waiting will not help: only a larger node will.
		lead = protocol.NoNodeLargeEnough
	}
	return fmt.Sprintf("%s: %d %s: %s", lead, total, noun, strings.Join(parts, ", "))
}
