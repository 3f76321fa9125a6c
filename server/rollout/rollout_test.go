package rollout_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/rollout"
	"github.com/drover-dev/drover/server/scheduler"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// world is a state with a node, driven as the leader drives it: the
// scheduler places and deploys, the "agent" reports every placed replica
// healthy, and rollout steps are committed as the controller commits them.
type world struct {
	*statetest.Harness
	t   *testing.T
	ids int
}

func newWorld(t *testing.T) *world {
	w := &world{Harness: fleet(t, 2, 2), t: t}
	w.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h", Node: protocol.Node{ID: "n1", Name: "n1",
		Resources: protocol.NodeResources{CPUMillis: 64000, MemoryMB: 64000}, PortRange: protocol.PortRange{Lo: 20000, Hi: 20999}}})
	w.settle()
	return w
}

// plan runs the scheduler once over every evaluation, committing the
// plans that change something, and reports whether one did.
func (w *world) plan() bool {
	progress := false
	for _, e := range w.Snapshot().Evals() {
		snap := w.Snapshot()
		ev := snap.Eval(e.Instance)
		if ev == nil {
			continue
		}
		p := scheduler.Schedule(snap, ev, w.Now(), func() string { w.ids++; return fmt.Sprintf("r%d", w.ids) })
		if p.Retry && len(p.Place) == 0 && len(p.Stop) == 0 && p.Deployment == nil && p.StableVersion == 0 && len(p.Events) == 0 && p.Rollback == 0 {
			continue
		}
		w.Must(state.CmdPlanApply, p)
		progress = true
	}
	return progress
}

// settle runs the scheduler and the agent until nothing changes.
func (w *world) settle() {
	for range 50 {
		progress := w.plan()
		var reports []protocol.ReplicaReport
		for _, r := range w.Snapshot().AllReplicas() {
			if r.Node != "" && r.Desired == protocol.DesiredRun && r.State != protocol.ReplicaHealthy {
				reports = append(reports, protocol.ReplicaReport{ID: r.ID, State: protocol.ReplicaHealthy})
			}
		}
		if len(reports) > 0 {
			w.Must(state.CmdReplicaReports, state.ReplicaReports{Reports: []state.NodeReport{{Node: "n1", Replicas: reports}}})
			progress = true
		}
		if !progress {
			return
		}
		w.Advance(20 * time.Second) // past min_healthy_time
	}
	w.t.Fatal("the world keeps changing")
}

// step runs the controller's step once, committing what it decides.
func (w *world) step(id string) *protocol.Rollout {
	w.t.Helper()
	cur := w.Snapshot().Rollout(id)
	next, ups, changed := rollout.Step(w.Snapshot(), cur, w.Now())
	if changed {
		w.Must(state.CmdRolloutStep, state.RolloutStep{Base: cur.ModifyIndex, Rollout: *next, Upgrades: ups})
	}
	return w.Snapshot().Rollout(id)
}

