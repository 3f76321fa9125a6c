package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/catalog"
	"github.com/drover-dev/drover/server/state"
)

// writeInstance answers an instance, its status read from snap, as
// writeJSON would, through the encoder of the lists (a create's answer
// spent as long in encoding/json as its command in the FSM).
func (a *API) writeInstance(w http.ResponseWriter, status int, snap *state.Snapshot, in *protocol.Instance) {
	st := snap.InstanceStatus(in)
	b, err := a.appendInstance(make([]byte, 0, 2048), snap, in, st)
	if err != nil {
		v := a.view(in, st)
		writeJSON(w, status, &v) // says what cannot be encoded, as before
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// view is an instance as answered: secrets redacted, status st, endpoints
// added.
func (a *API) view(in *protocol.Instance, st *protocol.InstanceStatus) protocol.Instance {
	c := *in
	c.Spec = in.Spec.Redacted()
	c.Status = st
	c.Endpoints = a.endpoints(in)
	return c
}

// writeInstances answers a list of instances of tenant (of any tenant when
// ""), their statuses read in one scan of the replicas, each encoded as it
// is made.
func (a *API) writeInstances(w http.ResponseWriter, snap *state.Snapshot, tenant string, ins []*protocol.Instance) {
	st := snap.Statuses(tenant)
	writeJSONList(w, http.StatusOK, ins, func(b []byte, in *protocol.Instance) ([]byte, error) {
		status := st.Of(in)
		return a.appendInstance(b, snap, in, &status)
	})
}

// pathInstance validates {tenant}/{name} and returns the instance id.
func pathInstance(r *http.Request) (tenant, name string, err error) {
	tenant, name = r.PathValue("tenant"), r.PathValue("name")
	if err := protocol.ValidateName("tenant", tenant); err != nil {
		return "", "", err
	}
	if err := protocol.ValidateName("name", name); err != nil {
		return "", "", err
	}
	return tenant, name, nil
}

func (a *API) instance(snap *state.Snapshot, r *http.Request) (*protocol.Instance, error) {
	tenant, name, err := pathInstance(r)
	if err != nil {
		return nil, err
	}
	in := snap.Instance(protocol.InstanceID(tenant, name))
	if in == nil {
		return nil, protocol.NotFound("instance", protocol.InstanceID(tenant, name))
	}
	return in, nil
}

// checkRunAs keeps the choice of the host user a replica runs as with the
// operators: a tenant naming "root" would run its code as root on hosts it
// does not own.
func checkRunAs(r *http.Request, spec *protocol.Spec, current string) error {
	if spec.User == current {
		return nil
	}
	switch identityFrom(r).Role {
	case protocol.RoleManagement, protocol.RoleOperator:
		return nil
	}
	return &protocol.Error{Code: protocol.CodePermissionDenied, Field: "spec.user",
		Message: "only operators may choose the host user an instance runs as"}
}

// resolveSpec validates a request against the state: the environment and
// plan exist, the plan fills what the spec leaves out and bounds the rest.
func resolveSpec(snap *state.Snapshot, req *protocol.InstanceRequest) (protocol.Spec, int, error) {
	spec := req.Spec
	replicas := protocol.DefaultReplicas
	if req.Replicas != nil {
		replicas = *req.Replicas
	}
	if req.Environment == "" {
		req.Environment = protocol.DefaultEnvironment
	}
	if snap.Environment(req.Environment) == nil {
		return spec, 0, protocol.FieldError("environment", "unknown environment %q", req.Environment)
	}
	if req.Plan != "" {
		p := snap.Plan(req.Plan)
		if p == nil {
			return spec, 0, protocol.FieldError("plan", "unknown plan %q", req.Plan)
		}
		if spec.Resources.CPUMillis == 0 {
			spec.Resources.CPUMillis = p.Resources.CPUMillis
		}
		if spec.Resources.MemoryMB == 0 {
			spec.Resources.MemoryMB = p.Resources.MemoryMB
		}
		if p.Resources.CPUMillis > 0 && spec.Resources.CPUMillis > p.Resources.CPUMillis {
			return spec, 0, &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "spec.resources.cpu_millis",
				Message: "plan " + p.Name + " allows at most " + strconv.FormatInt(p.Resources.CPUMillis, 10) + " cpu_millis"}
		}
		if p.Resources.MemoryMB > 0 && spec.Resources.MemoryMB > p.Resources.MemoryMB {
			return spec, 0, &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "spec.resources.memory_mb",
				Message: "plan " + p.Name + " allows at most " + strconv.FormatInt(p.Resources.MemoryMB, 10) + " memory_mb"}
		}
		if p.MaxReplicas > 0 && replicas > p.MaxReplicas {
			return spec, 0, &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "replicas",
				Message: "plan " + p.Name + " allows at most " + strconv.Itoa(p.MaxReplicas) + " replicas"}
		}
	}
	return spec.WithDefaults(), replicas, nil
}

