package state_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// richState fills a harness with every kind of row the state holds.
func richState(t testing.TB) *harness {
	h := newHarness(t)
	h.Must(state.CmdServerUpsert, state.ServerUpsert{Member: protocol.Member{ID: "s1", HTTPAddr: "127.0.0.1:4700", RaftAddr: "127.0.0.1:4701", Voter: true}})
	h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: "default"}})
	h.Must(state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: protocol.Environment{Name: "production", Protected: true, Constraints: protocol.Constraints{Region: "eu-west"}}})
	h.Must(state.CmdPlanUpsert, state.PlanUpsert{Plan: protocol.Plan{Name: "pro", MaxReplicas: 4, Resources: protocol.Resources{CPUMillis: 500, MemoryMB: 256}}})
	h.Must(state.CmdACLBootstrap, state.ACLBootstrap{Token: protocol.Token{ID: "root", Role: protocol.RoleManagement}, SecretHash: "roothash", JoinTokenHash: "joinhash"})
	h.Must(state.CmdTokenCreate, state.TokenCreate{Token: protocol.Token{ID: "ci", Role: protocol.RoleTenantAdmin, Tenant: "acme", ExpiresAt: t0.Add(24 * time.Hour)}, SecretHash: "cihash"})
	if err := h.ApplyAudited(state.CmdTenantUpsert, state.TenantUpsert{Create: true, Tenant: protocol.Tenant{Name: "acme", Labels: map[string]string{"tier": "gold"}, Quotas: protocol.Quotas{Replicas: 10}}},
		&protocol.AuditRecord{Action: "tenant.upsert", Target: "acme", TokenID: "root"}); err != nil {
		t.Fatal(err)
	}
	h.tenant("globex")
	h.node("n1")
	h.node("n2")
	h.instance("acme", "crm", 2)
	h.instance("globex", "shop", 1)
	spec := testSpec("2")
	spec.Secrets = map[string]string{"DB_PASSWORD": "x"}
	spec.Env = map[string]string{"A": "1"}
	h.SetNow(h.Now().Add(time.Minute))
	h.Must(state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "crm", Spec: spec, Plan: "pro"})
	h.place("acme/crm", "n1", 2, "r1", "r2")
	h.place("globex/shop", "n2", 1, "r3")
	h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy, Ports: map[string]int{"http": 20001}, StartedAt: t0},
		protocol.ReplicaReport{ID: "r2", State: protocol.ReplicaRunning, Restarts: 2, Message: "exit 1"})
	h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Deployment: &protocol.Deployment{ID: "d1", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentRunning, StartedAt: t0, Deadline: t0.Add(time.Hour)}, StableVersion: 1})
	h.Must(state.CmdNodeDrain, state.NodeDrain{ID: "n2", Drain: &protocol.DrainSpec{StartedAt: t0, Deadline: t0.Add(time.Hour)}})
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n2", Up: false}}})
	h.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "globex", Name: "shop", Action: "stop"})
	h.Must(state.CmdAudit, state.AuditAppend{Records: []protocol.AuditRecord{{Action: "token.create", Result: "permission_denied"}}})
	return h
}

// tables reads every table through the read API, for comparisons.
func tables(s *state.Snapshot) map[string]any {
	var versions []*state.Version
	var replicas [][]*protocol.Replica
	var events [][]*protocol.Event
	var evals []*state.Eval
	for _, in := range s.Instances(state.InstanceFilter{}) {
		for v := uint64(1); v <= in.Version; v++ {
			versions = append(versions, s.Version(in.ID, v))
		}
		replicas = append(replicas, s.Replicas(in.ID))
		events = append(events, s.Events(in.ID))
		evals = append(evals, s.Eval(in.ID))
	}
	var creds []*state.Credential
	for _, h := range []string{"roothash", "cihash", "hash-n1", "hash-n2"} {
		creds = append(creds, s.Credential(h))
	}
	return map[string]any{
		"tenants": s.Tenants(), "environments": s.Environments(), "plans": s.Plans(),
		"instances": s.Instances(state.InstanceFilter{}), "versions": versions, "replicas": replicas,
		"all replicas": s.AllReplicas(), "nodes": s.Nodes(), "tokens": s.Tokens(), "credentials": creds,
		"audit": s.Audit(state.AuditFilter{}), "events": events, "evals": evals, "all evals": s.Evals(),
		"servers": s.Servers(), "meta": []*state.Meta{s.Meta(state.MetaACLBootstrapped), s.Meta(state.MetaJoinTokenHash)},
		"index": s.Index(),
	}
}

func restored(t *testing.T, snap []byte) *harness {
	t.Helper()
	h := newHarness(t)
	if err := h.FSM.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return h
}

type sinkBuffer struct {
	bytes.Buffer
	cancelled bool
}

