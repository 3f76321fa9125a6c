package e2e

// Scenarios of issue 6: tokens and roles, tenant isolation, agents' join
// token and node secrets, TLS with the CA pinned by the join token, quotas
// and plan limits, the audit log, and secrets that never show.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// aclEndpoint is one route of API.md with a request to send to it.
type aclEndpoint struct {
	method, path string
	body         any
}

func (e aclEndpoint) String() string { return e.method + " " + e.path }

// aclInstanceDoc is a small instance document of API.md.
func aclInstanceDoc(name string, replicas int) map[string]any {
	return map[string]any{"name": name, "replicas": replicas,
		"spec": map[string]any{"command": []string{binPath, "demo-app", "-listen", "127.0.0.1:${PORT}"}, "ports": []string{"http"}}}
}

// aclProductDoc is an instance of the product aclDemoProduct publishes.
func aclProductDoc(name string, replicas int) map[string]any {
	return map[string]any{"name": name, "replicas": replicas, "product": "app"}
}

// aclDemoProduct publishes product "app", the demo app, with a plain and a
// secret parameter and release 1.0.0 on its default channel, stable.
func aclDemoProduct(mgmt *Client) {
	mgmt.JSON(http.MethodPut, "/v1/products/app", map[string]any{
		"template": map[string]any{"ports": []string{"http"},
			"health": map[string]any{"type": "http", "port": "http", "path": "/healthz", "interval": "200ms"}},
		"parameters": []map[string]any{
			{"name": "GREETING", "type": "string", "default": "hello"},
			{"name": "DEMO_ADDR_FILE", "type": "string", "secret": true},
		},
		"default_channel": "stable",
	}, nil)
	mgmt.JSON(http.MethodPost, "/v1/products/app/releases", map[string]any{"version": "1.0.0",
		"command": []string{binPath, "demo-app", "-listen", "127.0.0.1:${PORT}"}}, nil)
	mgmt.JSON(http.MethodPut, "/v1/products/app/channels/stable", map[string]string{"release": "1.0.0"}, nil)
}

// aclTenantsOf returns the "tenant" (or "name") of each object of a JSON list.
func aclTenantsOf(t *testing.T, r *Response, field string) []string {
	t.Helper()
	var out []string
	for _, m := range aclList[map[string]any](t, r) {
		s, _ := m[field].(string)
		out = append(out, s)
	}
	return out
}

