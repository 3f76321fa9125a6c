package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// serialFSM applies commands one at a time, as Raft does, from any
// goroutine, stamped with the wall clock the worker reads too.
type serialFSM struct{ *statetest.Harness }

func newSerialFSM(t *testing.T) *serialFSM {
	return &serialFSM{statetest.New(t).WithClock(time.Now)}
}

// tenantAndTwoNodes adds tenant acme and nodes n1 and n2 (4 CPUs, 4 GB).
func (f *serialFSM) tenantAndTwoNodes() {
	f.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true})
	for _, n := range []string{"n1", "n2"} {
		f.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h" + n, Node: protocol.Node{ID: n,
			Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 4096}, PortRange: protocol.PortRange{Lo: 1, Hi: 100}}})
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startWorker runs a worker over store until the test ends.
func startWorker(t *testing.T, store *state.Store, apply func(context.Context, *state.Plan) (uint64, error)) {
	t.Helper()
	w := NewWorker(WorkerConfig{
		Store: store, Propose: apply, ErrorBackoff: 10 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Output: testLogWriter{t}, Level: hclog.Debug}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// waitFor polls the store as it changes until cond holds, or fails after
// a generous deadline with what it last saw.
func waitFor(t *testing.T, store *state.Store, what string, cond func(*state.Snapshot) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tables := []string{state.TableReplicas, state.TableInstances, state.TableEvals}
	for {
		snap := store.Snapshot()
		ok, seen := cond(snap)
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("waiting for %s: last seen %s", what, seen)
		}
		wctx, c := context.WithTimeout(ctx, 50*time.Millisecond)
		store.Wait(wctx, snap.Index(tables...), tables...)
		c()
	}
}

func liveOf(snap *state.Snapshot, id string) []*protocol.Replica {
	var out []*protocol.Replica
	for _, r := range snap.Replicas(id) {
		if r.Desired == protocol.DesiredRun {
			out = append(out, r)
		}
	}
	return out
}

func describe(rs []*protocol.Replica) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("[%s v%d %s on %q] ", r.ID, r.Version, r.State, r.Node)
	}
	return s
}

// makeHealthy reports the placed, not yet healthy replicas healthy.
func (f *serialFSM) makeHealthy(t *testing.T, rs []*protocol.Replica) {
	t.Helper()
	var c state.ReplicaReports
	for _, r := range rs {
		if r.Node != "" && r.State != protocol.ReplicaHealthy {
			c.Reports = append(c.Reports, state.NodeReport{Node: r.Node, Replicas: []protocol.ReplicaReport{{ID: r.ID, State: protocol.ReplicaHealthy}}})
		}
	}
	if len(c.Reports) > 0 {
		if _, err := f.Commit(state.CmdReplicaReports, c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWorkerRunsDeployment(t *testing.T) {
	f := newSerialFSM(t)
	store := f.Store
	f.tenantAndTwoNodes()
	sp := func(cmd string) protocol.Spec {
		return spec(func(s *protocol.Spec) {
			s.Command = []string{"/bin/app", cmd}
			s.Update.MinHealthyTime = protocol.Duration(50 * time.Millisecond)
		})
	}
	// The evaluation is pending before the worker starts, as when a new
	// leader takes over.
	f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Replicas: 2, Spec: sp("v1")}})
	id := "acme/crm"

	var plans atomic.Int64
	startWorker(t, store, func(ctx context.Context, p *state.Plan) (uint64, error) {
		plans.Add(1)
		return f.Commit(state.CmdPlanApply, p)
	})

	waitFor(t, store, "two replicas placed on two nodes", func(snap *state.Snapshot) (bool, string) {
		live := liveOf(snap, id)
		return len(live) == 2 && len(nodesOf(live)) == 2 && live[0].Node != "" && live[1].Node != "", describe(live)
	})
	f.makeHealthy(t, liveOf(store.Snapshot(), id))
	waitFor(t, store, "version 1 stable", func(snap *state.Snapshot) (bool, string) {
		in := snap.Instance(id)
		return in.StableVersion == 1, fmt.Sprintf("stable %d", in.StableVersion)
	})

	// The deployment waits for min_healthy_time between steps: the
	// worker's own timer moves it on.
	f.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: sp("v2")})
	waitFor(t, store, "deployment successful", func(snap *state.Snapshot) (bool, string) {
		in := snap.Instance(id)
		live := liveOf(snap, id)
		f.makeHealthy(t, live)
		d := in.Deployment
		return d != nil && d.ToVersion == 2 && d.State == protocol.DeploymentSuccessful, fmt.Sprintf("deployment %+v, replicas %s", d, describe(live))
	})
	snap := store.Snapshot()
	if got := versions(liveOf(snap, id)); len(got) != 2 || got[0] != 2 || got[1] != 2 {
		t.Fatalf("versions %v after the deployment", got)
	}
	waitFor(t, store, "no evaluation left", func(snap *state.Snapshot) (bool, string) {
		return len(snap.Evals()) == 0, fmt.Sprintf("%d evaluations", len(snap.Evals()))
	})
	// Quiet now: no plan is made without a change.
	n := plans.Load()
	time.Sleep(100 * time.Millisecond)
	if plans.Load() != n {
		t.Fatalf("the worker kept committing plans with nothing to do: %d, then %d", n, plans.Load())
	}
}

