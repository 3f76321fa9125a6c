package state

import (
	"encoding/json"
	"fmt"
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
		ra, rb := rows(t, a, table), rows(t, b, table)
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

// rows prints every row of a table, in id order, for comparison.
func rows(t *testing.T, s *Snapshot, table string) string {
	t.Helper()
	it, err := s.txn.Get(table, "id")
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for raw := it.Next(); raw != nil; raw = it.Next() {
		b, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		out += string(b) + "\n"
	}
	return out
}