// Without a token every aclEndpoint of API.md but /v1/health answers 401;
// with a token of tenant acme, every aclEndpoint naming tenant globex's
// objects answers 404 (or a list without them), and the rest, which are
// not a tenant's, 403. Globex's objects are unchanged afterwards.
func TestACLEveryEndpointNeedsATokenAndHidesOtherTenants(t *testing.T) {
	ac := startACLCluster(t, aclOptions{servers: 3})
	leader := ac.leader()
	mgmt := ac.client(leader, ac.Mgmt)
	for _, name := range []string{"acme", "globex"} {
		mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]any{"name": name, "labels": map[string]string{"owner": name}}, nil)
	}
	mgmt.JSON(http.MethodPost, "/v1/tenants/acme/instances", aclInstanceDoc("api", 1), nil)
	mgmt.JSON(http.MethodPost, "/v1/tenants/globex/instances", aclInstanceDoc("web", 1), nil)
	_, acmeAdmin := ac.token("tenant-admin", "acme")
	globexTokenID, _ := ac.token("tenant-viewer", "globex")
	before := mgmt.JSON(http.MethodGet, "/v1/tenants/globex/instances/web", nil, nil).Body

	const (
		hidden   = "404"  // globex's names: not found
		denied   = "403"  // not a tenant's route
		listed   = "list" // a list without globex's objects
		allowed  = "200"  // acme's own
		public   = "any"  // no token needed
		conflict = "409"  // the bootstrap, done once
		instance = "/v1/tenants/globex/instances/web"
	)
	type row struct {
		aclEndpoint
		asTenant string // what acme's admin token gets
		field    string // for listed: the field naming the tenant
	}
	rows := []row{
		{aclEndpoint{"GET", "/v1/health", nil}, public, ""},
		{aclEndpoint{"GET", "/v1/status", nil}, denied, ""},
		{aclEndpoint{"POST", "/v1/tenants", map[string]string{"name": "initech"}}, denied, ""},
		{aclEndpoint{"GET", "/v1/tenants", nil}, listed, "name"},
		{aclEndpoint{"GET", "/v1/tenants/globex", nil}, hidden, ""},
		{aclEndpoint{"PATCH", "/v1/tenants/globex", map[string]any{"labels": map[string]string{"owner": "acme"}}}, hidden, ""},
		{aclEndpoint{"DELETE", "/v1/tenants/globex", nil}, hidden, ""},
		{aclEndpoint{"GET", "/v1/environments", nil}, allowed, ""},
		{aclEndpoint{"PUT", "/v1/environments/qa", map[string]any{}}, denied, ""},
		{aclEndpoint{"GET", "/v1/plans", nil}, allowed, ""},
		{aclEndpoint{"PUT", "/v1/plans/gold", map[string]any{"max_replicas": 3}}, denied, ""},
		{aclEndpoint{"POST", "/v1/tenants/globex/instances", aclInstanceDoc("evil", 1)}, hidden, ""},
		{aclEndpoint{"GET", "/v1/tenants/globex/instances", nil}, hidden, ""},
		{aclEndpoint{"GET", "/v1/instances", nil}, listed, "tenant"},
		{aclEndpoint{"GET", "/v1/instances?tenant=globex", nil}, listed, "tenant"},
		{aclEndpoint{"GET", instance, nil}, hidden, ""},
		{aclEndpoint{"PUT", instance, aclInstanceDoc("web", 2)}, hidden, ""},
		{aclEndpoint{"POST", instance + "/scale", map[string]int{"replicas": 3}}, hidden, ""},
		{aclEndpoint{"POST", instance + "/stop", nil}, hidden, ""},
		{aclEndpoint{"POST", instance + "/start", nil}, hidden, ""},
		{aclEndpoint{"POST", instance + "/restart", nil}, hidden, ""},
		{aclEndpoint{"POST", instance + "/deployment/promote", nil}, hidden, ""},
		{aclEndpoint{"GET", instance + "/replicas", nil}, hidden, ""},
		{aclEndpoint{"GET", instance + "/events", nil}, hidden, ""},
		{aclEndpoint{"GET", instance + "/logs?tail=10", nil}, hidden, ""},
		{aclEndpoint{"GET", instance + "/logs?follow=true", nil}, hidden, ""},
		{aclEndpoint{"DELETE", instance, nil}, hidden, ""},
		{aclEndpoint{"GET", "/v1/nodes", nil}, denied, ""},
		{aclEndpoint{"GET", "/v1/nodes/some-node", nil}, denied, ""},
		{aclEndpoint{"POST", "/v1/nodes/some-node/drain", map[string]any{"enable": true}}, denied, ""},
		{aclEndpoint{"POST", "/v1/nodes/some-node/eligibility", map[string]any{"eligible": false}}, denied, ""},
		{aclEndpoint{"POST", "/v1/nodes/some-node/revoke", nil}, denied, ""},
		{aclEndpoint{"GET", "/v1/operator/snapshot", nil}, denied, ""},
		{aclEndpoint{"PUT", "/v1/operator/snapshot", []byte("not a snapshot")}, denied, ""},
		{aclEndpoint{"GET", "/v1/operator/raft", nil}, denied, ""},
		{aclEndpoint{"DELETE", "/v1/operator/raft/peers/" + leader.ID(), nil}, denied, ""},
		{aclEndpoint{"POST", "/v1/acl/bootstrap", nil}, conflict, ""},
		{aclEndpoint{"POST", "/v1/acl/tokens", map[string]string{"role": "tenant-admin", "tenant": "globex"}}, denied, ""},
		{aclEndpoint{"GET", "/v1/acl/tokens", nil}, denied, ""},
		{aclEndpoint{"GET", "/v1/acl/tokens/self", nil}, allowed, ""},
		{aclEndpoint{"DELETE", "/v1/acl/tokens/" + globexTokenID, nil}, denied, ""},
		{aclEndpoint{"GET", "/v1/audit", nil}, listed, "tenant"},
		{aclEndpoint{"GET", "/v1/audit?tenant=globex", nil}, listed, "tenant"},
		{aclEndpoint{"GET", "/metrics", nil}, denied, ""},
		// GET /v1/agent/connect is the agents' WebSocket: it authenticates
		// the aclHello (join token or node secret), see
		// TestACLAgentsNeedTheJoinTokenThenTheirSecret.
	}

	for _, s := range ac.Servers() {
		t.Run("no token/"+s.Name(), func(t *testing.T) {
			c := ac.client(s, "")
			for _, e := range rows {
				r, err := c.Try(e.method, e.path, e.body)
				if err != nil {
					t.Fatalf("%s: %v", e, err)
				}
				want := http.StatusUnauthorized
				switch e.asTenant {
				case public:
					want = http.StatusOK
				case conflict:
					want = http.StatusConflict
				}
				if r.Status != want {
					t.Errorf("%s without a token: %s, want %d", e, r, want)
				}
			}
		})
	}
	for _, s := range []*Server{leader, ac.otherThan(leader)} {
		t.Run("tenant acme/"+s.Name(), func(t *testing.T) {
			c := ac.client(s, acmeAdmin)
			for _, e := range rows {
				r, err := c.Try(e.method, e.path, e.body)
				if err != nil {
					t.Fatalf("%s: %v", e, err)
				}
				switch e.asTenant {
				case hidden:
					if r.Status != http.StatusNotFound || r.ErrorCode() != "not_found" {
						t.Errorf("%s with acme's token: %s, want 404 not_found", e, r)
					}
				case denied:
					if r.Status != http.StatusForbidden || r.ErrorCode() != "permission_denied" {
						t.Errorf("%s with acme's token: %s, want 403 permission_denied", e, r)
					}
				case listed:
					if r.Status != http.StatusOK {
						t.Errorf("%s with acme's token: %s, want 200", e, r)
						continue
					}
					for _, tn := range aclTenantsOf(t, r, e.field) {
						if tn != "acme" {
							t.Errorf("%s with acme's token lists an object of %q: %s", e, tn, r)
						}
					}
				case allowed, public:
					if r.Status != http.StatusOK {
						t.Errorf("%s with acme's token: %s, want 200", e, r)
					}
				case conflict:
					if r.Status != http.StatusConflict {
						t.Errorf("%s: %s, want 409", e, r)
					}
				}
			}
		})
	}

	// Acme's own objects are there for it; globex's are as they were.
	c := ac.client(ac.otherThan(leader), acmeAdmin)
	if names := aclTenantsOf(t, c.JSON(http.MethodGet, "/v1/instances", nil, nil), "tenant"); len(names) != 1 {
		t.Fatalf("acme's token lists %v, want acme's one instance", names)
	}
	if after := mgmt.JSON(http.MethodGet, "/v1/tenants/globex/instances/web", nil, nil).Body; !aclSameInstance(t, before, after) {
		t.Fatalf("globex/web changed:\nbefore %s\nafter  %s", before, after)
	}
	var tenant apiTenant
	mgmt.JSON(http.MethodGet, "/v1/tenants/globex", nil, &tenant)
	if tenant.Labels["owner"] != "globex" {
		t.Fatalf("globex's labels changed: %v", tenant.Labels)
	}
	if names := aclTenantsOf(t, mgmt.JSON(http.MethodGet, "/v1/instances?tenant=globex", nil, nil), "tenant"); len(names) != 1 {
		t.Fatalf("globex's instances: %v", names)
	}
	mgmt.JSON(http.MethodGet, "/v1/acl/tokens/self", nil, nil)
}

