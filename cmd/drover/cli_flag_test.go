package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

func TestFlagCommandsSendWhatTheySay(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("PUT /v1/products/crm/flags/theme", 200, protocol.Flag{Product: "crm", Key: "theme"})
	f.answer("PUT /v1/tenants/acme/flags/theme", 200, protocol.FlagOverride{Scope: "tenant", Target: "acme", Key: "theme", Variant: "dark"})
	f.answer("PUT /v1/tenants/acme/instances/web/flags/theme", 200, protocol.FlagOverride{Key: "theme", Variant: "light"})
	f.answer("DELETE /v1/environments/production/flags/theme", 204, nil)
	f.answer("GET /v1/tenants/acme/instances/web/flags", 200, []protocol.ResolvedFlag{
		{Key: "new-ui", Variant: "on", Value: json.RawMessage("true"), Source: "tenant"},
		{Key: "theme", Variant: "light", Value: json.RawMessage(`"light"`), Source: "instance"},
	})
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := runCLI(t, append(args, "-addr", f.url)...)
		if code != 0 {
			t.Fatalf("drover %s: exit %d, %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}

	run("flag", "define", "crm", "theme", "-type", "string", "-variant", "light=light", "-variant", `dark="dark"`, "-default", "light", "-tenant-editable")
	var def protocol.Flag
	if err := json.Unmarshal(f.request("PUT", "/v1/products/crm/flags/theme").Body, &def); err != nil {
		t.Fatal(err)
	}
	if string(def.Variants["light"]) != `"light"` || string(def.Variants["dark"]) != `"dark"` || def.DefaultVariant != "light" || !def.TenantEditable || def.Type != "string" {
		t.Errorf("flag define sent %+v", def)
	}
	if out := run("flag", "set", "theme", "dark", "-tenant", "acme"); !strings.Contains(out, "Flag theme is dark for tenant acme") {
		t.Errorf("flag set -tenant printed %q", out)
	}
	if got := string(f.request("PUT", "/v1/tenants/acme/flags/theme").Body); !strings.Contains(got, `"variant":"dark"`) {
		t.Errorf("flag set sent %s", got)
	}
	run("flag", "set", "theme", "light", "-instance", "acme/web")
	run("flag", "unset", "theme", "-env", "production")
	out := run("flag", "get", "acme/web")
	for _, want := range []string{"KEY", "SOURCE", "new-ui", "true", "tenant", `"light"`, "instance"} {
		if !strings.Contains(out, want) {
			t.Errorf("flag get lacks %q:\n%s", want, out)
		}
	}
	var one protocol.ResolvedFlag
	if err := json.Unmarshal([]byte(run("flag", "get", "acme/web", "theme", "-o", "json")), &one); err != nil || one.Source != "instance" {
		t.Errorf("flag get KEY -o json: %+v %v", one, err)
	}
	if _, stderr, code := runCLI(t, "flag", "get", "acme/web", "nope", "-addr", f.url); code != exitFailed || !strings.Contains(stderr, `no flag "nope"`) {
		t.Errorf("flag get of a missing key: exit %d, %s", code, stderr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"flag", "set", "theme", "dark"}, "needs one of -instance TENANT/NAME, -tenant T or -env E"},
		{[]string{"flag", "set", "theme", "dark", "-tenant", "acme", "-env", "production"}, "needs one of"},
		{[]string{"flag", "set", "theme", "dark", "-instance", "acme"}, "TENANT/NAME"},
		{[]string{"flag", "unset", "theme", "dark", "-tenant", "acme"}, "wants KEY"},
		{[]string{"flag", "define", "crm", "on", "-type", "boolean", "-variant", "on=yes", "-default", "on"}, `"yes" is not a JSON boolean`},
		{[]string{"flag", "define", "crm", "on", "-type", "boolean"}, "needs -type, at least one -variant"},
		{[]string{"flag", "list"}, "needs one of -tenant T or -env E"},
		{[]string{"flag", "list", "crm", "-tenant", "acme"}, "not several"},
	} {
		_, stderr, code := runCLI(t, append(tc.args, "-addr", f.url)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("drover %s: exit %d, %q; want 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
