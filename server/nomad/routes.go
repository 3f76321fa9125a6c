package nomad

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

var jobTables = []string{state.TableInstances, state.TableReplicas}

func (h *Handler) routes() {
	h.handle("PUT /v1/jobs", h.register)
	h.handle("POST /v1/jobs", h.register)
	h.handle("PUT /v1/job/{id}", h.register)
	h.handle("POST /v1/job/{id}", h.register)
	h.handle("GET /v1/jobs", h.listJobs)
	h.handle("GET /v1/job/{id}", h.getJob)
	h.handle("DELETE /v1/job/{id}", h.deregister)
	h.handle("GET /v1/job/{id}/summary", h.jobSummary)
	h.handle("GET /v1/job/{id}/allocations", h.jobAllocations)
	h.handle("GET /v1/job/{id}/evaluations", h.jobEvaluations)
	h.handle("GET /v1/job/{id}/deployment", h.jobDeployment)
	h.handle("GET /v1/job/{id}/deployments", h.jobDeployments)
	h.handle("GET /v1/job/{id}/scale", h.scaleStatus)
	h.handle("PUT /v1/job/{id}/scale", h.scale)
	h.handle("POST /v1/job/{id}/scale", h.scale)
	h.handle("GET /v1/evaluation/{id}", h.getEvaluation)
	h.handle("GET /v1/evaluation/{id}/allocations", h.evaluationAllocations)
	h.handle("GET /v1/deployment/{id}", h.getDeployment)
	h.handle("GET /v1/deployment/allocations/{id}", h.deploymentAllocations)
	h.handle("PUT /v1/deployment/promote/{id}", h.promote)
	h.handle("POST /v1/deployment/promote/{id}", h.promote)
	h.handle("GET /v1/allocation/{id}", h.getAllocation)
	h.handle("GET /v1/allocations", h.listAllocations)
	h.handle("GET /v1/nodes", h.listNodes)
	h.handle("GET /v1/node/{id}", h.getNode)
	h.handle("GET /v1/status/leader", h.statusLeader)
	h.handle("GET /v1/status/peers", h.statusPeers)
	h.handle("GET /v1/namespaces", h.listNamespaces)
	h.handle("GET /v1/agent/self", h.agentSelf)
}

// register creates or updates the instance a job describes.
func (h *Handler) register(w http.ResponseWriter, r *http.Request, c caller) error {
	var req nomadapi.JobRegisterRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Job == nil {
		return protocol.FieldError("Job", "is required")
	}
	if id := r.PathValue("id"); id != "" && deref(req.Job.ID) != id {
		return protocol.FieldError("Job.ID", "%q does not match the job in the path, %q", deref(req.Job.ID), id)
	}
	ns := deref(req.Job.Namespace)
	if ns == "" {
		ns = r.URL.Query().Get("namespace")
	}
	tenant := h.tenantOf(ns)
	ir, err := instanceRequest(req.Job)
	if err != nil {
		return err
	}
	snap := h.cfg.Store.Snapshot()
	if snap.Tenant(tenant) == nil || !c.sees(tenant) {
		return protocol.Errorf(protocol.CodeInvalidArgument, "namespace %q not found (namespaces are Drover tenants)", ns)
	}
	id := protocol.InstanceID(tenant, ir.Name)
	cur := snap.Instance(id)
	if req.EnforceIndex && (cur == nil && req.JobModifyIndex != 0 || cur != nil && cur.ModifyIndex != req.JobModifyIndex) {
		return protocol.Errorf(protocol.CodeConflict, "Enforcing job modify index %d: job exists with conflicting job modify index", req.JobModifyIndex)
	}
	var idx uint64
	if cur == nil {
		idx, _, err = h.call(r, http.MethodPost, "/v1/tenants/"+tenant+"/instances", ir)
		if isCode(err, protocol.CodeConflict) {
			cur = &protocol.Instance{} // created meanwhile: update it
		}
	}
	if cur != nil {
		if cur.Stopped {
			// Nomad runs a stopped job again when it is registered.
			if _, _, err = h.call(r, http.MethodPost, instancePath(tenant, ir.Name)+"/start", nil); err != nil {
				return err
			}
		}
		idx, _, err = h.call(r, http.MethodPut, instancePath(tenant, ir.Name), ir)
	}
	if err != nil {
		return err
	}
	return answer(w, nomadapi.JobRegisterResponse{EvalID: evalID(id, idx), EvalCreateIndex: idx, JobModifyIndex: idx})
}

