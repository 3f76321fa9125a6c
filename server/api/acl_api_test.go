package api_test

// In-process tests of tokens, roles and the audit of refused requests: one
// server on the in-memory transport, its API with ACL on behind a real
// HTTP listener, and a clock the test moves. The multi-process tests of
// internal/e2e (acl_test.go) cover the same contract against the binary.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/state"
)

type aclEnv struct {
	t      *testing.T
	c      *clustertest.Cluster
	url    string
	client *http.Client

	mu  sync.Mutex
	now time.Time
}

// newACLEnv runs one real server with ACL on, configured as cfg says, and a
// clock the test moves.
func newACLEnv(t *testing.T, cfg server.Config) *aclEnv {
	t.Helper()
	e := &aclEnv{t: t, now: time.Now(), client: http.DefaultClient}
	cfg.ACL, cfg.Clock = true, e.clock
	if cfg.TLS == nil && cfg.ServerJoinToken == "" {
		cfg.ServerJoinToken = "between-servers"
	}
	e.c = clustertest.New(t, clustertest.Config{Servers: 1, Server: cfg})
	e.url = e.c.Leader().URL
	return e
}

// newACLEnvTLS is newACLEnv with the server serving HTTPS with a CA of its
// own, whose fingerprint it puts in join tokens.
func newACLEnvTLS(t *testing.T) (*aclEnv, string) {
	t.Helper()
	tlsSrv, client := clustertest.NewTLS(t)
	e := newACLEnv(t, server.Config{TLS: tlsSrv})
	e.client = client
	return e, tlsSrv.CAFingerprint
}

func (e *aclEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *aclEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

type aclReply struct {
	status int
	body   []byte
}

func (r aclReply) code() protocol.Code {
	var eb protocol.ErrorBody
	if json.Unmarshal(r.body, &eb) != nil || eb.Error == nil {
		return ""
	}
	return eb.Error.Code
}

// call sends a request with token (none when empty) and extra headers as
// name, value pairs.
func (e *aclEnv) call(token, method, path string, body any, headers ...string) aclReply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return aclReply{status: resp.StatusCode, body: b}
}

func (e *aclEnv) ok(token, method, path string, body, out any) {
	e.t.Helper()
	r := e.call(token, method, path, body)
	if r.status/100 != 2 {
		e.t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *aclEnv) bootstrap() *protocol.Token {
	e.t.Helper()
	var tok protocol.Token
	e.ok("", "POST", "/v1/acl/bootstrap", nil, &tok)
	return &tok
}

func (e *aclEnv) token(mgmt string, req protocol.TokenRequest) *protocol.Token {
	e.t.Helper()
	var tok protocol.Token
	e.ok(mgmt, "POST", "/v1/acl/tokens", req, &tok)
	if tok.Secret == "" {
		e.t.Fatalf("token created without its secret: %+v", tok)
	}
	return &tok
}

func TestACLBootstrapOnceAndJoinToken(t *testing.T) {
	e, fp := newACLEnvTLS(t)
	boot := e.bootstrap()
	if boot.Role != protocol.RoleManagement || boot.Secret == "" {
		t.Fatalf("bootstrap answered %+v", boot)
	}
	if !strings.HasPrefix(boot.AgentJoinToken, "drover-join.") || !strings.HasSuffix(boot.AgentJoinToken, "."+fp) {
		t.Fatalf("join token %q does not carry the CA fingerprint", boot.AgentJoinToken)
	}
	if r := e.call("", "POST", "/v1/acl/bootstrap", nil); r.status != http.StatusConflict {
		t.Fatalf("second bootstrap: %d %s", r.status, r.body)
	}
	// Neither secret is answered again, nor usable as the other.
	var list []protocol.Token
	e.ok(boot.Secret, "GET", "/v1/acl/tokens", nil, &list)
	raw, _ := json.Marshal(list)
	if bytes.Contains(raw, []byte(boot.Secret)) || len(list) != 1 || list[0].Secret != "" {
		t.Fatalf("token list shows secrets: %s", raw)
	}
	if r := e.call(boot.AgentJoinToken, "GET", "/v1/tenants", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the join token called the API: %d %s", r.status, r.body)
	}
}

// With -agent-join-token set, the bootstrap makes no other join token.
func TestACLBootstrapKeepsConfiguredJoinToken(t *testing.T) {
	e := newACLEnv(t, server.Config{AgentJoinToken: "configured"})
	if boot := e.bootstrap(); boot.AgentJoinToken != "" {
		t.Fatalf("bootstrap made a join token %q besides the configured one", boot.AgentJoinToken)
	}
}

func TestACLTokenExpiresAndRevokes(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	e.ok(mgmt, "POST", "/v1/tenants", protocol.Tenant{Name: "acme"}, nil)
	short := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantViewer, Tenant: "acme", TTL: protocol.Duration(time.Hour)})
	e.ok(short.Secret, "GET", "/v1/tenants/acme", nil, nil)
	var self protocol.Token
	e.ok(short.Secret, "GET", "/v1/acl/tokens/self", nil, &self)
	if self.ID != short.ID || self.Tenant != "acme" || self.Secret != "" {
		t.Fatalf("self: %+v", self)
	}
	e.advance(time.Hour)
	if r := e.call(short.Secret, "GET", "/v1/tenants/acme", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}

	op := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleOperator})
	e.ok(op.Secret, "GET", "/v1/tenants", nil, nil)
	e.ok(mgmt, "DELETE", "/v1/acl/tokens/"+op.ID, nil, nil)
	if r := e.call(op.Secret, "GET", "/v1/tenants", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d %s", r.status, r.body)
	}

	// The last management token stays, so the cluster keeps an administrator.
	var boot protocol.Token
	e.ok(mgmt, "GET", "/v1/acl/tokens/self", nil, &boot)
	if r := e.call(mgmt, "DELETE", "/v1/acl/tokens/"+boot.ID, nil); r.status != http.StatusConflict {
		t.Fatalf("revoking the last management token: %d %s", r.status, r.body)
	}

	// Bad requests name the field.
	for _, req := range []protocol.TokenRequest{
		{Role: "root"},
		{Role: protocol.RoleTenantAdmin},
		{Role: protocol.RoleOperator, Tenant: "acme"},
		{Role: protocol.RoleTenantAdmin, Tenant: "nobody"},
		{Role: protocol.RoleAgent},
	} {
		if r := e.call(mgmt, "POST", "/v1/acl/tokens", req); r.status != http.StatusBadRequest {
			t.Errorf("token request %+v: %d %s", req, r.status, r.body)
		}
	}
}

