package protocol

import (
	"encoding/json"
	"time"
)

// Tenant states.
const (
	TenantActive    = "active"
	TenantSuspended = "suspended"
)

// Tenant is a customer boundary: its instances, tokens, quotas and audit trail.
type Tenant struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	State  string            `json:"state"`
	Quotas Quotas            `json:"quotas"`
	// Region, when set, is where all the tenant's replicas run (data
	// residency): the scheduler places them nowhere else.
	Region string `json:"region,omitempty"`
	// MaintenanceWindow is when rollouts may upgrade the tenant's
	// instances.
	MaintenanceWindow *MaintenanceWindow `json:"maintenance_window,omitempty"`
	CreatedAt         time.Time          `json:"created_at"`
	CreateIndex       uint64             `json:"create_index"`
	ModifyIndex       uint64             `json:"modify_index"`
}

// Quotas limit what a tenant may run. Zero means unlimited.
type Quotas struct {
	Instances int   `json:"instances,omitempty"`
	Replicas  int   `json:"replicas,omitempty"`
	CPUMillis int64 `json:"cpu_millis,omitempty"`
	MemoryMB  int64 `json:"memory_mb,omitempty"`
}

// Environment is a named stage with its own placement rules and protection.
type Environment struct {
	Name        string      `json:"name"`
	Protected   bool        `json:"protected"`
	Constraints Constraints `json:"constraints"`
	ModifyIndex uint64      `json:"modify_index"`
}

// Plan is a named template of resources and limits instances are created from.
type Plan struct {
	Name        string    `json:"name"`
	Resources   Resources `json:"resources"`
	MaxReplicas int       `json:"max_replicas,omitempty"`
	ModifyIndex uint64    `json:"modify_index"`
}

// InstanceRequest is the body of an instance create or update: the document
// of API.md.
type InstanceRequest struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Plan        string `json:"plan,omitempty"`
	Replicas    *int   `json:"replicas,omitempty"`
	// Domains replace the instance's custom domains; absent from an
	// update, they stay as they are.
	Domains []string `json:"domains,omitempty"`
	// Spec is a custom instance's (operators only). A product instance
	// names its product instead, and the spec is resolved from it.
	Spec Spec `json:"spec"`

	Product string `json:"product,omitempty"`
	// Release or Channel (neither: the product's default channel).
	Release    string                     `json:"release,omitempty"`
	Channel    string                     `json:"channel,omitempty"`
	Pinned     *bool                      `json:"pinned,omitempty"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
}

// Instance is one tenant's deployment in one environment.
type Instance struct {
	ID          string `json:"id"` // tenant/name
	Tenant      string `json:"tenant"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Plan        string `json:"plan,omitempty"`
	// Replicas is the desired count while running; Stopped scales to zero
	// and keeps it, so that start brings it back.
	Replicas int  `json:"replicas"`
	Stopped  bool `json:"stopped"`
	// Domains are host names the gateways route to the instance, besides
	// its generated {name}.{tenant}.{domain}; unique in the cluster.
	Domains []string `json:"domains,omitempty"`
	// Endpoints are the instance's URLs through the gateways (answers only).
	Endpoints []string `json:"endpoints,omitempty"`
	Spec      Spec     `json:"spec"`
	// ProductRef is set for an instance of a product; Spec is then
	// resolved from it.
	ProductRef
	// Version grows with every spec change.
	Version uint64 `json:"version"`
	// StableVersion is the last version that was fully healthy; the target of
	// a rollback.
	StableVersion uint64          `json:"stable_version"`
	RestartEpoch  uint64          `json:"restart_epoch,omitempty"`
	Deployment    *Deployment     `json:"deployment,omitempty"`
	Status        *InstanceStatus `json:"status,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	CreateIndex   uint64          `json:"create_index"`
	ModifyIndex   uint64          `json:"modify_index"`
}

// ProductRef makes an instance one of a product: the release it runs (and
// the channel it follows, if any), whether rollouts leave it alone, and
// the customer's parameters (the secret ones redacted in answers).
type ProductRef struct {
	Product    string            `json:"product,omitempty"`
	Release    string            `json:"release,omitempty"`
	Channel    string            `json:"channel,omitempty"`
	Pinned     bool              `json:"pinned,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

// Instance states reported in InstanceStatus.State.
const (
	InstanceRunning   = "running"
	InstanceDeploying = "deploying"
	InstanceDegraded  = "degraded"
	InstanceStopped   = "stopped"
	InstanceFailed    = "failed"
)

