package api

// The versions of an instance's spec the state keeps, and rollbacks to
// one of them.

import (
	"fmt"
	"net/http"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

func (a *API) versionRoutes() {
	a.handle("GET /v1/tenants/{tenant}/instances/{name}/versions", read, anyToken, a.listVersions)
	a.handle("POST /v1/tenants/{tenant}/instances/{name}/rollback", write, tenantAdmin, a.rollbackInstance)
}

func (a *API) listVersions(w http.ResponseWriter, r *http.Request) error {
	// Versions are written and dropped only with their instance.
	snap, err := a.read(w, r, state.TableInstances)
	if err != nil {
		return err
	}
	in, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	vs := snap.Versions(in.ID)
	out := make([]protocol.InstanceVersion, 0, len(vs))
	for _, v := range vs {
		iv := protocol.InstanceVersion{Version: v.Version, CreatedAt: v.CreatedAt, Spec: v.Spec.Redacted(),
			Current: v.Version == in.Version, Stable: v.Version == in.StableVersion}
		if v.ProductRef != nil {
			iv.ProductRef = *v.ProductRef
		}
		out = append(out, iv)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// rollbackTarget is the version a rollback without one goes back to: the
// last stable version, or when the instance runs it, the newest one kept
// before it.
func rollbackTarget(snap *state.Snapshot, in *protocol.Instance) (uint64, error) {
	if in.StableVersion != 0 && in.StableVersion != in.Version {
		return in.StableVersion, nil
	}
	var to uint64
	for _, v := range snap.Versions(in.ID) {
		if v.Version < in.Version {
			to = v.Version
		}
	}
	if to == 0 {
		return 0, protocol.Errorf(protocol.CodeConflict, "instance %s has no earlier version to roll back to", in.ID)
	}
	return to, nil
}

// rollbackInstance gives an instance, as a new version, the spec and the
// release of an earlier one: an update like any other, rolled out by a
// deployment with the spec's update strategy.
func (a *API) rollbackInstance(w http.ResponseWriter, r *http.Request) error {
	var req protocol.RollbackRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	snap := a.store.Snapshot()
	cur, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	to := req.Version
	if to == 0 {
		if to, err = rollbackTarget(snap, cur); err != nil {
			return err
		}
	}
	if to == cur.Version {
		return &protocol.Error{Code: protocol.CodeConflict, Field: "version", Message: fmt.Sprintf("instance %s is at version %d already", cur.ID, to)}
	}
	v := snap.Version(cur.ID, to)
	if v == nil {
		return &protocol.Error{Code: protocol.CodeNotFound, Field: "version",
			Message: fmt.Sprintf("version %d of %s is not kept (drover instance history lists those that are)", to, cur.ID)}
	}
	var ref protocol.ProductRef
	switch {
	case v.ProductRef != nil:
		ref = *v.ProductRef
	case cur.Product != "":
		return &protocol.Error{Code: protocol.CodeConflict, Field: "version",
			Message: fmt.Sprintf("version %d of %s was made before the cluster recorded the release of each version: update the instance to the release wanted instead", to, cur.ID)}
	}
	spec := v.Spec
	if err := checkRunAs(r, &spec, cur.Spec.User); err != nil {
		return err
	}
	t := snap.Tenant(cur.Tenant)
	if t == nil {
		return protocol.NotFound("tenant", cur.Tenant)
	}
	if err := checkRegion(t, &spec); err != nil {
		return err
	}
	// The plan and the environment may have changed since version to.
	replicas := cur.Replicas
	spec, _, err = resolveSpec(snap, &protocol.InstanceRequest{Environment: cur.Environment, Plan: cur.Plan, Replicas: &replicas, Spec: spec})
	if err != nil {
		return err
	}
	rec := a.auditRecord(r, "instance.rollback", cur.ID)
	rec.Detail = fmt.Sprintf("to version %d", to)
	// No replica count: the instance keeps the one it has when the
	// change is applied, were it scaled meanwhile.
	return a.proposeUpdate(w, r, rec, state.InstanceUpdate{Tenant: cur.Tenant, Name: cur.Name, Spec: spec, Plan: cur.Plan,
		Environment: cur.Environment, IfVersion: cur.Version, ProductRef: ref})
}
