package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

func sized(tenant, name string, replicas int, cpu, mem int64) state.InstanceCreate {
	sp := testSpec("1")
	sp.Resources = protocol.Resources{CPUMillis: cpu, MemoryMB: mem}
	return state.InstanceCreate{Instance: protocol.Instance{Tenant: tenant, Name: name, Environment: "default", Replicas: replicas, Spec: sp}}
}

// Every quota refuses a create, update, scale or start past it with
// quota_exceeded naming the quota, and the refusal changes nothing.
func TestQuotasRefuseWhatExceedsThem(t *testing.T) {
	h := newHarness(t)
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Create: true, Tenant: protocol.Tenant{Name: "acme",
		Quotas: protocol.Quotas{Instances: 2, Replicas: 4, CPUMillis: 1900, MemoryMB: 1024}}})
	h.Must(state.CmdInstanceCreate, sized("acme", "a", 2, 500, 256)) // uses 2 replicas, 1000 mCPU, 512 MB

	for _, tc := range []struct {
		name  string
		typ   state.CommandType
		body  any
		field string
	}{
		{"replicas on create", state.CmdInstanceCreate, sized("acme", "b", 3, 100, 10), "quotas.replicas"},
		{"cpu on create", state.CmdInstanceCreate, sized("acme", "b", 1, 1500, 10), "quotas.cpu_millis"},
		{"memory on create", state.CmdInstanceCreate, sized("acme", "b", 2, 100, 300), "quotas.memory_mb"},
		{"replicas on scale", state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "a", Replicas: 5}, "quotas.replicas"},
		{"cpu on scale", state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "a", Replicas: 4}, "quotas.cpu_millis"},
		{"memory on update", state.CmdInstanceUpdate, state.InstanceUpdate{Tenant: "acme", Name: "a",
			Spec: func() protocol.Spec { s := testSpec("2"); s.Resources.MemoryMB = 600; return s }()}, "quotas.memory_mb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := h.fails(tc.typ, tc.body, protocol.CodeQuotaExceeded)
			if e.Field != tc.field {
				t.Fatalf("refused naming %q (%s), want %q", e.Field, e.Message, tc.field)
			}
		})
	}

	h.Must(state.CmdInstanceCreate, sized("acme", "b", 1, 500, 256))
	if e := h.fails(state.CmdInstanceCreate, sized("acme", "c", 0, 0, 0), protocol.CodeQuotaExceeded); e.Field != "quotas.instances" {
		t.Fatalf("third instance refused naming %q, want quotas.instances", e.Field)
	}

	// A stopped instance frees what it ran; starting it again must fit.
	h.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "b", Action: state.ActionStop})
	h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "a", Replicas: 3})
	if e := h.fails(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "b", Action: state.ActionStart}, protocol.CodeQuotaExceeded); e.Field != "quotas.cpu_millis" {
		t.Fatalf("start refused naming %q, want quotas.cpu_millis", e.Field)
	}

	// A lowered quota lets the tenant shrink, not grow.
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", Quotas: protocol.Quotas{Replicas: 1}}})
	h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "a", Replicas: 2})
	h.fails(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "a", Replicas: 3}, protocol.CodeQuotaExceeded)
	if u := state.Usage(h.Snapshot(), "acme"); u != (protocol.Quotas{Instances: 2, Replicas: 2, CPUMillis: 1000, MemoryMB: 512}) {
		t.Fatalf("usage %+v", u)
	}
}