// otherThan returns a server other than s (s itself in a cluster of one).
func (ac *aclCluster) otherThan(s *Server) *Server {
	for _, o := range ac.Servers() {
		if o != s {
			return o
		}
	}
	return s
}

// A tenant-viewer token changes nothing; an operator token manages tenants
// and instances but cannot create, list or revoke tokens, nor restore a
// snapshot.
func TestACLViewerChangesNothingOperatorHasNoTokens(t *testing.T) {
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	mgmt := ac.client(s, ac.Mgmt)
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "acme"}, nil)
	mgmt.JSON(http.MethodPost, "/v1/tenants/acme/instances", aclInstanceDoc("api", 1), nil)
	viewerID, viewer := ac.token("tenant-viewer", "acme")
	_, operator := ac.token("operator", "")
	stateBefore := mgmt.JSON(http.MethodGet, "/v1/tenants/acme/instances/api", nil, nil).Body

	inst := "/v1/tenants/acme/instances/api"
	v := ac.client(s, viewer)
	for _, e := range []aclEndpoint{
		{"POST", "/v1/tenants/acme/instances", aclInstanceDoc("new", 1)},
		{"PUT", inst, aclInstanceDoc("api", 2)},
		{"POST", inst + "/scale", map[string]int{"replicas": 2}},
		{"POST", inst + "/stop", nil},
		{"POST", inst + "/start", nil},
		{"POST", inst + "/restart", nil},
		{"DELETE", inst, nil},
		{"GET", inst + "/logs", nil},
		{"PATCH", "/v1/tenants/acme", map[string]any{"quotas": map[string]int{"instances": 100}}},
		{"DELETE", "/v1/tenants/acme", nil},
		{"POST", "/v1/tenants", map[string]string{"name": "mine"}},
		{"PUT", "/v1/plans/free", map[string]any{"max_replicas": 100}},
		{"PUT", "/v1/environments/production", map[string]any{"protected": false}},
		{"POST", "/v1/acl/tokens", map[string]string{"role": "tenant-admin", "tenant": "acme"}},
		{"DELETE", "/v1/acl/tokens/" + viewerID, nil},
	} {
		if r := v.aclSend(e); r.Status != http.StatusForbidden {
			t.Errorf("%s with a viewer token: %s, want 403", e, r)
		}
	}
	for _, path := range []string{inst, inst + "/replicas", inst + "/events", "/v1/tenants/acme", "/v1/acl/tokens/self"} {
		v.JSON(http.MethodGet, path, nil, nil)
	}
	if after := mgmt.JSON(http.MethodGet, "/v1/tenants/acme/instances/api", nil, nil).Body; !aclSameInstance(t, stateBefore, after) {
		t.Fatalf("the viewer changed acme/api:\nbefore %s\nafter  %s", stateBefore, after)
	}
	if names := aclTenantsOf(t, mgmt.JSON(http.MethodGet, "/v1/tenants", nil, nil), "name"); len(names) != 1 {
		t.Fatalf("tenants after the viewer's attempts: %v", names)
	}

	op := ac.client(s, operator)
	op.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "initech"}, nil)
	op.JSON(http.MethodPost, inst+"/scale", map[string]int{"replicas": 2}, nil)
	_, snapHeader, snapshot := mgmt.Do(http.MethodGet, "/v1/operator/snapshot", nil)
	if snapHeader.Get("X-Drover-Index") == "" || len(snapshot) == 0 {
		t.Fatal("management could not save a snapshot")
	}
	for _, e := range []aclEndpoint{
		{"POST", "/v1/acl/tokens", map[string]string{"role": "management"}},
		{"POST", "/v1/acl/tokens", map[string]string{"role": "tenant-admin", "tenant": "acme"}},
		{"GET", "/v1/acl/tokens", nil},
		{"DELETE", "/v1/acl/tokens/" + viewerID, nil},
		{"PUT", "/v1/operator/snapshot", snapshot},
		{"GET", "/v1/operator/snapshot", nil},
	} {
		if r := op.aclSend(e); r.Status != http.StatusForbidden {
			t.Errorf("%s with an operator token: %s, want 403", e, r)
		}
	}
	if r := op.aclSend(aclEndpoint{"POST", "/v1/acl/bootstrap", nil}); r.Status != http.StatusConflict {
		t.Errorf("bootstrap again: %s, want 409", r)
	}
	// The viewer's token still works: the operator revoked nothing.
	v.JSON(http.MethodGet, inst, nil, nil)
}

