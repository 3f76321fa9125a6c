package state

// Scheduler plans and deployments.

import (
	"fmt"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) planApply(p *Plan) error {
	in, err := w.instanceOrNil(p.Instance)
	if err != nil {
		return err
	}
	switch {
	case in == nil:
		// Deleted since the plan was made: nothing may start, and its
		// events went with it.
		p.Place, p.Events = nil, nil
	case p.Version != 0 && p.Version != in.Version:
		p.Deployment, p.Rollback = nil, 0
	}
	freed := false
	for _, r := range p.Place {
		c := *r
		c.CreateIndex, c.ModifyIndex, c.CreatedAt = w.index, w.index, w.cmd.Time
		if raw := w.first(tableReplicas, c.ID); raw != nil {
			// A replica that waited for a node is placed, or its reason
			// changes; any other is no longer the scheduler's to place.
			old := raw.(*protocol.Replica)
			if old.Node != "" || old.Desired != protocol.DesiredRun || old.Terminal() {
				continue
			}
			c.CreateIndex, c.CreatedAt = old.CreateIndex, old.CreatedAt
		}
		if c.Desired == "" {
			c.Desired = protocol.DesiredRun
		}
		if c.State == "" {
			c.State = protocol.ReplicaPending
		}
		if c.Node != "" {
			// The plan was made before this entry: its node may have gone
			// down, been drained or revoked since. Then the replica waits,
			// and the evaluation stays for the scheduler to place it again.
			if n := w.snap().Node(c.Node); n == nil || n.Status != protocol.NodeReady || !n.Eligible || n.Revoked {
				c.Message = "node " + c.Node + " became unavailable before the replica was placed; waiting for another"
				c.Node = ""
				p.Retry = true
			}
		}
		if c.Node != "" && w.since(6) {
			c.PlacedAt = w.cmd.Time
		}
		w.insert(tableReplicas, &c)
	}
	for _, s := range p.Stop {
		if raw := w.first(tableReplicas, s.ID); raw != nil {
			r := raw.(*protocol.Replica)
			freed = freed || r.Node != "" && r.Desired == protocol.DesiredRun && !r.Terminal()
			w.stopReplica(r, s.Message)
		}
	}
	if freed {
		w.evalWaiting(p.Instance)
	}
	for i, e := range p.Events {
		if e.Tenant == "" || e.Instance == "" {
			return protocol.FieldError(fmt.Sprintf("events[%d]", i), "an event names its tenant and instance")
		}
		w.event(e)
	}
	if in != nil {
		changed := false
		if p.Deployment != nil {
			d := *p.Deployment
			if cur := in.Deployment; w.since(6) && cur != nil && cur.ID == d.ID && cur.Promoted && !d.Promoted {
				// promoted while the plan was made: keep the promotion
				d.Promoted = true
			}
			in.Deployment, changed = &d, true
		}
		if p.StableVersion != 0 && p.StableVersion != in.StableVersion {
			in.StableVersion, changed = p.StableVersion, true
		}
		if p.Rollback != 0 {
			v := w.snap().Version(in.ID, p.Rollback)
			if v == nil {
				return protocol.Errorf(protocol.CodeConflict, "rollback of %s: version %d is gone", in.ID, p.Rollback)
			}
			in.Spec = v.Spec
			if v.ProductRef != nil && w.since(6) {
				in.ProductRef = *v.ProductRef // the release rolled back to
			}
			in.Version++
			changed = true
			w.putVersion(in)
		}
		if changed {
			w.putInstance(in)
		}
		w.gcReplicas(in.ID)
	}
	if raw := w.first(tableEvals, p.Instance); raw != nil {
		e := raw.(*Eval)
		switch {
		case e.Index > p.EvalIndex:
			// a newer trigger arrived while the plan was made: keep it
		case p.Retry || p.Rollback != 0:
			w.eval(p.Instance, e.TriggeredBy)
		default:
			w.delete(tableEvals, e)
		}
	}
	return nil
}

func (w *writer) deploymentPromote(c *DeploymentPromote) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	d := in.Deployment
	switch {
	case d == nil || d.State != protocol.DeploymentRunning:
		return protocol.Errorf(protocol.CodeConflict, "instance %q has no deployment running", in.ID)
	case c.ID != "" && c.ID != d.ID:
		return protocol.Errorf(protocol.CodeConflict, "deployment %q is not the running deployment of %q (%s)", c.ID, in.ID, d.ID)
	case d.Canaries == 0:
		return protocol.Errorf(protocol.CodeConflict, "deployment %s of %q has no canaries to promote", d.ID, in.ID)
	case d.Promoted:
		return nil
	}
	p := *d
	p.Promoted, p.UpdatedAt = true, w.cmd.Time
	in.Deployment = &p
	w.putInstance(in)
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "deployment", Message: fmt.Sprintf("deployment %s promoted", d.ID)})
	w.eval(in.ID, "deployment-promote")
	return nil
}

func (w *writer) instanceOrNil(id string) (*protocol.Instance, error) {
	raw := w.first(tableInstances, id)
	if raw == nil {
		return nil, nil
	}
	c := *raw.(*protocol.Instance)
	return &c, nil
}