func (s *sinkBuffer) ID() string    { return "test" }
func (s *sinkBuffer) Cancel() error { s.cancelled = true; return nil }
func (s *sinkBuffer) Close() error  { return nil }

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	h := richState(t)
	// Through raft's interfaces, as a follower installing a snapshot would.
	fs, err := h.FSM.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink sinkBuffer
	if err := fs.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	fs.Release()
	if !bytes.Equal(sink.Bytes(), h.Bytes()) {
		t.Fatal("Persist and WriteSnapshot disagree")
	}
	r := restored(t, sink.Bytes())
	if !bytes.Equal(r.Bytes(), h.Bytes()) {
		t.Fatalf("restored state differs: %s", statetest.Diff(h.Bytes(), r.Bytes()))
	}
	want, got := tables(h.Snapshot()), tables(r.Snapshot())
	for name := range want {
		if !reflect.DeepEqual(got[name], want[name]) {
			t.Errorf("table %s after restore:\n got %s\nwant %s", name, dump(got[name]), dump(want[name]))
		}
	}
	// The restored state goes on exactly like the original.
	r.SetIndex(h.Index())
	r.SetNow(h.Now())
	for _, x := range []*harness{h, r} {
		x.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "crm", Replicas: 3})
		x.report("n1", protocol.ReplicaReport{ID: "r2", State: protocol.ReplicaFailed})
	}
	if !bytes.Equal(r.Bytes(), h.Bytes()) {
		t.Fatalf("states diverge after restore: %s", statetest.Diff(h.Bytes(), r.Bytes()))
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	good := richState(t).Bytes()
	header, rows, _ := bytes.Cut(good, []byte("\n"))
	cases := map[string][]byte{
		"empty":         nil,
		"not json":      []byte("hello\n"),
		"other format":  []byte(`{"format":"consul","version":1}` + "\n"),
		"newer version": []byte(`{"format":"drover-state","version":2}` + "\n"),
		"unknown table": append(append(header, '\n'), `{"t":"secrets","v":{}}`+"\n"...),
		"bad row":       append(append(header, '\n'), `{"t":"tenants","v":{"name":7}}`+"\n"...),
		"row no id":     append(append(header, '\n'), `{"t":"tenants","v":{}}`+"\n"...),
		"truncated":     append(append(header, '\n'), rows[:len(rows)/2]...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			h := richState(t)
			before := h.Bytes()
			if err := h.FSM.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
				t.Fatal("restored")
			}
			if !bytes.Equal(before, h.Bytes()) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

// Two FSMs fed the same log reach the same bytes, and so does one that
// starts from a snapshot taken half way.
func TestDeterminism(t *testing.T) {
	a := richState(t)
	half := len(a.Entries()) / 2
	b := newBareHarness(t)
	for _, e := range a.Entries()[:half] {
		b.Raw(e)
	}
	c := restored(t, b.Bytes())
	c.SetIndex(b.Index())
	c.SetNow(b.Now())
	for _, e := range a.Entries()[half:] {
		b.Raw(e)
		c.Raw(e)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("replay differs: %s", statetest.Diff(a.Bytes(), b.Bytes()))
	}
	if !bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatalf("replay from a snapshot differs: %s", statetest.Diff(a.Bytes(), c.Bytes()))
	}
}

// The audit trail keeps the newest MaxAuditRecords records.
func TestAuditRetention(t *testing.T) {
	// Start from a state at the limit (writing 100,000 records one by one
	// would take seconds under -race).
	var b bytes.Buffer
	b.WriteString(`{"format":"drover-state","version":1}` + "\n")
	enc := json.NewEncoder(&b)
	for i := 1; i <= state.MaxAuditRecords; i++ {
		rec := protocol.AuditRecord{ID: fmt.Sprintf("%016d-%06d", i, 0), Index: uint64(i), Time: t0, Action: "old", Target: fmt.Sprint(i), Result: "ok"}
		v, _ := json.Marshal(rec)
		enc.Encode(map[string]any{"t": "audit", "v": json.RawMessage(v)})
	}
	enc.Encode(map[string]any{"t": "meta", "v": state.Meta{Key: "audit_count", N: state.MaxAuditRecords}})
	h := restored(t, b.Bytes())
	h.SetIndex(state.MaxAuditRecords)

	h.Must(state.CmdAudit, state.AuditAppend{Records: []protocol.AuditRecord{{Action: "new", Target: "a"}, {Action: "new", Target: "b"}}})
	all := h.Snapshot().Audit(state.AuditFilter{})
	if len(all) != state.MaxAuditRecords {
		t.Fatalf("audit records: %d", len(all))
	}
	if all[0].Target != "3" || all[len(all)-1].Target != "b" || all[len(all)-2].Target != "a" {
		t.Fatalf("oldest kept %s, newest %s %s", all[0].Target, all[len(all)-2].Target, all[len(all)-1].Target)
	}
	if m := h.Snapshot().Meta("audit_count"); m.N != state.MaxAuditRecords {
		t.Fatalf("audit count %d", m.N)
	}
}

func TestSnapshotHoldsNoSecretsOfTokens(t *testing.T) {
	h := newHarness(t)
	h.Must(state.CmdTokenCreate, state.TokenCreate{Token: protocol.Token{ID: "t", Secret: "plaintext-secret", Role: "operator"}, SecretHash: "h"})
	if strings.Contains(string(h.Bytes()), "plaintext-secret") {
		t.Fatal("snapshot holds a token secret")
	}
}

var _ raft.SnapshotSink = (*sinkBuffer)(nil)
