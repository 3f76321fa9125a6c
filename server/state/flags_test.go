package state_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// productInstance creates product crm (release 1.0.0) once and an
// instance of it.
func (h *harness) productInstance(tenant, name, env string) {
	h.t.Helper()
	if h.Snapshot().Product("crm") == nil {
		h.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: "crm"}})
		h.Must(state.CmdReleasePublish, state.ReleasePublish{Release: protocol.Release{Product: "crm", Version: "1.0.0", Command: []string{"/bin/crm"}}})
	}
	h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: tenant, Name: name, Environment: env, Replicas: 1, Spec: testSpec("1.0.0"),
		ProductRef: protocol.ProductRef{Product: "crm", Release: "1.0.0"}}})
}

func boolFlag(product, key string) protocol.Flag {
	return protocol.Flag{Product: product, Key: key, Type: protocol.FlagBoolean, DefaultVariant: "off",
		Variants: map[string]json.RawMessage{"on": json.RawMessage("true"), "off": json.RawMessage("false")}}
}

// A flag change wakes the nodes whose replicas it may change, and no
// other: the agents' sessions resend their assignments with the new values.
func TestFlagChangesWakeTheNodesOfTheirInstances(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.tenant("initech")
	h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: "default"}})
	h.productInstance("acme", "web", "production")
	h.productInstance("initech", "web", "default")
	h.instance("acme", "custom", 1)
	h.node("n1")
	h.node("n2")
	h.node("n3")
	h.place("acme/web", "n1", 1, "r1")
	h.place("initech/web", "n2", 1, "r2")
	h.place("acme/custom", "n3", 1, "r3")

	step := func(what string, change func(), want ...bool) {
		t.Helper()
		ws := []<-chan struct{}{h.Store.NodeWatch("n1"), h.Store.NodeWatch("n2"), h.Store.NodeWatch("n3")}
		change()
		for i, w := range ws {
			woke := false
			select {
			case <-w:
				woke = true
			default:
			}
			if woke != want[i] {
				t.Errorf("%s: n%d woke %v, want %v", what, i+1, woke, want[i])
			}
		}
	}
	override := func(scope, target, variant string) func() {
		return func() {
			h.Must(state.CmdFlagOverride, state.FlagOverride{Scope: scope, Target: target, Key: "beta", Variant: variant})
		}
	}
	step("a product's flag is defined", func() { h.Must(state.CmdFlagDefine, state.FlagDefine{Flag: boolFlag("crm", "beta")}) }, true, true, false)
	step("a tenant's override", override(protocol.FlagScopeTenant, "acme", "on"), true, false, false)
	step("an environment's override", override(protocol.FlagScopeEnvironment, "default", "on"), false, true, false)
	step("an instance's override", override(protocol.FlagScopeInstance, "initech/web", "off"), false, true, false)
	step("an instance's override removed", override(protocol.FlagScopeInstance, "initech/web", ""), false, true, false)

	resolved := func(id string) string {
		fs := h.Snapshot().InstanceFlags(h.Snapshot().Instance(id))
		if len(fs) != 1 {
			return fmt.Sprint(fs)
		}
		return fs[0].Variant + " " + fs[0].Source
	}
	if got := resolved("acme/web"); got != "on tenant" {
		t.Errorf("acme/web's beta = %s, want on from its tenant", got)
	}
	if got := resolved("initech/web"); got != "on environment" {
		t.Errorf("initech/web's beta = %s, want on from its environment", got)
	}
	if fs := h.Snapshot().InstanceFlags(h.Snapshot().Instance("acme/custom")); len(fs) != 0 {
		t.Errorf("a custom instance has flags: %v", fs)
	}

	// Deleting the instance and the tenant takes their overrides along.
	h.Must(state.CmdFlagOverride, state.FlagOverride{Scope: protocol.FlagScopeInstance, Target: "acme/web", Key: "beta", Variant: "off"})
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "web"})
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "custom"})
	h.Must(state.CmdTenantDelete, state.NameBody{Name: "acme"})
	for _, target := range []string{"acme", "acme/web"} {
		for _, scope := range protocol.FlagScopes {
			if os := h.Snapshot().FlagOverrides(scope, target); len(os) > 0 {
				t.Errorf("overrides of deleted %s remain: %+v", target, os[0])
			}
		}
	}
}

func TestFlagsPerProductAreBounded(t *testing.T) {
	h := newHarness(t)
	h.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: "crm"}})
	h.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: "crm2"}})
	for i := range protocol.MaxFlagsPerProduct {
		h.Must(state.CmdFlagDefine, state.FlagDefine{Flag: boolFlag("crm", fmt.Sprintf("f%d", i))})
	}
	e := h.fails(state.CmdFlagDefine, state.FlagDefine{Flag: boolFlag("crm", "one-more")}, protocol.CodeQuotaExceeded)
	if e.Field != "key" {
		t.Errorf("refusal names %q, want key", e.Field)
	}
	// Redefining one is not one more; another product has a budget of its own.
	h.Must(state.CmdFlagDefine, state.FlagDefine{Flag: boolFlag("crm", "f0")})
	h.Must(state.CmdFlagDefine, state.FlagDefine{Flag: boolFlag("crm2", "f0")})
	if n := len(h.Snapshot().Flags("crm")); n != protocol.MaxFlagsPerProduct {
		t.Errorf("crm has %d flags", n)
	}
	if n := len(h.Snapshot().Flags("crm2")); n != 1 {
		t.Errorf("crm2 has %d flags, want 1 (crm's are not crm2's)", n)
	}
	// Values are bounded per product too: a 33rd flag of 1 KiB values
	// passes the 32 KiB of a replica's share.
	big := func(key string) protocol.Flag {
		f := boolFlag("crm2", key)
		f.Type, f.Variants = protocol.FlagString, map[string]json.RawMessage{"off": json.RawMessage(`"` + strings.Repeat("x", 1000) + `"`)}
		return f
	}
	for i := range 32 {
		h.Must(state.CmdFlagDefine, state.FlagDefine{Flag: big(fmt.Sprintf("big%d", i))})
	}
	if e := h.fails(state.CmdFlagDefine, state.FlagDefine{Flag: big("one-more")}, protocol.CodeQuotaExceeded); e.Field != "variants" {
		t.Errorf("refusal names %q, want variants", e.Field)
	}
	// Deleting the product deletes its flags, not crm2's.
	h.Must(state.CmdProductDelete, state.NameBody{Name: "crm"})
	if n := len(h.Snapshot().Flags("crm")); n != 0 {
		t.Errorf("crm's %d flags outlive it", n)
	}
	if n := len(h.Snapshot().Flags("crm2")); n != 33 {
		t.Errorf("deleting crm took crm2's flags: %d left, want 33", n)
	}
}
