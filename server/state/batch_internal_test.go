package state

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// A batch of entries applied in one transaction ends in the state applying
// them one by one reaches, whether its failing entries fail before they
// write (the common case) or after (the batch is redone without them).
func TestApplyBatchIsApplyingOneByOne(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tenant := func(name string) *Command {
		return logCommand(t, now, CmdTenantUpsert, TenantUpsert{Tenant: protocol.Tenant{Name: name, State: protocol.TenantActive}, Create: true},
			&protocol.AuditRecord{Action: "tenant.create", Target: name})
	}
	// Tenants named fail-after-* write a row and then fail; fail-before-*
	// fail at once; "b" again is a real conflict.
	var cmds []*Command
	for _, name := range []string{"a", "fail-before-1", "b", "fail-after-1", "c", "b", "fail-after-2", "d"} {
		cmds = append(cmds, tenant(name))
	}
	failing := func(s *Store) {
		s.dispatch = func(w *writer) error {
			c, err := decode[TenantUpsert](w)
			if err != nil {
				return err
			}
			switch name := c.Tenant.Name; {
			case len(name) > 11 && name[:11] == "fail-before":
				return protocol.Errorf(protocol.CodeConflict, "refused before writing")
			case len(name) > 10 && name[:10] == "fail-after":
				w.insert(tableTenants, &c.Tenant)
				w.eval("x/"+name, "test")
				return protocol.Errorf(protocol.CodeConflict, "refused after writing")
			}
			return w.dispatch()
		}
	}
	one, batch := NewStore(), NewStore()
	failing(one)
	failing(batch)
	var oneErrs []error
	for i, c := range cmds {
		oneErrs = append(oneErrs, one.apply(uint64(i+1), c))
	}
	var entries []Entry
	for i, c := range cmds {
		entries = append(entries, Entry{Index: uint64(i + 1), Cmd: c})
	}
	batchOut := batch.applyBatch(entries)
	for i := range cmds {
		if fmt.Sprint(oneErrs[i]) != fmt.Sprint(batchOut[i].Err) {
			t.Errorf("entry %d: one by one %v, in a batch %v", i+1, oneErrs[i], batchOut[i].Err)
		}
	}
	for i, want := range []bool{false, true, false, true, false, true, true, false} {
		if (oneErrs[i] != nil) != want {
			t.Fatalf("entry %d: error %v, want an error: %v (the scenario is not what it means to be)", i+1, oneErrs[i], want)
		}
	}
	a, b := one.Snapshot(), batch.Snapshot()
	for _, table := range Tables {
		ra, rb := dumpRows(t, a, table), dumpRows(t, b, table)
		if ra != rb {
			t.Errorf("table %s differs:\n one by one: %s\n in a batch: %s", table, ra, rb)
		}
	}
	if a.Tenant("fail-after-1") != nil || len(a.Evals()) != 0 {
		t.Errorf("a failed entry left writes behind")
	}
	if got := len(a.Tenants()); got != 4 {
		t.Errorf("%d tenants, want a, b, c and d", got)
	}
}

// dumpRows prints every row of a table, in id order, for comparison.
func dumpRows(t *testing.T, s *Snapshot, table string) string {
	t.Helper()
	it, err := s.txn.Get(table, "id")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for raw := it.Next(); raw != nil; raw = it.Next() {
		b, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	return out.String()
}

// The event stream is pruned, and the oldest audit and idempotency records
// read, once per batch (publish, pruneAudit, recordKey), not at each
// entry: a batch must still leave what applying its entries one at a time
// leaves, with the stream full, audit records dropped by count and by age,
// idempotency records by age and (before log version 5) replaced, command
// times going back and forth, whatever the batches.
func TestPruningInBatchesIsPruningOneByOne(t *testing.T) {
	for _, version := range []int{4, LogVersion} {
		t.Run(fmt.Sprintf("log version %d", version), func(t *testing.T) {
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			one := NewStore()
			index := uint64(0)
			entry := func(at time.Time, typ CommandType, body any, audit *protocol.AuditRecord) Entry {
				index++
				return Entry{Index: index, Cmd: logCommand(t, at, typ, body, audit)}
			}
			tenant := func(at time.Time, name string) Entry {
				return entry(at, CmdTenantUpsert, TenantUpsert{Tenant: protocol.Tenant{Name: name, State: protocol.TenantActive}, Create: true},
					&protocol.AuditRecord{Action: "tenant.create", Target: name})
			}
			var errs []string // of the last store applied to
			apply := func(s *Store, entries ...Entry) {
				for _, o := range s.applyBatch(entries) {
					errs = append(errs, fmt.Sprint(o.Err))
				}
			}
			apply(one, entry(now, CmdLogVersion, LogVersionSet{Version: version}, nil))
			for one.Snapshot().Meta(metaFeedDropped) == nil {
				var fill []Entry
				for range 64 {
					fill = append(fill, tenant(now, fmt.Sprintf("fill-%d", index)))
				}
				apply(one, fill...)
			}
			droppedBefore := one.Snapshot().Meta(metaFeedDropped).Value
			batched := &Store{dispatch: one.dispatch, nodes: map[string]chan struct{}{}}
			batched.cur.Store(&storeDB{db: one.current().db.Snapshot(), abandon: make(chan struct{})})

			rng := rand.New(rand.NewPCG(1, 2))
			var entries []Entry
			entries = append(entries, entry(now, CmdAuditRetention, AuditRetention{MaxRecords: 40, MaxAge: time.Hour}, nil))
			keyed := func(e Entry, key string) Entry {
				e.Cmd.Idempotency = key
				return e
			}
			for i := range 400 {
				at := now.Add(time.Duration(rng.IntN(240)-60) * time.Minute)
				later := now.Add(time.Duration(i) * 20 * time.Minute) // past the keys' retention
				switch {
				case i%5 == 1:
					entries = append(entries, keyed(tenant(later, fmt.Sprintf("k-%d", i)), fmt.Sprintf("key-%d", i)))
				case i%35 == 2:
					// A key used again by another kind of request: refused (and
					// before log version 5 its record replaced). The key is the
					// oldest kept (the
					// retention is 72 entries' time): its record is the one
					// the batch reads as the oldest.
					old := max(1, i-71)
					for old%5 != 1 {
						old++
					}
					entries = append(entries, keyed(entry(later, CmdAudit, AuditAppend{}, nil), fmt.Sprintf("key-%d", old)))
				case i == 200:
					entries = append(entries, entry(at, CmdAuditRetention, AuditRetention{MaxRecords: 15}, nil))
				case i%3 == 0:
					entries = append(entries, entry(at, CmdAudit, AuditAppend{Records: []protocol.AuditRecord{
						{Action: "login", Target: "x"}, {Action: "login", Target: "y", Time: at.Add(-2 * time.Hour)}}}, nil))
				default:
					entries = append(entries, tenant(at, fmt.Sprintf("t-%d", i)))
				}
			}
			errs = nil
			for _, e := range entries {
				apply(one, e)
			}
			oneErrs := errs
			errs = nil
			for rest := entries; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(70))
				apply(batched, rest[:n]...)
				rest = rest[n:]
			}
			if !slices.Equal(oneErrs, errs) {
				t.Errorf("the entries' outcomes differ:\n one by one: %v\n in batches: %v", oneErrs, errs)
			}
			if refused := strings.Count(strings.Join(oneErrs, "\n"), "Idempotency-Key was used"); refused == 0 {
				t.Fatal("no key was used again: the scenario is not what it means to be")
			}
			a, b := one.Snapshot(), batched.Snapshot()
			if a.Meta(metaFeedDropped).Value == droppedBefore || len(a.Audit(AuditFilter{})) > 15 ||
				a.Meta(metaIdempotencyCount).N >= 80 {
				t.Fatal("the stream or the audit records were not pruned: the scenario is not what it means to be")
			}
			for _, table := range Tables {
				if ra, rb := dumpRows(t, a, table), dumpRows(t, b, table); ra != rb {
					t.Errorf("table %s differs:\n one by one: %.2000s\n in batches: %.2000s", table, ra, rb)
				}
			}
		})
	}
}