// deregister stops a job, or deletes it with ?purge=true.
func (h *Handler) deregister(w http.ResponseWriter, r *http.Request, c caller) error {
	tenant, name := h.requestTenant(r), r.PathValue("id")
	if _, err := h.visibleInstance(h.cfg.Store.Snapshot(), c, tenant, name); err != nil {
		return err
	}
	var idx uint64
	var err error
	if purge, _ := strconv.ParseBool(r.URL.Query().Get("purge")); purge {
		idx, _, err = h.call(r, http.MethodDelete, instancePath(tenant, name), nil)
	} else {
		idx, _, err = h.call(r, http.MethodPost, instancePath(tenant, name)+"/stop", nil)
	}
	if err != nil {
		return err
	}
	return answer(w, nomadapi.JobDeregisterResponse{EvalID: evalID(protocol.InstanceID(tenant, name), idx), EvalCreateIndex: idx, JobModifyIndex: idx})
}

// scale sets the replica count of a job's group.
func (h *Handler) scale(w http.ResponseWriter, r *http.Request, c caller) error {
	var req nomadapi.ScalingRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	tenant, name := h.requestTenant(r), r.PathValue("id")
	if _, err := h.visibleInstance(h.cfg.Store.Snapshot(), c, tenant, name); err != nil {
		return err
	}
	if req.Count == nil {
		return protocol.FieldError("Count", "is required (scaling events without a count are not kept)")
	}
	n := int(*req.Count)
	idx, _, err := h.call(r, http.MethodPost, instancePath(tenant, name)+"/scale", protocol.ScaleRequest{Replicas: &n})
	if err != nil {
		return err
	}
	return answer(w, nomadapi.JobRegisterResponse{EvalID: evalID(protocol.InstanceID(tenant, name), idx), EvalCreateIndex: idx, JobModifyIndex: idx})
}