// aclSend sends e and fails the test on a transport error.
func (c *Client) aclSend(e aclEndpoint) *Response {
	c.t.Helper()
	r, err := c.Try(e.method, e.path, e.body)
	if err != nil {
		c.t.Fatalf("%s: %v", e, err)
	}
	return r
}

// aclSameInstance compares two answers of an instance on what a change would
// move: version, replicas, stopped, spec.
func aclSameInstance(t *testing.T, a, b []byte) bool {
	t.Helper()
	type view struct {
		Version  uint64          `json:"version"`
		Replicas int             `json:"replicas"`
		Stopped  bool            `json:"stopped"`
		Spec     json.RawMessage `json:"spec"`
	}
	var va, vb view
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		t.Fatalf("decode instances %s, %s", a, b)
	}
	return va.Version == vb.Version && va.Replicas == vb.Replicas && va.Stopped == vb.Stopped && string(va.Spec) == string(vb.Spec)
}

// An agent registers with the join token only; afterwards it uses its own
// secret, which a wrong value does not replace and which `drover node
// revoke` ends: its connection is closed and refused. The join token and
// node secrets do not open the admin API.
func TestACLAgentsNeedTheJoinTokenThenTheirSecret(t *testing.T) {
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)

	bad := ac.startAgent("drover-join.not-the-secret")
	good := ac.startAgent(ac.JoinToken)
	node := ac.node(good)
	aclWait(t, "the agent with a wrong join token refused", func() (bool, string) {
		return strings.Contains(bad.log(), "invalid join token"), tail(bad.logPath, 400)
	})

	for _, tok := range []string{ac.JoinToken, strings.TrimPrefix(ac.JoinToken, "drover-join.")} {
		c := ac.client(s, tok)
		for _, e := range []aclEndpoint{{"GET", "/v1/nodes", nil}, {"POST", "/v1/tenants", map[string]string{"name": "x"}}, {"GET", "/v1/acl/tokens/self", nil}} {
			if r := c.aclSend(e); r.Status != http.StatusUnauthorized {
				t.Errorf("%s with the join token: %s, want 401", e, r)
			}
		}
	}

	// A aclHello with the node's id and a wrong secret is refused.
	if code, msg := aclHello(t, ac.url(s), map[string]any{"node_id": node.ID, "node_secret": strings.Repeat("0", 64)}); code != "unauthenticated" {
		t.Fatalf("hello with a wrong node secret: %s %s", code, msg)
	}

	out := ac.cli(s, ac.Mgmt, "node", "revoke", node.ID)
	t.Logf("drover node revoke: %s", strings.TrimSpace(out))
	aclWait(t, "the revoked agent refused", func() (bool, string) {
		return strings.Contains(good.log(), "unknown or revoked node secret"), tail(good.logPath, 600)
	})
	var nodes []aclNode
	ac.client(s, ac.Mgmt).JSON(http.MethodGet, "/v1/nodes", nil, &nodes)
	for _, n := range nodes {
		if n.ID == node.ID && !n.Revoked {
			t.Fatalf("node %s not revoked: %+v", n.ID, n)
		}
		if n.Name == "node-"+bad.name {
			t.Fatalf("the agent with a wrong join token registered: %+v", n)
		}
	}
}