// resolveRequest turns a request into the spec it runs, in req.Spec: a
// product instance's from its product (returning its ProductRef), a custom
// instance's as sent. Either way it checks the tenant's region.
func (a *API) resolveRequest(r *http.Request, snap *state.Snapshot, req *protocol.InstanceRequest, t *protocol.Tenant, cur *protocol.Instance) (protocol.ProductRef, error) {
	var ref protocol.ProductRef
	if req.Product != "" {
		var spec protocol.Spec
		var err error
		if ref, spec, err = catalog.Resolve(snap, req, cur); err != nil {
			return ref, err
		}
		req.Spec = spec
	} else {
		user := ""
		if cur != nil {
			user = cur.Spec.User
		}
		if err := checkRunAs(r, &req.Spec, user); err != nil {
			return ref, err
		}
	}
	return ref, checkRegion(t, &req.Spec)
}

func (a *API) createInstance(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	if err := protocol.ValidateName("tenant", tenant); err != nil {
		return err
	}
	var req protocol.InstanceRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkCustomSpec(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if err := a.checkDomains(req.Domains); err != nil {
		return err
	}
	snap := a.store.Snapshot()
	t := snap.Tenant(tenant)
	if t == nil {
		return protocol.NotFound("tenant", tenant)
	}
	ref, err := a.resolveRequest(r, snap, &req, t, nil)
	if err != nil {
		return err
	}
	spec, replicas, err := resolveSpec(snap, &req)
	if err != nil {
		return err
	}
	in := protocol.Instance{Tenant: tenant, Name: req.Name, Environment: req.Environment, Plan: req.Plan, Replicas: replicas, Spec: spec, ProductRef: ref, Domains: req.Domains}
	id := protocol.InstanceID(tenant, req.Name)
	made, err := change[protocol.Instance](a, w, r, a.auditRecord(r, string(state.CmdInstanceCreate), id), state.CmdInstanceCreate, state.InstanceCreate{Instance: in})
	if err != nil {
		return err
	}
	a.writeInstance(w, http.StatusCreated, a.store.Snapshot(), made)
	return nil
}

func (a *API) updateInstance(w http.ResponseWriter, r *http.Request) error {
	tenant, name, err := pathInstance(r)
	if err != nil {
		return err
	}
	var req protocol.InstanceRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkCustomSpec(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		req.Name = name
	}
	if req.Name != name {
		return protocol.FieldError("name", "%q does not match the instance in the path, %q; instances cannot be renamed", req.Name, name)
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if err := a.checkDomains(req.Domains); err != nil {
		return err
	}
	var ifVersion uint64
	if h := r.Header.Get("If-Match"); h != "" {
		v, err := strconv.ParseUint(strings.Trim(h, `"`), 10, 64)
		if err != nil {
			return protocol.FieldError("If-Match", "must be an instance version number")
		}
		ifVersion = v
	}
	snap := a.store.Snapshot()
	cur, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	if req.Environment == "" {
		req.Environment = cur.Environment
	}
	if req.Product != "" && req.Plan == "" {
		req.Plan = cur.Plan
	}
	if req.Spec.User == "" && req.Product == "" {
		req.Spec.User = cur.Spec.User // an operator's choice stays
	}
	// Without replicas the update keeps the count the instance has when it
	// is applied: a scale committed meanwhile must not be undone by the
	// count read here (found by the fault-injection suite). The count
	// read here still checks the plan's limits.
	keepReplicas := req.Replicas == nil
	if keepReplicas {
		n := cur.Replicas
		req.Replicas = &n
	}
	t := snap.Tenant(tenant)
	if t == nil {
		return protocol.NotFound("tenant", tenant)
	}
	ref, err := a.resolveRequest(r, snap, &req, t, cur)
	if err != nil {
		return err
	}
	spec, replicas, err := resolveSpec(snap, &req)
	if err != nil {
		return err
	}
	// Secrets are write-only: an update that names a secret key with the
	// redacted placeholder keeps the stored value.
	for k, v := range spec.Secrets {
		if v == "(secret)" {
			if old, ok := cur.Spec.Secrets[k]; ok {
				spec.Secrets[k] = old
			}
		}
	}
	cmd := state.InstanceUpdate{Tenant: tenant, Name: name, Spec: spec, Plan: req.Plan, Environment: req.Environment, Replicas: &replicas, IfVersion: ifVersion, ProductRef: ref}
	if keepReplicas {
		cmd.Replicas = nil
	}
	if req.Domains != nil {
		cmd.Domains = &req.Domains
	}
	return a.proposeUpdate(w, r, a.auditRecord(r, string(state.CmdInstanceUpdate), cur.ID), cmd)
}

// proposeUpdate proposes a new version of an instance (an update or a
// rollback) and answers the instance as the FSM applied it.
func (a *API) proposeUpdate(w http.ResponseWriter, r *http.Request, rec *protocol.AuditRecord, cmd state.InstanceUpdate) error {
	updated, err := change[protocol.Instance](a, w, r, rec, state.CmdInstanceUpdate, cmd)
	if err != nil {
		return err
	}
	a.writeInstance(w, http.StatusOK, a.store.Snapshot(), updated)
	return nil
}

func (a *API) listTenantInstances(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableInstances, state.TableReplicas)
	if err != nil {
		return err
	}
	t, err := a.tenant(snap, r)
	if err != nil {
		return err
	}
	a.writeInstances(w, snap, t.Name, snap.Instances(state.InstanceFilter{Tenant: t.Name}))
	return nil
}

func (a *API) listInstances(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := state.InstanceFilter{Tenant: q.Get("tenant"), Environment: q.Get("environment"), State: q.Get("state")}
	snap, err := a.read(w, r, state.TableInstances, state.TableReplicas)
	if err != nil {
		return err
	}
	if id := identityFrom(r); id.Tenant != "" {
		if f.Tenant != "" && f.Tenant != id.Tenant {
			writeJSON(w, http.StatusOK, []*protocol.Instance{})
			return nil
		}
		f.Tenant = id.Tenant
	}
	a.writeInstances(w, snap, f.Tenant, snap.Instances(f))
	return nil
}

func (a *API) getInstance(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableInstances, state.TableReplicas)
	if err != nil {
		return err
	}
	in, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.FormatUint(in.Version, 10))
	a.writeInstance(w, http.StatusOK, snap, in)
	return nil
}