func TestWorkerRetriesFailedCommits(t *testing.T) {
	f := newSerialFSM(t)
	store := f.Store
	for typ, body := range map[state.CommandType]any{
		state.CmdTenantUpsert:      state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true},
		state.CmdNodeRegister:      state.NodeRegister{SecretHash: "h", Node: protocol.Node{ID: "n1", Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 4096}, PortRange: protocol.PortRange{Lo: 1, Hi: 9}}},
		state.CmdEnvironmentUpsert: state.EnvironmentUpsert{Environment: protocol.Environment{Name: protocol.DefaultEnvironment}},
	} {
		if _, err := f.Commit(typ, body); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Commit(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Replicas: 1, Spec: spec()}}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	startWorker(t, store, func(ctx context.Context, p *state.Plan) (uint64, error) {
		if calls.Add(1) <= 2 {
			return 0, errors.New("no leader")
		}
		return f.Commit(state.CmdPlanApply, p)
	})
	waitFor(t, store, "the replica placed after two failed commits", func(snap *state.Snapshot) (bool, string) {
		live := liveOf(snap, "acme/crm")
		return len(live) == 1 && live[0].Node == "n1", describe(live)
	})
}

// The evaluations the worker schedules in one batch see each other's
// plans: two instances that each fill a node, pending together, end on
// different nodes, and their plans are committed together, in order.
func TestWorkerBatchSeesItsOwnPlans(t *testing.T) {
	f := newSerialFSM(t)
	f.tenantAndTwoNodes()
	big := spec(func(s *protocol.Spec) { s.Resources = protocol.Resources{CPUMillis: 3000, MemoryMB: 1024} })
	for _, name := range []string{"a", "b"} {
		f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
			Tenant: "acme", Name: name, Environment: protocol.DefaultEnvironment, Replicas: 1, Spec: big}})
	}
	var batches [][]*state.Plan
	w := NewWorker(WorkerConfig{Store: f.Store, ProposeAll: func(_ context.Context, ps []*state.Plan) []Committed {
		batches = append(batches, ps)
		out := make([]Committed, len(ps))
		for i, p := range ps {
			out[i].Index, out[i].Err = f.Commit(state.CmdPlanApply, p)
		}
		return out
	}})
	w.round(context.Background())
	snap := f.Store.Snapshot()
	a, b := liveOf(snap, "acme/a"), liveOf(snap, "acme/b")
	if len(a) != 1 || len(b) != 1 || a[0].Node == "" || a[0].Node == b[0].Node {
		t.Fatalf("two instances that each fill a node: a %s, b %s", describe(a), describe(b))
	}
	if len(batches) != 1 || len(batches[0]) != 2 {
		t.Fatalf("plans committed in %d batches, want both in one", len(batches))
	}
}

