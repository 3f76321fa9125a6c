package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

func threeNodes(h *harness) {
	for _, n := range []string{"n1", "n2", "n3"} {
		h.node(n, 4000, 4096)
	}
}

func (h *harness) instance(id string) *protocol.Instance {
	h.t.Helper()
	in := h.Snapshot().Instance(id)
	if in == nil {
		h.t.Fatalf("instance %s is gone", id)
	}
	return in
}

// running creates an instance of n replicas and makes them healthy for
// longer than their minimum healthy time.
func (h *harness) running(name string, n int, sp protocol.Spec) string {
	h.t.Helper()
	id := h.create(name, n, sp)
	h.settle()
	h.makeHealthy(id)
	h.settle()
	h.Advance(time.Minute)
	h.settle()
	if got := h.instance(id).StableVersion; got != 1 {
		h.t.Fatalf("stable version = %d after all replicas are healthy, want 1", got)
	}
	return id
}

func TestCreatePlacesAcrossNodes(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.create("crm", 3, spec())
	h.settle()

	live := h.live(id)
	if len(live) != 3 {
		t.Fatalf("%d replicas, want 3", len(live))
	}
	if got := nodesOf(live); len(got) != 3 {
		t.Fatalf("replicas on nodes %v, want one on each", got)
	}
	for _, r := range live {
		if r.State != protocol.ReplicaPending || r.Version != 1 || r.Desired != protocol.DesiredRun {
			t.Fatalf("replica %+v", r)
		}
	}
	placed := h.events(id, EventPlaced)
	if len(placed) != 3 || !strings.Contains(placed[0], "placed on node") || !strings.Contains(placed[0], "3 of 3 nodes feasible") {
		t.Fatalf("placement events %q", placed)
	}
	// The first version is a deployment too, so that its healthy deadline
	// holds: the evaluation waits for it.
	if d := h.instance(id).Deployment; d == nil || d.State != protocol.DeploymentRunning || d.FromVersion != 0 || d.ToVersion != 1 {
		t.Fatalf("deployment %+v, want the first version's, running", d)
	}
	if h.instance(id).StableVersion != 0 {
		t.Fatal("stable before any replica is healthy")
	}
	h.makeHealthy(id)
	h.settle()
	if got := h.instance(id).StableVersion; got != 1 {
		t.Fatalf("stable version %d, want 1", got)
	}
	if d := h.instance(id).Deployment; d.State != protocol.DeploymentSuccessful {
		t.Fatalf("deployment %+v once every replica is healthy", d)
	}
	if h.Snapshot().Eval(id) != nil {
		t.Fatal("the evaluation is still pending")
	}
}

// The first version's deployment fails when its replicas are not healthy
// within the healthy deadline; there is nothing to roll back to, and the
// replicas stay.
func TestFirstVersionFailsAtHealthyDeadline(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.create("crm", 2, spec(func(s *protocol.Spec) { s.Update.AutoRollback = true }))
	h.settle()
	h.report(protocol.ReplicaUnhealthy, ids(h.live(id))...)
	h.settle()
	h.Advance(time.Minute)
	h.settle()
	in := h.instance(id)
	if d := in.Deployment; d == nil || d.State != protocol.DeploymentFailed || !strings.Contains(d.Message, "not healthy within 1m0s") {
		t.Fatalf("deployment %+v, want failed at the healthy deadline", d)
	}
	if in.Version != 1 || len(h.live(id)) != 2 {
		t.Fatalf("version %d with %d replicas, want version 1 and its replicas", in.Version, len(h.live(id)))
	}
	ev := h.events(id, EventDeployment)
	if len(ev) != 2 || !strings.Contains(ev[0], "started: version 1") || !strings.Contains(ev[1], "(version 1) failed") {
		t.Fatalf("deployment events %q", ev)
	}
}

