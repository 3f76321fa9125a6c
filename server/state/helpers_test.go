package state_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// harness drives an FSM the way Raft does: one log entry at a time, with
// growing indexes and a clock the test moves.
type harness struct {
	t     testing.TB
	store *state.Store
	fsm   *state.FSM
	index uint64
	now   time.Time
	log   [][]byte // every entry applied, for replays
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newHarness(t testing.TB) *harness {
	st := state.NewStore()
	return &harness{t: t, store: st, fsm: state.NewFSM(st, nil), now: t0}
}

// raw applies the bytes of one log entry and returns the FSM's answer.
func (h *harness) raw(b []byte) error {
	h.index++
	h.log = append(h.log, b)
	resp := h.fsm.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: b})
	if resp == nil {
		return nil
	}
	err, ok := resp.(error)
	if !ok {
		h.t.Fatalf("Apply answered %T %v, want nil or an error", resp, resp)
	}
	return err
}

func (h *harness) applyAudited(typ state.CommandType, body any, audit *protocol.AuditRecord) error {
	h.t.Helper()
	b, err := state.Encode(typ, h.now, body, audit)
	if err != nil {
		h.t.Fatalf("encode %s: %v", typ, err)
	}
	return h.raw(b)
}

func (h *harness) apply(typ state.CommandType, body any) error {
	h.t.Helper()
	return h.applyAudited(typ, body, nil)
}

// ok applies a command that must succeed and returns its index.
func (h *harness) ok(typ state.CommandType, body any) uint64 {
	h.t.Helper()
	if err := h.apply(typ, body); err != nil {
		h.t.Fatalf("%s: %v", typ, err)
	}
	return h.index
}

// fails applies a command that must be refused with code, and checks that
// it changed nothing but the index and the audit trail.
func (h *harness) fails(typ state.CommandType, body any, code protocol.Code) *protocol.Error {
	h.t.Helper()
	before := h.bytes()
	err := h.apply(typ, body)
	var e *protocol.Error
	if !errors.As(err, &e) || e.Code != code {
		h.t.Fatalf("%s: want %s, got %v", typ, code, err)
	}
	if diff := stateDiff(before, h.bytes()); diff != "" {
		h.t.Fatalf("%s was refused but changed the state: %s", typ, diff)
	}
	return e
}

func (h *harness) snap() *state.Snapshot { return h.store.Snapshot() }

// bytes returns the whole state as snapshot bytes.
func (h *harness) bytes() []byte {
	var b bytes.Buffer
	if err := state.WriteSnapshot(&b, h.fsm.StoreDB()); err != nil {
		h.t.Fatal(err)
	}
	return b.Bytes()
}

// Fixtures.

func (h *harness) tenant(name string) {
	h.t.Helper()
	h.ok(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: name}, Create: true})
}

func testSpec(version string) protocol.Spec {
	return protocol.Spec{Version: version, Command: []string{"/bin/app", version}}.WithDefaults()
}

func (h *harness) instance(tenant, name string, replicas int) {
	h.t.Helper()
	h.ok(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: tenant, Name: name, Environment: "default", Replicas: replicas, Spec: testSpec("1")}})
}

func (h *harness) node(id string) {
	h.t.Helper()
	h.ok(state.CmdNodeRegister, state.NodeRegister{SecretHash: "hash-" + id, Node: protocol.Node{
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
	h.ok(state.CmdPlanApply, state.Plan{Instance: instanceID, EvalIndex: h.index, Place: rs})
}

func (h *harness) report(node string, reports ...protocol.ReplicaReport) uint64 {
	h.t.Helper()
	return h.ok(state.CmdReplicaReports, state.ReplicaReports{Reports: []state.NodeReport{{Node: node, Replicas: reports}}})
}

func (h *harness) eventTypes(instanceID string) []string {
	var out []string
	for _, e := range h.snap().Events(instanceID) {
		out = append(out, e.Type)
	}
	return out
}

// stateDiff compares two snapshots, leaving out what every entry may
// change even when its command is refused: the table indexes, the audit
// trail and its counter. It returns "" when they hold the same state.
func stateDiff(a, b []byte) string {
	ka, kb := keptRows(a), keptRows(b)
	for i := 0; i < len(ka) || i < len(kb); i++ {
		var x, y string
		if i < len(ka) {
			x = ka[i]
		}
		if i < len(kb) {
			y = kb[i]
		}
		if x != y {
			return "before: " + x + "\n after: " + y
		}
	}
	return ""
}

func keptRows(snap []byte) []string {
	var out []string
	for _, line := range bytes.Split(snap, []byte("\n")) {
		var row struct {
			T string `json:"t"`
			V struct {
				Key string
			} `json:"v"`
		}
		_ = json.Unmarshal(line, &row)
		switch {
		case row.T == "index", row.T == "audit":
			continue
		case row.T == "meta" && row.V.Key == "audit_count":
			continue
		}
		out = append(out, string(line))
	}
	return out
}
