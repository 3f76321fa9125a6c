package state

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// CommandType names a Raft command.
type CommandType string

// The commands the FSM applies.
const (
	CmdTenantUpsert      CommandType = "tenant.upsert"
	CmdTenantDelete      CommandType = "tenant.delete"
	CmdEnvironmentUpsert CommandType = "environment.upsert"
	CmdPlanUpsert        CommandType = "plan.upsert"
	CmdInstanceCreate    CommandType = "instance.create"
	CmdInstanceUpdate    CommandType = "instance.update"
	CmdInstanceScale     CommandType = "instance.scale"
	CmdInstanceLifecycle CommandType = "instance.lifecycle"
	CmdInstanceDelete    CommandType = "instance.delete"
	CmdNodeRegister      CommandType = "node.register"
	CmdNodeStatus        CommandType = "node.status"
	CmdNodeDrain         CommandType = "node.drain"
	CmdNodeEligibility   CommandType = "node.eligibility"
	CmdNodeRevoke        CommandType = "node.revoke"
	CmdReplicaReports    CommandType = "replica.reports"
	CmdPlanApply         CommandType = "plan.apply"
	CmdDeploymentPromote CommandType = "deployment.promote"
	CmdTokenCreate       CommandType = "token.create"
	CmdTokenDelete       CommandType = "token.delete"
	CmdACLBootstrap      CommandType = "acl.bootstrap"
	CmdAudit             CommandType = "audit"
	CmdAuditRetention    CommandType = "audit.retention"
	CmdServerUpsert      CommandType = "server.upsert"
	CmdServerRemove      CommandType = "server.remove"
	CmdProductUpsert     CommandType = "product.upsert"
	CmdProductDelete     CommandType = "product.delete"
	CmdReleasePublish    CommandType = "release.publish"
	CmdReleaseUpdate     CommandType = "release.update"
	CmdChannelSet        CommandType = "channel.set"
	CmdRolloutCreate     CommandType = "rollout.create"
	CmdRolloutStep       CommandType = "rollout.step"
	CmdRolloutControl    CommandType = "rollout.control"
	CmdFlagDefine        CommandType = "flag.define"
	CmdFlagDelete        CommandType = "flag.delete"
	CmdFlagOverride      CommandType = "flag.override"
	// CmdStateRestored follows a restore from a backup, whose indexes are
	// older than those clients have seen: it marks every table changed, so
	// that blocking queries wake, and appends its AuditAppend body.
	CmdStateRestored CommandType = "state.restored"
)

// MaxCommandBytes bounds one encoded command; larger ones are refused
// before they reach Raft.
const MaxCommandBytes = 8 << 20

// Command is the envelope of every Raft log entry Drover writes. Time is
// chosen by the proposer so that every server applies the same value.
type Command struct {
	Type CommandType     `json:"type"`
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body"`
	// Audit, when set, is recorded in the same entry as the change, with
	// the result of applying it.
	Audit *protocol.AuditRecord `json:"audit,omitempty"`
	// Idempotency is the request's Idempotency-Key, scoped to its caller:
	// an entry with the key of an earlier one answers that one's outcome
	// (idempotency.go).
	Idempotency string `json:"idempotency,omitempty"`
	// value makes the decoded Body, a new one for each time the command is
	// applied (as decoding does), when the command was made here and not
	// read from the log (a fork's plans: Fork.PlayPlan).
	value func() any
}

// Encode builds the bytes of a command.
func Encode(typ CommandType, now time.Time, body any, audit *protocol.AuditRecord) ([]byte, error) {
	return EncodeKeyed(typ, now, body, audit, "")
}

// EncodeKeyed is Encode for a request with an idempotency key.
func EncodeKeyed(typ CommandType, now time.Time, body any, audit *protocol.AuditRecord, key string) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	out, err := json.Marshal(Command{Type: typ, Time: now.UTC(), Body: b, Audit: audit, Idempotency: key})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	if len(out) > MaxCommandBytes {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "command %s is %d bytes, over the limit of %d", typ, len(out), MaxCommandBytes)
	}
	return out, nil
}

// DecodeCommand parses the envelope of a log entry.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("command of %d bytes over the limit", len(b))
	}
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if c.Type == "" {
		return nil, fmt.Errorf("decode command: no type")
	}
	return &c, nil
}