func TestScale(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.create("crm", 3, spec())
	h.settle()
	first := h.live(id)[0].ID

	h.scale(id, 5)
	h.settle()
	live := h.live(id)
	if len(live) != 5 {
		t.Fatalf("%d replicas after scaling to 5", len(live))
	}
	for n, c := range nodesOf(live) {
		if c > 2 {
			t.Fatalf("node %s has %d replicas while others have fewer", n, c)
		}
	}

	h.scale(id, 1)
	h.settle()
	live = h.live(id)
	if len(live) != 1 || live[0].ID != first {
		t.Fatalf("after scaling to 1: %v, want the oldest, %s", ids(live), first)
	}
	stopped := 0
	for _, r := range h.Snapshot().Replicas(id) {
		if r.Desired == protocol.DesiredStop {
			stopped++
			if r.Message != "scaled down to 1" {
				t.Fatalf("stopped replica's message %q", r.Message)
			}
		}
	}
	if stopped != 4 {
		t.Fatalf("%d replicas stopped, want 4", stopped)
	}

	h.scale(id, 0)
	h.settle()
	if live := h.live(id); len(live) != 0 {
		t.Fatalf("replicas still wanted after scaling to 0: %v", ids(live))
	}
}

func TestStopStart(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())

	h.lifecycle(id, state.ActionStop)
	h.settle()
	if live := h.live(id); len(live) != 0 {
		t.Fatalf("replicas still wanted after stop: %v", ids(live))
	}
	if in := h.instance(id); in.Replicas != 3 || !in.Stopped {
		t.Fatalf("stop changed the instance: replicas %d stopped %v", in.Replicas, in.Stopped)
	}

	h.lifecycle(id, state.ActionStart)
	h.settle()
	live := h.live(id)
	if len(live) != 3 || len(nodesOf(live)) != 3 {
		t.Fatalf("after start: %d replicas on %v", len(live), nodesOf(live))
	}
}

func TestSuspendedTenantStops(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 2, spec())
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantSuspended}})
	h.settle()
	if live := h.live(id); len(live) != 0 {
		t.Fatalf("replicas of a suspended tenant still wanted: %v", ids(live))
	}
}

func TestPendingUntilANodeFits(t *testing.T) {
	h := newHarness(t)
	h.node("small", 4000, 1024)
	id := h.create("big", 1, spec(func(s *protocol.Spec) { s.Resources.MemoryMB = 2048 }))
	h.settle()

	live := h.live(id)
	if len(live) != 1 || live[0].Node != "" || live[0].State != protocol.ReplicaPending {
		t.Fatalf("want one pending replica, got %+v", live)
	}
	want := "no node is large enough: 1 node: 1 with less than 2048 MB in all"
	if live[0].Message != want {
		t.Fatalf("message %q, want %q", live[0].Message, want)
	}
	// Evaluating again says nothing new: nothing will change until
	// capacity appears (or the healthy deadline passes).
	h.scale(id, 1)
	h.settle()
	if ev := h.events(id, EventPending); len(ev) != 1 || !strings.Contains(ev[0], want) {
		t.Fatalf("pending events %q, want one", ev)
	}

	h.node("large", 4000, 8192)
	if h.Snapshot().Eval(id) == nil {
		t.Fatal("a new node did not trigger an evaluation of the waiting instance")
	}
	h.settle()
	got := h.live(id)
	if len(got) != 1 || got[0].ID != live[0].ID || got[0].Node != "large" || got[0].Message != "" {
		t.Fatalf("after a node fits: %+v", got[0])
	}
	if got[0].CreateIndex != live[0].CreateIndex {
		t.Fatal("placing a waiting replica changed its creation index")
	}
}

func TestCapacityFreedByAnotherInstance(t *testing.T) {
	h := newHarness(t)
	h.node("n1", 1000, 1024)
	a := h.create("a", 1, spec(func(s *protocol.Spec) { s.Resources.MemoryMB = 1024 }))
	h.settle()
	b := h.create("b", 1, spec(func(s *protocol.Spec) { s.Resources.MemoryMB = 1024 }))
	h.settle()
	if r := h.live(b)[0]; r.Node != "" {
		t.Fatalf("b placed on a full node: %+v", r)
	}
	h.scale(a, 0)
	h.settle()
	if r := h.live(b)[0]; r.Node != "n1" {
		t.Fatalf("b not placed once a stopped: %+v", r)
	}
}

// rollTo runs a deployment or a restart to its end: each round it makes
// new replicas healthy and lets min_healthy_time pass, and it checks that
// the healthy replicas never drop below want and at most maxNew replicas
// are not yet healthy at any time.
func (h *harness) rollTo(id string, want, maxNew int, done func(*protocol.Instance) bool) {
	h.t.Helper()
	for range 30 {
		h.settle()
		live := h.live(id)
		if got := countHealthy(live); got < want {
			h.t.Fatalf("only %d healthy replicas during the roll, want at least %d", got, want)
		}
		if got := len(unhealthyIDs(live)); got > maxNew {
			h.t.Fatalf("%d new replicas at once, want at most %d", got, maxNew)
		}
		if done(h.instance(id)) {
			return
		}
		h.makeHealthy(id)
		h.settle()
		h.Advance(10 * time.Second)
	}
	h.t.Fatalf("the roll did not end")
}

