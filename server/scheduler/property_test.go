package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// TestPlansNeverOverCommitNorDoubleUp drives random fleets through random
// changes (scaling, updates with canaries and rollbacks, restarts, nodes
// going down and up, drains, health reports, failures, time passing) and
// applies every plan through the FSM. Whatever happens:
//   - no node ever has more reserved than it has: CPU, memory, ports;
//   - no plan places a replica where the instance already runs one while
//     another node that could take it runs none;
//   - no plan places a replica on a node that cannot take it;
//   - once the scheduler settles, every instance has at least the replicas
//     it wants (running, starting, or pending with a reason), and none it
//     wants on a node that is down (those are replaced, never counted twice).
func TestPlansNeverOverCommitNorDoubleUp(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := &world{rt: rt, h: newHarness(rt)}
		w.h.check = w.checkPlan
		for range rapid.IntRange(1, 6).Draw(rt, "nodes") {
			w.addNode()
		}
		for i := range rapid.IntRange(1, 4).Draw(rt, "instances") {
			w.instances = append(w.instances, w.h.create(fmt.Sprintf("i%d", i), rapid.IntRange(0, 5).Draw(rt, "replicas"), w.spec()))
		}
		w.h.settle()
		w.checkState()
		for range rapid.IntRange(0, 30).Draw(rt, "steps") {
			w.step()
			w.h.settle()
			w.checkState()
		}
	})
}

type world struct {
	rt        *rapid.T
	h         *harness
	nodes     []string
	instances []string
	versions  int
}

func (w *world) addNode() {
	rt := w.rt
	id := fmt.Sprintf("n%d", len(w.nodes))
	ports := rapid.IntRange(0, 4).Draw(rt, "ports")
	w.h.node(id, rapid.SampledFrom([]int64{0, 1000, 2000, 4000}).Draw(rt, "cpu"),
		rapid.SampledFrom([]int64{0, 512, 1024, 4096}).Draw(rt, "memory"),
		func(n *protocol.Node) {
			n.PortRange = protocol.PortRange{}
			if ports > 0 {
				n.PortRange = protocol.PortRange{Lo: 20000, Hi: 20000 + ports - 1}
			}
			n.Region = rapid.SampledFrom([]string{"", "eu", "us"}).Draw(rt, "region")
			n.Labels = map[string]string{}
			if z := rapid.SampledFrom([]string{"", "a", "b"}).Draw(rt, "zone"); z != "" {
				n.Labels[ZoneLabel] = z
			}
			if rapid.Bool().Draw(rt, "gold") {
				n.Labels["tier"] = "gold"
			}
		})
	w.nodes = append(w.nodes, id)
}

func (w *world) spec() protocol.Spec {
	rt := w.rt
	w.versions++
	return spec(func(s *protocol.Spec) {
		s.Command = []string{"/bin/app", fmt.Sprint(w.versions)}
		s.Resources = protocol.Resources{
			CPUMillis: rapid.SampledFrom([]int64{0, 250, 500, 1500}).Draw(rt, "spec cpu"),
			MemoryMB:  rapid.SampledFrom([]int64{0, 128, 512, 2048}).Draw(rt, "spec memory"),
		}
		s.Ports = nil
		for i := range rapid.IntRange(0, 2).Draw(rt, "spec ports") {
			s.Ports = append(s.Ports, fmt.Sprintf("p%d", i))
		}
		s.Constraints.Region = rapid.SampledFrom([]string{"", "", "eu"}).Draw(rt, "spec region")
		if rapid.IntRange(0, 3).Draw(rt, "spec gold") == 0 {
			s.Constraints.Labels = map[string]string{"tier": "gold"}
		}
		s.Update = protocol.UpdateStrategy{
			MaxParallel:     rapid.IntRange(1, 2).Draw(rt, "max parallel"),
			MinHealthyTime:  protocol.Duration(rapid.SampledFrom([]time.Duration{0, 10 * time.Second}).Draw(rt, "min healthy")),
			HealthyDeadline: protocol.Duration(time.Minute),
			AutoRollback:    rapid.Bool().Draw(rt, "auto rollback"),
			Canaries:        rapid.IntRange(0, 1).Draw(rt, "canaries"),
			AutoPromote:     rapid.Bool().Draw(rt, "auto promote"),
		}
	})
}

