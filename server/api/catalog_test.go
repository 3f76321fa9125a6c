package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
)

// crmProduct is API.md's example product: two plans, three parameters.
func crmProduct() map[string]any {
	return map[string]any{
		"description": "Acme CRM",
		"template": map[string]any{"ports": []string{"http"},
			"health": map[string]any{"type": "http", "port": "http", "path": "/healthz"},
			"env":    map[string]string{"LOG_FORMAT": "json"}},
		"parameters": []map[string]any{
			{"name": "LOG_LEVEL", "type": "string", "default": "info", "enum": []string{"debug", "info", "warn"}},
			{"name": "SEATS", "type": "int", "min": 1, "max": 500, "default": 10},
			{"name": "SMTP_PASSWORD", "type": "string", "secret": true, "required": true},
		},
		"plans":           []string{"starter", "pro"},
		"default_channel": "stable",
	}
}

// catalogEnv is one server with ACLs, plans starter and pro, product crm
// with releases 1.0.0, 1.1.0 and a deprecated 0.9.0, channel stable at
// 1.0.0, tenant acme and its admin's token.
type catalogEnv struct {
	*aclEnv
	mgmt, admin string
}

func newCatalogEnv(t *testing.T) *catalogEnv {
	e := &catalogEnv{aclEnv: newACLEnv(t, server.Config{})}
	e.mgmt = e.bootstrap().Secret
	e.ok(e.mgmt, "PUT", "/v1/plans/starter", map[string]any{"max_replicas": 1, "resources": map[string]int{"cpu_millis": 250, "memory_mb": 128}}, nil)
	e.ok(e.mgmt, "PUT", "/v1/plans/pro", map[string]any{"max_replicas": 3, "resources": map[string]int{"cpu_millis": 500, "memory_mb": 256}}, nil)
	e.ok(e.mgmt, "PUT", "/v1/products/crm", crmProduct(), nil)
	for _, v := range []string{"0.9.0", "1.0.0", "1.1.0"} {
		e.ok(e.mgmt, "POST", "/v1/products/crm/releases", map[string]any{"version": v,
			"command": []string{"/opt/crm/" + v + "/bin/crm", "--listen", "127.0.0.1:${PORT}"},
			"env":     map[string]string{"CRM_VERSION": v}, "upgrade_from": ">=0.9.0"}, nil)
	}
	e.ok(e.mgmt, "PATCH", "/v1/products/crm/releases/0.9.0", map[string]string{"state": "deprecated"}, nil)
	e.ok(e.mgmt, "PUT", "/v1/products/crm/channels/stable", map[string]string{"release": "1.0.0"}, nil)
	e.ok(e.mgmt, "POST", "/v1/tenants", map[string]any{"name": "acme", "region": "eu-west"}, nil)
	e.admin = e.token(e.mgmt, protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "acme"}).Secret
	return e
}

// wantError checks an error answer's status, code and field.
func (e *catalogEnv) wantError(what string, r aclReply, status int, code protocol.Code, field string) {
	e.t.Helper()
	var eb protocol.ErrorBody
	_ = json.Unmarshal(r.body, &eb)
	if r.status != status || eb.Error == nil || eb.Error.Code != code || eb.Error.Field != field {
		e.t.Errorf("%s: %d %s, want %d %s naming %q", what, r.status, r.body, status, code, field)
	}
}

