package rollout_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/catalog"
	"github.com/drover-dev/drover/server/rollout"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// fleet builds, through the FSM, product crm with releases 1.0.0 and
// 1.1.0 and tenants*perTenant instances on 1.0.0, half in staging and half
// in production, every fourth tenant in ring early with a window.
func fleet(tb testing.TB, tenants, perTenant int) *statetest.Harness {
	h := statetest.New(tb)
	for _, env := range []string{"staging", "production"} {
		h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: env}})
	}
	h.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: "crm", DefaultChannel: "stable",
		Template: protocol.ProductTemplate{Ports: []string{"http"}}}})
	for _, v := range []string{"1.0.0", "1.1.0"} {
		h.Must(state.CmdReleasePublish, state.ReleasePublish{Release: protocol.Release{Product: "crm", Version: v,
			Command: []string{"/opt/crm/" + v}, UpgradeFrom: ">=1.0.0"}})
	}
	h.Must(state.CmdChannelSet, state.ChannelSet{Product: "crm", Channel: "stable", Release: "1.0.0"})
	snap := h.Snapshot()
	for t := range tenants {
		tn := protocol.Tenant{Name: fmt.Sprintf("t%05d", t), Labels: map[string]string{"ring": "late"}}
		if t%4 == 0 {
			tn.Labels["ring"] = "early"
			tn.MaintenanceWindow = &protocol.MaintenanceWindow{Days: []string{"tue", "thu"}, Start: "01:00", Duration: protocol.Duration(4 * time.Hour)}
		}
		h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: tn, Create: true})
		for i := range perTenant {
			env := "staging"
			if i%2 == 1 {
				env = "production"
			}
			req := protocol.InstanceRequest{Name: fmt.Sprintf("crm-%d", i), Product: "crm"}
			ref, spec, err := catalog.Resolve(snap, &req, nil)
			if err != nil {
				tb.Fatal(err)
			}
			h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: tn.Name, Name: req.Name,
				Environment: env, Replicas: 1, Spec: spec.WithDefaults(), ProductRef: ref}})
		}
	}
	return h
}

// BenchmarkDryRun10000 lays out a rollout of 10,000 instances in three
// waves with staging_first and maintenance windows: the work of
// POST /v1/rollouts?dry_run=true (BENCHMARKS.md).
func BenchmarkDryRun10000(b *testing.B) {
	h := fleet(b, 2000, 5)
	snap := h.Snapshot()
	req := protocol.RolloutRequest{Product: "crm", Release: "1.1.0", MaxConcurrent: 20, StagingFirst: true, MaintenanceWindows: true,
		Waves: []protocol.Wave{
			{Name: "staging", Selector: protocol.RolloutSelector{Environments: []string{"staging"}}, Bake: protocol.Duration(30 * time.Minute)},
			{Name: "early", Selector: protocol.RolloutSelector{Environments: []string{"production"}, TenantLabels: map[string]string{"ring": "early"}}},
			{Name: "everyone"},
		}}
	b.ResetTimer()
	for b.Loop() {
		r, err := rollout.New(snap, req, "bench", statetest.Epoch)
		if err != nil {
			b.Fatal(err)
		}
		if r.Counts.Total != 10000 {
			b.Fatalf("%d instances", r.Counts.Total)
		}
	}
}

// The smoke form of the benchmark, in the test suite: a small fleet laid
// out, every instance in a wave, with an ETA.
func TestDryRunSmoke(t *testing.T) {
	h := fleet(t, 20, 5)
	r, err := rollout.New(h.Snapshot(), protocol.RolloutRequest{Product: "crm", Release: "1.1.0", StagingFirst: true,
		MaintenanceWindows: true, Waves: []protocol.Wave{{Name: "staging", Selector: protocol.RolloutSelector{Environments: []string{"staging"}}}, {Name: "rest"}}},
		"smoke", statetest.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Total != 100 || r.Counts.Skipped != 0 {
		t.Fatalf("counts %+v", r.Counts)
	}
	for _, in := range r.Instances {
		if in.ETA.IsZero() || (in.Environment == "staging") != (in.Wave == 0) {
			t.Fatalf("instance %+v: no ETA or in the wrong wave", in)
		}
	}
}