func v2(s *protocol.Spec) { s.Command = []string{"/bin/app", "--v2"} }

func TestDeploymentCreateBeforeDestroy(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	old := ids(h.live(id))

	h.update(id, spec(v2))
	h.settle()
	in := h.instance(id)
	d := in.Deployment
	if d == nil || d.State != protocol.DeploymentRunning || d.FromVersion != 1 || d.ToVersion != 2 {
		t.Fatalf("deployment %+v", d)
	}
	if st := h.Snapshot().InstanceStatus(in); st.State != protocol.InstanceDeploying || st.Deployment == nil {
		t.Fatalf("status %+v", st)
	}
	live := h.live(id)
	if got := versions(live); !slices.Equal(got, []uint64{1, 1, 1, 2}) {
		t.Fatalf("versions %v, want one new replica beside the three old ones", got)
	}

	// Healthy, but not for min_healthy_time yet: nothing old stops.
	h.makeHealthy(id)
	h.settle()
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 1, 2}) {
		t.Fatalf("versions %v: an old replica stopped before the new one was healthy for long enough", got)
	}
	h.Advance(10 * time.Second)
	h.settle()
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 2, 2}) {
		t.Fatalf("versions %v, want one old replaced and the next new one placed", got)
	}

	h.rollTo(id, 3, 1, func(in *protocol.Instance) bool { return in.Deployment.State != protocol.DeploymentRunning })
	in = h.instance(id)
	if in.Deployment.State != protocol.DeploymentSuccessful || in.StableVersion != 2 {
		t.Fatalf("deployment %+v, stable %d", in.Deployment, in.StableVersion)
	}
	live = h.live(id)
	if got := versions(live); !slices.Equal(got, []uint64{2, 2, 2}) || countHealthy(live) != 3 {
		t.Fatalf("after the deployment: versions %v, %d healthy", got, countHealthy(live))
	}
	for _, r := range h.Snapshot().Replicas(id) {
		if slices.Contains(old, r.ID) && (r.Desired != protocol.DesiredStop || r.Message != "replaced by version 2") {
			t.Fatalf("old replica %+v", r)
		}
	}
	// The first two are the first version's.
	if ev := h.events(id, EventDeployment); len(ev) != 4 || !strings.Contains(ev[2], "started: version 1 -> 2") || !strings.Contains(ev[3], "succeeded") {
		t.Fatalf("deployment events %q", ev)
	}
}

func TestDeploymentMaxParallel(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 4, spec())
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.MaxParallel = 2 }))
	h.settle()
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 1, 1, 2, 2}) {
		t.Fatalf("versions %v, want two new at once", got)
	}
	h.rollTo(id, 4, 2, func(in *protocol.Instance) bool { return in.Deployment.State == protocol.DeploymentSuccessful })
}

func TestDeploymentCanariesPromoted(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	tenant, name, _ := strings.Cut(id, "/")
	if err := h.Apply(state.CmdDeploymentPromote, state.DeploymentPromote{Tenant: tenant, Name: name}); !isCode(err, protocol.CodeConflict) {
		t.Fatalf("promote without a deployment: %v, want a conflict", err)
	}

	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.Canaries = 1 }))
	h.settle()
	live := h.live(id)
	if got := versions(live); !slices.Equal(got, []uint64{1, 1, 1, 2}) {
		t.Fatalf("versions %v, want one canary", got)
	}
	canary := live[3]
	if !canary.Canary {
		t.Fatalf("new replica not marked canary: %+v", canary)
	}
	h.makeHealthy(id)
	h.settle()
	h.Advance(time.Minute)
	h.settle()
	in := h.instance(id)
	if in.Deployment.Promoted || !strings.Contains(in.Deployment.Message, "waiting for promotion") {
		t.Fatalf("deployment %+v", in.Deployment)
	}
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 1, 2}) {
		t.Fatalf("versions %v: the roll went on before promotion", got)
	}
	if ev := h.events(id, EventDeployment); !strings.Contains(ev[len(ev)-1], "waiting for promotion") {
		t.Fatalf("events %q", ev)
	}

	if err := h.Apply(state.CmdDeploymentPromote, state.DeploymentPromote{Tenant: tenant, Name: name, ID: "other"}); !isCode(err, protocol.CodeConflict) {
		t.Fatalf("promote of another deployment: %v, want a conflict", err)
	}
	h.Must(state.CmdDeploymentPromote, state.DeploymentPromote{Tenant: tenant, Name: name, ID: in.Deployment.ID})
	h.settle()
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 2, 2}) {
		t.Fatalf("versions %v after promotion, want one old replaced by the canary and one more new", got)
	}
	h.rollTo(id, 3, 1, func(in *protocol.Instance) bool { return in.Deployment.State == protocol.DeploymentSuccessful })
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{2, 2, 2}) {
		t.Fatalf("versions %v", got)
	}
}

