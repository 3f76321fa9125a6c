package state_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// harness is statetest's FSM harness with this package's fixtures.
type harness struct {
	*statetest.Harness
	t testing.TB
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newHarness(t testing.TB) *harness {
	h := &harness{Harness: statetest.New(t), t: t}
	h.SetNow(t0)
	return h
}

// newBareHarness is newHarness over an empty state at log version 1, as
// a server starts before its log's first entry.
func newBareHarness(t testing.TB) *harness {
	h := &harness{Harness: statetest.Over(t, state.NewStore()), t: t}
	h.SetNow(t0)
	return h
}

// fails applies a command that must be refused with code, and checks that
// it changed nothing but the index and the audit trail.
func (h *harness) fails(typ state.CommandType, body any, code protocol.Code) *protocol.Error {
	h.t.Helper()
	before := h.Bytes()
	err := h.Apply(typ, body)
	var e *protocol.Error
	if !errors.As(err, &e) || e.Code != code {
		h.t.Fatalf("%s: want %s, got %v", typ, code, err)
	}
	if diff := statetest.Diff(before, h.Bytes()); diff != "" {
		h.t.Fatalf("%s was refused but changed the state: %s", typ, diff)
	}
	return e
}

// Fixtures.

func (h *harness) tenant(name string) {
	h.t.Helper()
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: name}, Create: true})
}

func testSpec(version string) protocol.Spec {
	return protocol.Spec{Version: version, Command: []string{"/bin/app", version}}.WithDefaults()
}

func (h *harness) instance(tenant, name string, replicas int) {
	h.t.Helper()
	h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: tenant, Name: name, Environment: "default", Replicas: replicas, Spec: testSpec("1")}})
}

func (h *harness) node(id string) {
	h.t.Helper()
	h.Must(state.CmdNodeRegister, state.NodeRegister{SecretHash: "hash-" + id, Node: protocol.Node{
		ID: id, Name: "host-" + id, Region: "eu-west",
		Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 8192, FreeCPUMillis: 4000, FreeMemoryMB: 8192},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 21000}}})
}

// place puts replicas of an instance on a node through a plan.
func (h *harness) place(instanceID, node string, version uint64, ids ...string) {
	h.t.Helper()
	tenant, name, _ := protocol.SplitInstanceID(instanceID)
	var rs []*protocol.Replica
	for _, id := range ids {
		rs = append(rs, &protocol.Replica{ID: id, Tenant: tenant, Instance: name, Node: node, Version: version})
	}
	h.Must(state.CmdPlanApply, state.Plan{Instance: instanceID, EvalIndex: h.Index(), Place: rs})
}

func (h *harness) report(node string, reports ...protocol.ReplicaReport) uint64 {
	h.t.Helper()
	return h.Must(state.CmdReplicaReports, state.ReplicaReports{Reports: []state.NodeReport{{Node: node, Replicas: reports}}})
}

func (h *harness) eventTypes(instanceID string) []string {
	var out []string
	for _, e := range h.Snapshot().Events(instanceID) {
		out = append(out, e.Type)
	}
	return out
}

// atLogVersions runs f over a bare state at log version 3 and at this
// build's, with tenant acme: what the FSM does since version 4, and
// before.
func atLogVersions(t *testing.T, f func(t *testing.T, h *harness, v int)) {
	for _, v := range []int{3, state.LogVersion} {
		t.Run(fmt.Sprintf("log version %d", v), func(t *testing.T) {
			h := newBareHarness(t)
			h.Must(state.CmdLogVersion, state.LogVersionSet{Version: v})
			h.tenant("acme")
			f(t, h, v)
		})
	}
}