// Instances created one after another while the worker is idle have their
// plans committed together, in one batch, not one Raft round each between
// the creates.
func TestWorkerGathersEvaluationsThatArriveTogether(t *testing.T) {
	f := newSerialFSM(t)
	f.tenantAndTwoNodes()
	batches := make(chan int, 16)
	w := NewWorker(WorkerConfig{Store: f.Store, Gather: 300 * time.Millisecond,
		ProposeAll: func(_ context.Context, ps []*state.Plan) []Committed {
			out := make([]Committed, len(ps))
			for i, p := range ps {
				out[i].Index, out[i].Err = f.Commit(state.CmdPlanApply, p)
			}
			batches <- len(ps)
			return out
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // the worker is idle, waiting for evaluations
	for _, name := range []string{"a", "b", "c"} {
		f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
			Tenant: "acme", Name: name, Environment: protocol.DefaultEnvironment, Replicas: 1, Spec: spec()}})
		time.Sleep(20 * time.Millisecond) // one create after another, as a client sends them
	}
	select {
	case n := <-batches:
		if n != 3 {
			t.Fatalf("the first batch committed %d plans, want the 3 created together", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no plan committed")
	}
	waitFor(t, f.Store, "every replica placed", func(snap *state.Snapshot) (bool, string) {
		n := len(liveOf(snap, "acme/a")) + len(liveOf(snap, "acme/b")) + len(liveOf(snap, "acme/c"))
		return n == 3, fmt.Sprintf("%d replicas", n)
	})
}

// A node lost while an instance's first deployment is still being judged,
// or just after: the replacement runs, the deployment ends successful and
// no evaluation is left waiting for a time (since log version 4 a replica
// turning healthy makes an evaluation only while something waits for it).
func TestWorkerReplacesLostReplicaAroundDeployment(t *testing.T) {
	for _, settledFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("deployment over before the loss: %v", settledFirst), func(t *testing.T) {
			f := newSerialFSM(t)
			store := f.Store
			f.tenantAndTwoNodes()
			f.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "hn3", Node: protocol.Node{ID: "n3",
				Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 4096}, PortRange: protocol.PortRange{Lo: 1, Hi: 100}}})
			sp := spec(func(s *protocol.Spec) {
				s.Update.MinHealthyTime = 0
				s.Update.HealthyDeadline = protocol.Duration(time.Hour)
			})
			f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Replicas: 2, Spec: sp}})
			id := "acme/crm"
			startWorker(t, store, func(ctx context.Context, p *state.Plan) (uint64, error) {
				return f.Commit(state.CmdPlanApply, p)
			})
			waitFor(t, store, "two replicas placed", func(snap *state.Snapshot) (bool, string) {
				live := liveOf(snap, id)
				return len(live) == 2 && live[0].Node != "" && live[1].Node != "", describe(live)
			})
			live := liveOf(store.Snapshot(), id)
			f.makeHealthy(t, live)
			if settledFirst {
				waitFor(t, store, "version 1 stable", func(snap *state.Snapshot) (bool, string) {
					return snap.Instance(id).StableVersion == 1, describe(liveOf(snap, id))
				})
			}
			f.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: live[0].Node, Up: false}}})
			waitFor(t, store, "deployment successful, two healthy replicas, no evaluation left", func(snap *state.Snapshot) (bool, string) {
				live := liveOf(snap, id)
				f.makeHealthy(t, live)
				d := snap.Instance(id).Deployment
				healthy := 0
				for _, r := range live {
					if r.State == protocol.ReplicaHealthy {
						healthy++
					}
				}
				ok := d != nil && d.State == protocol.DeploymentSuccessful && healthy == 2 && len(live) == 2 && len(snap.Evals()) == 0
				return ok, fmt.Sprintf("deployment %+v, replicas %s, %d evaluations", d, describe(live), len(snap.Evals()))
			})
		})
	}
}

