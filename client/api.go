package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// Health answers nil while the server serves.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/v1/health"}, nil)
	return err
}

// Status is the cluster's leader, members and object counts.
func (c *Client) Status(ctx context.Context, q *QueryOptions) (*protocol.ClusterStatus, Meta, error) {
	return call[*protocol.ClusterStatus](ctx, c, Request{Method: http.MethodGet, Path: "/v1/status", Query: q.values(nil)})
}

// --- tenants ---

// TenantPatch is the body of a tenant change: fields not nil replace the
// tenant's.
type TenantPatch struct {
	Labels            *map[string]string          `json:"labels,omitempty"`
	State             *string                     `json:"state,omitempty"`
	Quotas            *protocol.Quotas            `json:"quotas,omitempty"`
	Region            *string                     `json:"region,omitempty"`
	MaintenanceWindow *protocol.MaintenanceWindow `json:"maintenance_window,omitempty"`
}

// CreateTenant creates a tenant; an existing name is a conflict.
func (c *Client) CreateTenant(ctx context.Context, t *protocol.Tenant) (*protocol.Tenant, Meta, error) {
	return call[*protocol.Tenant](ctx, c, Request{Method: http.MethodPost, Path: "/v1/tenants", Body: t})
}

// Tenants lists the tenants.
func (c *Client) Tenants(ctx context.Context, q *QueryOptions) ([]*protocol.Tenant, Meta, error) {
	return call[[]*protocol.Tenant](ctx, c, Request{Method: http.MethodGet, Path: "/v1/tenants", Query: q.values(nil)})
}

// Tenant reads one tenant.
func (c *Client) Tenant(ctx context.Context, name string, q *QueryOptions) (*protocol.Tenant, Meta, error) {
	return call[*protocol.Tenant](ctx, c, Request{Method: http.MethodGet, Path: "/v1/tenants/" + seg(name), Query: q.values(nil)})
}

// UpdateTenant changes a tenant's labels, state or quotas.
func (c *Client) UpdateTenant(ctx context.Context, name string, p *TenantPatch) (*protocol.Tenant, Meta, error) {
	return call[*protocol.Tenant](ctx, c, Request{Method: http.MethodPatch, Path: "/v1/tenants/" + seg(name), Body: p})
}

// DeleteTenant deletes a tenant.
func (c *Client) DeleteTenant(ctx context.Context, name string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/tenants/" + seg(name)}, nil)
}

// --- environments and plans ---

// Environments lists the environments.
func (c *Client) Environments(ctx context.Context, q *QueryOptions) ([]*protocol.Environment, Meta, error) {
	return call[[]*protocol.Environment](ctx, c, Request{Method: http.MethodGet, Path: "/v1/environments", Query: q.values(nil)})
}

// PutEnvironment creates or replaces an environment.
func (c *Client) PutEnvironment(ctx context.Context, e *protocol.Environment) (*protocol.Environment, Meta, error) {
	return call[*protocol.Environment](ctx, c, Request{Method: http.MethodPut, Path: "/v1/environments/" + seg(e.Name), Body: e})
}

// Plans lists the plans.
func (c *Client) Plans(ctx context.Context, q *QueryOptions) ([]*protocol.Plan, Meta, error) {
	return call[[]*protocol.Plan](ctx, c, Request{Method: http.MethodGet, Path: "/v1/plans", Query: q.values(nil)})
}

// PutPlan creates or replaces a plan.
func (c *Client) PutPlan(ctx context.Context, p *protocol.Plan) (*protocol.Plan, Meta, error) {
	return call[*protocol.Plan](ctx, c, Request{Method: http.MethodPut, Path: "/v1/plans/" + seg(p.Name), Body: p})
}

// --- instances ---

func instancePath(tenant, name string) string {
	return "/v1/tenants/" + seg(tenant) + "/instances/" + seg(name)
}

// InstanceFilter narrows the fleet-wide instance list; empty fields match all.
type InstanceFilter struct {
	Tenant      string
	Environment string
	State       string
}

// Instances lists instances across tenants.
func (c *Client) Instances(ctx context.Context, f InstanceFilter, q *QueryOptions) ([]*protocol.Instance, Meta, error) {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": f.Tenant, "environment": f.Environment, "state": f.State} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return call[[]*protocol.Instance](ctx, c, Request{Method: http.MethodGet, Path: "/v1/instances", Query: q.values(v)})
}