func TestDeploymentCanariesAutoPromote(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 2, spec())
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.Canaries = 2; s.Update.AutoPromote = true }))
	h.settle()
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 2, 2}) {
		t.Fatalf("versions %v, want two canaries", got)
	}
	h.makeHealthy(id)
	h.settle()
	h.Advance(10 * time.Second)
	h.settle()
	in := h.instance(id)
	if !in.Deployment.Promoted {
		t.Fatalf("not promoted automatically: %+v", in.Deployment)
	}
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{2, 2}) {
		t.Fatalf("versions %v: healthy canaries replace the old replicas", got)
	}
	if in.Deployment.State != protocol.DeploymentSuccessful || in.StableVersion != 2 {
		t.Fatalf("deployment %+v stable %d", in.Deployment, in.StableVersion)
	}
}

func TestDeploymentCanaryPhaseReplacesLostWithOldVersion(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 2, spec())
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.Canaries = 1 }))
	h.settle()
	var lost *protocol.Replica
	for _, r := range h.live(id) {
		if r.Version == 1 {
			lost = r
		}
	}
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: lost.Node}}})
	h.settle()
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{1, 1, 2}) {
		t.Fatalf("versions %v: a lost replica is replaced by the version the canary has not replaced yet", got)
	}
}

func isCode(err error, code protocol.Code) bool {
	var e *protocol.Error
	return errors.As(err, &e) && e.Code == code
}

func TestDeploymentRollsBack(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	old := ids(h.live(id))

	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.AutoRollback = true }))
	h.settle()
	var bad string
	for _, r := range h.live(id) {
		if r.Version == 2 {
			bad = r.ID
		}
	}
	h.report(protocol.ReplicaRunning, bad)
	h.settle()
	h.Advance(59 * time.Second)
	h.settle()
	if d := h.instance(id).Deployment; d.State != protocol.DeploymentRunning {
		t.Fatalf("deployment failed before its deadline: %+v", d)
	}
	h.Advance(time.Second)
	h.settle()

	in := h.instance(id)
	if in.Version != 3 || in.Spec.Command[len(in.Spec.Command)-1] == "--v2" {
		t.Fatalf("not rolled back: version %d spec %v", in.Version, in.Spec.Command)
	}
	d := in.Deployment
	if !d.Rollback || d.ToVersion != 3 || d.State != protocol.DeploymentSuccessful {
		t.Fatalf("rollback deployment %+v", d)
	}
	if in.StableVersion != 3 {
		t.Fatalf("stable version %d, want 3", in.StableVersion)
	}
	// The old replicas run the spec rolled back to: they stay.
	if got := ids(h.live(id)); !slices.Equal(got, old) {
		t.Fatalf("replicas %v, want the old ones %v", got, old)
	}
	if r := h.Snapshot().Replica(bad); r.Desired != protocol.DesiredStop {
		t.Fatalf("failing replica still wanted: %+v", r)
	}
	ev := strings.Join(h.events(id, EventDeployment), "\n")
	if !strings.Contains(ev, "not healthy within 1m0s") || !strings.Contains(ev, "rolling back to version 1") {
		t.Fatalf("deployment events:\n%s", ev)
	}
}

