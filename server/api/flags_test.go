package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

// flagsEnv is the catalogue's env with two flags of crm (new-ui, which
// tenants may change, and max-seats, which they may not), an instance
// acme/crm in production, and tokens of acme's viewer and another tenant.
type flagsEnv struct {
	*catalogEnv
	viewer, other string
}

func newFlagsEnv(t *testing.T) *flagsEnv {
	e := &flagsEnv{catalogEnv: newCatalogEnv(t)}
	e.ok(e.mgmt, "PUT", "/v1/products/crm/flags/new-ui", map[string]any{"type": "boolean",
		"variants": map[string]any{"on": true, "off": false}, "default_variant": "off", "tenant_editable": true}, nil)
	e.ok(e.mgmt, "PUT", "/v1/products/crm/flags/max-seats", map[string]any{"type": "number",
		"variants": map[string]any{"small": 10, "large": 500}, "default_variant": "small", "description": "seats sold"}, nil)
	e.ok(e.admin, "POST", "/v1/tenants/acme/instances", map[string]any{"name": "crm", "environment": "production",
		"product": "crm", "plan": "pro", "parameters": map[string]any{"SMTP_PASSWORD": "x"}}, nil)
	e.ok(e.mgmt, "POST", "/v1/tenants", map[string]any{"name": "globex"}, nil)
	e.viewer = e.token(e.mgmt, protocol.TokenRequest{Role: protocol.RoleTenantViewer, Tenant: "acme"}).Secret
	e.other = e.token(e.mgmt, protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "globex"}).Secret
	return e
}

// resolved reads acme/crm's flags as key -> "variant value source".
func (e *flagsEnv) resolved(token string) map[string]string {
	e.t.Helper()
	var fs []protocol.ResolvedFlag
	e.ok(token, "GET", "/v1/tenants/acme/instances/crm/flags", nil, &fs)
	out := map[string]string{}
	for _, f := range fs {
		out[f.Key] = f.Variant + " " + string(f.Value) + " " + f.Source
	}
	return out
}