// The audit log keeps at most the retention's count, and drops records
// older than its age as new ones arrive; a new retention applies at once.
func TestAuditRetentionByCountAndAge(t *testing.T) {
	h := newHarness(t)
	rec := func(i int) {
		h.t.Helper()
		h.Must(state.CmdAudit, state.AuditAppend{Records: []protocol.AuditRecord{{Action: fmt.Sprint("a", i), Result: "ok"}}})
	}
	for i := 0; i < 10; i++ {
		rec(i)
		h.SetNow(h.Now().Add(time.Minute))
	}
	h.Must(state.CmdAuditRetention, state.AuditRetention{MaxRecords: 5})
	got := h.Snapshot().Audit(state.AuditFilter{})
	if len(got) != 5 || got[0].Action != "a5" {
		t.Fatalf("after MaxRecords 5: %d records, first %s", len(got), got[0].Action)
	}
	rec(10)
	if got := h.Snapshot().Audit(state.AuditFilter{}); len(got) != 5 || got[0].Action != "a6" {
		t.Fatalf("after one more: %d records, first %s", len(got), got[0].Action)
	}

	// Records a6..a10 are 4..0 minutes old; keep two and a half minutes.
	h.Must(state.CmdAuditRetention, state.AuditRetention{MaxAge: 150 * time.Second})
	got = h.Snapshot().Audit(state.AuditFilter{})
	if len(got) != 3 || got[0].Action != "a8" {
		t.Fatalf("after MaxAge: %d records, first %s", len(got), got[0].Action)
	}
	if r := h.Snapshot().AuditRetention(); r.MaxRecords != state.MaxAuditRecords || r.MaxAge != 150*time.Second {
		t.Fatalf("retention %+v", r)
	}
}

// A tenant's tokens go with it, so that a tenant made later with the same
// name is not reachable with them.
func TestTenantDeleteRevokesItsTokens(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.tenant("other")
	h.Must(state.CmdTokenCreate, state.TokenCreate{Token: protocol.Token{ID: "t1", Role: protocol.RoleTenantAdmin, Tenant: "acme"}, SecretHash: "h1"})
	h.Must(state.CmdTokenCreate, state.TokenCreate{Token: protocol.Token{ID: "t2", Role: protocol.RoleTenantAdmin, Tenant: "other"}, SecretHash: "h2"})
	h.Must(state.CmdTenantDelete, state.NameBody{Name: "acme"})
	snap := h.Snapshot()
	if snap.Token("t1") != nil || snap.Credential("h1") != nil {
		t.Fatal("the deleted tenant's token survives")
	}
	if snap.Token("t2") == nil || snap.Credential("h2") == nil {
		t.Fatal("another tenant's token was deleted")
	}
}

// The instances of a suspended tenant show as stopped, and cannot start.
func TestSuspendedTenantInstancesAreStopped(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "web", 2)
	h.Must(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantSuspended}})
	snap := h.Snapshot()
	st := snap.InstanceStatus(snap.Instance("acme/web"))
	if st.State != protocol.InstanceStopped || st.Replicas.Desired != 0 {
		t.Fatalf("status of a suspended tenant's instance: %+v", st)
	}
	h.Must(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "web", Action: state.ActionStop})
	h.fails(state.CmdInstanceLifecycle, state.InstanceLifecycle{Tenant: "acme", Name: "web", Action: state.ActionStart}, protocol.CodeConflict)
	h.fails(state.CmdInstanceCreate, sized("acme", "new", 1, 0, 0), protocol.CodeConflict)
}

// A token created with its secret's hash is found by that hash; the state
// never holds the secrets answered once.
func TestTokenStateHoldsNoSecrets(t *testing.T) {
	h := newHarness(t)
	h.Must(state.CmdACLBootstrap, state.ACLBootstrap{SecretHash: "hash-b", JoinTokenHash: "hash-j",
		Token: protocol.Token{ID: "boot", Role: protocol.RoleManagement, Secret: "plain", AgentJoinToken: "drover-join.plain"}})
	snap := h.Snapshot()
	tok := snap.Token("boot")
	if tok == nil || tok.Secret != "" || tok.AgentJoinToken != "" {
		t.Fatalf("stored token %+v", tok)
	}
	if c := snap.Credential("hash-b"); c == nil || c.Owner != "boot" || c.Kind != state.CredentialToken {
		t.Fatalf("credential %+v", c)
	}
	if m := snap.Meta(state.MetaJoinTokenHash); m == nil || m.Value != "hash-j" {
		t.Fatalf("join token hash %+v", m)
	}
	h.fails(state.CmdACLBootstrap, state.ACLBootstrap{SecretHash: "hash-c", Token: protocol.Token{ID: "again", Role: protocol.RoleManagement}}, protocol.CodeConflict)
}