func TestStaleRollbackDoesNotRevertANewerUpdate(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.AutoRollback = true }))
	h.settle()
	h.Advance(time.Hour)
	snap := h.Snapshot()
	p := Schedule(snap, snap.Eval(id), h.Now(), h.ids)
	if p.Rollback != 1 {
		t.Fatalf("plan rolls back to %d, want 1", p.Rollback)
	}
	v3 := spec(func(s *protocol.Spec) { s.Command = []string{"/bin/app", "--v3"} })
	h.update(id, v3)
	h.Must(state.CmdPlanApply, p)
	in := h.instance(id)
	if in.Version != 3 || in.Spec.Command[1] != "--v3" {
		t.Fatalf("a plan made for version 2 changed version 3: now version %d, %v", in.Version, in.Spec.Command)
	}
	h.rollTo(id, 3, 1, func(in *protocol.Instance) bool { return in.Deployment.State == protocol.DeploymentSuccessful })
	if in := h.instance(id); in.Deployment.Rollback || in.Deployment.ToVersion != 3 || in.StableVersion != 3 {
		t.Fatalf("deployment %+v stable %d", in.Deployment, in.StableVersion)
	}
}

func TestDeploymentFailsWithoutRollback(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	h.update(id, spec(v2))
	h.settle()
	var bad string
	for _, r := range h.live(id) {
		if r.Version == 2 {
			bad = r.ID
		}
	}
	h.report(protocol.ReplicaFailed, bad)
	h.settle()
	in := h.instance(id)
	if in.Deployment.State != protocol.DeploymentFailed || !strings.Contains(in.Deployment.Message, "failed on node") {
		t.Fatalf("deployment %+v", in.Deployment)
	}
	h.Advance(time.Hour)
	h.settle()
	live := h.live(id)
	if got := versions(live); !slices.Equal(got, []uint64{1, 1, 1}) || countHealthy(live) != 3 {
		t.Fatalf("after a failed deployment: versions %v, %d healthy; want the old ones kept", got, countHealthy(live))
	}
	if in := h.instance(id); in.Version != 2 || in.StableVersion != 1 {
		t.Fatalf("version %d stable %d", in.Version, in.StableVersion)
	}

	// The next update deploys again.
	h.update(id, spec(func(s *protocol.Spec) { s.Command = []string{"/bin/app", "--v3"} }))
	h.rollTo(id, 3, 1, func(in *protocol.Instance) bool { return in.Deployment.State == protocol.DeploymentSuccessful })
	if got := versions(h.live(id)); !slices.Equal(got, []uint64{3, 3, 3}) {
		t.Fatalf("versions %v", got)
	}
}

func TestRestartRolls(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	old := ids(h.live(id))
	first := h.instance(id).Deployment
	h.lifecycle(id, state.ActionRestart)
	epoch := h.instance(id).RestartEpoch
	h.rollTo(id, 3, 1, func(in *protocol.Instance) bool {
		for _, r := range h.live(id) {
			if r.Epoch != epoch || r.State != protocol.ReplicaHealthy {
				return false
			}
		}
		return true
	})
	live := h.live(id)
	if len(live) != 3 {
		t.Fatalf("%d replicas after restart", len(live))
	}
	for _, r := range live {
		if slices.Contains(old, r.ID) || r.Version != 1 {
			t.Fatalf("replica %+v after restart", r)
		}
	}
	if d := h.instance(id).Deployment; d == nil || *d != *first {
		t.Fatalf("a restart changed the deployment: %+v, was %+v", d, first)
	}
}

func TestDrain(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	var drained *protocol.Replica
	for _, r := range h.live(id) {
		if r.Node == "n1" {
			drained = r
		}
	}
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1", Drain: &protocol.DrainSpec{StartedAt: h.Now(), Deadline: h.Now().Add(time.Hour)}})
	h.settle()
	live := h.live(id)
	if len(live) != 4 || nodesOf(live)["n1"] != 1 {
		t.Fatalf("replicas on %v, want a replacement beside the draining one", nodesOf(live))
	}
	h.makeHealthy(id)
	h.settle()
	if len(h.live(id)) != 4 {
		t.Fatal("the draining replica stopped before its replacement was healthy long enough")
	}
	h.Advance(10 * time.Second)
	h.settle()
	live = h.live(id)
	if len(live) != 3 || nodesOf(live)["n1"] != 0 || countHealthy(live) != 3 {
		t.Fatalf("after the drain: %d replicas on %v", len(live), nodesOf(live))
	}
	if r := h.Snapshot().Replica(drained.ID); r.Desired != protocol.DesiredStop || !strings.Contains(r.Message, "draining") {
		t.Fatalf("drained replica %+v", r)
	}
	// A draining node gets nothing new.
	h.scale(id, 6)
	h.settle()
	if nodesOf(h.live(id))["n1"] != 0 {
		t.Fatal("a replica was placed on a draining node")
	}
}