// replicasWhere returns the ids of replicas, on nodes that are up, that match.
func (w *world) replicasWhere(ok func(*protocol.Replica) bool) []string {
	snap := w.h.Snapshot()
	var out []string
	for _, r := range snap.AllReplicas() {
		if n := snap.Node(r.Node); n != nil && n.Status != protocol.NodeDown && ok(r) {
			out = append(out, r.ID)
		}
	}
	return out
}

func (w *world) step() {
	rt, h := w.rt, w.h
	inst := rapid.SampledFrom(w.instances).Draw(rt, "instance")
	tenant, name, _ := strings.Cut(inst, "/")
	node := rapid.SampledFrom(w.nodes).Draw(rt, "node")
	report := func(st string, ok func(*protocol.Replica) bool) {
		if ids := w.replicasWhere(ok); len(ids) > 0 {
			h.report(st, rapid.SampledFrom(ids).Draw(rt, "replica"))
		}
	}
	wanted := func(r *protocol.Replica) bool { return r.Desired == protocol.DesiredRun && !r.Terminal() }
	switch action := rapid.IntRange(0, 14).Draw(rt, "action"); action {
	case 0:
		h.scale(inst, rapid.IntRange(0, 6).Draw(rt, "scale"))
	case 1:
		h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: node}}})
	case 2:
		h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: node, Up: true}}})
	case 3, 4:
		report(protocol.ReplicaHealthy, wanted)
	case 5:
		report(protocol.ReplicaFailed, wanted)
	case 6:
		report(rapid.SampledFrom([]string{protocol.ReplicaRunning, protocol.ReplicaUnhealthy}).Draw(rt, "state"), wanted)
	case 7:
		var d *protocol.DrainSpec
		if rapid.Bool().Draw(rt, "drain") {
			d = &protocol.DrainSpec{StartedAt: h.Now(), Deadline: h.Now().Add(rapid.SampledFrom([]time.Duration{time.Minute, time.Hour}).Draw(rt, "deadline"))}
		}
		h.Must(state.CmdNodeDrain, state.NodeDrain{ID: node, Drain: d})
	case 8:
		h.Must(state.CmdNodeEligibility, state.NodeEligibility{ID: node, Eligible: rapid.Bool().Draw(rt, "eligible")})
	case 9:
		h.update(inst, w.spec())
	case 10:
		h.Advance(rapid.SampledFrom([]time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute}).Draw(rt, "advance"))
	case 11:
		h.lifecycle(inst, rapid.SampledFrom([]string{state.ActionStop, state.ActionStart}).Draw(rt, "lifecycle"))
	case 12:
		_ = h.Apply(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: tenant, Name: name, Action: state.ActionRestart})
	case 13:
		if rapid.Bool().Draw(rt, "new node") {
			w.addNode()
		} else {
			_ = h.Apply(state.CmdDeploymentPromote, state.DeploymentPromote{Tenant: tenant, Name: name})
		}
	case 14:
		// Agents finish stopping what they were told to stop.
		report(protocol.ReplicaStopped, func(r *protocol.Replica) bool { return r.Desired == protocol.DesiredStop && !r.Terminal() })
	}
}

// reserved is what replicas hold of one node.
type reserved struct {
	cpu, mem int64
	ports    int
	mine     map[string]int // replicas by instance id
}

func reserves(r *protocol.Replica) bool {
	return r.Node != "" && r.Desired == protocol.DesiredRun && !r.Terminal()
}

func specAt(snap *state.Snapshot, instance string, version uint64) protocol.Spec {
	if v := snap.Version(instance, version); v != nil {
		return v.Spec
	}
	if in := snap.Instance(instance); in != nil {
		return in.Spec
	}
	return protocol.Spec{}
}

// usage computes, independently of the scheduler, what each node holds.
func usage(snap *state.Snapshot, skip map[string]bool) map[string]*reserved {
	out := map[string]*reserved{}
	for _, n := range snap.Nodes() {
		u := &reserved{mine: map[string]int{}}
		for _, r := range snap.NodeReplicas(n.ID) {
			if !reserves(r) || skip[r.ID] {
				continue
			}
			sp := specAt(snap, protocol.InstanceID(r.Tenant, r.Instance), r.Version)
			u.cpu += sp.Resources.CPUMillis
			u.mem += sp.Resources.MemoryMB
			u.ports += len(sp.Ports)
			u.mine[protocol.InstanceID(r.Tenant, r.Instance)]++
		}
		out[n.ID] = u
	}
	return out
}