// TenantUpsert creates (Create) or replaces a tenant.
type TenantUpsert struct {
	Tenant protocol.Tenant `json:"tenant"`
	Create bool            `json:"create"`
}

// NameBody names one object.
type NameBody struct {
	Name string `json:"name"`
}

// EnvironmentUpsert creates or replaces an environment.
type EnvironmentUpsert struct {
	Environment protocol.Environment `json:"environment"`
}

// PlanUpsert creates or replaces a plan.
type PlanUpsert struct {
	Plan protocol.Plan `json:"plan"`
}

// InstanceCreate creates an instance at version 1.
type InstanceCreate struct {
	Instance protocol.Instance `json:"instance"`
}

// InstanceUpdate gives an instance a new spec (and so a new version).
// IfVersion, when not zero, must equal the current version.
type InstanceUpdate struct {
	Tenant      string        `json:"tenant"`
	Name        string        `json:"name"`
	Spec        protocol.Spec `json:"spec"`
	Plan        string        `json:"plan"`
	Environment string        `json:"environment"`
	Replicas    *int          `json:"replicas,omitempty"`
	// Domains, when set, replace the instance's custom domains.
	Domains   *[]string `json:"domains,omitempty"`
	IfVersion uint64    `json:"if_version,omitempty"`
	// ProductRef replaces the instance's (none for a custom instance).
	protocol.ProductRef
}

// InstanceScale changes the replica count.
type InstanceScale struct {
	Tenant   string `json:"tenant"`
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
}

// Lifecycle actions.
const (
	ActionStop    = "stop"
	ActionStart   = "start"
	ActionRestart = "restart"
)

// InstanceLifecycle stops, starts or restarts an instance.
type InstanceLifecycle struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	Action string `json:"action"`
}

// InstanceRef names an instance.
type InstanceRef struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
}

// NodeRegister adds a node, or refreshes its facts when it says hello again.
// SecretHash is set when the node is new (registered with the join token).
type NodeRegister struct {
	Node       protocol.Node `json:"node"`
	SecretHash string        `json:"secret_hash,omitempty"`
}

// NodeStatusUpdate moves nodes up or down. Going down marks their live
// replicas lost.
type NodeStatusUpdate struct {
	Nodes []NodeStatus `json:"nodes"`
}

// NodeStatus is one node's transition.
type NodeStatus struct {
	ID   string    `json:"id"`
	Up   bool      `json:"up"`
	Seen time.Time `json:"seen"`
}

// NodeDrain starts (Drain set) or ends a drain.
type NodeDrain struct {
	ID    string              `json:"id"`
	Drain *protocol.DrainSpec `json:"drain,omitempty"`
}

// NodeEligibility sets whether a node gets new replicas.
type NodeEligibility struct {
	ID       string `json:"id"`
	Eligible bool   `json:"eligible"`
}

// ReplicaReports is a batch of agents' reports of their replicas.
type ReplicaReports struct {
	Reports []NodeReport `json:"reports"`
}

// NodeReport is one node's report: its replicas and resources.
type NodeReport struct {
	Node     string                   `json:"node"`
	Replicas []protocol.ReplicaReport `json:"replicas"`
}

// Plan is a scheduler's decision for one evaluation, applied atomically.
type Plan struct {
	// Instance and EvalIndex name the evaluation; it is removed if no newer
	// trigger arrived since the scheduler read the state.
	Instance  string `json:"instance"`
	EvalIndex uint64 `json:"eval_index"`
	// Version is the instance's version the plan was made for. When the
	// instance has moved on since, the plan's Deployment and Rollback are
	// dropped: the newer version's evaluation decides those.
	Version uint64              `json:"version,omitempty"`
	Place   []*protocol.Replica `json:"place,omitempty"`
	Stop    []ReplicaStop       `json:"stop,omitempty"`
	// Deployment replaces the instance's deployment when set.
	Deployment *protocol.Deployment `json:"deployment,omitempty"`
	// StableVersion, when not zero, records the last fully healthy version.
	StableVersion uint64 `json:"stable_version,omitempty"`
	// Rollback, when not zero, makes the instance's spec that of this version
	// again, as a new version.
	Rollback uint64           `json:"rollback,omitempty"`
	Events   []protocol.Event `json:"events,omitempty"`
	// Retry asks to evaluate the instance again (pending replicas waiting
	// for capacity, a deployment waiting for health).
	Retry bool `json:"retry,omitempty"`
	// RetryAt is when the scheduler wants to evaluate the instance again.
	// It stays in the leader's memory: the FSM keeps the evaluation, and a
	// new leader evaluates it at once.
	RetryAt time.Time `json:"-"`
}

