package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// harness is statetest's FSM harness with this package's fixtures and
// ids that are easy to read ("r1", "r2", ...).
type harness struct {
	*statetest.Harness
	t   statetest.TB
	seq int
	// check, when set, sees every plan before it is applied.
	check func(snap *state.Snapshot, p *state.Plan)
}

func newHarness(t statetest.TB) *harness {
	h := &harness{Harness: statetest.New(t), t: t}
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true})
	return h
}

func (h *harness) ids() string {
	h.seq++
	return fmt.Sprintf("r%d", h.seq)
}

// node registers a ready node with the given CPU and memory and 100 ports.
func (h *harness) node(id string, cpu, mem int64, opts ...func(*protocol.Node)) {
	h.t.Helper()
	n := protocol.Node{ID: id, Name: id, Resources: protocol.NodeResources{CPUMillis: cpu, MemoryMB: mem},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 20099}}
	for _, o := range opts {
		o(&n)
	}
	h.Must(state.CmdNodeRegister, state.NodeRegister{Node: n, SecretHash: "hash-" + id})
}

// spec is a spec with defaults, 500 mCPU and 256 MB, and the given update
// strategy changes.
func spec(opts ...func(*protocol.Spec)) protocol.Spec {
	s := protocol.Spec{Command: []string{"/bin/app"}, Resources: protocol.Resources{CPUMillis: 500, MemoryMB: 256},
		Update: protocol.UpdateStrategy{MaxParallel: 1, MinHealthyTime: protocol.Duration(10 * time.Second),
			HealthyDeadline: protocol.Duration(time.Minute)}}
	for _, o := range opts {
		o(&s)
	}
	return s.WithDefaults()
}

func (h *harness) create(name string, replicas int, sp protocol.Spec) string {
	h.t.Helper()
	h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: "acme", Name: name, Environment: protocol.DefaultEnvironment, Replicas: replicas, Spec: sp}})
	return protocol.InstanceID("acme", name)
}

func (h *harness) update(id string, sp protocol.Spec) {
	h.t.Helper()
	tenant, name, _ := strings.Cut(id, "/")
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: tenant, Name: name, Spec: sp})
}

func (h *harness) scale(id string, n int) {
	h.t.Helper()
	tenant, name, _ := strings.Cut(id, "/")
	h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: tenant, Name: name, Replicas: n})
}

func (h *harness) lifecycle(id, action string) {
	h.t.Helper()
	tenant, name, _ := strings.Cut(id, "/")
	h.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: tenant, Name: name, Action: action})
}

// settle runs the scheduler, the way the worker does but without waiting
// for retry times, until its plans change nothing. A plan that asks for a
// retry and changes nothing is not applied (the worker does the same).
func (h *harness) settle() {
	h.t.Helper()
	for range 100 {
		progress := false
		for _, e := range h.Snapshot().Evals() {
			snap := h.Snapshot()
			e := snap.Eval(e.Instance)
			if e == nil {
				continue
			}
			// With a table of the nodes, as the worker schedules, which
			// the evaluation must leave as it found it.
			table := newNodeTable(snap)
			p := schedule(snap, e, h.Now(), h.ids, table)
			if diff := tableDiff(table, newNodeTable(snap)); diff != "" {
				h.t.Fatalf("scheduling %s left the nodes changed: %s", e.Instance, diff)
			}
			if h.check != nil {
				h.check(snap, p)
			}
			if p.Retry && empty(p) {
				continue
			}
			h.Must(state.CmdPlanApply, p)
			progress = true
		}
		if !progress {
			return
		}
	}
	h.t.Fatalf("the scheduler keeps changing its mind")
}

// report makes replicas' nodes report them in state st.
func (h *harness) report(st string, ids ...string) {
	h.t.Helper()
	snap := h.Snapshot()
	byNode := map[string][]protocol.ReplicaReport{}
	var nodes []string
	for _, id := range ids {
		r := snap.Replica(id)
		if r == nil || r.Node == "" {
			h.t.Fatalf("replica %s is not placed", id)
		}
		if _, ok := byNode[r.Node]; !ok {
			nodes = append(nodes, r.Node)
		}
		byNode[r.Node] = append(byNode[r.Node], protocol.ReplicaReport{ID: id, State: st})
	}
	var c state.ReplicaReports
	for _, n := range nodes {
		c.Reports = append(c.Reports, state.NodeReport{Node: n, Replicas: byNode[n]})
	}
	h.Must(state.CmdReplicaReports, c)
}

// live returns the replicas of an instance the scheduler wants running.
func (h *harness) live(id string) []*protocol.Replica {
	var out []*protocol.Replica
	for _, r := range h.Snapshot().Replicas(id) {
		if r.Desired == protocol.DesiredRun {
			out = append(out, r)
		}
	}
	return out
}

func ids(rs []*protocol.Replica) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// placedIDs returns the ids of the placed replicas among rs that are not healthy yet.
func unhealthyIDs(rs []*protocol.Replica) []string {
	var out []string
	for _, r := range rs {
		if r.Node != "" && r.State != protocol.ReplicaHealthy {
			out = append(out, r.ID)
		}
	}
	return out
}

// makeHealthy reports every placed live replica of an instance healthy.
func (h *harness) makeHealthy(id string) {
	h.t.Helper()
	if u := unhealthyIDs(h.live(id)); len(u) > 0 {
		h.report(protocol.ReplicaHealthy, u...)
	}
}

func countHealthy(rs []*protocol.Replica) int {
	n := 0
	for _, r := range rs {
		if r.State == protocol.ReplicaHealthy {
			n++
		}
	}
	return n
}

func versions(rs []*protocol.Replica) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Version)
	}
	slices.Sort(out)
	return out
}

func nodesOf(rs []*protocol.Replica) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		out[r.Node]++
	}
	return out
}

// events returns the messages of an instance's events of one type.
func (h *harness) events(id, typ string) []string {
	var out []string
	for _, e := range h.Snapshot().Events(id) {
		if e.Type == typ {
			out = append(out, e.Message)
		}
	}
	return out
}

// tableDiff says how two node tables differ in what the nodes hold.
func tableDiff(got, want *nodeTable) string {
	for i, w := range want.nodes {
		g := got.nodes[i]
		if g.node.ID != w.node.ID || g.cpu != w.cpu || g.mem != w.mem || g.ports != w.ports ||
			g.count != w.count || g.mine != w.mine || g.failed != w.failed {
			return fmt.Sprintf("node %s holds %+v, want %+v", w.node.ID, *g, *w)
		}
	}
	return ""
}