// promote promotes the canaries of a deployment.
func (h *Handler) promote(w http.ResponseWriter, r *http.Request, c caller) error {
	in, err := h.deploymentInstance(h.cfg.Store.Snapshot(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	idx, _, err := h.call(r, http.MethodPost, instancePath(in.Tenant, in.Name)+"/deployment/promote", map[string]string{"id": in.Deployment.ID})
	if err != nil {
		return err
	}
	return answer(w, nomadapi.DeploymentUpdateResponse{EvalID: evalID(in.ID, idx), EvalCreateIndex: idx, DeploymentModifyIndex: idx})
}

// visibleInstance returns a tenant's instance the caller may see, or 404.
func (h *Handler) visibleInstance(snap *state.Snapshot, c caller, tenant, name string) (*protocol.Instance, error) {
	if in := snap.Instance(protocol.InstanceID(tenant, name)); in != nil && c.sees(tenant) {
		return in, nil
	}
	return nil, protocol.Errorf(protocol.CodeNotFound, "job not found")
}

// jobInstance is the instance of the job of the request's path.
func (h *Handler) jobInstance(w http.ResponseWriter, r *http.Request, c caller, tables ...string) (*state.Snapshot, *protocol.Instance, error) {
	snap, err := h.read(w, r, tables...)
	if err != nil {
		return nil, nil, err
	}
	in, err := h.visibleInstance(snap, c, h.requestTenant(r), r.PathValue("id"))
	return snap, in, err
}

// visible is the instances the caller sees in the request's namespace.
func (h *Handler) visible(snap *state.Snapshot, r *http.Request, c caller) []*protocol.Instance {
	f := state.InstanceFilter{Tenant: h.requestTenant(r)}
	if c.tenant != "" {
		if f.Tenant != "" && f.Tenant != c.tenant {
			return nil
		}
		f.Tenant = c.tenant
	}
	return snap.Instances(f)
}

func (h *Handler) listJobs(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, jobTables...)
	if err != nil {
		return err
	}
	prefix := r.URL.Query().Get("prefix")
	out := []*nomadapi.JobListStub{}
	for _, in := range h.visible(snap, r, c) {
		if !strings.HasPrefix(in.Name, prefix) {
			continue
		}
		st := snap.InstanceStatus(in)
		status, desc := jobStatus(in, st)
		out = append(out, &nomadapi.JobListStub{ID: in.Name, Name: in.Name, Namespace: h.namespaceOf(in.Tenant),
			Datacenters: []string{"*"}, Type: "service", Priority: 50, Stop: in.Stopped, Status: status, StatusDescription: desc,
			JobSummary: h.summary(snap, in), CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex, JobModifyIndex: in.ModifyIndex,
			SubmitTime: in.UpdatedAt.UnixNano()})
	}
	return answer(w, out)
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.jobInstance(w, r, c, jobTables...)
	if err != nil {
		return err
	}
	return answer(w, h.jobOf(in, snap.InstanceStatus(in)))
}

func (h *Handler) jobSummary(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.jobInstance(w, r, c, jobTables...)
	if err != nil {
		return err
	}
	return answer(w, h.summary(snap, in))
}

// summary counts a job's allocations by Nomad's client status.
func (h *Handler) summary(snap *state.Snapshot, in *protocol.Instance) *nomadapi.JobSummary {
	var s nomadapi.TaskGroupSummary
	for _, rep := range snap.Replicas(in.ID) {
		switch clientStatus(rep) {
		case "pending":
			if rep.Node == "" {
				s.Queued++
			} else {
				s.Starting++
			}
		case "running":
			s.Running++
		case "complete":
			s.Complete++
		case "failed":
			s.Failed++
		case "lost":
			s.Lost++
		}
	}
	return &nomadapi.JobSummary{JobID: in.Name, Namespace: h.namespaceOf(in.Tenant),
		Summary: map[string]nomadapi.TaskGroupSummary{groupName(in): s}, CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex}
}

func (h *Handler) jobAllocations(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.jobInstance(w, r, c, jobTables...)
	if err != nil {
		return err
	}
	return answer(w, h.allocStubs(snap, in, func(*protocol.Replica) bool { return true }))
}

func (h *Handler) jobEvaluations(w http.ResponseWriter, r *http.Request, c caller) error {
	_, in, err := h.jobInstance(w, r, c, state.TableInstances)
	if err != nil {
		return err
	}
	out := []*nomadapi.Evaluation{h.evaluation(in, in.ModifyIndex)}
	if in.CreateIndex != in.ModifyIndex {
		out = append(out, h.evaluation(in, in.CreateIndex))
	}
	return answer(w, out)
}

func (h *Handler) jobDeployment(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.jobInstance(w, r, c, jobTables...)
	if err != nil {
		return err
	}
	if in.Deployment == nil {
		return answer(w, nil)
	}
	return answer(w, h.deployment(snap, in))
}

func (h *Handler) jobDeployments(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.jobInstance(w, r, c, jobTables...)
	if err != nil {
		return err
	}
	out := []*nomadapi.Deployment{}
	if in.Deployment != nil {
		out = append(out, h.deployment(snap, in))
	}
	return answer(w, out)
}

func (h *Handler) scaleStatus(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.jobInstance(w, r, c, jobTables...)
	if err != nil {
		return err
	}
	st := snap.InstanceStatus(in)
	placed := 0
	for _, rep := range snap.Replicas(in.ID) {
		if rep.Desired == protocol.DesiredRun && rep.Node != "" {
			placed++
		}
	}
	return answer(w, nomadapi.JobScaleStatusResponse{JobID: in.Name, Namespace: h.namespaceOf(in.Tenant),
		JobCreateIndex: in.CreateIndex, JobModifyIndex: in.ModifyIndex, JobStopped: in.Stopped,
		TaskGroups: map[string]nomadapi.TaskGroupScaleStatus{groupName(in): {Desired: in.Replicas, Placed: placed,
			Running: st.Replicas.Running, Healthy: st.Replicas.Healthy, Unhealthy: st.Replicas.Running - st.Replicas.Healthy}}})
}

// evalID is the id of the evaluation a change of an instance at a Raft
// index stands for: the index and a hash of the instance id, shaped as a
// UUID, so that it is stable and can be looked up without being stored.
func evalID(instanceID string, index uint64) string {
	x := fmt.Sprintf("%016x", index)
	sum := sha256.Sum256([]byte(instanceID))
	hs := hex.EncodeToString(sum[:8])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + hs[:4] + "-" + hs[4:16]
}

// parseEvalID returns the index an evalID holds and its instance hash.
func parseEvalID(id string) (uint64, string, bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 5 {
		return 0, "", false
	}
	idx, err := strconv.ParseUint(parts[0]+parts[1]+parts[2], 16, 64)
	return idx, parts[3] + parts[4], err == nil
}

func (h *Handler) evaluation(in *protocol.Instance, index uint64) *nomadapi.Evaluation {
	e := &nomadapi.Evaluation{ID: evalID(in.ID, index), Priority: 50, Type: "service", TriggeredBy: "job-register",
		Namespace: h.namespaceOf(in.Tenant), JobID: in.Name, JobModifyIndex: index, Status: "complete",
		CreateIndex: index, ModifyIndex: index}
	if in.Deployment != nil {
		e.DeploymentID = in.Deployment.ID
	}
	return e
}

// evalInstance finds the instance of an evaluation id the caller sees.
func (h *Handler) evalInstance(snap *state.Snapshot, r *http.Request, c caller) (*protocol.Instance, uint64, error) {
	id := r.PathValue("id")
	if idx, _, ok := parseEvalID(id); ok {
		for _, in := range h.visible(snap, r, c) {
			if evalID(in.ID, idx) == id && idx >= in.CreateIndex {
				return in, idx, nil
			}
		}
	}
	return nil, 0, protocol.Errorf(protocol.CodeNotFound, "eval not found")
}

func (h *Handler) getEvaluation(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, state.TableInstances)
	if err != nil {
		return err
	}
	in, idx, err := h.evalInstance(snap, allNamespaces(r), c)
	if err != nil {
		return err
	}
	return answer(w, h.evaluation(in, idx))
}