func TestProductInstanceResolvesItsSpec(t *testing.T) {
	e := newCatalogEnv(t)
	var in protocol.Instance
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances", map[string]any{"name": "crm", "environment": "production",
		"product": "crm", "plan": "pro", "replicas": 2,
		"parameters": map[string]any{"LOG_LEVEL": "warn", "SEATS": 20, "SMTP_PASSWORD": "hunter2"}}, &in)
	if in.Product != "crm" || in.Release != "1.0.0" || in.Channel != "stable" || in.Replicas != 2 {
		t.Fatalf("instance %+v, want crm 1.0.0 on stable with 2 replicas", in.ProductRef)
	}
	s := in.Spec
	if strings.Join(s.Command, " ") != "/opt/crm/1.0.0/bin/crm --listen 127.0.0.1:${PORT}" || s.Version != "1.0.0" {
		t.Errorf("command %v version %q: not the release's", s.Command, s.Version)
	}
	for k, want := range map[string]string{"LOG_FORMAT": "json", "CRM_VERSION": "1.0.0", "LOG_LEVEL": "warn", "SEATS": "20"} {
		if s.Env[k] != want {
			t.Errorf("env %s = %q, want %q (template, release, parameters): %v", k, s.Env[k], want, s.Env)
		}
	}
	if s.Resources.CPUMillis != 500 || s.Resources.MemoryMB != 256 {
		t.Errorf("resources %+v, want the plan's", s.Resources)
	}
	if s.Health == nil || s.Health.Type != "http" || s.Health.Path != "/healthz" {
		t.Errorf("health %+v, want the template's", s.Health)
	}
	raw := e.call(e.admin, "GET", "/v1/tenants/acme/instances/crm", nil)
	if strings.Contains(string(raw.body), "hunter2") {
		t.Fatalf("an answer shows the secret parameter: %s", raw.body)
	}
	if s.Secrets["SMTP_PASSWORD"] == "" || in.Parameters["SMTP_PASSWORD"] != "(secret)" {
		t.Errorf("secret parameter answered as %q / %q", s.Secrets["SMTP_PASSWORD"], in.Parameters["SMTP_PASSWORD"])
	}

	// A change of parameters keeps the secret and the release.
	var up protocol.Instance
	e.ok(e.admin, "PUT", "/v1/tenants/acme/instances/crm", map[string]any{"product": "crm",
		"parameters": map[string]any{"SEATS": 30}}, &up)
	if up.Release != "1.0.0" || up.Spec.Env["SEATS"] != "30" || up.Spec.Env["LOG_LEVEL"] != "warn" || up.Version != 2 || up.Plan != "pro" {
		t.Fatalf("after a parameter change: release %s env %v version %d plan %s", up.Release, up.Spec.Env, up.Version, up.Plan)
	}
	// A named release moves it, off the channel.
	up = protocol.Instance{}
	e.ok(e.admin, "PUT", "/v1/tenants/acme/instances/crm", map[string]any{"product": "crm", "release": "1.1.0"}, &up)
	if up.Release != "1.1.0" || up.Channel != "" || up.Spec.Command[0] != "/opt/crm/1.1.0/bin/crm" || up.Spec.Env["SEATS"] != "30" {
		t.Fatalf("after moving to 1.1.0: %+v %v", up.ProductRef, up.Spec.Command)
	}
}

