package api

import (
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/state"
)

func (a *API) routes() {
	a.handle("GET /v1/health", local, public, func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": a.c.ID()})
		return nil
	})
	a.handle("GET /v1/status", read, operators, a.status)

	a.handle("POST /v1/tenants", write, operators, a.createTenant)
	a.handle("GET /v1/tenants", read, anyToken, a.listTenants)
	a.handle("GET /v1/tenants/{tenant}", read, anyToken, a.getTenant)
	a.handle("PATCH /v1/tenants/{tenant}", write, operators, a.patchTenant)
	a.handle("DELETE /v1/tenants/{tenant}", write, operators, a.deleteTenant)

	a.handle("GET /v1/environments", read, anyToken, a.listEnvironments)
	a.handle("PUT /v1/environments/{name}", write, operators, a.putEnvironment)
	a.handle("GET /v1/plans", read, anyToken, a.listPlans)
	a.handle("PUT /v1/plans/{name}", write, operators, a.putPlan)

	a.catalogRoutes()
	a.flagRoutes()
	a.rolloutRoutes()

	a.handle("POST /v1/tenants/{tenant}/instances", write, tenantAdmin, a.createInstance)
	a.handle("GET /v1/tenants/{tenant}/instances", read, anyToken, a.listTenantInstances)
	a.handle("GET /v1/instances", read, anyToken, a.listInstances)
	a.handle("GET /v1/tenants/{tenant}/instances/{name}", read, anyToken, a.getInstance)
	a.handle("PUT /v1/tenants/{tenant}/instances/{name}", write, tenantAdmin, a.updateInstance)
	a.handle("DELETE /v1/tenants/{tenant}/instances/{name}", write, tenantAdmin, a.deleteInstance)
	a.handle("POST /v1/tenants/{tenant}/instances/{name}/scale", write, tenantAdmin, a.scaleInstance)
	a.handle("POST /v1/tenants/{tenant}/instances/{name}/deployment/promote", write, tenantAdmin, a.promoteDeployment)
	for _, action := range []string{state.ActionStop, state.ActionStart, state.ActionRestart} {
		a.handle("POST /v1/tenants/{tenant}/instances/{name}/"+action, write, tenantAdmin, a.lifecycle(action))
	}
	a.handle("GET /v1/tenants/{tenant}/instances/{name}/replicas", read, anyToken, a.listReplicas)
	a.handle("GET /v1/tenants/{tenant}/instances/{name}/events", read, anyToken, a.listEvents)
	a.versionRoutes()

	a.handle("GET /v1/tenants/{tenant}/instances/{name}/logs", read, tenantAdmin, a.logs)

	a.handle("GET /v1/routes", read, routes, a.routeTable)
	a.handle("GET /v1/nodes", read, operators, a.listNodes)
	a.handle("GET /v1/nodes/{id}", read, operators, a.getNode)
	a.handle("POST /v1/nodes/{id}/drain", write, operators, a.drainNode)
	a.handle("POST /v1/nodes/{id}/eligibility", write, operators, a.nodeEligibility)
	a.handle("POST /v1/nodes/{id}/revoke", write, operators, a.revokeNode)

	a.handle("POST /v1/acl/bootstrap", write, public, a.aclBootstrap)
	a.handle("POST /v1/acl/tokens", write, management, a.createToken)
	a.handle("GET /v1/acl/tokens", read, management, a.listTokens)
	a.handle("GET /v1/acl/tokens/self", read, anyToken, a.tokenSelf)
	a.handle("DELETE /v1/acl/tokens/{id}", write, management, a.deleteToken)
	a.handle("GET /v1/audit", read, anyToken, a.listAudit)
	a.handle("GET /v1/events", local, anyToken, a.streamEvents)

	a.handle("GET /v1/operator/snapshot", write, management, a.saveSnapshot)
	a.handle("PUT /v1/operator/snapshot", write, management, a.restoreSnapshot)
	a.handle("GET /v1/operator/raft", read, management, a.raftPeers)
	a.handle("GET /v1/operator/state-hash", local, management, a.stateHash)
	a.handle("DELETE /v1/operator/raft/peers/{id}", write, management, a.removePeer)

	a.handle("GET /v1/internal/self", local, public, func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, a.c.Self())
		return nil
	})
	a.handle("POST /v1/internal/join", write, servers, a.join)

	if a.cfg.Metrics != nil {
		a.handle("GET /metrics", local, operators, func(w http.ResponseWriter, r *http.Request) error {
			a.cfg.Metrics.ServeHTTP(w, r)
			return nil
		})
	}
	if a.cfg.TenantMetrics != nil {
		a.handle("GET /v1/tenants/{tenant}/metrics", read, anyToken, a.tenantMetrics)
	}

	if a.cfg.Pprof {
		// Go's profiles of this server (-pprof): management tokens only,
		// as they show memory that holds secrets.
		a.handle("GET /debug/pprof/", local, management, serve(pprof.Index))
		a.handle("GET /debug/pprof/cmdline", local, management, serve(pprof.Cmdline))
		a.handle("GET /debug/pprof/profile", local, management, serve(pprof.Profile))
		a.handle("GET /debug/pprof/symbol", local, management, serve(pprof.Symbol))
		a.handle("GET /debug/pprof/trace", local, management, serve(pprof.Trace))
	}

	a.handle("/v1/", local, anyToken, a.notFound)
}