// TenantInstances lists one tenant's instances.
func (c *Client) TenantInstances(ctx context.Context, tenant string, q *QueryOptions) ([]*protocol.Instance, Meta, error) {
	return call[[]*protocol.Instance](ctx, c, Request{Method: http.MethodGet, Path: "/v1/tenants/" + seg(tenant) + "/instances", Query: q.values(nil)})
}

// Instance reads one instance with its status.
func (c *Client) Instance(ctx context.Context, tenant, name string, q *QueryOptions) (*protocol.Instance, Meta, error) {
	return call[*protocol.Instance](ctx, c, Request{Method: http.MethodGet, Path: instancePath(tenant, name), Query: q.values(nil)})
}

// CreateInstance creates an instance of tenant.
func (c *Client) CreateInstance(ctx context.Context, tenant string, req *protocol.InstanceRequest) (*protocol.Instance, Meta, error) {
	return call[*protocol.Instance](ctx, c, Request{Method: http.MethodPost, Path: "/v1/tenants/" + seg(tenant) + "/instances", Body: req})
}

// UpdateInstance gives an instance a new spec, which starts a deployment.
// A non-zero ifVersion makes the update fail with a conflict when the
// instance's version is another.
func (c *Client) UpdateInstance(ctx context.Context, tenant, name string, req *protocol.InstanceRequest, ifVersion uint64) (*protocol.Instance, Meta, error) {
	r := Request{Method: http.MethodPut, Path: instancePath(tenant, name), Body: req}
	if ifVersion != 0 {
		r.Header = http.Header{"If-Match": {strconv.FormatUint(ifVersion, 10)}}
	}
	return call[*protocol.Instance](ctx, c, r)
}

// ScaleInstance sets an instance's replica count.
func (c *Client) ScaleInstance(ctx context.Context, tenant, name string, replicas int) (*protocol.Instance, Meta, error) {
	return call[*protocol.Instance](ctx, c, Request{Method: http.MethodPost, Path: instancePath(tenant, name) + "/scale", Body: protocol.ScaleRequest{Replicas: &replicas}})
}

// Lifecycle actions of an instance.
const (
	ActionStop    = "stop"
	ActionStart   = "start"
	ActionRestart = "restart"
)

// InstanceAction stops, starts or restarts an instance (ActionStop, ...).
// confirm names the instance again, as stopping one in a protected
// environment requires; empty otherwise.
func (c *Client) InstanceAction(ctx context.Context, tenant, name, action, confirm string) (*protocol.Instance, Meta, error) {
	return call[*protocol.Instance](ctx, c, Request{Method: http.MethodPost, Path: instancePath(tenant, name) + "/" + seg(action), Query: confirmQuery(confirm)})
}

func confirmQuery(confirm string) url.Values {
	if confirm == "" {
		return nil
	}
	return url.Values{"confirm": {confirm}}
}

// PromoteDeployment promotes the canaries of an instance's running
// deployment, so that the rest of the replicas roll.
func (c *Client) PromoteDeployment(ctx context.Context, tenant, name string) (*protocol.Instance, Meta, error) {
	return call[*protocol.Instance](ctx, c, Request{Method: http.MethodPost, Path: instancePath(tenant, name) + "/deployment/promote", Body: nil})
}

// DeleteInstance stops and removes an instance.
// confirm is as for InstanceAction.
func (c *Client) DeleteInstance(ctx context.Context, tenant, name, confirm string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: instancePath(tenant, name), Query: confirmQuery(confirm)}, nil)
}

// Replicas lists an instance's replicas.
func (c *Client) Replicas(ctx context.Context, tenant, name string, q *QueryOptions) ([]*protocol.Replica, Meta, error) {
	return call[[]*protocol.Replica](ctx, c, Request{Method: http.MethodGet, Path: instancePath(tenant, name) + "/replicas", Query: q.values(nil)})
}

// Events lists an instance's recent events, oldest first.
func (c *Client) Events(ctx context.Context, tenant, name string, q *QueryOptions) ([]*protocol.Event, Meta, error) {
	return call[[]*protocol.Event](ctx, c, Request{Method: http.MethodGet, Path: instancePath(tenant, name) + "/events", Query: q.values(nil)})
}

// InstanceVersions lists the versions of an instance's spec the servers
// keep, oldest first.
func (c *Client) InstanceVersions(ctx context.Context, tenant, name string, q *QueryOptions) ([]protocol.InstanceVersion, Meta, error) {
	return call[[]protocol.InstanceVersion](ctx, c, Request{Method: http.MethodGet, Path: instancePath(tenant, name) + "/versions", Query: q.values(nil)})
}