func TestTenantTokensRunOnlyProducts(t *testing.T) {
	e := newCatalogEnv(t)
	doc := func(edit func(map[string]any)) map[string]any {
		d := map[string]any{"name": "crm", "product": "crm", "plan": "starter",
			"parameters": map[string]any{"SMTP_PASSWORD": "x"}}
		edit(d)
		return d
	}
	params := func(p map[string]any) func(map[string]any) {
		return func(d map[string]any) { d["parameters"] = p }
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   protocol.Code
		field  string
	}{
		{"a spec", map[string]any{"name": "crm", "spec": map[string]any{"command": []string{"/bin/sh"}}}, 403, protocol.CodePermissionDenied, "spec"},
		{"a spec with a product", doc(func(d map[string]any) { d["spec"] = map[string]any{"command": []string{"/bin/sh"}} }), 403, protocol.CodePermissionDenied, "spec"},
		{"no product", map[string]any{"name": "crm"}, 400, protocol.CodeInvalidArgument, "product"},
		{"an undeclared parameter", doc(params(map[string]any{"SMTP_PASSWORD": "x", "DEBUG": "1"})), 400, protocol.CodeInvalidArgument, "parameters.DEBUG"},
		{"out of range", doc(params(map[string]any{"SMTP_PASSWORD": "x", "SEATS": 501})), 400, protocol.CodeInvalidArgument, "parameters.SEATS"},
		{"a string for an int", doc(params(map[string]any{"SMTP_PASSWORD": "x", "SEATS": "ten"})), 400, protocol.CodeInvalidArgument, "parameters.SEATS"},
		{"not in the enum", doc(params(map[string]any{"SMTP_PASSWORD": "x", "LOG_LEVEL": "trace"})), 400, protocol.CodeInvalidArgument, "parameters.LOG_LEVEL"},
		{"a required one missing", doc(params(map[string]any{})), 400, protocol.CodeInvalidArgument, "parameters.SMTP_PASSWORD"},
		{"a plan the product does not list", doc(func(d map[string]any) { d["plan"] = "free" }), 400, protocol.CodeInvalidArgument, "plan"},
		{"a deprecated release", doc(func(d map[string]any) { d["release"] = "0.9.0" }), 400, protocol.CodeInvalidArgument, "release"},
		{"a release that does not exist", doc(func(d map[string]any) { d["release"] = "2.0.0" }), 400, protocol.CodeInvalidArgument, "release"},
		{"a channel that does not exist", doc(func(d map[string]any) { d["channel"] = "beta" }), 400, protocol.CodeInvalidArgument, "channel"},
		{"a release and a channel", doc(func(d map[string]any) { d["release"], d["channel"] = "1.0.0", "stable" }), 400, protocol.CodeInvalidArgument, "release"},
		{"more replicas than the plan", doc(func(d map[string]any) { d["replicas"] = 2 }), 422, protocol.CodeQuotaExceeded, "replicas"},
		{"an unknown product", doc(func(d map[string]any) { d["product"] = "erp" }), 400, protocol.CodeInvalidArgument, "product"},
	} {
		e.wantError(tc.name, e.call(e.admin, "POST", "/v1/tenants/acme/instances", tc.body), tc.status, tc.code, tc.field)
	}
	var list []protocol.Instance
	e.ok(e.mgmt, "GET", "/v1/tenants/acme/instances", nil, &list)
	if len(list) != 0 {
		t.Fatalf("refused requests created %d instances", len(list))
	}
	// The same document with valid values is taken, and its change with a
	// spec is refused and changes nothing.
	var in protocol.Instance
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances", doc(func(map[string]any) {}), &in)
	e.wantError("an update with a spec", e.call(e.admin, "PUT", "/v1/tenants/acme/instances/crm",
		map[string]any{"spec": map[string]any{"command": []string{"/bin/sh"}}}), 403, protocol.CodePermissionDenied, "spec")
	var after protocol.Instance
	e.ok(e.admin, "GET", "/v1/tenants/acme/instances/crm", nil, &after)
	if after.Version != in.Version || after.Spec.Command[0] != "/opt/crm/1.0.0/bin/crm" {
		t.Fatalf("a refused update changed the instance: version %d command %v", after.Version, after.Spec.Command)
	}
	// Operators still run custom instances, within the tenant's region.
	e.ok(e.mgmt, "POST", "/v1/tenants/acme/instances", map[string]any{"name": "tool",
		"spec": map[string]any{"command": []string{"/opt/tool"}, "constraints": map[string]any{"region": "eu-west"}}}, nil)
	e.wantError("a region other than the tenant's", e.call(e.mgmt, "POST", "/v1/tenants/acme/instances", map[string]any{"name": "far",
		"spec": map[string]any{"command": []string{"/opt/tool"}, "constraints": map[string]any{"region": "us-east"}}}),
		400, protocol.CodeInvalidArgument, "spec.constraints.region")
}

