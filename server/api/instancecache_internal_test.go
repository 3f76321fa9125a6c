package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// The cache answers every instance as encoding/json encodes the row the
// state holds now, through creates, changes of every kind, deletes and a
// name made again, and drops the entries of rows the state no longer
// holds once it is swept.
func TestInstanceCacheFollowsTheRows(t *testing.T) {
	h := statetest.New(t)
	a := &API{instances: newInstanceCache(), gateway: newGatewayParts(&url.URL{Scheme: "http", Host: "drover.test:4780"})}
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true})
	create := func(name string, cmd ...string) {
		h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: name,
			Environment: "default", Replicas: 1, Spec: protocol.Spec{Command: cmd, Secrets: map[string]string{"KEY": "hunter2"}}}})
	}
	check := func(step string) {
		t.Helper()
		snap := h.Snapshot()
		for _, in := range snap.Instances(state.InstanceFilter{}) {
			st := snap.InstanceStatus(in)
			got, err := a.appendInstance([]byte("x"), snap, in, st)
			if err != nil {
				t.Fatal(err)
			}
			v := a.view(in, st)
			want, err := json.Marshal(&v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "x"+string(want) {
				t.Fatalf("%s: %s answered\n%s\nwant\n%s", step, in.ID, got, want)
			}
		}
	}
	for i := range 6 {
		create(fmt.Sprintf("app%d", i), "/bin/app", "-n", fmt.Sprint(i))
	}
	check("created")
	check("again, from the cache")

	h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "app0", Replicas: 3})
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "app1", Spec: protocol.Spec{Command: []string{"/bin/app2"}}})
	h.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "app2", Action: state.ActionStop})
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "app3"})
	h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "app4"})
	create("app4", "/bin/other")
	check("changed")

	for _, name := range []string{"app0", "app1", "app2", "app5"} {
		h.Must(state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: name})
	}
	a.instances.sweepAt = 6 // the cache holds 6 entries: the next one sweeps it
	create("late")
	check("swept")
	a.instances.mu.Lock()
	defer a.instances.mu.Unlock()
	if n := len(a.instances.entries); n > 2 {
		t.Fatalf("the cache holds %d entries after a sweep; the state has 2 instances", n)
	}
	if a.instances.sweepAt != minSweep {
		t.Fatalf("the next sweep is at %d entries, not %d", a.instances.sweepAt, minSweep)
	}
}
