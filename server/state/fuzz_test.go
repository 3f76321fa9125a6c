package state_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

var (
	fuzzBaseOnce  sync.Once
	fuzzBaseStore *state.Store
	fuzzBase      []byte // snapshot of richState
	fuzzBaseIndex uint64
	fuzzSeeds     [][]byte
)

// fuzzSetup builds the state every fuzz input is applied to, and seeds of
// every command type.
func fuzzSetup(t testing.TB) {
	fuzzBaseOnce.Do(func() {
		h := richState(t)
		fuzzBaseStore, fuzzBase, fuzzBaseIndex = h.Store, h.Bytes(), h.Index()
		fuzzSeeds = append(fuzzSeeds, h.Entries()...)
		at := t0.Add(time.Hour)
		for _, c := range []struct {
			typ  state.CommandType
			body any
		}{
			{state.CmdTenantDelete, state.NameBody{Name: "globex"}},
			{state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "crm", Replicas: 4}},
			{state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "crm", Action: "restart"}},
			{state.CmdInstanceDelete, state.InstanceRef{Tenant: "acme", Name: "crm"}},
			{state.CmdNodeEligibility, state.NodeEligibility{ID: "n1"}},
			{state.CmdNodeRevoke, state.NameBody{Name: "n1"}},
			{state.CmdPlanApply, state.Plan{Instance: "acme/crm", Rollback: 1, Stop: []state.ReplicaStop{{ID: "r1"}},
				Events: []protocol.Event{{Tenant: "acme", Instance: "crm", Type: "x"}}}},
			{state.CmdTokenDelete, state.NameBody{Name: "ci"}},
			{state.CmdServerRemove, state.NameBody{Name: "s1"}},
			{state.CmdStateRestored, state.AuditAppend{}},
		} {
			b, err := state.Encode(c.typ, at, c.body, &protocol.AuditRecord{Action: string(c.typ)})
			if err != nil {
				t.Fatal(err)
			}
			fuzzSeeds = append(fuzzSeeds, b)
		}
	})
}

// FuzzFSMApply applies arbitrary bytes as a log entry to a state holding
// every kind of row. Apply must not panic; an entry it refuses changes
// nothing but the indexes and the audit trail; and what it accepts must
// survive a snapshot and restore unchanged.
func FuzzFSMApply(f *testing.F) {
	fuzzSetup(f)
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Add([]byte(`{"type":"plan.apply","body":{"instance":"acme/crm","events":[{"type":"x"}]}}`))
	f.Add([]byte(`{"type":"plan.apply","body":{"instance":"","retry":true}}`))
	f.Add([]byte(`{"type":"audit","body":{"records":[{}]},"audit":{}}`))
	f.Add([]byte(`{"type":"tenant.upsert","body":{"tenant":{"name":""},"create":true}}`))
	f.Add([]byte(`{"type":"x"}`))
	f.Add([]byte(`null`))
	// Inputs that start with a byte below len(fuzzTypes) are a command of
	// that type with the rest as its body, so that the fuzzer spends its
	// time on bodies rather than on finding the envelope's field names.
	for _, b := range fuzzSeeds {
		if c, err := state.DecodeCommand(b); err == nil {
			for j, typ := range fuzzTypes {
				if typ == c.Type {
					f.Add(append([]byte{byte(j)}, c.Body...))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 && int(data[0]) < len(fuzzTypes) {
			b, err := json.Marshal(state.Command{Type: fuzzTypes[data[0]], Time: t0, Body: json.RawMessage(data[1:])})
			if err != nil {
				return // the body is not JSON: the raw form covers that
			}
			data = b
		}
		h := &harness{Harness: statetest.Over(t, fuzzBaseStore.Clone()), t: t}
		h.SetNow(t0)
		h.SetIndex(fuzzBaseIndex)
		before := fuzzBase
		cmd, decodeErr := state.DecodeCommand(data)
		if decodeErr == nil {
			if _, known := state.CommandVersion(cmd.Type); !known {
				return // stops the server: TestUnknownCommandStopsTheServer
			}
		}
		err := h.Raw(data)
		after := h.Bytes()
		if decodeErr != nil && err == nil {
			t.Fatalf("undecodable entry applied: %v", decodeErr)
		}
		if err != nil {
			if d := statetest.Diff(before, after); d != "" {
				t.Fatalf("refused entry (%v) changed the state:\n%s", err, d)
			}
			var e *protocol.Error
			if !errorAs(err, &e) {
				t.Fatalf("FSM answered %T %v, want a *protocol.Error", err, err)
			}
			if strings.Contains(e.Message, "panic:") {
				t.Fatalf("applying the entry panicked: %v", err)
			}
		}
		r := newHarness(t)
		if err := r.FSM.Restore(io.NopCloser(bytes.NewReader(after))); err != nil {
			t.Fatalf("the state after the entry does not restore: %v", err)
		}
		if again := r.Bytes(); !bytes.Equal(again, after) {
			t.Fatalf("snapshot round trip changed the state: %s", statetest.Diff(after, again))
		}
		// Reads must work on what was written.
		snap := h.Snapshot()
		all := snap.Statuses("")
		for _, in := range snap.Instances(state.InstanceFilter{}) {
			one := *snap.InstanceStatus(in)
			if got := all.Of(in); !reflect.DeepEqual(got, one) {
				t.Fatalf("Statuses of %s: %+v, InstanceStatus: %+v", in.ID, got, one)
			}
			if got := snap.Statuses(in.Tenant).Of(in); !reflect.DeepEqual(got, one) {
				t.Fatalf("Statuses(%q) of %s: %+v, InstanceStatus: %+v", in.Tenant, in.ID, got, one)
			}
		}
		if resp := h.Entry(&raft.Log{Type: raft.LogCommand, Data: fuzzSeeds[0]}); resp != nil {
			if _, ok := resp.(error); !ok {
				t.Fatalf("Apply answered %T", resp)
			}
		}
	})
}

var fuzzTypes = []state.CommandType{
	state.CmdTenantUpsert, state.CmdTenantDelete, state.CmdEnvironmentUpsert, state.CmdPlanUpsert,
	state.CmdInstanceCreate, state.CmdInstanceUpdate, state.CmdInstanceScale, state.CmdInstanceLifecycle,
	state.CmdInstanceDelete, state.CmdNodeRegister, state.CmdNodeStatus, state.CmdNodeDrain,
	state.CmdNodeEligibility, state.CmdNodeRevoke, state.CmdReplicaReports, state.CmdPlanApply,
	state.CmdTokenCreate, state.CmdTokenDelete, state.CmdACLBootstrap, state.CmdAudit,
	state.CmdServerUpsert, state.CmdServerRemove, state.CmdStateRestored,
}

func errorAs(err error, e **protocol.Error) bool {
	v, ok := err.(*protocol.Error)
	*e = v
	return ok
}