// RollbackInstance gives an instance the spec (and release) of an earlier
// version, as a new version rolled out by a deployment; version 0 picks
// the last stable one (protocol.RollbackRequest).
func (c *Client) RollbackInstance(ctx context.Context, tenant, name string, version uint64) (*protocol.Instance, Meta, error) {
	return call[*protocol.Instance](ctx, c, Request{Method: http.MethodPost, Path: instancePath(tenant, name) + "/rollback",
		Body: protocol.RollbackRequest{Version: version}})
}

// --- nodes ---

// NodeDetail is a node with the replicas placed on it.
type NodeDetail struct {
	protocol.Node
	Replicas []*protocol.Replica `json:"replicas"`
}

// Nodes lists the nodes.
func (c *Client) Nodes(ctx context.Context, q *QueryOptions) ([]*protocol.Node, Meta, error) {
	return call[[]*protocol.Node](ctx, c, Request{Method: http.MethodGet, Path: "/v1/nodes", Query: q.values(nil)})
}

// Node reads one node with its replicas.
func (c *Client) Node(ctx context.Context, id string, q *QueryOptions) (*NodeDetail, Meta, error) {
	return call[*NodeDetail](ctx, c, Request{Method: http.MethodGet, Path: "/v1/nodes/" + seg(id), Query: q.values(nil)})
}

// DrainNode starts (enable) or ends a node's drain. A zero deadline takes
// the server's default.
func (c *Client) DrainNode(ctx context.Context, id string, enable bool, deadline time.Duration) (*protocol.Node, Meta, error) {
	return call[*protocol.Node](ctx, c, Request{Method: http.MethodPost, Path: "/v1/nodes/" + seg(id) + "/drain", Body: protocol.DrainRequest{Enable: enable, Deadline: protocol.Duration(deadline)}})
}

// SetNodeEligibility lets the scheduler place new replicas on a node, or not.
func (c *Client) SetNodeEligibility(ctx context.Context, id string, eligible bool) (*protocol.Node, Meta, error) {
	return call[*protocol.Node](ctx, c, Request{Method: http.MethodPost, Path: "/v1/nodes/" + seg(id) + "/eligibility", Body: protocol.EligibilityRequest{Eligible: &eligible}})
}

// RevokeNode revokes a node's identity: its agent can no longer connect.
func (c *Client) RevokeNode(ctx context.Context, id string) (*protocol.Node, Meta, error) {
	return call[*protocol.Node](ctx, c, Request{Method: http.MethodPost, Path: "/v1/nodes/" + seg(id) + "/revoke", Body: nil})
}

// --- operator ---

// SaveSnapshot streams a snapshot of the whole state into w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (Meta, error) {
	body, m, err := c.Stream(ctx, Request{Method: http.MethodGet, Path: "/v1/operator/snapshot"})
	if err != nil {
		return m, err
	}
	defer body.Close()
	if _, err := io.Copy(w, body); err != nil {
		return m, err
	}
	return m, nil
}

// RestoreSnapshot replaces the whole state with the snapshot read from r.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodPut, Path: "/v1/operator/snapshot", Body: r}, nil)
}

// RaftPeers lists the Raft members.
func (c *Client) RaftPeers(ctx context.Context, q *QueryOptions) ([]protocol.Member, Meta, error) {
	var out struct {
		Servers []protocol.Member `json:"servers"`
	}
	m, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/v1/operator/raft", Query: q.values(nil)}, &out)
	return out.Servers, m, err
}

// RemoveRaftPeer removes a server from the Raft configuration.
func (c *Client) RemoveRaftPeer(ctx context.Context, id string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/operator/raft/peers/" + seg(id)}, nil)
}

// --- ACL and audit ---

// ACLBootstrap creates the first management token; it works once.
func (c *Client) ACLBootstrap(ctx context.Context) (*protocol.Token, Meta, error) {
	return call[*protocol.Token](ctx, c, Request{Method: http.MethodPost, Path: "/v1/acl/bootstrap", Body: nil})
}

// CreateToken creates a token; its Secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, req *protocol.TokenRequest) (*protocol.Token, Meta, error) {
	return call[*protocol.Token](ctx, c, Request{Method: http.MethodPost, Path: "/v1/acl/tokens", Body: req})
}

// Tokens lists the tokens (without secrets).
func (c *Client) Tokens(ctx context.Context, q *QueryOptions) ([]*protocol.Token, Meta, error) {
	return call[[]*protocol.Token](ctx, c, Request{Method: http.MethodGet, Path: "/v1/acl/tokens", Query: q.values(nil)})
}