// Servers call POST /v1/internal/join with the servers' secret; nothing
// else but a management token gets in.
func TestACLInternalJoinNeedsAServer(t *testing.T) {
	e := newACLEnv(t, server.Config{ServerJoinToken: "between-servers"})
	mgmt := e.bootstrap().Secret
	op := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleOperator})
	s := e.c.Servers()[0]
	join := cluster.JoinRequest{ID: s.ID, RaftAddr: s.Addr(), HTTPAddr: s.HTTPAddr}
	for _, tc := range []struct {
		name    string
		token   string
		headers []string
		want    int
	}{
		{"nothing", "", nil, http.StatusUnauthorized},
		{"wrong secret", "", []string{api.HeaderServerToken, "guess"}, http.StatusUnauthorized},
		{"operator", op.Secret, nil, http.StatusUnauthorized},
		{"server secret", "", []string{api.HeaderServerToken, "between-servers"}, http.StatusOK},
		{"management", mgmt, nil, http.StatusOK},
	} {
		if r := e.call(tc.token, "POST", "/v1/internal/join", join, tc.headers...); r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.want)
		}
	}
	// Finding each other needs no secret: GET /v1/internal/self tells ids
	// and addresses only.
	if r := e.call("", "GET", "/v1/internal/self", nil); r.status != http.StatusOK {
		t.Fatalf("internal/self: %d %s", r.status, r.body)
	}
}

// A flood of refused changes is recorded in a few batched Raft entries:
// up to a few records per source one by one, the rest counted.
func TestACLRefusedFloodIsBatched(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	before := e.c.Leader().Cluster.AppliedIndex()
	const n = 600
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/6; i++ {
				req, _ := http.NewRequest("POST", e.url+"/v1/tenants", strings.NewReader(`{"name":"x"}`))
				req.Header.Set("Authorization", "Bearer wrong")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	var recs []protocol.AuditRecord
	testwait.Eventually(t, clustertest.Wait, "the flood's audit records", func() error {
		recs = nil
		e.ok(mgmt, "GET", "/v1/audit?result=unauthenticated", nil, &recs)
		var dropped []protocol.AuditRecord
		e.ok(mgmt, "GET", "/v1/audit?action="+api.AuditDropped, nil, &dropped)
		counted := len(recs)
		for _, d := range dropped {
			var k int
			fmt.Sscanf(d.Target, "%d", &k)
			counted += k
		}
		if counted != n {
			return fmt.Errorf("%d records and %d counted of %d attempts", len(recs), counted-len(recs), n)
		}
		return nil
	})
	if entries := e.c.Leader().Cluster.AppliedIndex() - before; entries > 40 {
		t.Fatalf("%d refused requests took %d Raft entries", n, entries)
	}
	for _, r := range recs {
		if r.Action != "POST /v1/tenants" || r.Source == "" || r.TokenID != "" {
			t.Fatalf("record of a refused request: %+v", r)
		}
	}
}

// A node's secret has the agent role: the agent channel only, no route of
// the API.
func TestACLNodeSecretReachesNoRoute(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	e.c.MustPropose(state.CmdNodeRegister, state.NodeRegister{SecretHash: secret.Hash("node-secret"),
		Node: protocol.Node{ID: "n1", Name: "n1", PortRange: protocol.PortRange{Lo: 1, Hi: 2}}})
	for _, path := range []string{"/v1/nodes", "/v1/tenants", "/v1/acl/tokens/self", "/v1/instances"} {
		if r := e.call("node-secret", "GET", path, nil); r.status != http.StatusForbidden || r.code() != protocol.CodePermissionDenied {
			t.Errorf("GET %s with a node secret: %d %s, want 403", path, r.status, r.body)
		}
	}
	var node protocol.Node
	e.ok(mgmt, "POST", "/v1/nodes/n1/revoke", nil, &node)
	if !node.Revoked {
		t.Fatalf("revoked node answered %+v", node)
	}
	if r := e.call("node-secret", "GET", "/v1/nodes", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("a revoked node's secret: %d %s, want 401", r.status, r.body)
	}
}