// aclHello dials the agent channel, says aclHello with the given identity, and
// returns the code and message of the server's error answer ("" if it
// welcomed the agent).
func aclHello(t *testing.T, base string, id map[string]any) (code, message string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/agent/connect", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	body := map[string]any{"protocol_version": 1, "name": "fake", "version": "test",
		"port_range": map[string]int{"lo": 20000, "hi": 20010}}
	for k, v := range id {
		body[k] = v
	}
	msg, _ := json.Marshal(map[string]any{"type": "hello", "body": body})
	if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read the answer to aclHello: %v", err)
	}
	var env struct {
		Type string `json:"type"`
		Body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"body"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	if env.Type != "error" {
		return "", env.Type
	}
	return env.Body.Code, env.Body.Message
}

// With TLS, servers form a cluster with their certificates alone, and an
// agent given nothing but the join token (which carries the CA's
// fingerprint) checks the servers and connects; with a wrong fingerprint
// it refuses them.
func TestACLTLSAgentTrustsTheCAItsJoinTokenNames(t *testing.T) {
	ac := startACLCluster(t, aclOptions{servers: 3, tls: true})
	b, err := os.ReadFile(ac.caFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	sum := sha256.Sum256(blk.Bytes)
	fp := hex.EncodeToString(sum[:])
	if !strings.HasSuffix(ac.JoinToken, "."+fp) {
		t.Fatalf("join token %q does not end with the CA's fingerprint %s", ac.JoinToken, fp)
	}
	good := ac.startAgent(ac.JoinToken)
	ac.node(good)

	wrong := strings.TrimSuffix(ac.JoinToken, fp) + strings.Repeat("ab", 32)
	bad := ac.startAgent(wrong)
	aclWait(t, "the agent given a wrong CA fingerprint to refuse the servers", func() (bool, string) {
		return strings.Contains(bad.log(), "holds no CA with fingerprint"), tail(bad.logPath, 600)
	})
	var nodes []aclNode
	ac.client(ac.Server(1), ac.Mgmt).JSON(http.MethodGet, "/v1/nodes", nil, &nodes)
	if len(nodes) != 1 {
		t.Fatalf("nodes %+v, want the good agent's only", nodes)
	}
	// The CLI reaches the servers with the CA file.
	if out := ac.cli(ac.Server(2), ac.Mgmt, "node", "list"); !strings.Contains(out, "node-"+good.name) {
		t.Fatalf("drover node list over TLS: %s", out)
	}
}

// Quotas and a plan's limits refuse what exceeds them with 422 naming the
// limit, and the refused request changes nothing.
func TestACLQuotasAndPlanLimitsRefuseAndChangeNothing(t *testing.T) {
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	mgmt := ac.client(s, ac.Mgmt)
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]any{"name": "acme",
		"quotas": map[string]int{"instances": 2, "replicas": 3, "cpu_millis": 1000, "memory_mb": 512}}, nil)
	mgmt.JSON(http.MethodPut, "/v1/plans/pro", map[string]any{"max_replicas": 2,
		"resources": map[string]int{"cpu_millis": 400, "memory_mb": 128}}, nil)
	// Custom instances of any size are an operator's: quotas and plans
	// bind them as they bind a tenant's.
	c := mgmt
	sized := func(name string, replicas int, cpu, mem int64, plan string) map[string]any {
		d := aclInstanceDoc(name, replicas)
		d["spec"].(map[string]any)["resources"] = map[string]int64{"cpu_millis": cpu, "memory_mb": mem}
		if plan != "" {
			d["plan"] = plan
		}
		return d
	}
	var made apiInstance
	c.JSON(http.MethodPost, "/v1/tenants/acme/instances", sized("web", 2, 0, 0, "pro"), &made)
	if made.Replicas != 2 {
		t.Fatalf("web made with %d replicas", made.Replicas)
	}
	// web takes the plan's 400 mCPU and 128 MB per replica: 800 and 256.
	snapshotOf := func() string {
		return string(mgmt.JSON(http.MethodGet, "/v1/tenants/acme/instances", nil, nil).Body)
	}
	before := snapshotOf()
	for _, tc := range []struct {
		e     aclEndpoint
		field string
	}{
		{aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("big", 3, 0, 0, "pro")}, "replicas"},
		{aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("big", 1, 800, 0, "pro")}, "spec.resources.cpu_millis"},
		{aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("big", 1, 0, 256, "pro")}, "spec.resources.memory_mb"},
		{aclEndpoint{"POST", "/v1/tenants/acme/instances/web/scale", map[string]int{"replicas": 3}}, "replicas"},
		{aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("two", 2, 100, 10, "")}, "quotas.replicas"},
		{aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("cpu", 1, 300, 10, "")}, "quotas.cpu_millis"},
		{aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("mem", 1, 100, 300, "")}, "quotas.memory_mb"},
		{aclEndpoint{"PUT", "/v1/tenants/acme/instances/web", sized("web", 2, 0, 300, "")}, "quotas.memory_mb"},
	} {
		r := c.aclSend(tc.e)
		var body apiError
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != http.StatusUnprocessableEntity || body.Error.Code != "quota_exceeded" || body.Error.Field != tc.field {
			t.Errorf("%s: %s, want 422 quota_exceeded naming %s", tc.e, r, tc.field)
		}
	}
	c.JSON(http.MethodPost, "/v1/tenants/acme/instances", sized("small", 1, 100, 100, ""), nil)
	if r := c.aclSend(aclEndpoint{"POST", "/v1/tenants/acme/instances", sized("third", 0, 0, 0, "")}); r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "quotas.instances") {
		t.Errorf("a third instance: %s, want 422 naming quotas.instances", r)
	}
	after := snapshotOf()
	var b, a []map[string]any
	_ = json.Unmarshal([]byte(before), &b)
	_ = json.Unmarshal([]byte(after), &a)
	if len(a) != 2 || len(b) != 1 || fmt.Sprint(a[1]["version"], a[1]["replicas"]) != fmt.Sprint(b[0]["version"], b[0]["replicas"]) {
		t.Fatalf("the refused requests changed acme's instances:\nbefore %s\nafter %s", before, after)
	}
}