func TestCatalogRefusesBadInputAndKeepsReleasesImmutable(t *testing.T) {
	e := newCatalogEnv(t)
	product := func(edit func(map[string]any)) map[string]any {
		p := crmProduct()
		edit(p)
		return p
	}
	param := func(p map[string]any) func(map[string]any) {
		return func(d map[string]any) { d["parameters"] = []map[string]any{p} }
	}
	for _, tc := range []struct {
		name  string
		path  string
		body  any
		field string
	}{
		{"unknown field", "/v1/products/erp", map[string]any{"commands": []string{"x"}}, "commands"},
		{"a command in the template", "/v1/products/erp", map[string]any{"template": map[string]any{"command": []string{"x"}}}, "command"},
		{"bad parameter type", "/v1/products/erp", product(param(map[string]any{"name": "X", "type": "float"})), "parameters[0].type"},
		{"bad parameter name", "/v1/products/erp", product(param(map[string]any{"name": "1X", "type": "string"})), "parameters[0].name"},
		{"a default outside the enum", "/v1/products/erp", product(param(map[string]any{"name": "X", "type": "string", "enum": []string{"a"}, "default": "b"})), "parameters[0].default"},
		{"min above max", "/v1/products/erp", product(param(map[string]any{"name": "X", "type": "int", "min": 5, "max": 1})), "parameters[0].min"},
		{"an unknown plan", "/v1/products/erp", product(func(p map[string]any) { p["plans"] = []string{"gold"} }), "plans"},
		{"a bad channel name", "/v1/products/erp", product(func(p map[string]any) { p["default_channel"] = "Stable!" }), "default_channel"},
	} {
		e.wantError(tc.name, e.call(e.mgmt, "PUT", tc.path, tc.body), 400, protocol.CodeInvalidArgument, tc.field)
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"bad semver", map[string]any{"version": "1.2", "command": []string{"/x"}}, "version"},
		{"bad range", map[string]any{"version": "2.0.0", "command": []string{"/x"}, "upgrade_from": ">>1"}, "upgrade_from"},
		{"no command", map[string]any{"version": "2.0.0"}, "command"},
		{"bad state", map[string]any{"version": "2.0.0", "command": []string{"/x"}, "state": "gone"}, "state"},
	} {
		e.wantError(tc.name, e.call(e.mgmt, "POST", "/v1/products/crm/releases", tc.body), 400, protocol.CodeInvalidArgument, tc.field)
	}
	e.wantError("the same version again", e.call(e.mgmt, "POST", "/v1/products/crm/releases",
		map[string]any{"version": "1.0.0", "command": []string{"/other"}}), 409, protocol.CodeConflict, "")
	e.wantError("a patch of the command", e.call(e.mgmt, "PATCH", "/v1/products/crm/releases/1.0.0",
		map[string]any{"command": []string{"/other"}}), 400, protocol.CodeInvalidArgument, "command")
	e.wantError("a channel to a deprecated release", e.call(e.mgmt, "PUT", "/v1/products/crm/channels/old",
		map[string]string{"release": "0.9.0"}), 400, protocol.CodeInvalidArgument, "release")
	e.wantError("a tenant publishing", e.call(e.admin, "POST", "/v1/products/crm/releases",
		map[string]any{"version": "9.9.9", "command": []string{"/x"}}), 403, protocol.CodePermissionDenied, "")
	var rel protocol.Release
	e.ok(e.admin, "GET", "/v1/products/crm/releases/1.0.0", nil, &rel)
	if rel.Command[0] != "/opt/crm/1.0.0/bin/crm" || rel.State != protocol.ReleaseAvailable {
		t.Fatalf("release 1.0.0 changed: %+v", rel)
	}
	var rels []protocol.Release
	e.ok(e.admin, "GET", "/v1/products/crm/releases", nil, &rels)
	if len(rels) != 3 || rels[0].Version != "0.9.0" || rels[2].Version != "1.1.0" {
		t.Fatalf("releases listed %+v, want 0.9.0, 1.0.0, 1.1.0", rels)
	}

	// A window with a bad day or time is refused naming it.
	for _, tc := range []struct {
		w     map[string]any
		field string
	}{
		{map[string]any{"days": []string{"tues"}, "start": "01:00", "duration": "4h"}, "maintenance_window.days[0]"},
		{map[string]any{"days": []string{"tue"}, "start": "25:00", "duration": "4h"}, "maintenance_window.start"},
		{map[string]any{"days": []string{"tue"}, "start": "01:00", "duration": "0s"}, "maintenance_window.duration"},
	} {
		e.wantError("window "+tc.field, e.call(e.mgmt, "PATCH", "/v1/tenants/acme", map[string]any{"maintenance_window": tc.w}),
			400, protocol.CodeInvalidArgument, tc.field)
	}
	e.wantError("a bad region", e.call(e.mgmt, "PATCH", "/v1/tenants/acme", map[string]any{"region": "EU West"}), 400, protocol.CodeInvalidArgument, "region")
	var tn protocol.Tenant
	e.ok(e.mgmt, "PATCH", "/v1/tenants/acme", map[string]any{"maintenance_window": map[string]any{"days": []string{"tue"}, "start": "01:00", "duration": "4h"}}, &tn)
	if tn.MaintenanceWindow == nil || tn.MaintenanceWindow.String() != "tue 01:00-05:00" || tn.Region != "eu-west" {
		t.Fatalf("tenant after the window: %+v", tn)
	}

	// A product with instances is not deleted.
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances", map[string]any{"name": "crm", "product": "crm", "plan": "starter",
		"parameters": map[string]any{"SMTP_PASSWORD": "x"}}, nil)
	e.wantError("deleting a product in use", e.call(e.mgmt, "DELETE", "/v1/products/crm", nil), 409, protocol.CodeConflict, "")
	if r := e.call(e.mgmt, "DELETE", "/v1/tenants/acme/instances/crm", nil); r.status/100 != 2 {
		t.Fatalf("delete instance: %d %s", r.status, r.body)
	}
	if r := e.call(e.mgmt, "DELETE", "/v1/products/crm", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete an unused product: %d %s", r.status, r.body)
	}
}
