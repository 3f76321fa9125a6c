package state

// Rollouts: their records, their steps and the operators' controls.

import (
	"fmt"
	"time"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) rolloutCreate(c *RolloutCreate) error {
	r := c.Rollout
	if w.snap().Rollout(r.ID) != nil {
		return protocol.Errorf(protocol.CodeConflict, "rollout %s already exists", r.ID)
	}
	r.CreateIndex, r.ModifyIndex = w.index, w.index
	w.insert(tableRollouts, &r)
	w.publishRollout(nil, &r)
	for _, ri := range r.Instances {
		w.rolloutEvent(&r, nil, &ri)
	}
	return nil
}

func (w *writer) rolloutStep(c *RolloutStep) error {
	old := w.snap().Rollout(c.Rollout.ID)
	if old == nil {
		return protocol.NotFound("rollout", c.Rollout.ID)
	}
	if old.ModifyIndex != c.Base {
		return protocol.Errorf(protocol.CodeConflict, "rollout %s changed since the step was made", old.ID)
	}
	r := c.Rollout
	r.Instances = append([]protocol.RolloutInstance(nil), r.Instances...)
	for i := range c.Upgrades {
		u := &c.Upgrades[i]
		id := protocol.InstanceID(u.Tenant, u.Name)
		// instanceUpdate checks everything before it writes: a refused
		// upgrade (a quota, a release changed meanwhile) fails that
		// instance alone, not the whole step, which would be refused again
		// at every step.
		err := w.instanceUpdate(u)
		result := "ok"
		if err != nil {
			result = string(protocol.AsError(err).Code)
			for j := range r.Instances {
				if ri := &r.Instances[j]; ri.ID == id {
					ri.State, ri.Reason, ri.Version, ri.FinishedAt = protocol.UpgradeFailed, "upgrade refused: "+protocol.AsError(err).Message, 0, w.cmd.Time
				}
			}
		}
		w.audit(protocol.AuditRecord{Time: w.cmd.Time, Role: "server", Tenant: u.Tenant, Action: "rollout.upgrade",
			Target: id, Result: result}, i+1)
	}
	r.Recount()
	r.CreateIndex, r.ModifyIndex = old.CreateIndex, w.index
	prev := map[string]*protocol.RolloutInstance{}
	for i := range old.Instances {
		prev[old.Instances[i].ID] = &old.Instances[i]
	}
	for i := range r.Instances {
		w.rolloutEvent(&r, prev[r.Instances[i].ID], &r.Instances[i])
	}
	if r.State == protocol.RolloutSucceeded && old.State != r.State && r.Selector.Channel != "" {
		// The rollout of a channel's instances promotes the channel: new
		// instances on it start where its instances now are.
		if err := w.channelSet(&ChannelSet{Product: r.Product, Channel: r.Selector.Channel, Release: r.Release}); err != nil {
			return err
		}
	}
	w.insert(tableRollouts, &r)
	w.publishRollout(old, &r)
	return nil
}

// rolloutEvent records, as an event of the instance, a change of its state
// in a rollout.
func (w *writer) rolloutEvent(r *protocol.Rollout, old, cur *protocol.RolloutInstance) {
	if old != nil && old.State == cur.State && old.Reason == cur.Reason {
		return
	}
	tenant, name, err := protocol.SplitInstanceID(cur.ID)
	if err != nil || w.first(tableInstances, cur.ID) == nil {
		return
	}
	msg := fmt.Sprintf("rollout %s to %s: %s", r.ID, r.Release, cur.State)
	if cur.Reason != "" {
		msg += " (" + cur.Reason + ")"
	}
	w.event(protocol.Event{Tenant: tenant, Instance: name, Type: "rollout", Message: msg})
}

func (w *writer) rolloutControl(c *RolloutControl) error {
	old := w.snap().Rollout(c.ID)
	if old == nil {
		return protocol.NotFound("rollout", c.ID)
	}
	r := *old
	r.Instances = append([]protocol.RolloutInstance(nil), old.Instances...)
	bad := func() error {
		return protocol.Errorf(protocol.CodeConflict, "rollout %s is %s: it cannot %s", r.ID, r.State, c.Action)
	}
	switch c.Action {
	case RolloutPause:
		if !r.Active() {
			return bad()
		}
		r.State, r.Message = protocol.RolloutPaused, "paused by request"
	case RolloutResume:
		if r.State != protocol.RolloutPaused {
			return bad()
		}
		r.Recount()
		r.State, r.Message, r.FailureBase = protocol.RolloutRunning, "", r.Failures()
	case RolloutCancel:
		if r.Ended() {
			return bad()
		}
		r.State, r.Message = protocol.RolloutCancelled, "cancelled by request"
		for i := range r.Instances {
			ri := &r.Instances[i]
			if ri.State == protocol.UpgradePending || ri.State == protocol.UpgradeWaiting {
				ri.State, ri.Reason, ri.ETA, ri.FinishedAt = protocol.UpgradeSkipped, "rollout cancelled", time.Time{}, w.cmd.Time
			}
		}
	case RolloutApprove:
		if r.Ended() || r.Approval != protocol.ApprovalManual {
			return protocol.Errorf(protocol.CodeConflict, "rollout %s is %s with approval %s: nothing to approve", r.ID, r.State, r.Approval)
		}
		r.Approved++
	default:
		return protocol.FieldError("action", "unknown action %q", c.Action)
	}
	r.Recount()
	r.UpdatedAt, r.ModifyIndex = w.cmd.Time, w.index
	for i := range r.Instances {
		w.rolloutEvent(&r, &old.Instances[i], &r.Instances[i])
	}
	w.insert(tableRollouts, &r)
	w.publishRollout(old, &r)
	return nil
}
