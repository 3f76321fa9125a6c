package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
)

// PUT /v1/environments/{name} validates constraints.region as it does
// constraints.labels: a region that is no name (it was stored, and
// matched no node for every instance of the environment).
func TestAnEnvironmentsRegionIsValidated(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	r := e.call(mgmt, "PUT", "/v1/environments/staging", map[string]any{
		"constraints": map[string]any{"region": "Not A Region!! " + strings.Repeat("x", 100000)}})
	if r.status != http.StatusBadRequest {
		t.Fatalf("environment with region %q...: %d %s, want 400 naming constraints.region", "Not A Region!!", r.status, r.body[:min(len(r.body), 200)])
	}
}

// A token made for a tenant is not in that tenant's audit trail: the
// record of POST /v1/acl/tokens has no tenant (auditRecord takes it from
// the path), so GET /v1/audit?tenant=acme never shows who was given access
// to acme, nor when it was revoked.
func TestATenantsTokensAreInItsAuditTrail(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	e.ok(mgmt, "POST", "/v1/tenants", map[string]any{"name": "acme"}, nil)
	tok := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "acme"})
	e.ok(mgmt, "DELETE", "/v1/acl/tokens/"+tok.ID, nil, nil)
	var recs []protocol.AuditRecord
	e.ok(mgmt, "GET", "/v1/audit?tenant=acme", nil, &recs)
	var all []protocol.AuditRecord
	e.ok(mgmt, "GET", "/v1/audit", nil, &all)
	b, _ := json.Marshal(all)
	found := map[string]bool{}
	for _, rec := range recs {
		found[rec.Action] = true
	}
	if !found["token.create"] && !found["token_create"] || !found["token.delete"] && !found["token_delete"] {
		t.Fatalf("acme's audit trail lacks the creation/revocation of its token %s: %+v\nall records: %s", tok.ID, recs, b)
	}
}

// A retried POST /v1/acl/tokens with the same Idempotency-Key replays the
// first token (same id) but with a secret made afresh by the retry, whose
// hash was never stored: the client that retried, as the 503 "outcome
// unknown" answer tells it to, holds a secret that authenticates nothing.
func TestARetriedTokenCreateNeverAnswersADeadSecret(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	e.ok(mgmt, "POST", "/v1/tenants", map[string]any{"name": "acme"}, nil)
	req := protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "acme"}
	var first, second protocol.Token
	r := e.call(mgmt, "POST", "/v1/acl/tokens", req, "Idempotency-Key", "mk-token-1")
	if r.status/100 != 2 || json.Unmarshal(r.body, &first) != nil {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = e.call(mgmt, "POST", "/v1/acl/tokens", req, "Idempotency-Key", "mk-token-1")
	if r.status/100 != 2 {
		if r.code() != protocol.CodeConflict {
			t.Fatalf("retry: %d %s, want the token with a working secret or a conflict", r.status, r.body)
		}
		return // refused plainly: the caller knows to revoke and recreate
	}
	if err := json.Unmarshal(r.body, &second); err != nil {
		t.Fatal(err)
	}
	if first.ID != second.ID {
		t.Fatalf("not replayed: %s then %s", first.ID, second.ID)
	}
	if r := e.call(first.Secret, "GET", "/v1/acl/tokens/self", nil); r.status != 200 {
		t.Fatalf("first secret: %d %s", r.status, r.body)
	}
	if r := e.call(second.Secret, "GET", "/v1/acl/tokens/self", nil); r.status != 200 {
		t.Fatalf("replayed answer for token %s carries secret that does not authenticate: %d %s", second.ID, r.status, r.body)
	}
}