// TokenSelf is the token the client uses.
func (c *Client) TokenSelf(ctx context.Context) (*protocol.Token, Meta, error) {
	return call[*protocol.Token](ctx, c, Request{Method: http.MethodGet, Path: "/v1/acl/tokens/self"})
}

// RevokeToken deletes a token.
func (c *Client) RevokeToken(ctx context.Context, id string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/acl/tokens/" + seg(id)}, nil)
}

// AuditFilter narrows the audit records; zero fields match all.
type AuditFilter struct {
	Tenant string
	// Since keeps the records of the last Since.
	Since time.Duration
}

// Audit lists audit records.
func (c *Client) Audit(ctx context.Context, f AuditFilter, q *QueryOptions) ([]*protocol.AuditRecord, Meta, error) {
	v := url.Values{}
	if f.Tenant != "" {
		v.Set("tenant", f.Tenant)
	}
	if f.Since > 0 {
		v.Set("since", f.Since.String())
	}
	return call[[]*protocol.AuditRecord](ctx, c, Request{Method: http.MethodGet, Path: "/v1/audit", Query: q.values(v)})
}

// --- the catalogue ---

// PutProduct creates or replaces a product.
func (c *Client) PutProduct(ctx context.Context, p *protocol.Product) (*protocol.Product, Meta, error) {
	return call[*protocol.Product](ctx, c, Request{Method: http.MethodPut, Path: "/v1/products/" + seg(p.Name), Body: p})
}

// Products lists the products.
func (c *Client) Products(ctx context.Context, q *QueryOptions) ([]*protocol.Product, Meta, error) {
	return call[[]*protocol.Product](ctx, c, Request{Method: http.MethodGet, Path: "/v1/products", Query: q.values(nil)})
}

// Product reads one product.
func (c *Client) Product(ctx context.Context, name string, q *QueryOptions) (*protocol.Product, Meta, error) {
	return call[*protocol.Product](ctx, c, Request{Method: http.MethodGet, Path: "/v1/products/" + seg(name), Query: q.values(nil)})
}

// DeleteProduct deletes a product no instance uses.
func (c *Client) DeleteProduct(ctx context.Context, name string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/products/" + seg(name)}, nil)
}

// PublishRelease adds a release to a product.
func (c *Client) PublishRelease(ctx context.Context, product string, r *protocol.Release) (*protocol.Release, Meta, error) {
	return call[*protocol.Release](ctx, c, Request{Method: http.MethodPost, Path: "/v1/products/" + seg(product) + "/releases", Body: r})
}

// Releases lists a product's releases, oldest version first.
func (c *Client) Releases(ctx context.Context, product string, q *QueryOptions) ([]*protocol.Release, Meta, error) {
	return call[[]*protocol.Release](ctx, c, Request{Method: http.MethodGet, Path: "/v1/products/" + seg(product) + "/releases", Query: q.values(nil)})
}

// UpdateRelease changes a release's state or notes.
func (c *Client) UpdateRelease(ctx context.Context, product, version string, p *protocol.ReleasePatch) (*protocol.Release, Meta, error) {
	return call[*protocol.Release](ctx, c, Request{Method: http.MethodPatch, Path: "/v1/products/" + seg(product) + "/releases/" + seg(version), Body: p})
}

// Channel is a product's channel and the release it points at.
type Channel struct {
	Name    string `json:"name"`
	Release string `json:"release"`
	Default bool   `json:"default,omitempty"`
}

// SetChannel points a product's channel at a release.
func (c *Client) SetChannel(ctx context.Context, product, channel, release string) ([]Channel, Meta, error) {
	return call[[]Channel](ctx, c, Request{Method: http.MethodPut, Path: "/v1/products/" + seg(product) + "/channels/" + seg(channel),
		Body: protocol.ChannelRequest{Release: release}})
}

// Channels lists a product's channels.
func (c *Client) Channels(ctx context.Context, product string, q *QueryOptions) ([]Channel, Meta, error) {
	return call[[]Channel](ctx, c, Request{Method: http.MethodGet, Path: "/v1/products/" + seg(product) + "/channels", Query: q.values(nil)})
}

// --- rollouts ---

// CreateRollout starts a rollout, or with dryRun answers its calendar
// without creating it.
func (c *Client) CreateRollout(ctx context.Context, req *protocol.RolloutRequest, dryRun bool) (*protocol.Rollout, Meta, error) {
	var q url.Values
	if dryRun {
		q = url.Values{"dry_run": {"true"}}
	}
	return call[*protocol.Rollout](ctx, c, Request{Method: http.MethodPost, Path: "/v1/rollouts", Query: q, Body: req})
}

