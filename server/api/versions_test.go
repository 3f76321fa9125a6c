package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

// An instance's versions are listed with their spec (secrets redacted),
// release and time, marking the current one; a rollback makes a new
// version with the spec and release of an earlier one, audited as
// instance.rollback; tenant admins may roll back their own instances.
func TestInstanceVersionsAndRollback(t *testing.T) {
	e := newCatalogEnv(t)
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances", map[string]any{"name": "crm", "product": "crm", "plan": "pro",
		"parameters": map[string]any{"SMTP_PASSWORD": "hunter2"}}, nil)
	e.ok(e.admin, "PUT", "/v1/tenants/acme/instances/crm", map[string]any{"product": "crm", "release": "1.1.0",
		"parameters": map[string]any{"SEATS": 30}}, nil)

	var vs []protocol.InstanceVersion
	r := e.call(e.admin, "GET", "/v1/tenants/acme/instances/crm/versions", nil)
	if r.status != http.StatusOK || strings.Contains(string(r.body), "hunter2") {
		t.Fatalf("versions: %d %s (a secret must not show)", r.status, r.body)
	}
	e.ok(e.admin, "GET", "/v1/tenants/acme/instances/crm/versions", nil, &vs)
	if len(vs) != 2 || vs[0].Version != 1 || vs[0].Release != "1.0.0" || vs[0].Channel != "stable" || vs[0].Current ||
		vs[1].Version != 2 || vs[1].Release != "1.1.0" || !vs[1].Current || vs[1].Spec.Env["SEATS"] != "30" || vs[0].CreatedAt.IsZero() {
		t.Fatalf("versions: %+v", vs)
	}

	viewer := e.token(e.mgmt, protocol.TokenRequest{Role: protocol.RoleTenantViewer, Tenant: "acme"}).Secret
	e.ok(e.mgmt, "POST", "/v1/tenants", map[string]any{"name": "globex"}, nil)
	other := e.token(e.mgmt, protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "globex"}).Secret
	e.ok(viewer, "GET", "/v1/tenants/acme/instances/crm/versions", nil, nil)
	e.wantError("a viewer's rollback", e.call(viewer, "POST", "/v1/tenants/acme/instances/crm/rollback", map[string]any{"version": 1}), 403, protocol.CodePermissionDenied, "")
	e.wantError("another tenant's versions", e.call(other, "GET", "/v1/tenants/acme/instances/crm/versions", nil), 404, protocol.CodeNotFound, "")
	e.wantError("a version not kept", e.call(e.admin, "POST", "/v1/tenants/acme/instances/crm/rollback", map[string]any{"version": 7}), 404, protocol.CodeNotFound, "version")
	e.wantError("the current version", e.call(e.admin, "POST", "/v1/tenants/acme/instances/crm/rollback", map[string]any{"version": 2}), 409, protocol.CodeConflict, "version")

	var in protocol.Instance
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances/crm/rollback", map[string]any{"version": 1}, &in)
	if in.Version != 3 || in.Release != "1.0.0" || in.Channel != "stable" || in.Spec.Version != "1.0.0" ||
		in.Spec.Command[0] != "/opt/crm/1.0.0/bin/crm" || in.Spec.Env["SEATS"] != "10" || in.Plan != "pro" {
		t.Fatalf("after the rollback to version 1: version %d %+v %v", in.Version, in.ProductRef, in.Spec)
	}
	if got := e.c.Leader().Store.Snapshot().Instance("acme/crm").Spec.Secrets["SMTP_PASSWORD"]; got != "hunter2" {
		t.Fatalf("the rollback lost the secret's value: %q", got)
	}
	var recs []protocol.AuditRecord
	e.ok(e.mgmt, "GET", "/v1/audit?tenant=acme", nil, &recs)
	found := false
	for _, rec := range recs {
		found = found || rec.Action == "instance.rollback" && rec.Target == "acme/crm" && rec.Detail == "to version 1" && rec.Result == "ok"
	}
	if !found {
		t.Fatalf("no audit record instance.rollback of acme/crm to version 1: %+v", recs)
	}

	// Without a version (none was ever stable here): the one before the
	// current version.
	in = protocol.Instance{}
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances/crm/rollback", nil, &in)
	if in.Version != 4 || in.Release != "1.1.0" {
		t.Fatalf("a rollback without a version: version %d release %s, want 4 with version 2's release 1.1.0", in.Version, in.Release)
	}
}

// A custom instance rolls back to its earlier spec, secrets included, and
// a rollback the tenant's plan no longer allows is refused.
func TestRollbackCustomInstance(t *testing.T) {
	e := newCatalogEnv(t)
	doc := instanceDoc("web")
	doc["plan"] = "pro"
	e.ok(e.mgmt, "POST", "/v1/tenants/acme/instances", doc, nil)
	spec := doc["spec"].(map[string]any)
	spec["version"], spec["secrets"] = "2.0.0", map[string]string{"DB_PASSWORD": "changed"}
	e.ok(e.mgmt, "PUT", "/v1/tenants/acme/instances/web", doc, nil)

	var in protocol.Instance
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances/web/rollback", map[string]any{"version": 1}, &in)
	if in.Version != 3 || in.Spec.Version != "1.0.0" || in.Spec.Secrets["DB_PASSWORD"] != "(secret)" {
		t.Fatalf("after the rollback: %+v", in)
	}
	if got := e.c.Leader().Store.Snapshot().Instance("acme/web").Spec.Secrets["DB_PASSWORD"]; got != "hunter2" {
		t.Fatalf("secret after the rollback: %q, want version 1's", got)
	}
	e.ok(e.mgmt, "PUT", "/v1/plans/pro", map[string]any{"max_replicas": 3, "resources": map[string]int{"cpu_millis": 100, "memory_mb": 256}}, nil)
	e.wantError("a rollback over the plan", e.call(e.admin, "POST", "/v1/tenants/acme/instances/web/rollback", map[string]any{"version": 2}),
		422, protocol.CodeQuotaExceeded, "spec.resources.cpu_millis")
}