// serve makes a plain handler one of the API's.
func serve(h http.HandlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		h(w, r)
		return nil
	}
}

// liveReplicas counts the replicas that are wanted or have not ended: those
// that ended for good are history (kept for their exit messages).
func liveReplicas(snap *state.Snapshot) int {
	n := 0
	for _, r := range snap.AllReplicas() {
		if !r.Ended() {
			n++
		}
	}
	return n
}

func (a *API) status(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r)
	if err != nil {
		return err
	}
	members, err := a.c.Members(snap)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "raft configuration: %v", err)
	}
	leader, _ := a.c.Leader()
	writeJSON(w, http.StatusOK, protocol.ClusterStatus{
		Leader: leader, Members: members, Index: snap.Index(), LogVersion: snap.LogVersion(),
		Counts: protocol.Counts{
			Tenants: len(snap.Tenants()), Instances: len(snap.Instances(state.InstanceFilter{})),
			Replicas: liveReplicas(snap), Nodes: snap.NodeCount(),
		},
	})
	return nil
}

// --- tenants, environments, plans ---

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) error {
	var t protocol.Tenant
	if err := decode(r, &t); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return err
	}
	made, err := change[protocol.Tenant](a, w, r, a.auditRecord(r, string(state.CmdTenantUpsert), t.Name), state.CmdTenantUpsert, state.TenantUpsert{Tenant: t, Create: true})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tenantViewOf(a.store.Snapshot(), made))
	return nil
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableTenants)
	if err != nil {
		return err
	}
	id := identityFrom(r)
	out := []tenantView{}
	for _, t := range snap.Tenants() {
		if id.Tenant == "" || t.Name == id.Tenant {
			out = append(out, tenantViewOf(snap, t))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) tenant(snap *state.Snapshot, r *http.Request) (*protocol.Tenant, error) {
	name := r.PathValue("tenant")
	if err := protocol.ValidateName("tenant", name); err != nil {
		return nil, err
	}
	t := snap.Tenant(name)
	if t == nil {
		return nil, protocol.NotFound("tenant", name)
	}
	return t, nil
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableTenants)
	if err != nil {
		return err
	}
	t, err := a.tenant(snap, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantViewOf(snap, t))
	return nil
}

// tenantPatch is the body of PATCH /v1/tenants/{tenant}: fields present
// replace the tenant's.
type tenantPatch struct {
	Labels            *map[string]string          `json:"labels"`
	State             *string                     `json:"state"`
	Quotas            *protocol.Quotas            `json:"quotas"`
	Region            *string                     `json:"region"`
	MaintenanceWindow *protocol.MaintenanceWindow `json:"maintenance_window"`
}

