package state

// Feature flags: products' definitions, and the overrides of environments,
// tenants and instances (API.md, "Feature flags"). Every change wakes the
// sessions of the nodes running a replica it may change (NodeWatch): the
// resolved flags travel in their assignments.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) flagDefine(c *FlagDefine) error {
	f := c.Flag
	if w.snap().Product(f.Product) == nil {
		return protocol.NotFound("product", f.Product)
	}
	others, size := 0, f.LargestValue()
	for _, o := range w.snap().Flags(f.Product) {
		if o.Key != f.Key {
			others++
			size += o.LargestValue()
		}
	}
	if others >= protocol.MaxFlagsPerProduct {
		return &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "key",
			Message: fmt.Sprintf("product %s has %d flags, the most a product may have", f.Product, others)}
	}
	if size > protocol.MaxFlagBytesPerProduct {
		return &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "variants",
			Message: fmt.Sprintf("product %s's flags would hold %d bytes of values (each flag's largest), over %d", f.Product, size, protocol.MaxFlagBytesPerProduct)}
	}
	if old := w.snap().Flag(f.Product, f.Key); old != nil {
		f.CreatedAt, f.CreateIndex = old.CreatedAt, old.CreateIndex
	} else {
		f.CreatedAt, f.CreateIndex = w.cmd.Time, w.index
	}
	f.ModifyIndex = w.index
	w.insert(tableFlags, &f)
	w.publish(protocol.StreamEvent{Topic: protocol.TopicFlag, Type: "flag-defined", Key: f.Key,
		Message: fmt.Sprintf("product %s: flag %s defined (%s, default %s)", f.Product, f.Key, f.Type, f.DefaultVariant)})
	w.productNodesChanged(f.Product)
	return nil
}

func (w *writer) flagDelete(c *FlagDelete) error {
	f := w.snap().Flag(c.Product, c.Key)
	if f == nil {
		return protocol.NotFound("flag", c.Product+"/"+c.Key)
	}
	w.dropFlag(f)
	w.publish(protocol.StreamEvent{Topic: protocol.TopicFlag, Type: "flag-deleted", Key: f.Key,
		Message: fmt.Sprintf("product %s: flag %s deleted", f.Product, f.Key)})
	w.productNodesChanged(c.Product)
	return nil
}

// dropFlag deletes a definition. Overrides name no product, so they go
// with the last definition of their key.
func (w *writer) dropFlag(f *protocol.Flag) {
	w.delete(tableFlags, f)
	if len(list[protocol.Flag](w.snap(), tableFlags, "key", f.Key)) > 0 {
		return
	}
	for _, o := range list[protocol.FlagOverride](w.snap(), tableOverrides, "key", f.Key) {
		w.delete(tableOverrides, o)
	}
}

// dropOverrides deletes the overrides of one scope's target (an instance
// or a tenant that is deleted).
func (w *writer) dropOverrides(scope, target string) {
	for _, o := range w.snap().FlagOverrides(scope, target) {
		w.delete(tableOverrides, o)
	}
}

func (w *writer) flagOverride(c *FlagOverride) error {
	defs := list[protocol.Flag](w.snap(), tableFlags, "key", c.Key)
	var affected []*protocol.Instance
	switch c.Scope {
	case protocol.FlagScopeTenant:
		if w.snap().Tenant(c.Target) == nil {
			return protocol.NotFound("tenant", c.Target)
		}
		affected = w.snap().Instances(InstanceFilter{Tenant: c.Target})
	case protocol.FlagScopeEnvironment:
		if w.snap().Environment(c.Target) == nil {
			return protocol.NotFound("environment", c.Target)
		}
		affected = w.snap().Instances(InstanceFilter{Environment: c.Target})
	case protocol.FlagScopeInstance:
		in := w.snap().Instance(c.Target)
		if in == nil {
			return protocol.NotFound("instance", c.Target)
		}
		affected = []*protocol.Instance{in}
		defs = slices.DeleteFunc(defs, func(f *protocol.Flag) bool { return f.Product != in.Product })
	default:
		return protocol.FieldError("scope", "must be %s", strings.Join(protocol.FlagScopes, ", "))
	}
	if len(defs) == 0 {
		if c.Scope == protocol.FlagScopeInstance {
			return protocol.Errorf(protocol.CodeNotFound, "the product of instance %s defines no flag %q", c.Target, c.Key)
		}
		return protocol.Errorf(protocol.CodeNotFound, "no product defines flag %q", c.Key)
	}
	affected = slices.DeleteFunc(affected, func(in *protocol.Instance) bool {
		return !slices.ContainsFunc(defs, func(f *protocol.Flag) bool { return f.Product == in.Product })
	})
	if c.ByTenant {
		for _, f := range defs {
			if !f.TenantEditable {
				return &protocol.Error{Code: protocol.CodePermissionDenied, Field: "key",
					Message: fmt.Sprintf("flag %q of product %s is not tenant_editable: only operators change it", c.Key, f.Product)}
			}
		}
	}
	old := w.snap().FlagOverride(c.Scope, c.Target, c.Key)
	if c.Variant == "" {
		if old == nil {
			return protocol.Errorf(protocol.CodeNotFound, "%s has no override of flag %q", protocol.FlagTarget(c.Scope, c.Target), c.Key)
		}
		w.delete(tableOverrides, old)
	} else {
		if !slices.ContainsFunc(defs, func(f *protocol.Flag) bool { _, ok := f.Variants[c.Variant]; return ok }) {
			return protocol.FieldError("variant", "%q is not a variant of flag %q (it has %s)", c.Variant, c.Key, strings.Join(variantNames(defs), ", "))
		}
		w.insert(tableOverrides, &protocol.FlagOverride{Scope: c.Scope, Target: c.Target, Key: c.Key, Variant: c.Variant,
			UpdatedAt: w.cmd.Time, ModifyIndex: w.index})
	}
	w.publishOverride(c)
	for _, in := range affected {
		w.instanceNodesChanged(in.ID)
	}
	return nil
}