func (a *API) deleteInstance(w http.ResponseWriter, r *http.Request) error {
	tenant, name, err := pathInstance(r)
	if err != nil {
		return err
	}
	id := protocol.InstanceID(tenant, name)
	if err := a.confirmed(r, id); err != nil {
		return err
	}
	if _, err := a.propose(w, r, state.CmdInstanceDelete, id, state.InstanceRef{Tenant: tenant, Name: name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) scaleInstance(w http.ResponseWriter, r *http.Request) error {
	tenant, name, err := pathInstance(r)
	if err != nil {
		return err
	}
	var req protocol.ScaleRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Replicas == nil {
		return protocol.FieldError("replicas", "is required")
	}
	if err := protocol.ValidateReplicas("replicas", *req.Replicas); err != nil {
		return err
	}
	snap := a.store.Snapshot()
	in, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	if in.Plan != "" {
		if p := snap.Plan(in.Plan); p != nil && p.MaxReplicas > 0 && *req.Replicas > p.MaxReplicas {
			return &protocol.Error{Code: protocol.CodeQuotaExceeded, Field: "replicas",
				Message: "plan " + p.Name + " allows at most " + strconv.Itoa(p.MaxReplicas) + " replicas"}
		}
	}
	rec := a.auditRecord(r, string(state.CmdInstanceScale), in.ID)
	rec.Detail = fmt.Sprintf("replicas %d -> %d", in.Replicas, *req.Replicas)
	scaled, err := change[protocol.Instance](a, w, r, rec, state.CmdInstanceScale, state.InstanceScale{Tenant: tenant, Name: name, Replicas: *req.Replicas})
	if err != nil {
		return err
	}
	a.writeInstance(w, http.StatusOK, a.store.Snapshot(), scaled)
	return nil
}

func (a *API) lifecycle(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tenant, name, err := pathInstance(r)
		if err != nil {
			return err
		}
		id := protocol.InstanceID(tenant, name)
		if action == state.ActionStop {
			if err := a.confirmed(r, id); err != nil {
				return err
			}
		}
		// The action itself, not the command type all three share.
		rec := a.auditRecord(r, "instance."+action, id)
		in, err := change[protocol.Instance](a, w, r, rec, state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: tenant, Name: name, Action: action})
		if err != nil {
			return err
		}
		a.writeInstance(w, http.StatusOK, a.store.Snapshot(), in)
		return nil
	}
}

func (a *API) listReplicas(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableReplicas, state.TableInstances)
	if err != nil {
		return err
	}
	in, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append([]*protocol.Replica{}, snap.Replicas(in.ID)...))
	return nil
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableEvents, state.TableInstances)
	if err != nil {
		return err
	}
	in, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append([]*protocol.Event{}, snap.Events(in.ID)...))
	return nil
}

// confirmed checks that a request to stop or delete an instance of a
// protected environment names it in ?confirm=NAME (or TENANT/NAME), so
// that production is not stopped by a slip of the keyboard.
func (a *API) confirmed(r *http.Request, id string) error {
	snap := a.store.Snapshot()
	in := snap.Instance(id)
	if in == nil {
		return nil // the command answers not_found
	}
	env := snap.Environment(in.Environment)
	if env == nil || !env.Protected {
		return nil
	}
	if c := r.URL.Query().Get("confirm"); c == in.Name || c == in.ID {
		return nil
	}
	return protocol.FieldError("confirm", "instance %s is in the protected environment %q: repeat with ?confirm=%s", in.ID, env.Name, in.Name)
}
