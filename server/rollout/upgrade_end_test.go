package rollout_test

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/rollout"
	"github.com/drover-dev/drover/server/state"
)

// An instance that is stopped when the rollout upgrades it gets its new
// version (the FSM writes it), but the scheduler makes no deployment for
// a version with no replicas wanted: the upgrade must end when the
// instance is at the release with nothing to deploy (it stayed
// "upgrading" for ever, and the rollout with it).
func TestAStoppedInstancesUpgradeEnds(t *testing.T) {
	w := newWorld(t)
	w.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "t00000", Name: "crm-0", Action: state.ActionStop})
	w.settle()
	upgradeAll(t, w)
	awaitSuccess(t, w, "t00000/crm-0")
}

// A tenant changes its instance (same release, one more replica) while
// the rollout upgrades it: the upgrade's deployment is superseded by the
// tenant's version, which deploys fine at the rollout's release. The
// rollout must see the instance done (it waited for ever).
func TestAnUpgradeChangedByItsTenantEnds(t *testing.T) {
	w := newWorld(t)
	upgradeAll(t, w)
	in := w.Snapshot().Instance("t00001/crm-1")
	two := 2
	w.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: in.Tenant, Name: in.Name, Spec: in.Spec, Plan: in.Plan,
		Environment: in.Environment, Replicas: &two, ProductRef: in.ProductRef})
	awaitSuccess(t, w, "t00001/crm-1")
}

// A rollout scheduled for later, paused and resumed before its start_at,
// must still wait for start_at; resume makes it running, and the next
// step starts upgrades at once.
func TestAResumedScheduledRolloutWaitsForItsStart(t *testing.T) {
	w := newWorld(t)
	start := w.Now().Add(6 * time.Hour)
	ro, err := rollout.New(w.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 10, StartAt: start}, "r1", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ro.State != protocol.RolloutScheduled {
		t.Fatalf("state %s, want scheduled", ro.State)
	}
	w.Must(state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	w.Must(state.CmdRolloutControl, state.RolloutControl{ID: "r1", Action: state.RolloutPause})
	w.Advance(time.Minute)
	w.Must(state.CmdRolloutControl, state.RolloutControl{ID: "r1", Action: state.RolloutResume})
	got := w.step("r1")
	if got.Counts.Upgrading != 0 || got.State != protocol.RolloutScheduled {
		t.Fatalf("5h59m before start_at, after pause and resume: %s, %+v upgrading", got.State, got.Counts)
	}
}

// upgradeAll starts rollout r1 of crm 1.1.0 over the world's four
// instances, all at once.
func upgradeAll(t *testing.T, w *world) {
	t.Helper()
	ro, err := rollout.New(w.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 10}, "r1", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.Must(state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	if got := w.step("r1"); got.Counts.Upgrading != 4 {
		t.Fatalf("first step: %+v", got.Counts)
	}
}

// awaitSuccess runs the world and rollout r1 and fails unless the rollout
// succeeded, saying where instance id stands.
func awaitSuccess(t *testing.T, w *world, id string) {
	t.Helper()
	for range 5 {
		w.settle()
		w.step("r1")
	}
	got := w.Snapshot().Rollout("r1")
	if got.State == protocol.RolloutSucceeded {
		return
	}
	for _, ri := range got.Instances {
		t.Logf("%s: %s %q (version %d)", ri.ID, ri.State, ri.Reason, ri.Version)
	}
	in := w.Snapshot().Instance(id)
	t.Fatalf("rollout %s %+v; %s at version %d release %s, stable %d, deployment %+v",
		got.State, got.Counts, id, in.Version, in.Release, in.StableVersion, in.Deployment)
}