// publishOverride adds an override's change to the stream, as an event of
// its tenant when it has one.
func (w *writer) publishOverride(c *FlagOverride) {
	e := protocol.StreamEvent{Topic: protocol.TopicFlag, Type: "flag-set", Key: c.Key}
	switch c.Scope {
	case protocol.FlagScopeTenant:
		e.Tenant = c.Target
	case protocol.FlagScopeInstance:
		e.Tenant, e.Instance, _ = protocol.SplitInstanceID(c.Target)
	}
	e.Message = fmt.Sprintf("%s: flag %s = %s", protocol.FlagTarget(c.Scope, c.Target), c.Key, c.Variant)
	if c.Variant == "" {
		e.Type, e.Message = "flag-unset", fmt.Sprintf("%s: override of flag %s removed", protocol.FlagTarget(c.Scope, c.Target), c.Key)
	}
	w.publish(e)
}

// variantNames lists the variants of the definitions of one key.
func variantNames(defs []*protocol.Flag) []string {
	seen := map[string]bool{}
	for _, f := range defs {
		for v := range f.Variants {
			seen[v] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// productNodesChanged wakes the nodes running replicas of a product.
func (w *writer) productNodesChanged(product string) {
	for _, in := range w.snap().ProductInstances(product) {
		w.instanceNodesChanged(in.ID)
	}
}

// instanceNodesChanged wakes the nodes running replicas of an instance.
func (w *writer) instanceNodesChanged(id string) {
	for _, r := range w.snap().Replicas(id) {
		if !r.Ended() {
			w.nodeChanged(r.Node)
		}
	}
}

// Flag returns a product's flag, or nil.
func (s *Snapshot) Flag(product, key string) *protocol.Flag {
	return one[protocol.Flag](s, tableFlags, product, key)
}

// Flags returns a product's flags by key.
func (s *Snapshot) Flags(product string) []*protocol.Flag {
	// The empty key makes the prefix end with the product's terminator, so
	// that crm's flags are not also crm2's.
	return list[protocol.Flag](s, tableFlags, "id_prefix", product, "")
}

// FlagOverride returns one override, or nil.
func (s *Snapshot) FlagOverride(scope, target, key string) *protocol.FlagOverride {
	return one[protocol.FlagOverride](s, tableOverrides, scope, target, key)
}

// FlagOverrides returns the overrides of one target (an environment, a
// tenant, or an instance's tenant/name) by key.
func (s *Snapshot) FlagOverrides(scope, target string) []*protocol.FlagOverride {
	return list[protocol.FlagOverride](s, tableOverrides, "id_prefix", scope, target, "")
}

// InstanceFlags resolves an instance's flags: each flag its product
// defines, with the variant of its most specific override (instance, then
// tenant, then environment) or its default. None for a custom instance.
func (s *Snapshot) InstanceFlags(in *protocol.Instance) []protocol.ResolvedFlag {
	if in.Product == "" {
		return nil
	}
	defs := s.Flags(in.Product)
	if len(defs) == 0 {
		return nil
	}
	chosen := map[string]map[string]string{} // key -> scope -> variant
	for scope, target := range map[string]string{protocol.FlagScopeInstance: in.ID,
		protocol.FlagScopeTenant: in.Tenant, protocol.FlagScopeEnvironment: in.Environment} {
		for _, o := range s.FlagOverrides(scope, target) {
			if chosen[o.Key] == nil {
				chosen[o.Key] = map[string]string{}
			}
			chosen[o.Key][scope] = o.Variant
		}
	}
	out := make([]protocol.ResolvedFlag, 0, len(defs))
	for _, f := range defs {
		out = append(out, f.Resolve(chosen[f.Key]))
	}
	return out
}
