package state_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// waitAsync runs Store.Wait in the background and delivers its answer.
func waitAsync(h *harness, min uint64, tables ...string) (<-chan uint64, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	ch := make(chan uint64, 1)
	go func() { ch <- h.Store.Wait(ctx, min, tables...) }()
	return ch, cancel
}

func expectWake(t *testing.T, ch <-chan uint64, want uint64) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("Wait returned %d, want %d", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after a change")
	}
}

func expectAsleep(t *testing.T, ch <-chan uint64) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("Wait returned %d without a change of its tables", got)
	default:
	}
}

func TestStoreWait(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	cur := h.Index()

	// Already past the index: at once.
	if got := h.Store.Wait(context.Background(), cur-1, state.TableTenants); got != cur {
		t.Fatalf("Wait below the index = %d, want %d", got, cur)
	}
	// Nothing happens: returns the same index when the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if got := h.Store.Wait(ctx, cur, state.TableTenants); got != cur {
		t.Fatalf("Wait without change = %d, want %d", got, cur)
	}
	cancel()

	// A write to another table does not wake a wait on tenants; one to
	// tenants does.
	ch, cancel := waitAsync(h, cur, state.TableTenants)
	defer cancel()
	h.node("n1")
	nodeIdx := h.Index()
	if got := h.Store.Wait(context.Background(), nodeIdx-1, state.TableNodes); got != nodeIdx {
		t.Fatalf("nodes index %d, want %d", got, nodeIdx)
	}
	expectAsleep(t, ch)
	h.tenant("globex")
	expectWake(t, ch, h.Index())
}

// A wait on no table in particular (GET /v1/status) wakes on any write.
func TestStoreWaitAllTables(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	ch, cancel := waitAsync(h, h.Index())
	defer cancel()
	h.node("n1")
	expectWake(t, ch, h.Index())
}

// After a restore from an older backup, the restored command marks every
// table changed: a wait on an index the backup is older than wakes, whether
// it began before the restore or after.
func TestStoreWaitAfterRestore(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	backup := h.Bytes()
	h.tenant("globex")
	seen := h.Index()
	before, cancel := waitAsync(h, seen, state.TableTenants)
	defer cancel()
	if err := h.FSM.Restore(io.NopCloser(bytes.NewReader(backup))); err != nil {
		t.Fatal(err)
	}
	h.SetIndex(h.Index() + 5) // raft leaves a gap for the restore
	after, cancel2 := waitAsync(h, seen, state.TableTenants)
	defer cancel2()
	idx := h.Must(state.CmdStateRestored, state.AuditAppend{Records: []protocol.AuditRecord{{Action: "operator.snapshot.restore", Result: "ok"}}})
	expectWake(t, before, idx)
	expectWake(t, after, idx)
	if h.Snapshot().Tenant("globex") != nil || h.Snapshot().Tenant("acme") == nil {
		t.Fatal("restore did not bring the backup's tenants back")
	}
	for _, table := range state.Tables {
		if got := h.Snapshot().Index(table); got != idx {
			t.Errorf("table %s at index %d after the restore, want %d", table, got, idx)
		}
	}
	if a := h.Snapshot().Audit(state.AuditFilter{}); len(a) == 0 || a[len(a)-1].Action != "operator.snapshot.restore" {
		t.Fatalf("restore not audited: %+v", a)
	}
}

func TestInstanceStatus(t *testing.T) {
	rep := func(state string) *protocol.Replica { return &protocol.Replica{State: state} }
	cases := []struct {
		name     string
		replicas int
		stopped  bool
		dep      string
		reps     []*protocol.Replica
		want     string
		counts   protocol.ReplicaCounts
	}{
		{"all healthy", 2, false, "", []*protocol.Replica{rep("healthy"), rep("healthy")}, protocol.InstanceRunning,
			protocol.ReplicaCounts{Desired: 2, Running: 2, Healthy: 2}},
		{"one pending", 2, false, "", []*protocol.Replica{rep("healthy"), rep("pending")}, protocol.InstanceDegraded,
			protocol.ReplicaCounts{Desired: 2, Running: 1, Healthy: 1, Pending: 1}},
		{"running but unhealthy", 1, false, "", []*protocol.Replica{rep("unhealthy")}, protocol.InstanceDegraded,
			protocol.ReplicaCounts{Desired: 1, Running: 1}},
		{"all failed", 2, false, "", []*protocol.Replica{rep("failed"), rep("lost")}, protocol.InstanceFailed,
			protocol.ReplicaCounts{Desired: 2, Failed: 2}},
		{"failed while one starts", 2, false, "", []*protocol.Replica{rep("failed"), rep("starting")}, protocol.InstanceDegraded,
			protocol.ReplicaCounts{Desired: 2, Failed: 1, Pending: 1}},
		{"deploying", 1, false, protocol.DeploymentRunning, []*protocol.Replica{rep("healthy")}, protocol.InstanceDeploying,
			protocol.ReplicaCounts{Desired: 1, Running: 1, Healthy: 1}},
		{"deployment done", 1, false, protocol.DeploymentSuccessful, []*protocol.Replica{rep("healthy")}, protocol.InstanceRunning,
			protocol.ReplicaCounts{Desired: 1, Running: 1, Healthy: 1}},
		{"scaled to zero", 0, false, "", nil, protocol.InstanceStopped, protocol.ReplicaCounts{}},
		{"stopped", 3, true, "", nil, protocol.InstanceStopped, protocol.ReplicaCounts{}},
		{"stopping", 3, true, "", []*protocol.Replica{rep("running")}, protocol.InstanceStopped, protocol.ReplicaCounts{Running: 1}},
		{"nothing placed yet", 1, false, "", nil, protocol.InstanceDegraded, protocol.ReplicaCounts{Desired: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.tenant("acme")
			h.instance("acme", "crm", tc.replicas)
			if tc.stopped {
				h.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "crm", Action: "stop"})
			}
			if tc.dep != "" {
				h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Deployment: &protocol.Deployment{ID: "d", State: tc.dep}})
			}
			h.node("n1")
			var reports []protocol.ReplicaReport
			for i, r := range tc.reps {
				id := string(rune('a' + i))
				h.place("acme/crm", "n1", 1, id)
				reports = append(reports, protocol.ReplicaReport{ID: id, State: r.State})
			}
			if len(reports) > 0 {
				h.report("n1", reports...)
			}
			// A replica told to stop does not count.
			h.place("acme/crm", "n1", 1, "z")
			h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Stop: []state.ReplicaStop{{ID: "z"}}})

			snap := h.Snapshot()
			in := snap.Instance("acme/crm")
			for name, st := range map[string]protocol.InstanceStatus{
				"InstanceStatus": *snap.InstanceStatus(in), "Statuses of all": snap.Statuses("").Of(in), "Statuses of acme": snap.Statuses("acme").Of(in),
			} {
				if st.State != tc.want || st.Replicas != tc.counts {
					t.Fatalf("%s: status %s %+v, want %s %+v", name, st.State, st.Replicas, tc.want, tc.counts)
				}
			}
			if got := h.Snapshot().Instances(state.InstanceFilter{State: tc.want}); len(got) != 1 {
				t.Fatalf("filter by state %s found %d", tc.want, len(got))
			}
		})
	}
}

