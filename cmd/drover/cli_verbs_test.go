package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// tenant update changes what its flags name: the labels and quotas are
// merged into the tenant's (PATCH replaces them whole), the rest is not
// sent.
func TestTenantUpdateSendsOnlyWhatChanges(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/tenants/acme", 200, protocol.Tenant{Name: "acme", Labels: map[string]string{"tier": "gold", "trial": "yes"},
		Quotas: protocol.Quotas{Instances: 5, MemoryMB: 4096}})
	f.answer("PATCH /v1/tenants/acme", 200, protocol.Tenant{Name: "acme"})
	stdout, stderr, code := runCLI(t, "tenant", "update", "acme", "-label", "tier=platinum", "-remove-label", "trial",
		"-quota-memory", "8192", "-maintenance-window", "tue,thu 01:00 4h", "-addr", f.url)
	if code != exitOK || !strings.Contains(stdout, "Updated tenant acme") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var body map[string]any
	if err := json.Unmarshal(f.request("PATCH", "/v1/tenants/acme").Body, &body); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(body)
	want := `{"labels":{"tier":"platinum"},"maintenance_window":{"days":["tue","thu"],"duration":"4h0m0s","start":"01:00"},"quotas":{"instances":5,"memory_mb":8192}}`
	if string(got) != want {
		t.Fatalf("PATCH body\n got %s\nwant %s", got, want)
	}

	// Without labels or quotas nothing is read first; {} clears the window.
	f2 := newFakeAPI(t)
	f2.answer("PATCH /v1/tenants/acme", 200, protocol.Tenant{Name: "acme"})
	if _, stderr, code := runCLI(t, "tenant", "update", "acme", "-no-maintenance-window", "-region", "", "-addr", f2.url); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if b := string(f2.request("PATCH", "/v1/tenants/acme").Body); strings.TrimSpace(b) != `{"region":"","maintenance_window":{"days":null,"start":"","duration":"0s"}}` || f2.requests() != 1 {
		t.Fatalf("PATCH body %s after %d requests", b, f2.requests())
	}
}

// environment set and plan set keep what their flags do not name.
func TestEnvironmentAndPlanSetKeepTheRest(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/environments", 200, []*protocol.Environment{{Name: "production", Protected: true, Constraints: protocol.Constraints{Region: "eu-west"}}})
	f.answer("PUT /v1/environments/production", 200, protocol.Environment{Name: "production", Protected: true,
		Constraints: protocol.Constraints{Region: "eu-west", Labels: map[string]string{"tier": "gold"}}})
	stdout, stderr, code := runCLI(t, "environment", "set", "production", "-constraint", "tier=gold", "-addr", f.url)
	if code != exitOK || !strings.Contains(stdout, "Set environment production: protected yes, constraints region eu-west, labels tier=gold") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var e protocol.Environment
	_ = json.Unmarshal(f.request("PUT", "/v1/environments/production").Body, &e)
	if !e.Protected || e.Constraints.Region != "eu-west" || e.Constraints.Labels["tier"] != "gold" {
		t.Fatalf("PUT %+v: the protection and region must stay", e)
	}

	f.answer("GET /v1/plans", 200, []*protocol.Plan{{Name: "pro", Resources: protocol.Resources{CPUMillis: 500, MemoryMB: 256}, MaxReplicas: 3}})
	f.answer("PUT /v1/plans/pro", 200, protocol.Plan{Name: "pro", Resources: protocol.Resources{CPUMillis: 500, MemoryMB: 256}, MaxReplicas: 5})
	if _, stderr, code := runCLI(t, "plan", "set", "pro", "-max-replicas", "5", "-addr", f.url); code != exitOK {
		t.Fatalf("plan set: exit %d: %s", code, stderr)
	}
	var p protocol.Plan
	_ = json.Unmarshal(f.request("PUT", "/v1/plans/pro").Body, &p)
	if p.Resources.CPUMillis != 500 || p.Resources.MemoryMB != 256 || p.MaxReplicas != 5 {
		t.Fatalf("PUT %+v: cpu and memory must stay", p)
	}
	stdout, _, _ = runCLI(t, "plan", "list", "-addr", f.url)
	if !strings.Contains(stdout, "MAX REPLICAS") || !strings.Contains(stdout, "500m") || !strings.Contains(stdout, "256MB") {
		t.Fatalf("plan list:\n%s", stdout)
	}
}

// instance history marks the current and stable versions; rollback sends
// the version asked for.
func TestInstanceHistoryAndRollback(t *testing.T) {
	f := newFakeAPI(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f.answer("GET /v1/tenants/acme/instances/crm/versions", 200, []protocol.InstanceVersion{
		{Version: 1, CreatedAt: at, Stable: true, Spec: protocol.Spec{Version: "1.4.2"}},
		{Version: 2, CreatedAt: at.Add(time.Hour), Current: true, ProductRef: protocol.ProductRef{Product: "crm", Release: "1.5.0"}},
	})
	stdout, stderr, code := runCLI(t, "instance", "history", "acme/crm", "-addr", f.url)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[1], "1 ") || !strings.Contains(lines[1], "1.4.2") || !strings.HasSuffix(lines[1], "stable") ||
		!strings.Contains(lines[2], "crm 1.5.0") || !strings.HasSuffix(lines[2], "current") {
		t.Fatalf("exit %d, stderr %q, history:\n%s", code, stderr, stdout)
	}
	f.answer("POST /v1/tenants/acme/instances/crm/rollback", 200, protocol.Instance{ID: "acme/crm", Tenant: "acme", Name: "crm", Version: 3, Spec: protocol.Spec{Version: "1.4.2"}})
	stdout, stderr, code = runCLI(t, "instance", "rollback", "acme/crm", "-to", "1", "-addr", f.url)
	if code != exitOK || !strings.Contains(stdout, "Rolling back acme/crm: version 3 (1.4.2)") {
		t.Fatalf("rollback: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if b := strings.TrimSpace(string(f.request("POST", "/v1/tenants/acme/instances/crm/rollback").Body)); b != `{"version":1}` {
		t.Fatalf("rollback body %s", b)
	}
	f.fail("GET /v1/tenants/acme/instances/gone/versions", protocol.NotFound("instance", "acme/gone"))
	if _, stderr, code := runCLI(t, "instance", "history", "acme/gone", "-addr", f.url); code != exitFailed || !strings.Contains(stderr, `instance "acme/gone" not found`) {
		t.Fatalf("history of a missing instance: exit %d, %q", code, stderr)
	}
}
