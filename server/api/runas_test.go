package api_test

import (
	"net/http"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
)

// Only operators choose the host user an instance runs as; a tenant's
// update keeps the operator's choice when it does not name a user.
func TestRunAsUserIsTheOperatorsChoice(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	e.ok(mgmt, "POST", "/v1/tenants", map[string]any{"name": "acme"}, nil)
	admin := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "acme"}).Secret

	doc := func(user string) map[string]any {
		spec := map[string]any{"command": []string{"/bin/app"}}
		if user != "" {
			spec["user"] = user
		}
		return map[string]any{"name": "crm", "spec": spec}
	}
	r := e.call(admin, "POST", "/v1/tenants/acme/instances", doc("root"))
	if r.status != http.StatusForbidden || r.code() != protocol.CodePermissionDenied {
		t.Fatalf("tenant admin chose user root: %d %s", r.status, r.body)
	}
	e.ok(mgmt, "POST", "/v1/tenants/acme/instances", doc("nobody"), nil)

	var in protocol.Instance
	e.ok(admin, "PUT", "/v1/tenants/acme/instances/crm", doc(""), &in)
	if in.Spec.User != "nobody" {
		t.Fatalf("a tenant's update dropped the operator's user: %q", in.Spec.User)
	}
	if r := e.call(admin, "PUT", "/v1/tenants/acme/instances/crm", doc("root")); r.status != http.StatusForbidden {
		t.Fatalf("tenant admin changed the user: %d %s", r.status, r.body)
	}
}
