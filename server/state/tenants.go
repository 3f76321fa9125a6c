package state

// Tenant commands: create, change and delete tenants.

import (
	"github.com/drover-dev/drover/protocol"
)

func (w *writer) tenantUpsert(c *TenantUpsert) error {
	t := c.Tenant
	old := w.snap().Tenant(t.Name)
	switch {
	case c.Create && old != nil:
		return protocol.Errorf(protocol.CodeConflict, "tenant %q already exists", t.Name)
	case !c.Create && old == nil:
		return protocol.NotFound("tenant", t.Name)
	case old != nil:
		t.CreatedAt, t.CreateIndex = old.CreatedAt, old.CreateIndex
	default:
		t.CreatedAt, t.CreateIndex = w.cmd.Time, w.index
	}
	if t.State == "" {
		t.State = protocol.TenantActive
	}
	t.ModifyIndex = w.index
	if old != nil && (old.State != t.State || old.Region != t.Region) {
		why := "tenant-" + t.State
		if old.Region != t.Region {
			why = "tenant-region"
		}
		for _, in := range w.snap().Instances(InstanceFilter{Tenant: t.Name}) {
			w.eval(in.ID, why)
		}
	}
	w.insert(tableTenants, &t)
	return nil
}

func (w *writer) tenantDelete(c *NameBody) error {
	t := w.snap().Tenant(c.Name)
	if t == nil {
		return protocol.NotFound("tenant", c.Name)
	}
	if n := len(w.snap().Instances(InstanceFilter{Tenant: c.Name})); n > 0 {
		return protocol.Errorf(protocol.CodeConflict, "tenant %q still has %s; delete them first", c.Name, protocol.Count(n, "instance"))
	}
	// Its tokens go with it: a tenant created later with the same name
	// must not be reachable with them.
	for _, tok := range w.snap().Tokens() {
		if tok.Tenant == c.Name {
			if err := w.tokenDelete(&NameBody{Name: tok.ID}); err != nil {
				return err
			}
		}
	}
	w.dropOverrides(protocol.FlagScopeTenant, c.Name)
	w.delete(tableTenants, t)
	return nil
}