// A plan that places a replica on a node that goes down before the plan
// commits: the FSM sends the replica back to wait and keeps the
// evaluation, and the worker places it again at once, not at the plan's
// own retry time (here the first deployment's healthy deadline, an hour).
func TestWorkerPlacesAgainWhatTheFSMSentBack(t *testing.T) {
	f := newSerialFSM(t)
	store := f.Store
	f.tenantAndTwoNodes()
	sp := spec(func(s *protocol.Spec) { s.Update.HealthyDeadline = protocol.Duration(time.Hour) })
	var downed atomic.Bool
	startWorker(t, store, func(ctx context.Context, p *state.Plan) (uint64, error) {
		if len(p.Place) == 1 && p.Place[0].Node == "n1" && downed.CompareAndSwap(false, true) {
			// The node the plan chose goes down between its making and
			// its commit.
			f.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false}}})
		}
		return f.Commit(state.CmdPlanApply, p)
	})
	// n1 and n2 are alike: the plan chooses n1, the first in id order.
	f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Replicas: 1, Spec: sp}})
	waitFor(t, store, "the replica placed on n2 after n1 went down", func(snap *state.Snapshot) (bool, string) {
		live := liveOf(snap, "acme/crm")
		return downed.Load() && len(live) == 1 && live[0].Node == "n2", describe(live)
	})
}

// A trigger that arrives while a plan is made (a second node of the
// instance lost between the evaluation's read and the plan's commit) is
// kept by the FSM, whose evaluation then has that trigger's index, below
// the plan's own. The worker evaluates it at once, even when the plan asks
// for a retry at its deployment's healthy deadline (an hour here): a fleet
// that lost 1,000 of 10,000 hosts in waves had replicas wait the
// deadline, five minutes, for their replacement.
func TestWorkerEvaluatesATriggerThatCameDuringItsPlan(t *testing.T) {
	f := newSerialFSM(t)
	store := f.Store
	f.tenantAndTwoNodes()
	for _, n := range []string{"n3", "n4"} {
		f.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h" + n, Node: protocol.Node{ID: n,
			Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 4096}, PortRange: protocol.PortRange{Lo: 1, Hi: 100}}})
	}
	sp := spec(func(s *protocol.Spec) { s.Update.HealthyDeadline = protocol.Duration(time.Hour) })
	id := "acme/crm"
	var lostSecond atomic.Bool
	startWorker(t, store, func(ctx context.Context, p *state.Plan) (uint64, error) {
		for _, r := range p.Place {
			if r.Node != "" && r.Node != "n1" && r.Node != "n2" && lostSecond.CompareAndSwap(false, true) {
				// The first replacement's plan is made; before it
				// commits, the instance's other node goes down.
				f.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n2", Up: false}}})
			}
		}
		return f.Commit(state.CmdPlanApply, p)
	})
	f.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Replicas: 2, Spec: sp}})
	waitFor(t, store, "two replicas placed on n1 and n2", func(snap *state.Snapshot) (bool, string) {
		live := liveOf(snap, id)
		return len(live) == 2 && live[0].Node != "" && live[1].Node != "" && live[0].Node != "n3" && live[1].Node != "n3", describe(live)
	})
	f.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false}}})
	waitFor(t, store, "both lost replicas replaced off n1 and n2", func(snap *state.Snapshot) (bool, string) {
		live := liveOf(snap, id)
		placed := 0
		for _, r := range live {
			if r.Node != "" && r.Node != "n1" && r.Node != "n2" {
				placed++
			}
		}
		return lostSecond.Load() && placed == 2 && len(live) == 2, describe(live)
	})
}