// Statuses counts each instance's replicas only, by tenant and name, and
// of one tenant only the replicas of that tenant: not those of another
// whose name it begins.
func TestStatusesKeepInstancesApart(t *testing.T) {
	h := newHarness(t)
	h.node("n1")
	for _, tenant := range []string{"acme", "acme2", "frozen"} {
		h.tenant(tenant)
		h.instance(tenant, "web", 2)
	}
	h.instance("acme", "web2", 1)
	h.place("acme/web", "n1", 1, "a1", "a2")
	h.place("acme2/web", "n1", 1, "b1")
	h.place("acme/web2", "n1", 1, "c1")
	h.place("frozen/web", "n1", 1, "f1")
	h.report("n1", protocol.ReplicaReport{ID: "a1", State: "healthy"}, protocol.ReplicaReport{ID: "a2", State: "healthy"},
		protocol.ReplicaReport{ID: "b1", State: "failed"}, protocol.ReplicaReport{ID: "c1", State: "starting"},
		protocol.ReplicaReport{ID: "f1", State: "healthy"})
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "frozen", State: protocol.TenantSuspended}})

	snap := h.Snapshot()
	want := map[string]protocol.InstanceStatus{
		"acme/web":   {State: protocol.InstanceRunning, Replicas: protocol.ReplicaCounts{Desired: 2, Running: 2, Healthy: 2}},
		"acme/web2":  {State: protocol.InstanceDegraded, Replicas: protocol.ReplicaCounts{Desired: 1, Pending: 1}},
		"acme2/web":  {State: protocol.InstanceFailed, Replicas: protocol.ReplicaCounts{Desired: 2, Failed: 1}},
		"frozen/web": {State: protocol.InstanceStopped, Replicas: protocol.ReplicaCounts{Running: 1, Healthy: 1}},
	}
	all := snap.Statuses("")
	for id, w := range want {
		in := snap.Instance(id)
		tenant, _, _ := strings.Cut(id, "/")
		for name, st := range map[string]protocol.InstanceStatus{
			"InstanceStatus": *snap.InstanceStatus(in), "Statuses of all": all.Of(in), "Statuses of " + tenant: snap.Statuses(tenant).Of(in),
		} {
			if st.State != w.State || st.Replicas != w.Replicas {
				t.Errorf("%s of %s: %s %+v, want %s %+v", name, id, st.State, st.Replicas, w.State, w.Replicas)
			}
		}
	}
}

func TestInstancesFilter(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.tenant("globex")
	h.instance("acme", "b", 1)
	h.instance("acme", "a", 1)
	h.instance("globex", "a", 1)
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "globex", Name: "a", Spec: testSpec("2"), Environment: "production"})
	ids := func(f state.InstanceFilter) []string {
		var out []string
		for _, in := range h.Snapshot().Instances(f) {
			out = append(out, in.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    state.InstanceFilter
		want string
	}{
		{state.InstanceFilter{}, "[acme/a acme/b globex/a]"},
		{state.InstanceFilter{Tenant: "acme"}, "[acme/a acme/b]"},
		{state.InstanceFilter{Environment: "production"}, "[globex/a]"},
		{state.InstanceFilter{Tenant: "acme", Environment: "production"}, "[]"},
		{state.InstanceFilter{Tenant: "nobody"}, "[]"},
	} {
		if got := fmtList(ids(tc.f)); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.f, got, tc.want)
		}
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