func (a *API) patchTenant(w http.ResponseWriter, r *http.Request) error {
	var p tenantPatch
	if err := decode(r, &p); err != nil {
		return err
	}
	t, err := a.tenant(a.store.Snapshot(), r)
	if err != nil {
		return err
	}
	c := *t
	if p.Labels != nil {
		c.Labels = *p.Labels
	}
	if p.State != nil {
		c.State = *p.State
	}
	if p.Quotas != nil {
		c.Quotas = *p.Quotas
	}
	if p.Region != nil {
		c.Region = *p.Region
	}
	if p.MaintenanceWindow != nil {
		c.MaintenanceWindow = p.MaintenanceWindow
		if len(p.MaintenanceWindow.Days) == 0 && p.MaintenanceWindow.Start == "" && p.MaintenanceWindow.Duration == 0 {
			c.MaintenanceWindow = nil // {} clears the window
		}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	changed, err := change[protocol.Tenant](a, w, r, a.auditRecord(r, string(state.CmdTenantUpsert), c.Name), state.CmdTenantUpsert, state.TenantUpsert{Tenant: c})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantViewOf(a.store.Snapshot(), changed))
	return nil
}

func (a *API) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("tenant")
	if err := protocol.ValidateName("tenant", name); err != nil {
		return err
	}
	if _, err := a.propose(w, r, state.CmdTenantDelete, name, state.NameBody{Name: name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listEnvironments(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append([]*protocol.Environment{}, snap.Environments()...))
	return nil
}

func (a *API) putEnvironment(w http.ResponseWriter, r *http.Request) error {
	var e protocol.Environment
	if err := decode(r, &e); err != nil {
		return err
	}
	e.Name = r.PathValue("name")
	if err := protocol.ValidateName("name", e.Name); err != nil {
		return err
	}
	if e.Constraints.Region != "" {
		if err := protocol.ValidateName("constraints.region", e.Constraints.Region); err != nil {
			return err
		}
	}
	if err := protocol.ValidateLabels("constraints.labels", e.Constraints.Labels); err != nil {
		return err
	}
	out, err := change[protocol.Environment](a, w, r, a.auditRecord(r, string(state.CmdEnvironmentUpsert), e.Name), state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: e})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listPlans(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append([]*protocol.Plan{}, snap.Plans()...))
	return nil
}

func (a *API) putPlan(w http.ResponseWriter, r *http.Request) error {
	var p protocol.Plan
	if err := decode(r, &p); err != nil {
		return err
	}
	p.Name = r.PathValue("name")
	if err := protocol.ValidateName("name", p.Name); err != nil {
		return err
	}
	if err := p.Resources.Validate("resources"); err != nil {
		return err
	}
	if err := protocol.ValidateReplicas("max_replicas", p.MaxReplicas); err != nil {
		return err
	}
	out, err := change[protocol.Plan](a, w, r, a.auditRecord(r, string(state.CmdPlanUpsert), p.Name), state.CmdPlanUpsert, state.PlanUpsert{Plan: p})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// --- nodes ---

func (a *API) listNodes(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableNodes, state.TableReplicas)
	if err != nil {
		return err
	}
	// Each node is made live and encoded as it is written, without
	// reflection: the list of a fleet of 10,000 is polled by consoles.
	writeJSONList(w, http.StatusOK, snap.Nodes(), func(b []byte, n *protocol.Node) ([]byte, error) {
		return protocol.AppendNodeJSON(b, a.liveNode(snap, n))
	})
	return nil
}

// liveNode is a node as answered: what its replicas reserve and what
// placement has left of its CPU and memory, and what the leader last heard
// from it, in its memory only.
func (a *API) liveNode(snap *state.Snapshot, n *protocol.Node) *protocol.Node {
	c := *n
	res := snap.NodeUsage(n.ID)
	c.Reserved = &res
	c.Resources.FreeCPUMillis = max(0, c.Resources.CPUMillis-res.CPUMillis)
	c.Resources.FreeMemoryMB = max(0, c.Resources.MemoryMB-res.MemoryMB)
	if a.cfg.Live == nil {
		return &c
	}
	seen, load, ok := a.cfg.Live(n.ID)
	if !ok {
		return &c
	}
	if seen.After(c.LastSeen) {
		c.LastSeen = seen
	}
	c.Load = load
	return &c
}

// nodeView is a node with the replicas placed on it.
type nodeView struct {
	*protocol.Node
	Replicas []*protocol.Replica `json:"replicas"`
}

func (a *API) getNode(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableNodes, state.TableReplicas)
	if err != nil {
		return err
	}
	n := snap.Node(r.PathValue("id"))
	if n == nil {
		return protocol.NotFound("node", r.PathValue("id"))
	}
	writeJSON(w, http.StatusOK, nodeView{Node: a.liveNode(snap, n), Replicas: append([]*protocol.Replica{}, snap.NodeReplicas(n.ID)...)})
	return nil
}