func (h *Handler) evaluationAllocations(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, jobTables...)
	if err != nil {
		return err
	}
	in, _, err := h.evalInstance(snap, allNamespaces(r), c)
	if err != nil {
		return err
	}
	return answer(w, h.allocStubs(snap, in, func(*protocol.Replica) bool { return true }))
}

// allNamespaces makes a request whose object is named by a unique id look
// in every namespace the caller sees, as Nomad's lookups by id do.
func allNamespaces(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	q := r2.URL.Query()
	q.Set("namespace", "*")
	r2.URL.RawQuery = q.Encode()
	return r2
}

// deploymentInstance finds the instance whose deployment has id.
func (h *Handler) deploymentInstance(snap *state.Snapshot, c caller, id string) (*protocol.Instance, error) {
	for _, in := range snap.Instances(state.InstanceFilter{Tenant: c.tenant}) {
		if in.Deployment != nil && in.Deployment.ID == id {
			return in, nil
		}
	}
	return nil, protocol.Errorf(protocol.CodeNotFound, "deployment not found")
}

// readDeployment reads the instance of the deployment in the path.
func (h *Handler) readDeployment(w http.ResponseWriter, r *http.Request, c caller) (*state.Snapshot, *protocol.Instance, error) {
	snap, err := h.read(w, r, jobTables...)
	if err != nil {
		return nil, nil, err
	}
	in, err := h.deploymentInstance(snap, c, r.PathValue("id"))
	return snap, in, err
}

func (h *Handler) getDeployment(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.readDeployment(w, r, c)
	if err != nil {
		return err
	}
	return answer(w, h.deployment(snap, in))
}

func (h *Handler) deploymentAllocations(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, in, err := h.readDeployment(w, r, c)
	if err != nil {
		return err
	}
	to := in.Deployment.ToVersion
	return answer(w, h.allocStubs(snap, in, func(rep *protocol.Replica) bool { return rep.Version == to }))
}

// deploymentStatus maps Drover's deployment states onto Nomad's.
var deploymentStatus = map[string]string{
	protocol.DeploymentRunning: "running", protocol.DeploymentSuccessful: "successful",
	protocol.DeploymentFailed: "failed", protocol.DeploymentRolledBack: "failed", protocol.DeploymentCancelled: "cancelled",
}

func (h *Handler) deployment(snap *state.Snapshot, in *protocol.Instance) *nomadapi.Deployment {
	d := in.Deployment
	ds := &nomadapi.DeploymentState{AutoRevert: in.Spec.Update.AutoRollback, RequireProgressBy: d.Deadline,
		Promoted: d.Promoted, DesiredCanaries: d.Canaries, DesiredTotal: in.Replicas}
	for _, rep := range snap.Replicas(in.ID) {
		if rep.Version != d.ToVersion || rep.Desired != protocol.DesiredRun {
			continue
		}
		ds.PlacedAllocs++
		if rep.Canary {
			ds.PlacedCanaries = append(ds.PlacedCanaries, rep.ID)
		}
		switch rep.State {
		case protocol.ReplicaHealthy:
			ds.HealthyAllocs++
		case protocol.ReplicaUnhealthy, protocol.ReplicaFailed:
			ds.UnhealthyAllocs++
		}
	}
	desc := d.Message
	if d.State == protocol.DeploymentRolledBack && desc == "" {
		desc = "rolled back"
	}
	return &nomadapi.Deployment{ID: d.ID, Namespace: h.namespaceOf(in.Tenant), JobID: in.Name, JobVersion: d.ToVersion,
		JobModifyIndex: in.ModifyIndex, JobCreateIndex: in.CreateIndex,
		TaskGroups: map[string]*nomadapi.DeploymentState{groupName(in): ds},
		Status:     deploymentStatus[d.State], StatusDescription: desc, CreateIndex: in.ModifyIndex, ModifyIndex: in.ModifyIndex}
}

