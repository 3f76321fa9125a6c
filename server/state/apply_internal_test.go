package state

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// A write the store refuses stops the command there and drops the whole
// entry: what it wrote before is not visible, and the answer is an
// internal error naming the write, not a panic. Commands cannot make
// memdb refuse a write, so the test runs its own change through the path
// apply does (safely).
func TestRefusedWriteStopsTheCommand(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		fail       func(w *writer)
	}{
		{"insert", "insert into tenants", func(w *writer) { w.insert(tableTenants, &protocol.Tenant{}) }},
		{"delete", "delete from tenants", func(w *writer) { w.delete(tableTenants, &protocol.Tenant{Name: "nobody"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore()
			w := s.begin(s.current().db, false).writer(Entry{Index: 7,
				Cmd: &Command{Type: "test", Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}})
			wentOn := false
			err := w.safely(func() error {
				w.insert(tableTenants, &protocol.Tenant{Name: "acme"})
				w.eval("acme/app", "test")
				tc.fail(w)
				wentOn = true
				return nil
			})
			w.txn.Abort() // what apply does with an error
			if e := protocol.AsError(err); err == nil || e.Code != protocol.CodeInternal ||
				!strings.Contains(e.Message, tc.want) || strings.Contains(e.Message, "panic") {
				t.Fatalf("answered %v, want an internal error about %q", err, tc.want)
			}
			if wentOn {
				t.Fatal("the command went on after its write was refused")
			}
			snap := s.Snapshot()
			if snap.Tenant("acme") != nil || len(snap.Evals()) != 0 {
				t.Fatalf("a refused entry left its writes: tenant %+v, evals %v", snap.Tenant("acme"), snap.Evals())
			}
		})
	}
}
