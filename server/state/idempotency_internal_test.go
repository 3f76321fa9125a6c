package state

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// A key's record is its first entry's: an entry with the key again, refused
// (the first one's error replayed, or another request's key), neither
// replaces it nor counts one more record. Before log version 5 it did
// both, so the count outgrew the rows (and the newest records were
// dropped early); raising the version to 5 counts the rows again.
func TestAKeysRecordIsItsFirstEntrys(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := func(version int) *Store {
		s := NewStore()
		index := uint64(0)
		apply := func(typ CommandType, body any, key string) Outcome {
			index++
			cmd := logCommand(t, now, typ, body, nil)
			cmd.Idempotency = key
			return s.applyBatch([]Entry{{Index: index, Cmd: cmd}})[0]
		}
		tenant := TenantUpsert{Tenant: protocol.Tenant{Name: "a", State: protocol.TenantActive}, Create: true}
		apply(CmdLogVersion, LogVersionSet{Version: version}, "")
		if o := apply(CmdTenantUpsert, tenant, "first"); o.Err != nil {
			t.Fatal(o.Err)
		}
		// Another create of a, refused as a conflict, and sent again with
		// its key three times: the conflict each time.
		for range 4 {
			if o := apply(CmdTenantUpsert, tenant, "second"); protocol.AsError(o.Err).Code != protocol.CodeConflict {
				t.Fatalf("log version %d: the second create answered %v, want a conflict", version, o.Err)
			}
		}
		// The first key used for another request: refused.
		if o := apply(CmdAudit, AuditAppend{}, "first"); o.Err == nil {
			t.Fatalf("log version %d: a key used for another request was accepted", version)
		}
		o := apply(CmdTenantUpsert, tenant, "first")
		if version >= 5 {
			if r, ok := o.Value.(Replayed); o.Err != nil || !ok || r.Index != 2 {
				t.Errorf("log version %d: the first request sent again answered %v, %#v; want its outcome at index 2", version, o.Err, o.Value)
			}
		} else if o.Err == nil {
			t.Errorf("log version %d: the first request sent again was replayed; before version 5 its record was replaced", version)
		}
		return s
	}
	count := func(s *Store) uint64 { return s.Snapshot().Meta(metaIdempotencyCount).N }

	if got := count(run(LogVersion)); got != 2 {
		t.Errorf("log version %d: %d idempotency records counted, want the 2 there are", LogVersion, got)
	}
	old := run(4)
	if got := count(old); got <= 2 {
		t.Fatalf("log version 4: %d records counted; the count did not outgrow the rows (the scenario is not what it means to be)", got)
	}
	next := old.Snapshot().Index() + 1
	if err := old.apply(next, logCommand(t, now, CmdLogVersion, LogVersionSet{Version: 5}, nil)); err != nil {
		t.Fatal(err)
	}
	if got := count(old); got != 2 {
		t.Errorf("after raising the log version to 5: %d records counted, want the 2 there are", got)
	}
}

// A refused keyed entry keeps its key's first record also when its batch
// is started over: here a plan in the same batch fails after writing (an
// event for an instance whose tenant is gone), so the entries before it
// are finished again in a new transaction (transaction.redo), and the
// refused one must again leave the record and the count alone.
func TestAKeysRecordSurvivesARedoneBatch(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	keyed := func(c *Command, key string) *Command { c.Idempotency = key; return c }
	tenant := TenantUpsert{Tenant: protocol.Tenant{Name: "acme", State: protocol.TenantActive}, Create: true}
	spec := protocol.Spec{Version: "1", Command: []string{"/bin/app"}}.WithDefaults()
	setup := []Entry{
		{1, logCommand(t, now, CmdLogVersion, LogVersionSet{Version: LogVersion}, nil)},
		{2, logCommand(t, now, CmdTenantUpsert, tenant, nil)},
		{3, logCommand(t, now, CmdInstanceCreate, InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm", Environment: "default", Spec: spec}}, nil)},
		// A second create of acme, refused: its record keeps the conflict.
		{4, keyed(logCommand(t, now, CmdTenantUpsert, tenant, nil), "K")},
	}
	batch := []Entry{
		// Sent again with its key: the conflict replayed, nothing written.
		{5, keyed(logCommand(t, now.Add(time.Minute), CmdTenantUpsert, tenant, nil), "K")},
		// Fails after writing: the batch is redone.
		{6, logCommand(t, now, CmdPlanApply, Plan{Instance: "acme/crm",
			Place:  []*protocol.Replica{{ID: "r1", Tenant: "acme", Instance: "crm", Version: 1}},
			Events: []protocol.Event{{Message: "no tenant"}}}, nil)},
	}
	one, batched := NewStore(), NewStore()
	for _, e := range append(append([]Entry{}, setup...), batch...) {
		one.applyBatch([]Entry{e})
	}
	batched.applyBatch(setup)
	if out := batched.applyBatch(batch); out[1].Err == nil {
		t.Fatal("the plan was accepted; the batch is not redone and the test shows nothing")
	}
	for _, table := range []string{tableIdempotency, tableMeta} {
		if a, b := dumpRows(t, one.Snapshot(), table), dumpRows(t, batched.Snapshot(), table); a != b {
			t.Errorf("table %s differs:\n one by one: %s\n in a batch: %s", table, a, b)
		}
	}
}
