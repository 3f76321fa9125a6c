package api_test

import (
	"net/http"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
)

// Only operators choose the host user an instance runs as, and an update
// that does not name a user keeps their choice. Tenant tokens send no spec
// at all (API.md, "Tenant tokens create and change only product
// instances"), so a user in theirs is refused naming spec.
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
	e.ok(mgmt, "PUT", "/v1/tenants/acme/instances/crm", doc(""), &in)
	if in.Spec.User != "nobody" {
		t.Fatalf("an update without a user dropped the operator's: %q", in.Spec.User)
	}
	for _, user := range []string{"root", ""} {
		if r := e.call(admin, "PUT", "/v1/tenants/acme/instances/crm", doc(user)); r.status != http.StatusForbidden || r.code() != protocol.CodePermissionDenied {
			t.Fatalf("tenant admin changed the spec (user %q): %d %s", user, r.status, r.body)
		}
	}
	var after protocol.Instance
	e.ok(mgmt, "GET", "/v1/tenants/acme/instances/crm", nil, &after)
	if after.Spec.User != "nobody" || after.Version != in.Version {
		t.Fatalf("refused changes changed the instance: user %q version %d", after.Spec.User, after.Version)
	}
}