// With approval manual and a bake, the second wave waits for both, and
// says which; a step made from an older record is refused.
func TestManualApprovalAndBake(t *testing.T) {
	w := newWorld(t)
	req := protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 10, Approval: protocol.ApprovalManual,
		Waves: []protocol.Wave{{Name: "staging", Selector: protocol.RolloutSelector{Environments: []string{"staging"}}, Bake: protocol.Duration(time.Hour)},
			{Name: "production"}}}
	ro, err := rollout.New(w.Snapshot(), req, "r1", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.Must(state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	ro = w.step("r1")
	if ro.Counts.Upgrading != 2 || ro.Counts.Pending != 2 {
		t.Fatalf("first step: %+v, want the 2 staging instances upgrading", ro.Counts)
	}
	// A stale step (made from the record before this one) changes nothing.
	stale := state.RolloutStep{Base: ro.ModifyIndex - 1, Rollout: *ro}
	if err := w.Apply(state.CmdRolloutStep, stale); protocol.AsError(err).Code != protocol.CodeConflict {
		t.Fatalf("a stale step: %v, want conflict", err)
	}
	w.settle()
	ro = w.step("r1")
	if ro.Counts.Succeeded != 2 || ro.State != protocol.RolloutWaiting || ro.Wave != 0 {
		t.Fatalf("after staging: %s %q %+v", ro.State, ro.Message, ro.Counts)
	}
	w.Advance(2 * time.Hour)
	ro = w.step("r1")
	if ro.State != protocol.RolloutWaiting || ro.Message != "wave production waits for approval (drover rollout approve r1)" {
		t.Fatalf("after the bake: %s %q", ro.State, ro.Message)
	}
	w.Must(state.CmdRolloutControl, state.RolloutControl{ID: "r1", Action: state.RolloutApprove})
	ro = w.step("r1")
	if ro.Wave != 1 || ro.Counts.Upgrading != 2 {
		t.Fatalf("after the approval: wave %d %+v", ro.Wave, ro.Counts)
	}
	w.settle()
	ro = w.step("r1")
	if ro.State != protocol.RolloutSucceeded || ro.Counts.Succeeded != 4 {
		t.Fatalf("at the end: %s %+v", ro.State, ro.Counts)
	}
	for _, in := range w.Snapshot().ProductInstances("crm") {
		if in.Release != "1.1.0" || in.Version != 2 || in.StableVersion != 2 {
			t.Errorf("%s: release %s version %d stable %d", in.ID, in.Release, in.Version, in.StableVersion)
		}
	}
}

// An upgrade the FSM refuses fails that instance alone: the rest of the
// step is committed, so the rollout does not stall on it.
func TestRefusedUpgradeFailsOnlyItsInstance(t *testing.T) {
	w := newWorld(t)
	ro, err := rollout.New(w.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 2, MaxFailures: 5,
		Selector: protocol.RolloutSelector{Environments: []string{"staging"}}}, "r1", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.Must(state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	cur := w.Snapshot().Rollout("r1")
	next, ups, _ := rollout.Step(w.Snapshot(), cur, w.Now())
	if len(ups) != 2 {
		t.Fatalf("%d upgrades, want 2", len(ups))
	}
	ups[0].Release = "9.9.9" // as if the release vanished between the step and its commit
	w.Must(state.CmdRolloutStep, state.RolloutStep{Base: cur.ModifyIndex, Rollout: *next, Upgrades: ups})
	got := w.Snapshot().Rollout("r1")
	bad := protocol.InstanceID(ups[0].Tenant, ups[0].Name)
	for _, in := range got.Instances {
		switch {
		case in.ID == bad && (in.State != protocol.UpgradeFailed || in.Reason == ""):
			t.Errorf("%s: %s %q, want failed with the refusal", in.ID, in.State, in.Reason)
		case in.ID != bad && in.Environment == "staging" && in.State != protocol.UpgradeUpgrading:
			t.Errorf("%s: %s, want upgrading", in.ID, in.State)
		}
	}
	if got.Counts.Failed != 1 || got.Counts.Upgrading != 1 {
		t.Fatalf("counts %+v", got.Counts)
	}
	if in := w.Snapshot().Instance(bad); in.Version != 1 || in.Release != "1.0.0" {
		t.Fatalf("the refused upgrade changed %s: version %d release %s", bad, in.Version, in.Release)
	}
}

// A release deprecated in the middle of a rollout pauses it: the upgrade
// in progress ends as it ends, no other starts, and the rollout says why.
func TestDeprecatedTargetPausesTheRollout(t *testing.T) {
	w := newWorld(t)
	ro, err := rollout.New(w.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 1}, "r1", w.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.Must(state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	if got := w.step("r1"); got.Counts.Upgrading != 1 {
		t.Fatalf("first step: %+v", got.Counts)
	}
	dep := protocol.ReleaseDeprecated
	w.Must(state.CmdReleaseUpdate, state.ReleaseUpdate{Product: "crm", Version: "1.1.0", Patch: protocol.ReleasePatch{State: &dep}})
	w.settle()
	got := w.step("r1")
	if got.State != protocol.RolloutPaused || got.Message != "release 1.1.0 is deprecated: no more upgrades to it" || got.Counts.Upgrading != 0 || got.Counts.Succeeded != 1 || got.Counts.Pending != 3 {
		t.Fatalf("after the deprecation: %s %q %+v", got.State, got.Message, got.Counts)
	}
}