// InstanceStatus summarises an instance's replicas, derived on read.
type InstanceStatus struct {
	State      string        `json:"state"`
	Replicas   ReplicaCounts `json:"replicas"`
	Deployment *Deployment   `json:"deployment,omitempty"`
}

// ReplicaCounts counts an instance's replicas by state.
type ReplicaCounts struct {
	Desired int `json:"desired"`
	Running int `json:"running"`
	Healthy int `json:"healthy"`
	Pending int `json:"pending"`
	Failed  int `json:"failed"`
}

// Deployment states.
const (
	DeploymentRunning    = "running"
	DeploymentSuccessful = "successful"
	DeploymentFailed     = "failed"
	DeploymentRolledBack = "rolled_back"
	DeploymentCancelled  = "cancelled"
)

// Deployment is the roll of an instance from one spec version to the next.
type Deployment struct {
	ID          string    `json:"id"`
	FromVersion uint64    `json:"from_version"`
	ToVersion   uint64    `json:"to_version"`
	State       string    `json:"state"`
	Message     string    `json:"message,omitempty"`
	Canaries    int       `json:"canaries,omitempty"`
	Promoted    bool      `json:"promoted"`
	Rollback    bool      `json:"rollback,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	Deadline    time.Time `json:"deadline"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Spec is the versioned description of what an instance runs.
type Spec struct {
	Version     string            `json:"version,omitempty"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env,omitempty"`
	Secrets     map[string]string `json:"secrets,omitempty"`
	Ports       []string          `json:"ports,omitempty"`
	Resources   Resources         `json:"resources"`
	Health      *HealthCheck      `json:"health,omitempty"`
	Restart     RestartPolicy     `json:"restart"`
	Update      UpdateStrategy    `json:"update"`
	Stop        StopPolicy        `json:"stop"`
	Route       *RouteSpec        `json:"route,omitempty"`
	Constraints Constraints       `json:"constraints"`
	User        string            `json:"user,omitempty"`
}

// RouteSpec says where the gateways send an instance's traffic.
type RouteSpec struct {
	// Port names the port of spec.ports that serves it (default: the first).
	Port string `json:"port,omitempty"`
}

// Resources an instance's replica reserves on its node.
type Resources struct {
	CPUMillis int64 `json:"cpu_millis,omitempty"`
	MemoryMB  int64 `json:"memory_mb,omitempty"`
}

// Health check types.
const (
	HealthHTTP = "http"
	HealthTCP  = "tcp"
	HealthExec = "exec"
	HealthNone = "none"
)

// HealthCheck says how an agent decides a replica is healthy.
type HealthCheck struct {
	Type               string   `json:"type"`
	Port               string   `json:"port,omitempty"`
	Path               string   `json:"path,omitempty"`
	Command            []string `json:"command,omitempty"`
	Interval           Duration `json:"interval,omitempty"`
	Timeout            Duration `json:"timeout,omitempty"`
	HealthyThreshold   int      `json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int      `json:"unhealthy_threshold,omitempty"`
	Grace              Duration `json:"grace,omitempty"`
}

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// RestartPolicy says how an agent restarts a replica's process on its node.
type RestartPolicy struct {
	Policy      string   `json:"policy,omitempty"`
	MaxAttempts int      `json:"max_attempts,omitempty"`
	Window      Duration `json:"window,omitempty"`
	Delay       Duration `json:"delay,omitempty"`
}

// UpdateStrategy says how a deployment rolls a new spec out.
type UpdateStrategy struct {
	MaxParallel     int      `json:"max_parallel,omitempty"`
	MinHealthyTime  Duration `json:"min_healthy_time,omitempty"`
	HealthyDeadline Duration `json:"healthy_deadline,omitempty"`
	AutoRollback    bool     `json:"auto_rollback"`
	Canaries        int      `json:"canaries,omitempty"`
	AutoPromote     bool     `json:"auto_promote,omitempty"`
}

// StopPolicy says how a replica's process is stopped.
type StopPolicy struct {
	Signal  string   `json:"signal,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
	// Drain is how long a replica that served traffic keeps serving its
	// in-flight requests, out of every gateway's pool, before its signal
	// (default 5s; 0s for none).
	Drain *Duration `json:"drain,omitempty"`
}

// Constraints restrict which nodes may run an instance's replicas.
type Constraints struct {
	Region string            `json:"region,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// NoNodeLargeEnough starts the message of a replica no registered node
// could run even empty: it waits for a larger node to join.
const NoNodeLargeEnough = "no node is large enough"

// Replica states.
const (
	ReplicaPending   = "pending"
	ReplicaStarting  = "starting"
	ReplicaRunning   = "running"
	ReplicaHealthy   = "healthy"
	ReplicaUnhealthy = "unhealthy"
	ReplicaStopping  = "stopping"
	ReplicaStopped   = "stopped"
	ReplicaFailed    = "failed"
	ReplicaLost      = "lost"
)

// ReplicaStates are the replica states, in their order of life.
var ReplicaStates = []string{ReplicaPending, ReplicaStarting, ReplicaRunning, ReplicaHealthy, ReplicaUnhealthy,
	ReplicaStopping, ReplicaStopped, ReplicaFailed, ReplicaLost}

// Desired states of a replica, set by the scheduler.
const (
	DesiredRun  = "run"
	DesiredStop = "stop"
)

// Replica (allocation) is one running copy of an instance's process on one node.
type Replica struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Instance string `json:"instance"`
	Node     string `json:"node,omitempty"`
	// Desired is what the scheduler wants (run or stop); State is what the
	// agent last reported.
	Desired string `json:"desired"`
	State   string `json:"state"`
	Health  string `json:"health,omitempty"`
	Version uint64 `json:"version"`
	// Epoch is the instance's restart epoch the replica was started for; a
	// restart replaces replicas of older epochs.
	Epoch  uint64         `json:"epoch,omitempty"`
	Canary bool           `json:"canary,omitempty"`
	Ports  map[string]int `json:"ports,omitempty"`
	// Reserved is what the replica holds on its node while it is wanted and
	// has not ended: its version's resources and number of ports.
	Reserved     Reservation `json:"reserved"`
	Restarts     int         `json:"restarts"`
	StartedAt    time.Time   `json:"started_at,omitzero"`
	HealthySince time.Time   `json:"healthy_since,omitzero"`
	Message      string      `json:"message,omitempty"`
	// StopReason is why the servers stopped the replica ("restarted",
	// "replaced by version 3", "instance stopped"); the agent's reports
	// keep it, where they overwrite Message.
	StopReason string    `json:"stop_reason,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// PlacedAt is when the replica was placed on its node; WasHealthy
	// whether it has ever been reported healthy (log version 6).
	PlacedAt    time.Time `json:"placed_at,omitzero"`
	WasHealthy  bool      `json:"was_healthy,omitempty"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Reservation is what a replica reserves on its node.
type Reservation struct {
	CPUMillis int64 `json:"cpu_millis,omitempty"`
	MemoryMB  int64 `json:"memory_mb,omitempty"`
	Ports     int   `json:"ports,omitempty"`
}

// Holds reports whether the replica holds its reservation on a node: it is
// placed, wanted and has not ended.
func (r *Replica) Holds() bool {
	return r.Node != "" && r.Desired == DesiredRun && !r.Terminal()
}

// Ended reports whether the replica is history: not wanted, and its
// process gone for good. The state keeps a few for their exit messages.
func (r *Replica) Ended() bool { return r.Desired == DesiredStop && r.Terminal() }

// Terminal reports whether the replica's process is gone for good.
func (r *Replica) Terminal() bool {
	switch r.State {
	case ReplicaStopped, ReplicaFailed, ReplicaLost:
		return true
	}
	return false
}

// Node states.
const (
	NodeReady    = "ready"
	NodeDown     = "down"
	NodeDraining = "draining"
)

// Node is a host with an agent.
type Node struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Region    string            `json:"region,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Status    string            `json:"status"`
	Eligible  bool              `json:"eligible"`
	Resources NodeResources     `json:"resources"`
	Facts     NodeFacts         `json:"facts"`
	PortRange PortRange         `json:"port_range"`
	// Reserved is what the replicas placed on the node reserve (answers
	// only); Resources' free CPU and memory are then what placement has
	// left, and Load the host's own view.
	Reserved *Reservation `json:"reserved,omitempty"`
	// Address is where the node's replicas are reached (by the gateways):
	// the agent's -address, else the address its connection came from.
	Address  string     `json:"address,omitempty"`
	Drain    *DrainSpec `json:"drain,omitempty"`
	LastSeen time.Time  `json:"last_seen"`
	// Load is the host's last reported load. It lives in the leader's
	// memory only, so it is absent from stale reads of followers.
	Load        *Metrics `json:"load,omitempty"`
	Revoked     bool     `json:"revoked,omitempty"`
	CreateIndex uint64   `json:"create_index"`
	ModifyIndex uint64   `json:"modify_index"`
}

// NodeResources are a node's total and free capacity.
type NodeResources struct {
	CPUMillis     int64 `json:"cpu_millis"`
	MemoryMB      int64 `json:"memory_mb"`
	DiskMB        int64 `json:"disk_mb"`
	FreeCPUMillis int64 `json:"free_cpu_millis"`
	FreeMemoryMB  int64 `json:"free_memory_mb"`
	FreeDiskMB    int64 `json:"free_disk_mb"`
}

// NodeFacts describe a node's host.
type NodeFacts struct {
	Hostname     string  `json:"hostname,omitempty"`
	OS           string  `json:"os,omitempty"`
	Platform     string  `json:"platform,omitempty"`
	Kernel       string  `json:"kernel,omitempty"`
	Arch         string  `json:"arch,omitempty"`
	CPUCores     int     `json:"cpu_cores,omitempty"`
	CPUMHz       float64 `json:"cpu_mhz,omitempty"`
	AgentVersion string  `json:"agent_version,omitempty"`
	Cgroups      string  `json:"cgroups,omitempty"`
	Limits       bool    `json:"limits"`
	LimitsReason string  `json:"limits_reason,omitempty"`
}

// PortRange is the range of host ports an agent hands out.
type PortRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// DrainSpec is a node's drain in progress.
type DrainSpec struct {
	Deadline  time.Time `json:"deadline"`
	StartedAt time.Time `json:"started_at"`
}

// Event is a recent happening of an instance, kept for operators.
type Event struct {
	ID       uint64    `json:"id"`
	Tenant   string    `json:"tenant"`
	Instance string    `json:"instance"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Replica  string    `json:"replica,omitempty"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message"`
}

// Roles of tokens (API.md, "Roles").
const (
	RoleManagement   = "management"
	RoleOperator     = "operator"
	RoleTenantAdmin  = "tenant-admin"
	RoleTenantViewer = "tenant-viewer"
	RoleAgent        = "agent"
	// RoleGateway reads the routing table only (drover gateway).
	RoleGateway = "gateway"
)

// TokenRoles are the roles POST /v1/acl/tokens creates tokens of.
var TokenRoles = []string{RoleManagement, RoleOperator, RoleTenantAdmin, RoleTenantViewer, RoleGateway}

// Token is an API token. Its secret is shown once at creation; the state
// keeps only its hash.
type Token struct {
	ID string `json:"id"`
	// Secret is answered once, when the token is created; the state keeps
	// only its hash.
	Secret string `json:"secret,omitempty"`
	// AgentJoinToken is answered once, by POST /v1/acl/bootstrap, when the
	// bootstrap created the cluster's agent join token.
	AgentJoinToken string    `json:"agent_join_token,omitempty"`
	Role           string    `json:"role"`
	Tenant         string    `json:"tenant,omitempty"`
	Description    string    `json:"description,omitempty"`
	ExpiresAt      time.Time `json:"expires_at,omitzero"`
	CreatedAt      time.Time `json:"created_at"`
	CreateIndex    uint64    `json:"create_index"`
}

// AuditRecord is one change, or attempted change, to the cluster's state.
type AuditRecord struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	TokenID string    `json:"token_id,omitempty"`
	Role    string    `json:"role,omitempty"`
	Tenant  string    `json:"tenant,omitempty"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	// Detail names the arguments of the action ("replicas=3").
	Detail string `json:"detail,omitempty"`
	Result string `json:"result"`
	Source string `json:"source,omitempty"`
	Index  uint64 `json:"index"`
}

// Member is one server of the cluster as GET /v1/status shows it.
type Member struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
	State    string `json:"state"`
}

// ClusterStatus is the answer of GET /v1/status.
type ClusterStatus struct {
	Leader  string   `json:"leader"`
	Members []Member `json:"members"`
	Index   uint64   `json:"index"`
	Counts  Counts   `json:"counts"`
	// LogVersion is the cluster's Raft log version: the commands it may
	// use, raised once every server runs a build that knows them.
	LogVersion int `json:"log_version"`
}

// Counts are the numbers of objects in the state.
type Counts struct {
	Tenants   int `json:"tenants"`
	Instances int `json:"instances"`
	Replicas  int `json:"replicas"`
	Nodes     int `json:"nodes"`
}

// ScaleRequest is the body of POST .../scale.
type ScaleRequest struct {
	Replicas *int `json:"replicas"`
}

// DrainRequest is the body of POST /v1/nodes/{id}/drain.
type DrainRequest struct {
	Enable   bool     `json:"enable"`
	Deadline Duration `json:"deadline,omitempty"`
}

// EligibilityRequest is the body of POST /v1/nodes/{id}/eligibility.
type EligibilityRequest struct {
	Eligible *bool `json:"eligible"`
}