// Rollouts lists rollouts, of one product and in one state when given.
func (c *Client) Rollouts(ctx context.Context, product, state string, q *QueryOptions) ([]*protocol.Rollout, Meta, error) {
	v := url.Values{}
	if product != "" {
		v.Set("product", product)
	}
	if state != "" {
		v.Set("state", state)
	}
	return call[[]*protocol.Rollout](ctx, c, Request{Method: http.MethodGet, Path: "/v1/rollouts", Query: q.values(v)})
}

// Rollout reads one rollout; with q.Index it blocks until the rollouts change.
func (c *Client) Rollout(ctx context.Context, id string, q *QueryOptions) (*protocol.Rollout, Meta, error) {
	return call[*protocol.Rollout](ctx, c, Request{Method: http.MethodGet, Path: "/v1/rollouts/" + seg(id), Query: q.values(nil)})
}

// ControlRollout pauses, resumes, cancels or approves a rollout.
func (c *Client) ControlRollout(ctx context.Context, id, action string) (*protocol.Rollout, Meta, error) {
	return call[*protocol.Rollout](ctx, c, Request{Method: http.MethodPost, Path: "/v1/rollouts/" + seg(id) + "/" + seg(action)})
}

// PutFlag creates or replaces a product's flag.
func (c *Client) PutFlag(ctx context.Context, f *protocol.Flag) (*protocol.Flag, Meta, error) {
	return call[*protocol.Flag](ctx, c, Request{Method: http.MethodPut, Path: "/v1/products/" + seg(f.Product) + "/flags/" + seg(f.Key), Body: f})
}

// Flags lists a product's flags.
func (c *Client) Flags(ctx context.Context, product string, q *QueryOptions) ([]*protocol.Flag, Meta, error) {
	return call[[]*protocol.Flag](ctx, c, Request{Method: http.MethodGet, Path: "/v1/products/" + seg(product) + "/flags", Query: q.values(nil)})
}

// DeleteFlag deletes a product's flag.
func (c *Client) DeleteFlag(ctx context.Context, product, key string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/products/" + seg(product) + "/flags/" + seg(key)}, nil)
}

// overridesPath is where the overrides of a scope's target live: target is
// an environment, a tenant, or an instance's TENANT/NAME.
func overridesPath(scope, target string) string {
	switch scope {
	case protocol.FlagScopeEnvironment:
		return "/v1/environments/" + seg(target) + "/flags"
	case protocol.FlagScopeTenant:
		return "/v1/tenants/" + seg(target) + "/flags"
	}
	tenant, name, _ := strings.Cut(target, "/")
	return "/v1/tenants/" + seg(tenant) + "/instances/" + seg(name) + "/flags"
}

// SetFlagOverride makes a flag's variant that of an environment, a tenant
// or an instance (scope; target as overridesPath reads it).
func (c *Client) SetFlagOverride(ctx context.Context, scope, target, key, variant string) (*protocol.FlagOverride, Meta, error) {
	return call[*protocol.FlagOverride](ctx, c, Request{Method: http.MethodPut, Path: overridesPath(scope, target) + "/" + seg(key),
		Body: protocol.FlagVariant{Variant: variant}})
}

// DeleteFlagOverride removes an override.
func (c *Client) DeleteFlagOverride(ctx context.Context, scope, target, key string) (Meta, error) {
	return c.Do(ctx, Request{Method: http.MethodDelete, Path: overridesPath(scope, target) + "/" + seg(key)}, nil)
}

// FlagOverrides lists the overrides of an environment or a tenant.
func (c *Client) FlagOverrides(ctx context.Context, scope, target string, q *QueryOptions) ([]*protocol.FlagOverride, Meta, error) {
	return call[[]*protocol.FlagOverride](ctx, c, Request{Method: http.MethodGet, Path: overridesPath(scope, target), Query: q.values(nil)})
}

// InstanceFlags reads an instance's resolved flags, each with its source.
func (c *Client) InstanceFlags(ctx context.Context, tenant, name string, q *QueryOptions) ([]protocol.ResolvedFlag, Meta, error) {
	return call[[]protocol.ResolvedFlag](ctx, c, Request{Method: http.MethodGet, Path: overridesPath(protocol.FlagScopeInstance, tenant+"/"+name), Query: q.values(nil)})
}