// clientStatus is Nomad's client status of a replica.
func clientStatus(rep *protocol.Replica) string {
	switch rep.State {
	case protocol.ReplicaPending, protocol.ReplicaStarting:
		return "pending"
	case protocol.ReplicaStopped:
		return "complete"
	case protocol.ReplicaFailed:
		return "failed"
	case protocol.ReplicaLost:
		return "lost"
	}
	return "running"
}

func (h *Handler) allocStub(snap *state.Snapshot, in *protocol.Instance, rep *protocol.Replica) *nomadapi.AllocationListStub {
	name := groupName(in)
	cs := clientStatus(rep)
	desired := rep.Desired
	if desired == protocol.DesiredRun {
		desired = "run"
	}
	nodeName := ""
	if n := snap.Node(rep.Node); n != nil {
		nodeName = n.Name
	}
	taskState := map[string]string{"pending": "pending", "running": "running"}[cs]
	if taskState == "" {
		taskState = "dead"
	}
	a := &nomadapi.AllocationListStub{ID: rep.ID, EvalID: evalID(in.ID, rep.CreateIndex), Name: fmt.Sprintf("%s.%s[%s]", in.Name, name, rep.ID),
		Namespace: h.namespaceOf(in.Tenant), NodeID: rep.Node, NodeName: nodeName, JobID: in.Name, JobType: "service",
		JobVersion: rep.Version, TaskGroup: name, DesiredStatus: desired, ClientStatus: cs, ClientDescription: rep.Message,
		TaskStates:  map[string]*nomadapi.TaskState{name: {State: taskState, Failed: cs == "failed", Restarts: uint64(rep.Restarts), StartedAt: rep.StartedAt}},
		CreateIndex: rep.CreateIndex, ModifyIndex: rep.ModifyIndex, CreateTime: rep.CreatedAt.UnixNano()}
	if rep.Health != "" || rep.Canary || rep.State == protocol.ReplicaHealthy || rep.State == protocol.ReplicaUnhealthy {
		ds := &nomadapi.AllocDeploymentStatus{Canary: rep.Canary, Timestamp: rep.HealthySince}
		switch rep.State {
		case protocol.ReplicaHealthy:
			ds.Healthy = ptr(true)
		case protocol.ReplicaUnhealthy, protocol.ReplicaFailed:
			ds.Healthy = ptr(false)
		}
		a.DeploymentStatus = ds
	}
	return a
}

func (h *Handler) allocStubs(snap *state.Snapshot, in *protocol.Instance, keep func(*protocol.Replica) bool) []*nomadapi.AllocationListStub {
	out := []*nomadapi.AllocationListStub{}
	for _, rep := range snap.Replicas(in.ID) {
		if keep(rep) {
			out = append(out, h.allocStub(snap, in, rep))
		}
	}
	return out
}

func (h *Handler) getAllocation(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, jobTables...)
	if err != nil {
		return err
	}
	rep := snap.Replica(r.PathValue("id"))
	if rep == nil || !c.sees(rep.Tenant) {
		return protocol.Errorf(protocol.CodeNotFound, "alloc not found")
	}
	in := snap.Instance(protocol.InstanceID(rep.Tenant, rep.Instance))
	if in == nil {
		return protocol.Errorf(protocol.CodeNotFound, "alloc not found")
	}
	// A full allocation is its stub's fields with its job.
	stub := h.allocStub(snap, in, rep)
	b, err := json.Marshal(stub)
	if err != nil {
		return err
	}
	var a nomadapi.Allocation
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	a.Job = h.jobOf(in, snap.InstanceStatus(in))
	return answer(w, &a)
}

func (h *Handler) listAllocations(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, jobTables...)
	if err != nil {
		return err
	}
	prefix := r.URL.Query().Get("prefix")
	out := []*nomadapi.AllocationListStub{}
	for _, in := range h.visible(snap, r, c) {
		out = append(out, h.allocStubs(snap, in, func(rep *protocol.Replica) bool { return strings.HasPrefix(rep.ID, prefix) })...)
	}
	return answer(w, out)
}

