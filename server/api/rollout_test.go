package api_test

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
)

// rolloutEnv is the catalogue of catalogEnv with tenants acme and globex,
// each with a staging and a production instance of crm on 1.0.0, and the
// servers' clock on a Monday noon (UTC).
func rolloutEnv(t *testing.T) *catalogEnv {
	e := newCatalogEnv(t)
	e.mu.Lock()
	e.now = time.Date(2030, 1, 7, 12, 0, 0, 0, time.UTC) // a Monday
	e.mu.Unlock()
	e.ok(e.mgmt, "POST", "/v1/tenants", map[string]any{"name": "globex", "labels": map[string]string{"ring": "early"}}, nil)
	for _, tenant := range []string{"acme", "globex"} {
		for _, env := range []string{"staging", "production"} {
			e.ok(e.mgmt, "POST", "/v1/tenants/"+tenant+"/instances", map[string]any{"name": "crm-" + env, "environment": env,
				"product": "crm", "plan": "starter", "parameters": map[string]any{"SMTP_PASSWORD": "x"}}, nil)
		}
	}
	return e
}

func TestRolloutBadInputNamesTheField(t *testing.T) {
	e := rolloutEnv(t)
	base := func(edit func(map[string]any)) map[string]any {
		r := map[string]any{"product": "crm", "release": "1.1.0"}
		edit(r)
		return r
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown field", base(func(r map[string]any) { r["wave"] = 1 }), "wave"},
		{"bad semver", base(func(r map[string]any) { r["release"] = "1.1" }), "release"},
		{"unknown release", base(func(r map[string]any) { r["release"] = "3.0.0" }), "release"},
		{"deprecated release", base(func(r map[string]any) { r["release"] = "0.9.0" }), "release"},
		{"unknown product", base(func(r map[string]any) { r["product"] = "erp" }), "product"},
		{"unknown tenant", base(func(r map[string]any) { r["selector"] = map[string]any{"tenants": []string{"nobody"}} }), "selector.tenants[0]"},
		{"unknown tenant in a wave", base(func(r map[string]any) {
			r["waves"] = []map[string]any{{"name": "a", "selector": map[string]any{"tenants": []string{"nobody"}}}}
		}), "waves[0].selector.tenants[0]"},
		{"overlapping waves", base(func(r map[string]any) {
			r["waves"] = []map[string]any{{"name": "a", "selector": map[string]any{"tenants": []string{"acme"}}},
				{"name": "b", "selector": map[string]any{"environments": []string{"staging"}}}}
		}), "waves[1].selector"},
		{"a wave that selects nothing", base(func(r map[string]any) {
			r["waves"] = []map[string]any{{"name": "a", "selector": map[string]any{"environments": []string{"dev"}}}, {"name": "rest"}}
		}), "waves[0].selector"},
		{"selects nothing", base(func(r map[string]any) { r["selector"] = map[string]any{"environments": []string{"dev"}} }), "selector"},
		{"bad approval", base(func(r map[string]any) { r["approval"] = "maybe" }), "approval"},
		{"bad max_concurrent", base(func(r map[string]any) { r["max_concurrent"] = -1 }), "max_concurrent"},
		{"bad bake", base(func(r map[string]any) { r["waves"] = []map[string]any{{"name": "a", "bake": "soon"}} }), ""},
	} {
		r := e.call(e.mgmt, "POST", "/v1/rollouts", tc.body)
		if tc.field == "" {
			if r.status != 400 {
				t.Errorf("%s: %d %s, want 400", tc.name, r.status, r.body)
			}
			continue
		}
		e.wantError(tc.name, r, 400, protocol.CodeInvalidArgument, tc.field)
	}
	e.wantError("a tenant's token", e.call(e.admin, "POST", "/v1/rollouts", base(func(map[string]any) {})), 403, protocol.CodePermissionDenied, "")
	var list []protocol.Rollout
	e.ok(e.mgmt, "GET", "/v1/rollouts", nil, &list)
	if len(list) != 0 {
		t.Fatalf("refused requests created %d rollouts", len(list))
	}
}