// DefaultDrainDeadline is how long a drain may take when none is given.
const DefaultDrainDeadline = time.Hour

func (a *API) drainNode(w http.ResponseWriter, r *http.Request) error {
	var req protocol.DrainRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if a.store.Snapshot().Node(id) == nil {
		return protocol.NotFound("node", id)
	}
	if req.Deadline < 0 || req.Deadline.D() > 7*24*time.Hour {
		return protocol.FieldError("deadline", "must be between 0 and 168h")
	}
	cmd := state.NodeDrain{ID: id}
	if req.Enable {
		d := req.Deadline.D()
		if d == 0 {
			d = DefaultDrainDeadline
		}
		now := a.cfg.Clock().UTC()
		cmd.Drain = &protocol.DrainSpec{StartedAt: now, Deadline: now.Add(d)}
	}
	n, err := change[protocol.Node](a, w, r, a.auditRecord(r, string(state.CmdNodeDrain), id), state.CmdNodeDrain, cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (a *API) nodeEligibility(w http.ResponseWriter, r *http.Request) error {
	var req protocol.EligibilityRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Eligible == nil {
		return protocol.FieldError("eligible", "is required: true or false")
	}
	id := r.PathValue("id")
	n, err := change[protocol.Node](a, w, r, a.auditRecord(r, string(state.CmdNodeEligibility), id), state.CmdNodeEligibility, state.NodeEligibility{ID: id, Eligible: *req.Eligible})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

// --- operator ---

func (a *API) saveSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := a.consistentRead(r); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="drover.snap"`)
	w.Header().Set(HeaderIndex, strconv.FormatUint(a.store.Snapshot().Index(), 10))
	if err := a.c.Snapshot(w); err != nil {
		a.logger.Error("snapshot stream failed", "error", err)
	}
	return nil
}

// MaxSnapshotBytes bounds a restored snapshot.
const MaxSnapshotBytes = 1 << 30

func (a *API) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := a.c.Restore(r.Body); err != nil {
		if err == cluster.ErrNotLeader {
			return protocol.Errorf(protocol.CodeUnavailable, "leadership changed; retry")
		}
		return err
	}
	rec := a.auditRecord(r, "operator.snapshot.restore", "cluster")
	rec.Result = "ok"
	idx, err := a.c.Propose(r.Context(), state.CmdStateRestored, state.AuditAppend{Records: []protocol.AuditRecord{*rec}}, nil)
	if err != nil {
		return err
	}
	markRecorded(r)
	w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, map[string]any{"restored": true, "index": idx})
	return nil
}

// stateHash answers the SHA-256 of this server's own state (its snapshot
// bytes) and the index it is at: servers at the same index hold the same
// state, so their hashes must be equal (the upgrade and fault tests compare
// them).
func (a *API) stateHash(w http.ResponseWriter, r *http.Request) error {
	idx, sum, err := a.store.Hash()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": a.c.ID(), "index": idx, "sha256": sum})
	return nil
}

func (a *API) raftPeers(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r)
	if err != nil {
		return err
	}
	members, err := a.c.Members(snap)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "raft configuration: %v", err)
	}
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"servers": members})
	return nil
}

func (a *API) removePeer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == a.c.ID() {
		return protocol.Errorf(protocol.CodeConflict, "server %s is the leader; transfer leadership or stop it first", id)
	}
	if err := a.c.RemoveServer(id); err != nil {
		return err
	}
	if _, err := a.propose(w, r, state.CmdServerRemove, id, state.NameBody{Name: id}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) join(w http.ResponseWriter, r *http.Request) error {
	var req cluster.JoinRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		return protocol.FieldError("id", "id, raft_addr and http_addr are required")
	}
	if err := a.c.AddVoter(req.ID, req.RaftAddr); err != nil {
		return err
	}
	m := protocol.Member{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, Voter: true}
	if cur := a.store.Snapshot().Server(req.ID); cur == nil || cur.HTTPAddr != m.HTTPAddr || cur.RaftAddr != m.RaftAddr {
		if _, err := a.propose(w, r, state.CmdServerUpsert, req.ID, state.ServerUpsert{Member: m}); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}