func TestDrainDeadline(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 2, spec(func(s *protocol.Spec) { s.Update.MaxParallel = 1 }))
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n1", Drain: &protocol.DrainSpec{StartedAt: h.Now(), Deadline: h.Now().Add(5 * time.Minute)}})
	h.settle()
	if len(h.live(id)) != 3 {
		t.Fatalf("no replacement placed: %v", nodesOf(h.live(id)))
	}
	// The replacement never gets healthy; at the deadline the drain stops
	// what is left anyway.
	h.Advance(5 * time.Minute)
	h.settle()
	live := h.live(id)
	if len(live) != 2 || nodesOf(live)["n1"] != 0 {
		t.Fatalf("after the deadline: %d replicas on %v", len(live), nodesOf(live))
	}
}

func TestLostReplicaReplacedNotDuplicated(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 2, spec())
	var lost *protocol.Replica
	for _, r := range h.live(id) {
		if r.Node == "n1" {
			lost = r
		}
	}
	if lost == nil {
		t.Fatalf("no replica on n1: %v", nodesOf(h.live(id)))
	}
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1"}}})
	h.settle()
	live := h.live(id)
	if len(live) != 2 || nodesOf(live)["n1"] != 0 || len(nodesOf(live)) != 2 {
		t.Fatalf("after n1 went down: %d replicas on %v", len(live), nodesOf(live))
	}
	if r := h.Snapshot().Replica(lost.ID); r.Desired != protocol.DesiredStop || r.State != protocol.ReplicaLost {
		t.Fatalf("lost replica %+v", r)
	}

	// n1 comes back and reports the replica still running: it is stopped,
	// never counted again.
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: true}}})
	h.report(protocol.ReplicaRunning, lost.ID)
	h.settle()
	if live := h.live(id); len(live) != 2 || slices.Contains(ids(live), lost.ID) {
		t.Fatalf("after n1 came back: %v", ids(live))
	}
	if r := h.Snapshot().Replica(lost.ID); r.Desired != protocol.DesiredStop {
		t.Fatalf("returned replica %+v", r)
	}
}

func TestFailedReplicaRescheduledWithBackoff(t *testing.T) {
	h := newHarness(t)
	h.node("n1", 4000, 4096)
	h.node("n2", 4000, 4096)
	id := h.create("crm", 1, spec())
	h.settle()
	first := h.live(id)[0]

	h.report(protocol.ReplicaFailed, first.ID)
	h.settle()
	live := h.live(id)
	if len(live) != 1 || live[0].ID == first.ID || live[0].Node != "" || !strings.Contains(live[0].Message, "backoff of 5s") {
		t.Fatalf("want a replacement waiting 5s, got %+v", live)
	}
	// The agent stops the failed replica it was told to stop and says so:
	// it stays a failure, and the replacement keeps waiting.
	h.report(protocol.ReplicaStopped, first.ID)
	h.settle()
	if r := h.Snapshot().Replica(first.ID); r.State != protocol.ReplicaFailed {
		t.Fatalf("the failed replica became %s once stopped", r.State)
	}
	if r := h.live(id)[0]; r.Node != "" {
		t.Fatalf("replacement placed on %s at once after the failed replica stopped", r.Node)
	}
	h.Advance(4 * time.Second)
	h.settle()
	if h.live(id)[0].Node != "" {
		t.Fatal("placed before the backoff ended")
	}
	h.Advance(time.Second)
	h.settle()
	second := h.live(id)[0]
	if second.Node == "" || second.Node == first.Node {
		t.Fatalf("replacement on %q, want the other node than %s", second.Node, first.Node)
	}

	// A second failure waits twice as long.
	h.report(protocol.ReplicaFailed, second.ID)
	h.settle()
	if r := h.live(id)[0]; !strings.Contains(r.Message, "backoff of 10s") {
		t.Fatalf("second replacement: %+v", r)
	}
}

