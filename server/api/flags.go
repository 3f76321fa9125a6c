package api

import (
	"net/http"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Feature flags (API.md, "Feature flags"): operators define a product's
// flags and override them per environment; tenant-admin tokens override
// their tenant's and instances' tenant_editable flags (the FSM checks it,
// so that a definition changed meanwhile cannot be bypassed); every token
// of the tenant reads the resolved values.

func (a *API) flagRoutes() {
	a.handle("GET /v1/products/{product}/flags", read, anyToken, readOne(a, func(snap *state.Snapshot, r *http.Request) ([]*protocol.Flag, error) {
		p, err := a.product(snap, r)
		if err != nil {
			return nil, err
		}
		return append([]*protocol.Flag{}, snap.Flags(p.Name)...), nil
	}, state.TableFlags, state.TableProducts))
	a.handle("PUT /v1/products/{product}/flags/{key}", write, operators, a.putFlag)
	a.handle("DELETE /v1/products/{product}/flags/{key}", write, operators, a.deleteFlag)

	for _, o := range []struct {
		scope, path string
		acc         access
	}{
		{protocol.FlagScopeEnvironment, "/v1/environments/{name}/flags", operators},
		{protocol.FlagScopeTenant, "/v1/tenants/{tenant}/flags", tenantAdmin},
		{protocol.FlagScopeInstance, "/v1/tenants/{tenant}/instances/{name}/flags", tenantAdmin},
	} {
		a.handle("PUT "+o.path+"/{key}", write, o.acc, a.override(o.scope, true))
		a.handle("DELETE "+o.path+"/{key}", write, o.acc, a.override(o.scope, false))
	}
	a.handle("GET /v1/environments/{name}/flags", read, anyToken, a.listOverrides(protocol.FlagScopeEnvironment))
	a.handle("GET /v1/tenants/{tenant}/flags", read, anyToken, a.listOverrides(protocol.FlagScopeTenant))
	a.handle("GET /v1/tenants/{tenant}/instances/{name}/flags", read, anyToken, readOne(a, func(snap *state.Snapshot, r *http.Request) ([]protocol.ResolvedFlag, error) {
		in, err := a.instance(snap, r)
		if err != nil {
			return nil, err
		}
		return append([]protocol.ResolvedFlag{}, snap.InstanceFlags(in)...), nil
	}, state.TableFlags, state.TableOverrides, state.TableInstances))
}

// pathFlag reads {product} and {key}.
func pathFlag(r *http.Request) (product, key string, err error) {
	product, key = r.PathValue("product"), r.PathValue("key")
	if err := protocol.ValidateName("product", product); err != nil {
		return "", "", err
	}
	return product, key, protocol.ValidateFlagKey("key", key)
}

func (a *API) putFlag(w http.ResponseWriter, r *http.Request) error {
	var f protocol.Flag
	if err := decode(r, &f); err != nil {
		return err
	}
	product, key, err := pathFlag(r)
	if err != nil {
		return err
	}
	for _, p := range []struct{ field, got, path string }{{"product", f.Product, product}, {"key", f.Key, key}} {
		if p.got != "" && p.got != p.path {
			return protocol.FieldError(p.field, "%q does not match the %s in the path, %q", p.got, p.field, p.path)
		}
	}
	f.Product, f.Key = product, key
	if err := f.Validate(); err != nil {
		return err
	}
	if _, err := a.propose(w, r, state.CmdFlagDefine, product+"/"+key, state.FlagDefine{Flag: f}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.store.Snapshot().Flag(product, key))
	return nil
}

func (a *API) deleteFlag(w http.ResponseWriter, r *http.Request) error {
	product, key, err := pathFlag(r)
	if err != nil {
		return err
	}
	if _, err := a.propose(w, r, state.CmdFlagDelete, product+"/"+key, state.FlagDelete{Product: product, Key: key}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// overrideTarget reads the target of an override of scope from the path.
func overrideTarget(scope string, r *http.Request) (string, error) {
	switch scope {
	case protocol.FlagScopeEnvironment:
		name := r.PathValue("name")
		return name, protocol.ValidateName("environment", name)
	case protocol.FlagScopeTenant:
		t := r.PathValue("tenant")
		return t, protocol.ValidateName("tenant", t)
	}
	tenant, name, err := pathInstance(r)
	return protocol.InstanceID(tenant, name), err
}

// override sets (set) or removes an override of scope. Its audit record
// names the target and, in its detail, the flag and variant.
func (a *API) override(scope string, set bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req protocol.FlagVariant
		if set {
			if err := decode(r, &req); err != nil {
				return err
			}
			if err := protocol.ValidateFlagKey("variant", req.Variant); err != nil {
				return err
			}
		}
		target, err := overrideTarget(scope, r)
		if err != nil {
			return err
		}
		key := r.PathValue("key")
		if err := protocol.ValidateFlagKey("key", key); err != nil {
			return err
		}
		cmd := state.FlagOverride{Scope: scope, Target: target, Key: key, Variant: req.Variant, ByTenant: isTenantToken(r)}
		rec := a.auditRecord(r, "flag.unset", protocol.FlagTarget(scope, target))
		rec.Detail = key
		if set {
			rec.Action, rec.Detail = "flag.set", key+"="+req.Variant
		}
		if _, err := a.proposeAudited(w, r, rec, state.CmdFlagOverride, cmd); err != nil {
			return err
		}
		if !set {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		o := a.store.Snapshot().FlagOverride(scope, target, key)
		if o == nil {
			return protocol.Errorf(protocol.CodeConflict, "the override of %q was removed meanwhile", key)
		}
		writeJSON(w, http.StatusOK, o)
		return nil
	}
}

// listOverrides answers the overrides of an environment or a tenant.
func (a *API) listOverrides(scope string) handlerFunc {
	return readOne(a, func(snap *state.Snapshot, r *http.Request) ([]*protocol.FlagOverride, error) {
		target, err := overrideTarget(scope, r)
		if err != nil {
			return nil, err
		}
		exists := snap.Tenant(target) != nil
		if scope == protocol.FlagScopeEnvironment {
			exists = snap.Environment(target) != nil
		}
		if !exists {
			return nil, protocol.NotFound(scope, target)
		}
		return append([]*protocol.FlagOverride{}, snap.FlagOverrides(scope, target)...), nil
	}, state.TableOverrides, state.TableTenants)
}