func (e *flagsEnv) want(token string, want map[string]string) {
	e.t.Helper()
	got := e.resolved(token)
	for k, v := range want {
		if got[k] != v {
			e.t.Errorf("flag %s resolved to %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestFlagDefinitionsAreValidatedAndBadInputChangesNothing(t *testing.T) {
	e := newFlagsEnv(t)
	var before []protocol.Flag
	e.ok(e.admin, "GET", "/v1/products/crm/flags", nil, &before)
	if len(before) != 2 || before[0].Key != "max-seats" || string(before[1].Variants["on"]) != "true" {
		t.Fatalf("flags of crm = %+v", before)
	}
	good := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"type": "string", "variants": map[string]any{"a": "x", "b": "y"}, "default_variant": "a"}
		change(m)
		return m
	}
	many := map[string]any{}
	for i := range protocol.MaxFlagVariants + 1 {
		many["v"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "x"
	}
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		field      string
	}{
		{"unknown type", "theme", good(func(m map[string]any) { m["type"] = "color" }), "type"},
		{"value of another type", "theme", good(func(m map[string]any) { m["variants"] = map[string]any{"a": 1} }), "variants.a"},
		{"default not a variant", "theme", good(func(m map[string]any) { m["default_variant"] = "c" }), "default_variant"},
		{"no variants", "theme", good(func(m map[string]any) { m["variants"] = map[string]any{} }), "variants"},
		{"too many variants", "theme", good(func(m map[string]any) { m["variants"], m["default_variant"] = many, "vaa" }), "variants"},
		{"value too large", "theme", good(func(m map[string]any) { m["variants"] = map[string]any{"a": strings.Repeat("x", 2000)} }), "variants.a"},
		{"bad variant name", "theme", good(func(m map[string]any) { m["variants"] = map[string]any{"a b": "x"} }), "variants.a b"},
		{"bad key", "-theme", good(func(map[string]any) {}), "key"},
		{"key unlike the path", "theme", good(func(m map[string]any) { m["key"] = "colour" }), "key"},
		{"unknown field", "theme", good(func(m map[string]any) { m["enabled"] = true }), "enabled"},
		{"redefining with a bad body", "new-ui", good(func(m map[string]any) { m["type"] = "bool" }), "type"},
	} {
		r := e.call(e.mgmt, "PUT", "/v1/products/crm/flags/"+tc.path, tc.body)
		e.wantError(tc.name, r, http.StatusBadRequest, protocol.CodeInvalidArgument, tc.field)
	}
	e.wantError("a tenant defining a flag", e.call(e.admin, "PUT", "/v1/products/crm/flags/theme", good(func(map[string]any) {})),
		http.StatusForbidden, protocol.CodePermissionDenied, "")
	e.wantError("a flag of no product", e.call(e.mgmt, "PUT", "/v1/products/erp/flags/theme", good(func(map[string]any) {})),
		http.StatusNotFound, protocol.CodeNotFound, "")
	var after []protocol.Flag
	e.ok(e.mgmt, "GET", "/v1/products/crm/flags", nil, &after)
	a, _ := json.Marshal(after)
	b, _ := json.Marshal(before)
	if string(a) != string(b) {
		t.Errorf("refused requests changed the flags:\nbefore %s\nafter  %s", b, a)
	}
}

func TestFlagOverridesResolveByPrecedenceForTheirTenantOnly(t *testing.T) {
	e := newFlagsEnv(t)
	e.want(e.viewer, map[string]string{"new-ui": "off false default", "max-seats": "small 10 default"})

	e.ok(e.mgmt, "PUT", "/v1/environments/production/flags/new-ui", map[string]string{"variant": "on"}, nil)
	e.want(e.admin, map[string]string{"new-ui": "on true environment"})
	e.ok(e.admin, "PUT", "/v1/tenants/acme/flags/new-ui", map[string]string{"variant": "off"}, nil)
	e.want(e.admin, map[string]string{"new-ui": "off false tenant"})
	e.ok(e.admin, "PUT", "/v1/tenants/acme/instances/crm/flags/new-ui", map[string]string{"variant": "on"}, nil)
	e.want(e.admin, map[string]string{"new-ui": "on true instance"})
	e.ok(e.admin, "DELETE", "/v1/tenants/acme/instances/crm/flags/new-ui", nil, nil)
	e.want(e.admin, map[string]string{"new-ui": "off false tenant"})
	var overrides []protocol.FlagOverride
	e.ok(e.viewer, "GET", "/v1/tenants/acme/flags", nil, &overrides)
	if len(overrides) != 1 || overrides[0].Key != "new-ui" || overrides[0].Variant != "off" {
		t.Errorf("acme's overrides = %+v", overrides)
	}

	// What tenant tokens may not do.
	e.wantError("a tenant overriding a flag that is not tenant_editable",
		e.call(e.admin, "PUT", "/v1/tenants/acme/flags/max-seats", map[string]string{"variant": "large"}),
		http.StatusForbidden, protocol.CodePermissionDenied, "key")
	if r := e.call(e.admin, "PUT", "/v1/tenants/acme/instances/crm/flags/max-seats", map[string]string{"variant": "large"}); !strings.Contains(string(r.body), "max-seats") {
		t.Errorf("403 for max-seats does not name the flag: %s", r.body)
	}
	e.wantError("a viewer overriding", e.call(e.viewer, "PUT", "/v1/tenants/acme/flags/new-ui", map[string]string{"variant": "on"}),
		http.StatusForbidden, protocol.CodePermissionDenied, "")
	e.wantError("a tenant overriding an environment", e.call(e.admin, "PUT", "/v1/environments/production/flags/new-ui", map[string]string{"variant": "on"}),
		http.StatusForbidden, protocol.CodePermissionDenied, "")
	for _, path := range []string{"/v1/tenants/acme/flags", "/v1/tenants/acme/instances/crm/flags"} {
		e.wantError("another tenant reading "+path, e.call(e.other, "GET", path, nil), http.StatusNotFound, protocol.CodeNotFound, "")
		e.wantError("another tenant changing "+path, e.call(e.other, "PUT", path+"/new-ui", map[string]string{"variant": "on"}),
			http.StatusNotFound, protocol.CodeNotFound, "")
	}
	e.wantError("a variant the flag lacks", e.call(e.mgmt, "PUT", "/v1/tenants/acme/flags/new-ui", map[string]string{"variant": "maybe"}),
		http.StatusBadRequest, protocol.CodeInvalidArgument, "variant")
	e.wantError("a flag no product defines", e.call(e.mgmt, "PUT", "/v1/tenants/acme/flags/nope", map[string]string{"variant": "on"}),
		http.StatusNotFound, protocol.CodeNotFound, "")
	e.wantError("removing an override that is not there", e.call(e.admin, "DELETE", "/v1/tenants/acme/instances/crm/flags/new-ui", nil),
		http.StatusNotFound, protocol.CodeNotFound, "")

	// Operators change any flag, for any tenant.
	e.ok(e.mgmt, "PUT", "/v1/tenants/acme/instances/crm/flags/max-seats", map[string]string{"variant": "large"}, nil)
	e.want(e.viewer, map[string]string{"max-seats": "large 500 instance", "new-ui": "off false tenant"})

	// A definition that drops the variant an override names passes it over.
	e.ok(e.mgmt, "PUT", "/v1/products/crm/flags/max-seats", map[string]any{"type": "number",
		"variants": map[string]any{"small": 10, "medium": 50}, "default_variant": "medium"}, nil)
	e.want(e.viewer, map[string]string{"max-seats": "medium 50 default"})

	// Every change is in the tenant's audit trail, naming flag and variant.
	var recs []protocol.AuditRecord
	e.ok(e.viewer, "GET", "/v1/audit", nil, &recs)
	var got []string
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "flag.") {
			got = append(got, r.Action+" "+r.Target+" "+r.Detail+" "+r.Result)
		}
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"flag.set tenant acme new-ui=off ok",
		"flag.set instance acme/crm new-ui=on ok",
		"flag.unset instance acme/crm new-ui ok",
		"flag.set tenant acme max-seats=large permission_denied",
		"flag.set instance acme/crm max-seats=large ok",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("acme's audit lacks %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "environment") {
		t.Errorf("acme's audit shows environment-wide changes:\n%s", joined)
	}

	// Deleting the last definition of a key removes its overrides.
	e.ok(e.mgmt, "DELETE", "/v1/products/crm/flags/new-ui", nil, nil)
	e.ok(e.viewer, "GET", "/v1/tenants/acme/flags", nil, &overrides)
	if len(overrides) != 0 {
		t.Errorf("overrides of a deleted flag remain: %+v", overrides)
	}
	if got := e.resolved(e.viewer); got["new-ui"] != "" {
		t.Errorf("deleted flag still resolves: %v", got)
	}
}
