package api

import (
	"net/http"
	"strings"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/tlsutil"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// HeaderServerToken carries the servers' shared secret (-server-join-token)
// on calls between servers that do not use TLS client certificates.
const HeaderServerToken = "X-Drover-Server-Token"

// roleServer is the role audit records give another server of the cluster;
// it is not a token role.
const roleServer = "server"

// access says who may call a route. With ACL on, a token's role decides
// (API.md, "Roles"); a tenant token reaches only routes of its own tenant,
// and gets 404 for names outside it, so that it never learns they exist.
type access int

const (
	// public routes need no token: GET /v1/health and the one-time
	// POST /v1/acl/bootstrap.
	public access = iota
	// servers are calls between servers (POST /v1/internal/join, which adds
	// a Raft voter). A server proves itself with a TLS client certificate
	// of the cluster's CA that names tlsutil.ServerName, or with the shared
	// secret of -server-join-token; a management token also passes.
	servers
	// anyToken lets in every role but agent; tenant tokens see their own
	// tenant's objects only (reads, lists, audit).
	anyToken
	// tenantAdmin changes a tenant's instances and reads their logs:
	// management, operator, and tenant-admin tokens of that tenant.
	tenantAdmin
	// operators are management and operator tokens: tenants, environments,
	// plans, nodes, the cluster's status.
	operators
	// routes is the gateways' routing table: gateway tokens, and
	// management and operator tokens.
	routes
	// management only: tokens, operator endpoints (snapshots hold every
	// secret; Raft membership).
	management
)

// allows reports whether a token of role may call a route of acc.
func (acc access) allows(role string) bool {
	switch role {
	case protocol.RoleManagement:
		return true
	case protocol.RoleOperator:
		return acc == anyToken || acc == tenantAdmin || acc == operators || acc == routes
	case protocol.RoleGateway:
		return acc == routes
	case protocol.RoleTenantAdmin:
		return acc == anyToken || acc == tenantAdmin
	case protocol.RoleTenantViewer:
		return acc == anyToken
	}
	return false // agent, or nothing
}

// authorize returns who makes r, or the error to refuse it with: 401
// without a valid token, 404 for another tenant's names, 403 for a role
// that may not call the route.
func (a *API) authorize(r *http.Request, acc access) (identity, error) {
	if acc == servers {
		return a.authorizeServer(r)
	}
	if !a.cfg.ACL {
		return identity{Role: protocol.RoleManagement}, nil
	}
	if acc == public {
		return identity{}, nil
	}
	id, err := a.authenticate(r)
	if err != nil {
		return identity{}, err
	}
	if t := r.PathValue("tenant"); id.Tenant != "" && t != "" && t != id.Tenant {
		return id, hiddenNotFound(r)
	}
	if !acc.allows(id.Role) {
		return id, protocol.Errorf(protocol.CodePermissionDenied, "a %s token may not %s %s", id.Role, r.Method, r.URL.Path)
	}
	return id, nil
}

// Caller returns the role and tenant of the token r carries, checked as
// the API's read routes check it (management with ACL off; 401 without a
// valid token; agent tokens refused). Listeners that serve other APIs on
// the same state, such as server/nomad, authenticate with it.
func (a *API) Caller(r *http.Request) (role, tenant string, err error) {
	id, err := a.authorize(r, anyToken)
	return id.Role, id.Tenant, err
}

// hiddenNotFound is the answer to a tenant token naming another tenant's
// objects: the same 404 a name that does not exist gets.
func hiddenNotFound(r *http.Request) error {
	t := r.PathValue("tenant")
	if name := r.PathValue("name"); name != "" {
		return protocol.NotFound("instance", protocol.InstanceID(t, name))
	}
	return protocol.NotFound("tenant", t)
}

// authenticate resolves the request's bearer token through the state's
// credentials: a token (with its role and tenant), or a node's secret,
// which has the agent role and so reaches no route of the API. The agent
// join token is not a credential: it is refused here like any unknown
// token.
func (a *API) authenticate(r *http.Request) (identity, error) {
	tok := bearer(r)
	if tok == "" {
		return identity{}, protocol.Errorf(protocol.CodeUnauthenticated, "a token is required: send Authorization: Bearer TOKEN")
	}
	snap := a.store.Snapshot()
	cred := snap.Credential(secret.Hash(tok))
	if cred != nil {
		switch cred.Kind {
		case state.CredentialToken:
			if t := snap.Token(cred.Owner); t != nil {
				if t.Expired(a.cfg.Clock()) {
					return identity{}, protocol.Errorf(protocol.CodeUnauthenticated, "token %s expired at %s", t.ID, t.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
				}
				return identity{TokenID: t.ID, Role: t.Role, Tenant: t.Tenant}, nil
			}
		case state.CredentialNode:
			return identity{TokenID: "node/" + cred.Owner, Role: protocol.RoleAgent}, nil
		}
	}
	return identity{}, protocol.Errorf(protocol.CodeUnauthenticated, "unknown, revoked or expired token")
}

func bearer(r *http.Request) string { return secret.FromBearer(r.Header.Get("Authorization")) }

// authorizeServer lets in other servers of the cluster (and management
// tokens). It is open only when neither ACL nor a cluster CA is on, as in
// drover dev.
func (a *API) authorizeServer(r *http.Request) (identity, error) {
	if !a.cfg.ACL && !a.cfg.RequireServerAuth {
		return identity{Role: protocol.RoleManagement}, nil
	}
	if a.fromServer(r) {
		return identity{Role: roleServer}, nil
	}
	if bearer(r) != "" {
		if id, err := a.authenticate(r); err == nil && id.Role == protocol.RoleManagement {
			return id, nil
		}
	}
	return identity{}, protocol.Errorf(protocol.CodeUnauthenticated,
		"only servers of this cluster may call %s: they present a TLS certificate of the cluster's CA for %q, or the cluster's -server-join-token",
		r.URL.Path, tlsutil.ServerName)
}

// fromServer reports whether r comes from a server of the cluster: over a
// TLS connection with its certificate, or with the servers' shared secret.
func (a *API) fromServer(r *http.Request) bool {
	if tlsutil.IsServerPeer(r.TLS) {
		return true
	}
	tok := r.Header.Get(HeaderServerToken)
	return a.cfg.ServerToken != "" && tok != "" && secret.Equal(tok, a.cfg.ServerToken)
}

// isChange reports whether r asks to change something, and so is audited
// whatever its outcome.
func isChange(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// maxAuditField bounds what a request puts in an audit record from its URL.
const maxAuditField = 256

// actionOf names what a request that failed before its Raft command tried
// to do: its route, such as "POST /v1/tenants/{tenant}/instances".
func actionOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return protocol.Truncate(r.Method+" "+r.URL.Path, maxAuditField)
}

// targetOf names the object a request is about, as the records of applied
// commands do: tenant/name for an instance, a tenant, a node or token id.
func targetOf(r *http.Request) string {
	t, name, id := r.PathValue("tenant"), r.PathValue("name"), r.PathValue("id")
	var out string
	switch {
	case t != "" && name != "":
		out = protocol.InstanceID(t, name)
	case t != "":
		out = t
	case id != "":
		out = id
	case name != "":
		out = name
	default:
		out = strings.TrimPrefix(r.URL.Path, "/v1/")
	}
	return protocol.Truncate(out, maxAuditField)
}