// The audit log holds a record of each change of the test, with the
// token, role and tenant that made it, including refused attempts; a
// tenant's token reads its own tenant's records only.
func TestACLAuditRecordsEveryChangeWithItsActor(t *testing.T) {
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	mgmt := ac.client(s, ac.Mgmt)
	var self struct {
		ID string `json:"id"`
	}
	mgmt.JSON(http.MethodGet, "/v1/acl/tokens/self", nil, &self)
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "acme"}, nil)
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "globex"}, nil)
	aclDemoProduct(mgmt)
	adminID, admin := ac.token("tenant-admin", "acme")
	viewerID, viewer := ac.token("tenant-viewer", "acme")
	globexID, globex := ac.token("tenant-admin", "globex")
	opID, op := ac.token("operator", "")

	ac.client(s, admin).JSON(http.MethodPost, "/v1/tenants/acme/instances", aclProductDoc("api", 1), nil)
	ac.client(s, admin).JSON(http.MethodPost, "/v1/tenants/acme/instances/api/scale", map[string]int{"replicas": 2}, nil)
	ac.client(s, globex).JSON(http.MethodPost, "/v1/tenants/globex/instances", aclProductDoc("web", 1), nil)
	ac.client(s, op).JSON(http.MethodPatch, "/v1/tenants/acme", map[string]any{"labels": map[string]string{"tier": "gold"}}, nil)
	ac.cli(s, op, "instance", "restart", "acme/api")
	ac.client(s, viewer).aclSend(aclEndpoint{"POST", "/v1/tenants/acme/instances/api/stop", nil})    // 403
	ac.client(s, "").aclSend(aclEndpoint{"DELETE", "/v1/tenants/acme/instances/api", nil})           // 401
	ac.client(s, admin).aclSend(aclEndpoint{"POST", "/v1/tenants/acme/instances", map[string]any{}}) // 400
	ac.client(s, globex).aclSend(aclEndpoint{"POST", "/v1/tenants/acme/instances/api/restart", nil}) // 404

	type rec struct {
		TokenID string `json:"token_id"`
		Role    string `json:"role"`
		Tenant  string `json:"tenant"`
		Action  string `json:"action"`
		Target  string `json:"target"`
		Result  string `json:"result"`
		Source  string `json:"source"`
		Time    string `json:"time"`
	}
	want := []rec{
		{self.ID, "management", "acme", "tenant.upsert", "acme", "ok", "", ""},
		{self.ID, "management", "acme", "token.create", adminID, "ok", "", ""}, // in acme's trail
		{self.ID, "management", "", "token.create", opID, "ok", "", ""},
		{self.ID, "management", "", "product.upsert", "app", "ok", "", ""},
		{self.ID, "management", "", "release.publish", "app@1.0.0", "ok", "", ""},
		{adminID, "tenant-admin", "acme", "instance.create", "acme/api", "ok", "", ""},
		{adminID, "tenant-admin", "acme", "instance.scale", "acme/api", "ok", "", ""},
		{globexID, "tenant-admin", "globex", "instance.create", "globex/web", "ok", "", ""},
		{opID, "operator", "acme", "tenant.upsert", "acme", "ok", "", ""},
		{opID, "operator", "acme", "instance.restart", "acme/api", "ok", "", ""},
		{viewerID, "tenant-viewer", "acme", "POST /v1/tenants/{tenant}/instances/{name}/stop", "acme/api", "permission_denied", "", ""},
		{"", "", "acme", "DELETE /v1/tenants/{tenant}/instances/{name}", "acme/api", "unauthenticated", "", ""},
		{adminID, "tenant-admin", "acme", "POST /v1/tenants/{tenant}/instances", "acme", "invalid_argument", "", ""},
		{globexID, "tenant-admin", "globex", "POST /v1/tenants/{tenant}/instances/{name}/restart", "acme/api", "not_found", "", ""},
	}
	var all []rec
	aclWait(t, "an audit record of each change", func() (bool, string) {
		all = aclList[rec](t, mgmt.JSON(http.MethodGet, "/v1/audit", nil, nil))
		for _, w := range want {
			found := false
			for _, r := range all {
				found = found || r.TokenID == w.TokenID && r.Role == w.Role && r.Tenant == w.Tenant &&
					r.Action == w.Action && r.Target == w.Target && r.Result == w.Result && r.Source == "127.0.0.1" && r.Time != ""
			}
			if !found {
				return false, fmt.Sprintf("no record %+v among %d", w, len(all))
			}
		}
		return true, ""
	})

	// A scale names its count; the lifecycle actions their own names.
	details := aclList[struct{ Action, Target, Detail string }](t, mgmt.JSON(http.MethodGet, "/v1/audit", nil, nil))
	scaled := false
	for _, d := range details {
		scaled = scaled || d.Action == "instance.scale" && d.Target == "acme/api" && d.Detail == "replicas 1 -> 2"
	}
	if !scaled {
		t.Errorf("no audit record of acme/api's scale with detail \"replicas 1 -> 2\": %+v", details)
	}

	for _, tc := range []struct{ token, tenant string }{{viewer, "acme"}, {globex, "globex"}} {
		mine := aclList[rec](t, ac.client(s, tc.token).JSON(http.MethodGet, "/v1/audit", nil, nil))
		if len(mine) == 0 {
			t.Fatalf("%s's token sees no audit records", tc.tenant)
		}
		for _, r := range mine {
			if r.Tenant != tc.tenant {
				t.Fatalf("%s's token sees a record of %q: %+v", tc.tenant, r.Tenant, r)
			}
		}
		if tc.tenant == "globex" {
			if other := aclList[rec](t, ac.client(s, tc.token).JSON(http.MethodGet, "/v1/audit?tenant=acme", nil, nil)); len(other) > 0 {
				t.Fatalf("globex's token reads acme's records: %+v", other)
			}
		}
	}
	// The CLI lists the same records.
	if out := ac.cli(s, ac.Mgmt, "audit", "list", "-tenant", "globex"); !strings.Contains(out, "globex/web") {
		t.Fatalf("drover audit list -tenant globex:\n%s", out)
	}
}

