package state

import (
	"fmt"

	"github.com/drover-dev/drover/protocol"
)

// Usage is what a tenant uses of its quotas. Instances counts every
// instance; replicas, CPU and memory count what the tenant's instances that
// are not stopped ask to run (replicas × resources), since quotas limit
// what a tenant may run: a stopped instance frees them, and starting it
// again must fit.
func Usage(snap *Snapshot, tenant string) protocol.Quotas {
	var u protocol.Quotas
	for _, in := range snap.Instances(InstanceFilter{Tenant: tenant}) {
		u = addQuotas(u, footprint(in), 1)
	}
	return u
}

// footprint is what one instance counts against its tenant's quotas.
func footprint(in *protocol.Instance) protocol.Quotas {
	q := protocol.Quotas{Instances: 1}
	if in.Stopped {
		return q
	}
	n := int64(in.Replicas)
	q.Replicas = in.Replicas
	q.CPUMillis = n * in.Spec.Resources.CPUMillis
	q.MemoryMB = n * in.Spec.Resources.MemoryMB
	return q
}

// checkQuota refuses a change of a tenant's instance from old to new (nil
// for none) when it makes the tenant use more than a quota allows. A change
// that uses less of a quota is always allowed, even over it, so that a
// tenant whose quota was lowered can shrink.
func (w *writer) checkQuota(t *protocol.Tenant, old, new *protocol.Instance) error {
	q := t.Quotas
	if q == (protocol.Quotas{}) {
		return nil
	}
	var before, after protocol.Quotas
	if old != nil {
		before = footprint(old)
	}
	if new != nil {
		after = footprint(new)
	}
	used := addQuotas(Usage(w.snap(), t.Name), before, -1)
	check := func(field string, limit, used, before, after int64) error {
		if limit <= 0 || after <= before || used+after <= limit {
			return nil
		}
		return &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "quotas." + field,
			Message: fmt.Sprintf("tenant %q quota %s is %d: %d in use, this needs %d", t.Name, field, limit, used, after)}
	}
	for _, c := range []struct {
		field                      string
		limit, used, before, after int64
	}{
		{"instances", int64(q.Instances), int64(used.Instances), int64(before.Instances), int64(after.Instances)},
		{"replicas", int64(q.Replicas), int64(used.Replicas), int64(before.Replicas), int64(after.Replicas)},
		{"cpu_millis", q.CPUMillis, used.CPUMillis, before.CPUMillis, after.CPUMillis},
		{"memory_mb", q.MemoryMB, used.MemoryMB, before.MemoryMB, after.MemoryMB},
	} {
		if err := check(c.field, c.limit, c.used, c.before, c.after); err != nil {
			return err
		}
	}
	return nil
}

// addQuotas returns a + sign×b.
func addQuotas(a, b protocol.Quotas, sign int) protocol.Quotas {
	return protocol.Quotas{
		Instances: a.Instances + sign*b.Instances,
		Replicas:  a.Replicas + sign*b.Replicas,
		CPUMillis: a.CPUMillis + int64(sign)*b.CPUMillis,
		MemoryMB:  a.MemoryMB + int64(sign)*b.MemoryMB,
	}
}

// quotaOf checks a change of an instance against its tenant's quotas.
func (w *writer) quotaOf(old, new *protocol.Instance) error {
	t := w.snap().Tenant(new.Tenant)
	if t == nil {
		return protocol.NotFound("tenant", new.Tenant)
	}
	return w.checkQuota(t, old, new)
}
