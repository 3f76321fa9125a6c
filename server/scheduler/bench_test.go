package scheduler_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/scheduler"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// The benchmarks measure one Schedule call against a state of realistic
// size, built through the real FSM with real commands: nodes registered,
// instances created, their replicas placed by plans and reported healthy.
// BENCHMARKS.md reports them; they are not part of the test suite:
//
//	go test ./server/scheduler -run '^$' -bench Schedule -benchmem
//
// Sizes are N nodes and M replicas, in instances of benchReplicas replicas
// each, about ten replicas to a node.

const (
	benchReplicas = 3
	benchTenants  = 100
	benchZones    = 3
)

var benchSizes = []struct{ nodes, replicas int }{
	{100, 1_000},
	{1_000, 10_000},
	{5_000, 50_000},
}

// BenchmarkSchedule measures Schedule for (a) a new instance of three
// replicas and (b) an instance that lost a replica with its node, which
// the plan replaces. It does not apply the plans: each iteration sees the
// same snapshot, as the worker's first look at the evaluation would.
func BenchmarkSchedule(b *testing.B) {
	for _, size := range benchSizes {
		name := fmt.Sprintf("nodes=%d/replicas=%d", size.nodes, size.replicas)
		var fleet *benchFleet
		setup := func(b *testing.B) *benchFleet {
			if fleet == nil {
				start := time.Now()
				fleet = newBenchFleet(b, size.nodes, size.replicas)
				b.Logf("%s: state built through the FSM in %v (%d Raft entries)", name, time.Since(start).Round(time.Millisecond), fleet.Index())
			}
			return fleet
		}
		b.Run(name+"/new-instance", func(b *testing.B) {
			f := setup(b)
			snap, eval := f.newInstance(b)
			ids := seqIDs()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p := scheduler.Schedule(snap, eval, f.Now(), ids)
				if len(p.Place) != benchReplicas || p.Place[0].Node == "" {
					b.Fatalf("plan places %d replicas (%+v), want %d on nodes", len(p.Place), p.Place, benchReplicas)
				}
			}
		})
		b.Run(name+"/node-down", func(b *testing.B) {
			f := setup(b)
			snap, evals := f.nodeDown(b)
			eval := evals[0]
			ids := seqIDs()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p := scheduler.Schedule(snap, eval, f.Now(), ids)
				if len(p.Place) != 1 || p.Place[0].Node == "" || len(p.Stop) != 1 {
					b.Fatalf("plan places %d and stops %d, want one lost replica replaced", len(p.Place), len(p.Stop))
				}
			}
		})
		// Every evaluation a node going down triggers (one per instance
		// with a replica there), scheduled one after the other: each
		// reading the nodes, and (batch) as the worker schedules them,
		// in one batch that reads them once.
		ways := []struct {
			name string
			run  func(*benchFleet, *state.Snapshot, []*state.Eval, func() string)
		}{
			{"node-down-all", func(f *benchFleet, snap *state.Snapshot, evals []*state.Eval, ids func() string) {
				for _, e := range evals {
					scheduler.Schedule(snap, e, f.Now(), ids)
				}
			}},
			{"node-down-all-batch", func(f *benchFleet, snap *state.Snapshot, evals []*state.Eval, ids func() string) {
				scheduler.ScheduleBatch(snap, evals, f.Now(), ids)
			}},
			// The worker's own way: each plan played on a fork before the
			// next evaluation (the plans are not committed).
			{"node-down-all-worker", func(f *benchFleet, _ *state.Snapshot, evals []*state.Eval, ids func() string) {
				scheduler.EvaluateBatch(f.Store, evals, f.Now(), ids)
			}},
		}
		for _, way := range ways {
			b.Run(name+"/"+way.name, func(b *testing.B) {
				f := setup(b)
				snap, evals := f.nodeDown(b)
				ids := seqIDs()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					way.run(f, snap, evals, ids)
				}
				b.ReportMetric(float64(len(evals)), "evals/op")
			})
		}
	}
}

func seqIDs() func() string {
	n := 0
	return func() string { n++; return "bench-" + strconv.Itoa(n) }
}

// benchFleet is a state built through the FSM, as Raft would apply it.
type benchFleet struct {
	*statetest.Harness
	nodes []string
	down  bool
	inst  bool
}