// An entry whose audit or idempotency record cannot be written (a bug:
// here the batch's cached oldest idempotency record names a row that is
// not there, so the pruning's delete fails) changes nothing, not even
// those records, and moves the index; every server applies it so, alone
// or in a batch, rather than stop (writer.finish once ran outside
// writer.safely: the panic left the FSM).
func TestAnEntryWhoseRecordsFailKeepsNothing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []Entry{{Index: 1, Cmd: logCommand(t, now, CmdLogVersion, LogVersionSet{Version: LogVersion}, nil)}}
	for i, name := range []string{"a", "broken-records", "b", "c"} {
		raw, err := EncodeKeyed(CmdTenantUpsert, now, TenantUpsert{Tenant: protocol.Tenant{Name: name, State: protocol.TenantActive}, Create: true},
			&protocol.AuditRecord{Action: "tenant.create", Target: name}, "key-"+name)
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := DecodeCommand(raw)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, Entry{Index: uint64(i + 2), Cmd: cmd})
	}
	breaking := func() *Store {
		s := NewStore()
		s.dispatch = func(w *writer) error {
			if c, err := decode[TenantUpsert](w); err == nil && c.Tenant.Name == "broken-records" {
				w.batch.oldestKey = oldest[IdempotencyRecord]{row: &IdempotencyRecord{Key: "not-there"}, read: true}
			}
			return w.dispatch()
		}
		return s
	}
	one, batched := breaking(), breaking()
	for _, e := range entries {
		one.applyBatch([]Entry{e})
	}
	out := batched.applyBatch(entries)
	if err := out[2].Err; err == nil || protocol.AsError(err).Code != protocol.CodeInternal {
		t.Fatalf("the broken entry answered %v, want an internal error", err)
	}
	for i, o := range out {
		if i != 2 && o.Err != nil {
			t.Errorf("entry %d: %v", entries[i].Index, o.Err)
		}
	}
	for name, s := range map[string]*Store{"one by one": one, "in a batch": batched} {
		snap := s.Snapshot()
		var tenants []string
		for _, tn := range snap.Tenants() {
			tenants = append(tenants, tn.Name)
		}
		if got := strings.Join(tenants, ","); got != "a,b,c" {
			t.Errorf("%s: tenants %s, want a,b,c", name, got)
		}
		for _, r := range snap.Audit(AuditFilter{}) {
			if r.Target == "broken-records" {
				t.Errorf("%s: the broken entry left an audit record", name)
			}
		}
		if broken, a := snap.first(tableIdempotency, "id", "key-broken-records"), snap.first(tableIdempotency, "id", "key-a"); broken != nil || a == nil {
			t.Errorf("%s: idempotency records: broken %v, a %v", name, broken, a)
		}
		if got := snap.Index(); got != 5 {
			t.Errorf("%s: index %d, want 5", name, got)
		}
	}
	for _, table := range Tables {
		if a, b := dumpRows(t, one.Snapshot(), table), dumpRows(t, batched.Snapshot(), table); a != b {
			t.Errorf("table %s differs:\n one by one: %s\n in a batch: %s", table, a, b)
		}
	}
}