func TestPlanForDeletedInstancePlacesNothing(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.create("crm", 2, spec())
	snap := h.Snapshot()
	p := Schedule(snap, snap.Eval(id), h.Now(), h.ids)
	if len(p.Place) != 2 {
		t.Fatalf("plan places %d", len(p.Place))
	}
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "crm"})
	h.Must(state.CmdPlanApply, p)
	if rs := h.Snapshot().Replicas(id); len(rs) != 0 {
		t.Fatalf("a plan made before the delete placed %d replicas", len(rs))
	}
}

func TestEnvironmentConstraints(t *testing.T) {
	h := newHarness(t)
	h.node("eu1", 4000, 4096, func(n *protocol.Node) { n.Region = "eu" })
	h.node("us1", 4000, 4096, func(n *protocol.Node) { n.Region = "us" })
	h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{
		Name: protocol.DefaultEnvironment, Constraints: protocol.Constraints{Region: "us"}}})
	id := h.create("crm", 2, spec())
	h.settle()
	if got := nodesOf(h.live(id)); got["us1"] != 2 {
		t.Fatalf("replicas on %v, want both in the environment's region", got)
	}
}

// A replica that exits cleanly under a policy that does not restart it is
// finished: it is neither restarted by the scheduler nor replaced, so a
// command that exits 0 does not run in a loop.
func TestCleanExitUnderNeverIsFinished(t *testing.T) {
	for _, policy := range []string{protocol.RestartNever, protocol.RestartOnFailure} {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t)
			h.node("n1", 4000, 4096)
			id := h.create("job", 1, spec(func(s *protocol.Spec) { s.Restart.Policy = policy }))
			h.settle()
			first := h.live(id)[0]
			h.report(protocol.ReplicaStopped, first.ID)
			h.settle()
			all := h.Snapshot().Replicas(id)
			if len(all) != 1 || all[0].ID != first.ID || all[0].Desired != protocol.DesiredRun {
				t.Fatalf("want the finished replica alone, still wanted; got %d replicas: %+v", len(all), all)
			}
		})
	}
}

// A tenant's region binds every instance of it: replicas are placed there
// only, and an instance already running elsewhere moves there when the
// region is set (residency, API.md "Tenants gain region").
func TestTenantRegionIsResidency(t *testing.T) {
	h := newHarness(t)
	h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: protocol.DefaultEnvironment}})
	h.node("eu1", 4000, 4096, func(n *protocol.Node) { n.Region = "eu-west" })
	h.node("us1", 4000, 4096, func(n *protocol.Node) { n.Region = "us-east" })
	h.node("us2", 4000, 4096, func(n *protocol.Node) { n.Region = "us-east" })
	id := h.running("crm", 3, spec())
	if got := nodesOf(h.live(id)); got["us1"]+got["us2"] == 0 {
		t.Fatalf("replicas on %v: without a region the tenant's replicas spread over every region", got)
	}
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", Region: "eu-west"}})
	h.settle()
	if got := nodesOf(h.live(id)); got["eu1"] == 0 || got["us1"]+got["us2"] == 0 {
		t.Fatalf("replicas on %v: the move creates in eu-west before it stops elsewhere", got)
	}
	for range 5 { // max_parallel 1: one replica moves at a time
		h.makeHealthy(id)
		h.Advance(10 * time.Second)
		h.settle()
	}
	if got := nodesOf(h.live(id)); got["eu1"] != 3 || len(got) != 1 {
		t.Fatalf("replicas on %v after the tenant's region became eu-west, want all 3 on eu1", got)
	}
	// A constraint naming another region finds no node, and says why.
	other := h.create("far", 1, spec(func(s *protocol.Spec) { s.Constraints.Region = "us-east" }))
	h.settle()
	live := h.live(other)
	if len(live) != 1 || live[0].Node != "" || live[0].Message == "" {
		t.Fatalf("an instance constrained outside the tenant's region: %+v", live)
	}
}

// Replicas that reserve nothing cannot be told apart by bin-packing: they
// spread over the nodes with the fewest replicas instead of piling onto
// the first nodes by id, instance after instance.
func TestReplicasThatReserveNothingSpread(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5", "n6"} {
		h.node(id, 4000, 8192)
	}
	free := spec(func(s *protocol.Spec) { s.Resources = protocol.Resources{} })
	for _, name := range []string{"a", "b", "c"} {
		h.create(name, 2, free)
		h.settle()
	}
	var all []*protocol.Replica
	for _, name := range []string{"a", "b", "c"} {
		all = append(all, h.live(protocol.InstanceID("acme", name))...)
	}
	if got := nodesOf(all); len(got) != 6 {
		t.Fatalf("6 replicas that reserve nothing on 6 nodes: placed %v", got)
	}
}