// A secret reaches the instance's process but never shows in an API
// answer, in the CLI's output, nor in any log of the run.
func TestACLSecretNeverShows(t *testing.T) {
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	agent := ac.startAgent(ac.JoinToken)
	ac.node(agent)
	mgmt := ac.client(s, ac.Mgmt)
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "acme"}, nil)
	aclDemoProduct(mgmt)
	_, admin := ac.token("tenant-admin", "acme")
	c := ac.client(s, admin)

	// The secret is the path the demo app writes its address to: the file
	// appearing proves the process got it. It is a secret parameter of the
	// product, which reaches the process like spec.secrets.
	dir := t.TempDir()
	secretValue := "s3cr3t-" + fmt.Sprint(time.Now().UnixNano())
	addrFile := filepath.Join(dir, secretValue)
	doc := aclProductDoc("api", 1)
	params := map[string]string{"DEMO_ADDR_FILE": addrFile, "GREETING": "hello"}
	doc["parameters"] = params
	var made apiInstance
	c.JSON(http.MethodPost, "/v1/tenants/acme/instances", doc, &made)
	if v := made.Spec.Secrets["DEMO_ADDR_FILE"]; v == "" || v == addrFile {
		t.Fatalf("the create answer shows the secret as %q", v)
	}
	aclWait(t, "the process to get the secret (its address file)", func() (bool, string) {
		_, err := os.Stat(addrFile)
		return err == nil, fmt.Sprint(err)
	})
	aclWait(t, "acme/api running", func() (bool, string) {
		var in apiInstance
		r := c.JSON(http.MethodGet, "/v1/tenants/acme/instances/api", nil, &in)
		return in.Status != nil && in.Status.State == "running", r.String()
	})
	// Every reading of the instance, by API and CLI.
	c.JSON(http.MethodPut, "/v1/tenants/acme/instances/api", map[string]any{"name": "api", "replicas": 1, "product": "app", "parameters": params}, nil)
	for _, p := range []string{"/v1/tenants/acme/instances/api", "/v1/tenants/acme/instances", "/v1/instances",
		"/v1/tenants/acme/instances/api/replicas", "/v1/tenants/acme/instances/api/events", "/v1/audit",
		"/v1/tenants/acme/instances/api/logs?tail=100"} {
		c.aclSend(aclEndpoint{"GET", p, nil})
		mgmt.aclSend(aclEndpoint{"GET", p, nil})
	}
	mgmt.aclSend(aclEndpoint{"GET", "/v1/nodes", nil})
	for _, args := range [][]string{
		{"instance", "status", "acme/api"}, {"instance", "list"}, {"instance", "list", "-o", "json"},
		{"instance", "status", "acme/api", "-o", "json"}, {"instance", "logs", "acme/api"}, {"audit", "list"},
	} {
		ac.cli(s, admin, args...)
	}
	ac.cli(s, ac.Mgmt, "node", "list")

	where := map[string]string{"API answers and CLI output": ac.allAnswers()}
	for _, srv := range ac.Servers() {
		b, _ := os.ReadFile(srv.LogPath())
		where[srv.LogPath()] = string(b)
	}
	where[agent.logPath] = agent.log()
	// The replicas' own output and the agent's other files of logs.
	filepath.Walk(agent.dataDir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(fi.Name(), ".log") {
			b, _ := os.ReadFile(path)
			where[path] = string(b)
		}
		return nil
	})
	if len(where) < 3 {
		t.Fatalf("only %d places to look in", len(where))
	}
	for name, text := range where {
		if strings.Contains(text, secretValue) {
			t.Errorf("the secret shows in %s", name)
		}
	}
	if !strings.Contains(where["API answers and CLI output"], "(secret)") {
		t.Fatal("no answer showed the secret's key as hidden: were the answers recorded?")
	}
}