func newBenchFleet(b *testing.B, nodes, replicas int) *benchFleet {
	b.Helper()
	f := &benchFleet{Harness: statetest.New(b)}
	f.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: protocol.DefaultEnvironment}})
	for t := range benchTenants {
		f.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: fmt.Sprintf("t%d", t)}, Create: true})
	}
	for i := range nodes {
		id := fmt.Sprintf("node-%05d", i)
		f.nodes = append(f.nodes, id)
		f.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "hash-" + id, Node: protocol.Node{
			ID: id, Name: id, Region: "eu",
			Labels:    map[string]string{scheduler.ZoneLabel: fmt.Sprintf("z%d", i%benchZones)},
			Resources: protocol.NodeResources{CPUMillis: 8000, MemoryMB: 16384},
			PortRange: protocol.PortRange{Lo: 20000, Hi: 20099},
		}})
	}
	// Instances, each placed by one plan (spread over consecutive nodes, as
	// the scheduler's ranking does on an even fleet), then reported healthy
	// in batches like the gateway's.
	instances := replicas / benchReplicas
	rid := 0
	var reports []state.NodeReport
	byNode := map[string]int{}
	for i := range instances {
		tenant, name := fmt.Sprintf("t%d", i%benchTenants), fmt.Sprintf("app-%05d", i)
		f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
			Tenant: tenant, Name: name, Environment: protocol.DefaultEnvironment, Replicas: benchReplicas, Spec: benchSpec()}})
		id := protocol.InstanceID(tenant, name)
		snap := f.Store.Snapshot()
		eval := snap.Eval(id)
		p := &state.Plan{Instance: id, EvalIndex: eval.Index, Version: 1}
		for j := range benchReplicas {
			rid++
			node := f.nodes[(i*benchReplicas+j)%len(f.nodes)]
			r := &protocol.Replica{ID: fmt.Sprintf("r%06d", rid), Tenant: tenant, Instance: name, Node: node,
				Desired: protocol.DesiredRun, State: protocol.ReplicaPending, Version: 1, CreatedAt: f.Now()}
			p.Place = append(p.Place, r)
			p.Events = append(p.Events, protocol.Event{Tenant: tenant, Instance: name, Time: f.Now(),
				Type: scheduler.EventPlaced, Replica: r.ID, Node: node, Message: "replica " + r.ID + " placed on node " + node})
			k, ok := byNode[node]
			if !ok {
				k = len(reports)
				byNode[node] = k
				reports = append(reports, state.NodeReport{Node: node})
			}
			reports[k].Replicas = append(reports[k].Replicas, protocol.ReplicaReport{ID: r.ID, State: protocol.ReplicaHealthy,
				StartedAt: f.Now(), Ports: map[string]int{"http": 20000 + len(reports[k].Replicas)}})
		}
		f.Must(state.CmdPlanApply, p)
	}
	f.Advance(time.Minute)
	for len(reports) > 0 {
		n := min(len(reports), 100)
		f.Must(state.CmdReplicaReports, state.ReplicaReports{Reports: reports[:n]})
		reports = reports[n:]
	}
	f.Advance(time.Minute)
	if got := len(f.Store.Snapshot().AllReplicas()); got != instances*benchReplicas {
		b.Fatalf("%d replicas in the state, want %d", got, instances*benchReplicas)
	}
	return f
}

// benchSpec is a small service: 250 mCPU, 256 MB, one port, an HTTP check.
func benchSpec() protocol.Spec {
	return protocol.Spec{
		Command:   []string{"/usr/bin/app", "serve"},
		Env:       map[string]string{"LOG_LEVEL": "info", "DATABASE_URL": "postgres://db.internal/app"},
		Ports:     []string{"http"},
		Resources: protocol.Resources{CPUMillis: 250, MemoryMB: 256},
		Health:    &protocol.HealthCheck{Type: protocol.HealthHTTP, Port: "http", Path: "/healthz"},
	}.WithDefaults()
}

// newInstance creates (once) an instance of three replicas and returns the
// snapshot and its evaluation.
func (f *benchFleet) newInstance(b *testing.B) (*state.Snapshot, *state.Eval) {
	b.Helper()
	id := protocol.InstanceID("t0", "bench-new")
	if !f.inst {
		f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
			Tenant: "t0", Name: "bench-new", Environment: protocol.DefaultEnvironment, Replicas: benchReplicas, Spec: benchSpec()}})
		f.inst = true
	}
	snap := f.Store.Snapshot()
	e := snap.Eval(id)
	if e == nil {
		b.Fatalf("no evaluation for %s", id)
	}
	return snap, e
}

// nodeDown marks (once) the middle node down and returns the snapshot and
// the evaluations it triggered.
func (f *benchFleet) nodeDown(b *testing.B) (*state.Snapshot, []*state.Eval) {
	b.Helper()
	node := f.nodes[len(f.nodes)/2]
	if !f.down {
		f.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: node, Up: false, Seen: f.Now()}}})
		f.down = true
	}
	snap := f.Store.Snapshot()
	var evals []*state.Eval
	for _, e := range snap.Evals() {
		if e.TriggeredBy == "node-down" {
			evals = append(evals, e)
		}
	}
	if len(evals) == 0 {
		b.Fatalf("node %s going down triggered no evaluation", node)
	}
	return snap, evals
}