// In a fleet too large to rank whole, a placement ranks only the first
// nodes that fit (pickFrom): the replicas of an instance still land on
// distinct nodes, spread over the zones however the node ids run, and
// each placement says how many nodes it looked at.
func TestLargeFleetRanksSomeNodes(t *testing.T) {
	for _, layout := range []string{"interleaved", "in blocks"} {
		t.Run(layout, func(t *testing.T) {
			h := newHarness(t)
			nodes := 3 * fullScan
			for i := range nodes {
				zone := i % 3
				if layout == "in blocks" {
					zone = i / fullScan // ids of a zone together, as "use1a-..." would be
				}
				h.node(fmt.Sprintf("n%04d", i), 4000, 4096, func(n *protocol.Node) {
					n.Labels = map[string]string{ZoneLabel: fmt.Sprintf("z%d", zone)}
				})
			}
			id := h.create("web", 9, spec())
			h.settle()
			snap := h.Snapshot()
			onNode, inZone := map[string]int{}, map[string]int{}
			for _, r := range liveOf(snap, id) {
				onNode[r.Node]++
				inZone[snap.Node(r.Node).Labels[ZoneLabel]]++
			}
			if len(onNode) != 9 {
				t.Fatalf("9 replicas on %d nodes: %v", len(onNode), onNode)
			}
			for _, z := range []string{"z0", "z1", "z2"} {
				if inZone[z] != 3 {
					t.Fatalf("replicas by zone: %v", inZone)
				}
			}
			placed := 0
			for _, e := range snap.Events(id) {
				if e.Type != EventPlaced {
					continue
				}
				placed++
				want := fmt.Sprintf("best of %d feasible nodes", maxCandidates)
				if !strings.Contains(e.Message, want) || !strings.Contains(e.Message, fmt.Sprintf("of %d looked at", nodes)) {
					t.Fatalf("placement message %q does not say it ranked %d of %d nodes", e.Message, maxCandidates, nodes)
				}
			}
			if placed != 9 {
				t.Fatalf("%d placement events, want 9", placed)
			}
		})
	}
}

// A replica lost while a rolling restart or a drain waits for its
// replacement to settle: the roll goes on when the replacement turns
// healthy (since log version 4 a replica that turns healthy makes an
// evaluation only while the scheduler waits for one; the old replicas
// still to be replaced are what it waits for).
func TestRollGoesOnAfterALossMidway(t *testing.T) {
	for _, roll := range []string{"restart", "drain"} {
		for _, loss := range []string{"failure", "node down"} {
			t.Run(roll+"/"+loss, func(t *testing.T) {
				h := newHarness(t)
				for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
					h.node(n, 4000, 4096)
				}
				id := h.create("web", 2, spec())
				h.settle()
				h.makeHealthy(id)
				h.Advance(time.Minute) // past min_healthy_time
				h.settle()
				if in := h.Snapshot().Instance(id); in.StableVersion != 1 {
					t.Fatalf("version 1 not stable: %+v", in.Deployment)
				}
				first := h.live(id)
				var drained string
				if roll == "restart" {
					h.lifecycle(id, state.ActionRestart)
				} else {
					drained = first[0].Node
					h.Must(state.CmdNodeDrain, state.NodeDrain{ID: drained, Drain: &protocol.DrainSpec{}})
				}
				h.settle()
				// The replica not yet replaced is lost.
				lost := first[len(first)-1]
				if loss == "failure" {
					h.report(protocol.ReplicaFailed, lost.ID)
				} else {
					h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: lost.Node, Up: false}}})
				}
				h.Advance(time.Minute) // past the failure's reschedule delay
				h.settle()
				for range 4 {
					h.makeHealthy(id)
					h.Advance(time.Minute)
					h.settle()
				}
				in := h.Snapshot().Instance(id)
				live := h.live(id)
				if len(live) != 2 {
					t.Fatalf("want 2 replicas running, got %s", describe(live))
				}
				for _, r := range live {
					if r.Epoch != in.RestartEpoch || r.Node == drained || r.State != protocol.ReplicaHealthy {
						t.Fatalf("the %s stopped midway: %s", roll, describe(live))
					}
				}
			})
		}
	}
}