// Stopping or deleting an instance of a protected environment needs
// ?confirm=NAME; a suspended tenant's instances stop and cannot start.
func TestACLProtectedEnvironmentAndSuspendedTenant(t *testing.T) {
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	mgmt := ac.client(s, ac.Mgmt)
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "acme"}, nil)
	doc := aclInstanceDoc("shop", 1)
	doc["environment"] = "production"
	mgmt.JSON(http.MethodPost, "/v1/tenants/acme/instances", doc, nil)
	inst := "/v1/tenants/acme/instances/shop"
	for _, e := range []aclEndpoint{{"POST", inst + "/stop", nil}, {"DELETE", inst, nil}, {"POST", inst + "/stop?confirm=other", nil}} {
		r := mgmt.aclSend(e)
		var body apiError
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != http.StatusBadRequest || body.Error.Field != "confirm" {
			t.Errorf("%s without confirmation: %s, want 400 naming confirm", e, r)
		}
	}
	mgmt.JSON(http.MethodPost, inst+"/stop?confirm=shop", nil, nil)
	mgmt.JSON(http.MethodPost, inst+"/start", nil, nil)

	mgmt.JSON(http.MethodPatch, "/v1/tenants/acme", map[string]string{"state": "suspended"}, nil)
	var in apiInstance
	mgmt.JSON(http.MethodGet, inst, nil, &in)
	if in.Status == nil || in.Status.State != "stopped" {
		t.Fatalf("an instance of a suspended tenant: %+v", in.Status)
	}
	mgmt.JSON(http.MethodPost, inst+"/stop?confirm=acme/shop", nil, nil)
	if r := mgmt.aclSend(aclEndpoint{"POST", inst + "/start", nil}); r.Status != http.StatusConflict {
		t.Fatalf("start while suspended: %s, want 409", r)
	}
	if r := mgmt.aclSend(aclEndpoint{"POST", "/v1/tenants/acme/instances", aclInstanceDoc("more", 1)}); r.Status != http.StatusConflict {
		t.Fatalf("create while suspended: %s, want 409", r)
	}
	mgmt.JSON(http.MethodDelete, inst+"?confirm=shop", nil, nil)
}