// DeploymentPromote promotes the canaries of an instance's running
// deployment. ID, when set, must name that deployment.
type DeploymentPromote struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	ID     string `json:"id,omitempty"`
}

// clone returns a copy of p that shares nothing with it that can change.
// TestPlanCloneSharesNothing fails when a field it does not copy is added.
func (p *Plan) clone() *Plan {
	c := *p
	c.Place = make([]*protocol.Replica, len(p.Place))
	for i, r := range p.Place {
		cr := *r
		cr.Ports = maps.Clone(r.Ports)
		c.Place[i] = &cr
	}
	c.Stop = slices.Clone(p.Stop)
	if p.Deployment != nil {
		d := *p.Deployment
		c.Deployment = &d
	}
	c.Events = slices.Clone(p.Events)
	return &c
}

// ReplicaStop asks a replica to stop, with the reason.
type ReplicaStop struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// TokenCreate stores a token and the hash of its secret.
type TokenCreate struct {
	Token      protocol.Token `json:"token"`
	SecretHash string         `json:"secret_hash"`
}

// ACLBootstrap creates the first management token, once.
type ACLBootstrap struct {
	Token         protocol.Token `json:"token"`
	SecretHash    string         `json:"secret_hash"`
	JoinTokenHash string         `json:"join_token_hash,omitempty"`
}

// AuditAppend records refused or failed attempts that changed nothing.
type AuditAppend struct {
	Records []protocol.AuditRecord `json:"records"`
}

// ServerUpsert records a server's addresses.
type ServerUpsert struct {
	Member protocol.Member `json:"member"`
}

// ProductUpsert creates or replaces a product (its channels are kept).
type ProductUpsert struct {
	Product protocol.Product `json:"product"`
}

// ReleasePublish adds a release to a product.
type ReleasePublish struct {
	Release protocol.Release `json:"release"`
}

// ReleaseUpdate changes a release's state or notes.
type ReleaseUpdate struct {
	Product string                `json:"product"`
	Version string                `json:"version"`
	Patch   protocol.ReleasePatch `json:"patch"`
}

// ChannelSet points a product's channel at one of its releases.
type ChannelSet struct {
	Product string `json:"product"`
	Channel string `json:"channel"`
	Release string `json:"release"`
}

// RolloutCreate stores a rollout as laid out by the leader.
type RolloutCreate struct {
	Rollout protocol.Rollout `json:"rollout"`
}

// RolloutStep is one move of a rollout: its new record and the instance
// updates that start upgrades. Base is the ModifyIndex of the record the
// step was made from: a step made from an older record (the rollout was
// paused or cancelled meanwhile) changes nothing.
type RolloutStep struct {
	Base     uint64           `json:"base"`
	Rollout  protocol.Rollout `json:"rollout"`
	Upgrades []InstanceUpdate `json:"upgrades,omitempty"`
}

// Rollout controls.
const (
	RolloutPause   = "pause"
	RolloutResume  = "resume"
	RolloutCancel  = "cancel"
	RolloutApprove = "approve"
)

// RolloutControl pauses, resumes, cancels or approves a rollout.
type RolloutControl struct {
	ID     string `json:"id"`
	Action string `json:"action"`
}

// FlagDefine creates or replaces a product's flag.
type FlagDefine struct {
	Flag protocol.Flag `json:"flag"`
}

// FlagDelete removes a product's flag.
type FlagDelete struct {
	Product string `json:"product"`
	Key     string `json:"key"`
}

// FlagOverride sets (Variant not empty) or removes an override. ByTenant
// is set when a tenant token asks: the flag must then be tenant_editable
// in every product that defines it, checked as the entry is applied.
type FlagOverride struct {
	Scope    string `json:"scope"`
	Target   string `json:"target"`
	Key      string `json:"key"`
	Variant  string `json:"variant,omitempty"`
	ByTenant bool   `json:"by_tenant,omitempty"`
}