// nodeStub is a node as Nomad lists it: its region is its datacenter.
func nodeStub(n *protocol.Node) *nomadapi.NodeListStub {
	status := map[string]string{protocol.NodeReady: "ready", protocol.NodeDraining: "ready", protocol.NodeDown: "down"}[n.Status]
	if status == "" {
		status = "initializing"
	}
	elig := "eligible"
	if !n.Eligible {
		elig = "ineligible"
	}
	drivers := map[string]*nomadapi.DriverInfo{"raw_exec": {Detected: true, Healthy: true}, "exec": {Detected: true, Healthy: true}}
	return &nomadapi.NodeListStub{Address: n.Address, ID: n.ID, Datacenter: n.Region, Name: n.Name, NodePool: "default",
		Version: n.Facts.AgentVersion, Drain: n.Drain != nil, SchedulingEligibility: elig, Status: status, Drivers: drivers,
		Attributes:  map[string]string{"os.name": n.Facts.OS, "kernel.name": n.Facts.Kernel, "cpu.arch": n.Facts.Arch, "unique.hostname": n.Facts.Hostname},
		CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex}
}

// operators refuses a tenant's token the nodes and the cluster, as the
// admin API does.
func operators(c caller) error {
	if !c.operator() {
		return protocol.Errorf(protocol.CodePermissionDenied, "a %s token may not read nodes", c.role)
	}
	return nil
}

func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := operators(c); err != nil {
		return err
	}
	snap, err := h.read(w, r, state.TableNodes)
	if err != nil {
		return err
	}
	prefix := r.URL.Query().Get("prefix")
	out := []*nomadapi.NodeListStub{}
	for _, n := range snap.Nodes() {
		if strings.HasPrefix(n.ID, prefix) {
			out = append(out, nodeStub(n))
		}
	}
	return answer(w, out)
}

func (h *Handler) getNode(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := operators(c); err != nil {
		return err
	}
	snap, err := h.read(w, r, state.TableNodes)
	if err != nil {
		return err
	}
	n := snap.Node(r.PathValue("id"))
	if n == nil {
		return protocol.Errorf(protocol.CodeNotFound, "node not found")
	}
	s := nodeStub(n)
	return answer(w, &nomadapi.Node{ID: n.ID, Datacenter: s.Datacenter, Name: n.Name, HTTPAddr: n.Address, Attributes: s.Attributes,
		Meta: n.Labels, NodePool: s.NodePool, Drain: s.Drain, SchedulingEligibility: s.SchedulingEligibility, Status: s.Status,
		Drivers: s.Drivers, CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex})
}

func (h *Handler) statusLeader(w http.ResponseWriter, r *http.Request, c caller) error {
	h.leaderHeaders(w)
	_, addr := h.cfg.Cluster.Leader()
	return answer(w, addr)
}

func (h *Handler) statusPeers(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, state.TableServers)
	if err != nil {
		return err
	}
	members, err := h.cfg.Cluster.Members(snap)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "raft configuration: %v", err)
	}
	out := []string{}
	for _, m := range members {
		out = append(out, m.RaftAddr)
	}
	return answer(w, out)
}

func (h *Handler) listNamespaces(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := h.read(w, r, state.TableTenants)
	if err != nil {
		return err
	}
	out := []*nomadapi.Namespace{}
	for _, t := range snap.Tenants() {
		if c.sees(t.Name) {
			out = append(out, &nomadapi.Namespace{Name: h.namespaceOf(t.Name), Description: "Drover tenant " + t.Name,
				Meta: t.Labels, CreateIndex: t.CreateIndex, ModifyIndex: t.ModifyIndex})
		}
	}
	return answer(w, out)
}

// agentSelf answers what clients read of /v1/agent/self: the region,
// datacenter and server name.
func (h *Handler) agentSelf(w http.ResponseWriter, r *http.Request, c caller) error {
	h.leaderHeaders(w)
	id := h.cfg.Cluster.ID()
	return answer(w, nomadapi.AgentSelf{
		Config: map[string]any{"Region": h.cfg.Region, "Datacenter": h.cfg.Region, "NodeName": id, "Server": map[string]any{"Enabled": true}},
		Member: nomadapi.AgentMember{Name: id + "." + h.cfg.Region, Addr: h.cfg.Cluster.HTTPAddr(), Status: "alive",
			Tags: map[string]string{"region": h.cfg.Region, "dc": h.cfg.Region, "role": "nomad", "id": id}},
		Stats: map[string]map[string]string{},
	})
}
