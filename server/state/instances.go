package state

// Instance commands: create, update, scale, lifecycle and delete, and the versions of their specs.

import (
	"fmt"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) putVersion(in *protocol.Instance) {
	v := &Version{InstanceID: in.ID, Version: in.Version, Spec: in.Spec}
	if w.since(3) {
		ref := in.ProductRef
		v.CreatedAt, v.ProductRef = w.cmd.Time, &ref
	}
	w.insert(tableVersions, v)
	// Keep the newest versions, and the stable one and those replicas still run.
	keep := map[uint64]bool{in.StableVersion: true}
	for _, r := range w.snap().Replicas(in.ID) {
		keep[r.Version] = true
	}
	if in.Version > MaxVersionsKept {
		for v := uint64(1); v <= in.Version-MaxVersionsKept; v++ {
			if keep[v] {
				continue
			}
			if raw := w.first(tableVersions, in.ID, v); raw != nil {
				w.delete(tableVersions, raw)
			}
		}
	}
}

func (w *writer) instanceCreate(c *InstanceCreate) error {
	in := c.Instance
	t := w.snap().Tenant(in.Tenant)
	if t == nil {
		return protocol.NotFound("tenant", in.Tenant)
	}
	if t.State == protocol.TenantSuspended {
		return protocol.Errorf(protocol.CodeConflict, "tenant %q is suspended", in.Tenant)
	}
	in.ID = protocol.InstanceID(in.Tenant, in.Name)
	if w.first(tableInstances, in.ID) != nil {
		return protocol.Errorf(protocol.CodeConflict, "instance %q already exists", in.ID)
	}
	if err := w.checkQuota(t, nil, &in); err != nil {
		return err
	}
	if err := w.checkDomains(&in); err != nil {
		return err
	}
	if err := w.checkRelease(nil, &in); err != nil {
		return err
	}
	in.Version = 1
	in.CreatedAt, in.CreateIndex = w.cmd.Time, w.index
	w.putInstance(&in)
	w.putVersion(&in)
	msg := fmt.Sprintf("created with %d replicas at version 1", in.Replicas) // log version 1's words
	if w.since(2) {
		msg = "created with " + protocol.Count(in.Replicas, "replica") + " at version 1"
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "created", Message: msg})
	if in.Replicas > 0 || !w.since(4) {
		// An instance of no replicas has nothing to schedule until it
		// is scaled, which makes its first evaluation.
		w.eval(in.ID, "instance-create")
	}
	return nil
}

func (w *writer) instanceUpdate(c *InstanceUpdate) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	if c.IfVersion != 0 && c.IfVersion != in.Version {
		return protocol.Errorf(protocol.CodeConflict, "instance %q is at version %d, not %d", in.ID, in.Version, c.IfVersion)
	}
	old := *in
	in.Spec = c.Spec
	in.Plan = c.Plan
	in.ProductRef = c.ProductRef
	if err := w.checkRelease(&old, in); err != nil {
		return err
	}
	if c.Environment != "" {
		in.Environment = c.Environment
	}
	if c.Replicas != nil {
		in.Replicas = *c.Replicas
	}
	if c.Domains != nil {
		in.Domains = *c.Domains
		if err := w.checkDomains(in); err != nil {
			return err
		}
	}
	if err := w.quotaOf(&old, in); err != nil {
		return err
	}
	in.Version++
	w.putInstance(in)
	w.putVersion(in)
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "updated", Message: fmt.Sprintf("spec changed: version %d", in.Version)})
	w.eval(in.ID, "instance-update")
	return nil
}

// checkDomains refuses a custom domain another instance has: each routes
// to one instance only. The answer names no other instance, which may be
// another tenant's.
func (w *writer) checkDomains(in *protocol.Instance) error {
	for i, d := range in.Domains {
		raw, err := w.txn.First(tableInstances, "domain", d)
		if err != nil {
			abort("read instances by domain: %v", err)
		}
		if other, _ := raw.(*protocol.Instance); other != nil && other.ID != in.ID {
			return &protocol.Error{Code: protocol.CodeConflict, Field: fmt.Sprintf("domains[%d]", i),
				Message: fmt.Sprintf("domain %q is already routed to another instance", d)}
		}
	}
	return nil
}

func (w *writer) instanceScale(c *InstanceScale) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	old := *in
	in.Replicas = c.Replicas
	if err := w.quotaOf(&old, in); err != nil {
		return err
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "scaled", Message: fmt.Sprintf("replicas %d -> %d", old.Replicas, c.Replicas)})
	w.putInstance(in)
	w.eval(in.ID, "instance-scale")
	return nil
}

func (w *writer) instanceLifecycle(c *InstanceLifecycle) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	switch c.Action {
	case ActionStop:
		in.Stopped = true
	case ActionStart:
		if t := w.snap().Tenant(in.Tenant); t != nil && t.State == protocol.TenantSuspended {
			return protocol.Errorf(protocol.CodeConflict, "tenant %q is suspended: its instances cannot be started", in.Tenant)
		}
		old := *in
		in.Stopped = false
		if err := w.quotaOf(&old, in); err != nil {
			return err
		}
	case ActionRestart:
		if in.Stopped {
			return protocol.Errorf(protocol.CodeConflict, "instance %q is stopped; start it instead", in.ID)
		}
		in.RestartEpoch = w.index
	default:
		return protocol.FieldError("action", "%q is not stop, start or restart", c.Action)
	}
	w.putInstance(in)
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: c.Action, Message: c.Action + " requested"})
	w.eval(in.ID, "instance-"+c.Action)
	return nil
}

func (w *writer) instanceDelete(c *InstanceRef) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	w.delete(tableInstances, w.first(tableInstances, in.ID))
	for _, v := range w.snap().Versions(in.ID) {
		w.delete(tableVersions, v)
	}
	w.deleteAll(tableEvents, "instance", in.Tenant, in.Name)
	w.publish(protocol.StreamEvent{Topic: protocol.TopicInstance, Type: "deleted", Tenant: in.Tenant, Instance: in.Name, Message: "deleted"})
	w.dropOverrides(protocol.FlagScopeInstance, in.ID)
	if raw := w.first(tableEvals, in.ID); raw != nil {
		w.delete(tableEvals, raw)
	}
	for _, r := range w.snap().Replicas(in.ID) {
		w.stopReplica(r, "instance deleted")
	}
	w.gcReplicas(in.ID)
	w.evalWaiting("")
	return nil
}

// stopReplica sets a replica's desired state to stop. A replica that never
// reached a node is stopped at once.
func (w *writer) stopReplica(r *protocol.Replica, why string) {
	if r.Ended() {
		return
	}
	c := *r
	c.Desired = protocol.DesiredStop
	c.Message = why
	if w.since(2) {
		c.StopReason = why
	}
	if c.Node == "" || c.State == protocol.ReplicaPending && c.Node == "" {
		c.State = protocol.ReplicaStopped
	}
	c.ModifyIndex = w.index
	w.insert(tableReplicas, &c)
}

// gcReplicas drops terminal replicas that are no longer wanted: all of them
// once the instance is gone, else all but the newest few.
func (w *writer) gcReplicas(instanceID string) {
	exists := w.first(tableInstances, instanceID) != nil
	var done []*protocol.Replica
	for _, r := range w.snap().Replicas(instanceID) {
		if r.Ended() {
			done = append(done, r)
		}
	}
	keep := 0
	if exists {
		keep = MaxTerminalPerInstance
	}
	for i := 0; i < len(done)-keep; i++ {
		w.delete(tableReplicas, done[i])
	}
}