// An instance outside its tenant's window waits with that reason and an
// ETA at the window's start; the dry run says so and creates nothing; the
// rollout starts its upgrade once the servers' clock enters the window.
func TestRolloutWaitsForTheMaintenanceWindow(t *testing.T) {
	e := rolloutEnv(t)
	e.ok(e.mgmt, "PATCH", "/v1/tenants/acme", map[string]any{"maintenance_window": map[string]any{"days": []string{"tue"}, "start": "01:00", "duration": "2h"}}, nil)
	// No agent runs globex's new replicas: once the clock jumps to the
	// window, their deployments fail (not healthy in time), which must not
	// pause the rollout before acme's turn.
	req := map[string]any{"product": "crm", "release": "1.1.0", "max_concurrent": 4, "maintenance_windows": true, "max_failures": 4}
	var dry protocol.Rollout
	e.ok(e.mgmt, "POST", "/v1/rollouts?dry_run=true", req, &dry)
	tuesday := time.Date(2030, 1, 8, 1, 0, 0, 0, time.UTC)
	for _, in := range dry.Instances {
		switch in.Tenant {
		case "acme":
			if in.State != protocol.UpgradeWaiting || in.Reason != "outside window tue 01:00-03:00" || !in.ETA.Equal(tuesday) {
				t.Errorf("dry run: %s %s %q ETA %s, want waiting outside the window until %s", in.ID, in.State, in.Reason, in.ETA, tuesday)
			}
		case "globex":
			if in.State != protocol.UpgradePending || in.ETA.After(e.clock()) {
				t.Errorf("dry run: %s %s ETA %s, want pending now", in.ID, in.State, in.ETA)
			}
		}
	}
	var list []protocol.Rollout
	e.ok(e.mgmt, "GET", "/v1/rollouts", nil, &list)
	if len(list) != 0 {
		t.Fatalf("the dry run created a rollout")
	}

	var ro protocol.Rollout
	e.ok(e.mgmt, "POST", "/v1/rollouts", req, &ro)
	state := func(id string) protocol.RolloutInstance {
		var cur protocol.Rollout
		e.ok(e.mgmt, "GET", "/v1/rollouts/"+ro.ID, nil, &cur)
		for _, in := range cur.Instances {
			if in.ID == id {
				return in
			}
		}
		return protocol.RolloutInstance{}
	}
	testwait.Eventually(t, 10*time.Second, "globex's instances upgrading, acme's waiting", func() error {
		g, a := state("globex/crm-staging"), state("acme/crm-staging")
		if g.State != protocol.UpgradeUpgrading || a.State != protocol.UpgradeWaiting {
			return errorf("globex %s, acme %s (%s)", g.State, a.State, a.Reason)
		}
		return nil
	})
	e.advance(tuesday.Sub(e.clock()) + time.Minute)
	testwait.Eventually(t, 10*time.Second, "acme's instances upgrading inside the window", func() error {
		if a := state("acme/crm-staging"); a.State != protocol.UpgradeUpgrading {
			var cur protocol.Rollout
			e.ok(e.mgmt, "GET", "/v1/rollouts/"+ro.ID, nil, &cur)
			return errorf("acme %s (%s); rollout %s (%s), %+v", a.State, a.Reason, cur.State, cur.Message, cur.Instances)
		}
		return nil
	})
	var in protocol.Instance
	e.ok(e.mgmt, "GET", "/v1/tenants/acme/instances/crm-staging", nil, &in)
	if in.Release != "1.1.0" || in.Spec.Command[0] != "/opt/crm/1.1.0/bin/crm" {
		t.Fatalf("acme/crm-staging upgrading to %s with %v", in.Release, in.Spec.Command)
	}
}
