package scheduler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// A replica of the new version that turned healthy within the healthy
// deadline has met it ("not healthy within healthy_deadline of its
// placement"): a later flap of its health check while the deployment
// still rolls the other replicas does not fail (roll back) the deployment,
// as it did when failure() measured it against the deadline again.
func TestAReplicaHealthyOnceMetItsDeadline(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 4, spec())
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.AutoRollback = true }))
	h.settle()
	var first string
	for _, r := range h.live(id) {
		if r.Version == 2 {
			first = r.ID
		}
	}
	// The roll goes on as it should: each new replica healthy at once.
	for range 3 {
		h.makeHealthy(id)
		h.settle()
		h.Advance(20 * time.Second)
		h.settle()
	}
	if d := h.instance(id).Deployment; d.State != protocol.DeploymentRunning {
		t.Fatalf("deployment %+v before the flap, want still running", d)
	}
	// 60s after its placement, the first new replica's check fails once.
	h.report(protocol.ReplicaUnhealthy, first)
	h.settle()
	in := h.instance(id)
	for _, r := range h.Snapshot().Replicas(id) {
		t.Logf("%s v%d %s %s created %s healthy since %s", r.ID, r.Version, r.Desired, r.State, r.CreatedAt.Format("15:04:05"), r.HealthySince.Format("15:04:05"))
	}
	t.Logf("now %s deployment %+v", h.Now().Format("15:04:05"), in.Deployment)
	if d := in.Deployment; in.Version != 2 || d.ToVersion != 2 || d.State == protocol.DeploymentFailed || d.State == protocol.DeploymentRolledBack {
		t.Fatalf("a replica healthy within the deadline, later unhealthy once, ended the deployment: version %d, %s: %s", in.Version, d.State, d.Message)
	}
}

// healthy_deadline runs "from its placement" (deployment.go, DESIGN):
// a replica of the new version that waited for a node is measured from
// its placement, not its creation: it was measured from its creation,
// and the deployment failed (rolled back) seconds after it was placed.
func TestTheHealthyDeadlineRunsFromPlacement(t *testing.T) {
	h := newHarness(t)
	h.node("n1", 4000, 4096)
	id := h.running("crm", 1, spec())
	// The new version is too large to fit beside the old replica.
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Resources.CPUMillis = 3800; s.Update.AutoRollback = true }))
	h.settle()
	if live := h.live(id); len(live) != 2 || live[1].Node != "" {
		t.Fatalf("want the new replica waiting for a node: %+v", live)
	}
	h.Advance(50 * time.Second)
	h.node("n2", 4000, 4096) // capacity arrives
	h.settle()
	var placed *protocol.Replica
	for _, r := range h.live(id) {
		if r.Version == 2 {
			placed = r
		}
	}
	if placed == nil || placed.Node != "n2" {
		t.Fatalf("new replica %+v, want it placed on n2", placed)
	}
	h.Advance(15 * time.Second) // 15s after its placement, within the 1m deadline
	h.settle()
	in := h.instance(id)
	if in.Version != 2 || in.Deployment.ToVersion != 2 || in.Deployment.State != protocol.DeploymentRunning {
		t.Fatalf("15s after the replica's placement: version %d, deployment %s: %s", in.Version, in.Deployment.State, in.Deployment.Message)
	}
}

// An operator promotes the canaries while a plan made just before is on
// its way through Raft (the canary has just settled: the worker's retry
// fires and notes "waiting for promotion"). The promotion, answered 200,
// stays: planApply wrote the plan's copy of the deployment over it, and
// the roll waited for a promotion that had already come.
func TestAPlanInFlightKeepsAPromotion(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 3, spec())
	tenant, name, _ := strings.Cut(id, "/")
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.Canaries = 1 }))
	h.settle()
	h.makeHealthy(id)
	h.settle()
	h.Advance(10 * time.Second) // the canary has settled: the evaluation is due
	snap := h.Snapshot()
	p := Schedule(snap, snap.Eval(id), h.Now(), h.ids)
	if p.Deployment == nil {
		t.Fatal("the plan does not change the deployment: no race to show")
	}
	h.Must(state.CmdDeploymentPromote, state.DeploymentPromote{Tenant: tenant, Name: name})
	h.Must(state.CmdPlanApply, p) // committed right after the promotion
	h.settle()
	in := h.instance(id)
	if !in.Deployment.Promoted {
		t.Errorf("promotion undone by the plan in flight: deployment %+v", in.Deployment)
	}
	if got := versions(h.live(id)); slices.Equal(got, []uint64{1, 1, 1, 2}) {
		t.Errorf("versions %v: the roll still waits for promotion", got)
	}
}
