package rollout_test

import (
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/rollout"
	"github.com/drover-dev/drover/server/state"
)

// schedule runs the scheduler alone (no agent) until its plans change
// nothing.
func (w *world) schedule() {
	for range 50 {
		if !w.plan() {
			return
		}
	}
	w.t.Fatal("the scheduler keeps changing its mind")
}

// An upgrade whose deployment fails and rolls back: the instance must
// end rolled_back, and no longer claim the release it rolled back from:
// a rollback (state/plans.go) restores the product reference with the
// spec (it restored the spec alone), and the rollout sees the upgrade end
// also when the scheduler started the rollback's deployment (ToVersion =
// ri.Version+1) before the controller looked.
func TestARollbackRestoresItsRelease(t *testing.T) {
	w := newWorld(t)
	w.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: "crm", DefaultChannel: "stable",
		Template: protocol.ProductTemplate{Ports: []string{"http"}, Update: protocol.UpdateStrategy{AutoRollback: true}}}})
	ro, err := rollout.New(w.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 1,
		Selector: protocol.RolloutSelector{Tenants: []string{"t00000"}, Environments: []string{"staging"}}}, "r1", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.Must(state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	if got := w.step("r1"); got.Counts.Upgrading != 1 {
		t.Fatalf("first step: %+v", got.Counts)
	}
	id := "t00000/crm-0"
	w.schedule()
	var bad []protocol.ReplicaReport
	for _, r := range w.Snapshot().Replicas(id) {
		if r.Desired == protocol.DesiredRun && r.Version == 2 {
			bad = append(bad, protocol.ReplicaReport{ID: r.ID, State: protocol.ReplicaFailed})
		}
	}
	if len(bad) == 0 {
		t.Fatal("no replica of version 2 placed")
	}
	w.Must(state.CmdReplicaReports, state.ReplicaReports{Reports: []state.NodeReport{{Node: "n1", Replicas: bad}}})
	w.schedule() // the worker plays the rollback and starts its deployment before the controller steps
	in := w.Snapshot().Instance(id)
	t.Logf("instance: version %d release %q command %v stable %d deployment %+v", in.Version, in.Release, in.Spec.Command, in.StableVersion, in.Deployment)
	if in.Spec.Command[0] == "/opt/crm/1.0.0" && in.Release != "1.0.0" {
		t.Errorf("rolled back to 1.0.0's spec but the instance says release %q", in.Release)
	}
	w.settle()
	got := w.step("r1")
	for _, ri := range got.Instances {
		if ri.ID == id && ri.State != protocol.UpgradeRolledBack {
			t.Errorf("%s: %s %q, want rolled_back; rollout %s %+v", ri.ID, ri.State, ri.Reason, got.State, got.Counts)
		}
	}
	// Once the release is fixed, a new rollout to it must take the
	// instance: it runs 1.0.0.
	again, err := rollout.New(w.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 1,
		Selector: protocol.RolloutSelector{Tenants: []string{"t00000"}, Environments: []string{"staging"}}}, "r2", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, ri := range again.Instances {
		if ri.ID == id && ri.State == protocol.UpgradeSkipped {
			t.Errorf("a new rollout to 1.1.0 skips %s, which runs 1.0.0's spec: %q", id, ri.Reason)
		}
	}
}