// canTake is the feasibility rule, written again from the words:
// the node is ready and eligible, in the region and with the labels the
// spec and its environment ask for, with the CPU, memory and ports free.
func canTake(n *protocol.Node, u *reserved, sp protocol.Spec, env *protocol.Environment) bool {
	if n.Status != protocol.NodeReady || n.Drain != nil || !n.Eligible || n.Revoked {
		return false
	}
	cons := []protocol.Constraints{sp.Constraints}
	if env != nil {
		cons = append(cons, env.Constraints)
	}
	for _, c := range cons {
		if c.Region != "" && c.Region != n.Region {
			return false
		}
		for k, v := range c.Labels {
			if n.Labels[k] != v {
				return false
			}
		}
	}
	ports := 0
	if n.PortRange.Lo > 0 && n.PortRange.Hi >= n.PortRange.Lo {
		ports = n.PortRange.Hi - n.PortRange.Lo + 1
	}
	return u.cpu+sp.Resources.CPUMillis <= n.Resources.CPUMillis &&
		u.mem+sp.Resources.MemoryMB <= n.Resources.MemoryMB &&
		u.ports+len(sp.Ports) <= ports
}

func (w *world) checkPlan(snap *state.Snapshot, p *state.Plan) {
	in := snap.Instance(p.Instance)
	if in == nil {
		if len(p.Place) > 0 {
			w.rt.Fatalf("plan places replicas of deleted instance %s", p.Instance)
		}
		return
	}
	env := snap.Environment(in.Environment)
	stopped := map[string]bool{}
	for _, s := range p.Stop {
		stopped[s.ID] = true
	}
	use := usage(snap, stopped)
	for _, r := range p.Place {
		if r.Node == "" {
			continue
		}
		n := snap.Node(r.Node)
		if n == nil {
			w.rt.Fatalf("replica %s placed on unknown node %s", r.ID, r.Node)
		}
		sp := specAt(snap, in.ID, r.Version)
		if !canTake(n, use[n.ID], sp, env) {
			w.rt.Fatalf("replica %s of %s placed on node %s, which cannot take it: %+v with %+v reserved", r.ID, in.ID, n.ID, n, use[n.ID])
		}
		if use[n.ID].mine[in.ID] > 0 {
			for _, m := range snap.Nodes() {
				if use[m.ID].mine[in.ID] == 0 && canTake(m, use[m.ID], sp, env) {
					w.rt.Fatalf("replica %s of %s placed on node %s beside %d others while node %s, free of it, could take it",
						r.ID, in.ID, n.ID, use[n.ID].mine[in.ID], m.ID)
				}
			}
		}
		u := use[n.ID]
		u.cpu += sp.Resources.CPUMillis
		u.mem += sp.Resources.MemoryMB
		u.ports += len(sp.Ports)
		u.mine[in.ID]++
	}
}

func (w *world) checkState() {
	snap := w.h.Snapshot()
	for id, u := range usage(snap, nil) {
		n := snap.Node(id)
		ports := 0
		if n.PortRange.Lo > 0 {
			ports = n.PortRange.Hi - n.PortRange.Lo + 1
		}
		if u.cpu > n.Resources.CPUMillis || u.mem > n.Resources.MemoryMB || u.ports > ports {
			w.rt.Fatalf("node %s over-committed: %d mCPU, %d MB, %d ports reserved of %+v, %d ports", id, u.cpu, u.mem, u.ports, n.Resources, ports)
		}
	}
	for _, in := range snap.Instances(state.InstanceFilter{}) {
		want := in.Replicas
		if in.Stopped {
			want = 0
		}
		live := 0
		for _, r := range snap.Replicas(in.ID) {
			if r.Desired == protocol.DesiredRun && !r.Terminal() {
				live++
			}
			if n := snap.Node(r.Node); n != nil && n.Status == protocol.NodeDown && r.Desired == protocol.DesiredRun {
				w.rt.Fatalf("replica %s of %s still wanted on node %s, which is down", r.ID, in.ID, n.ID)
			}
		}
		if live < want {
			w.rt.Fatalf("instance %s has %d live replicas, wants %d", in.ID, live, want)
		}
	}
}
