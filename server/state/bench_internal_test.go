package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// BenchmarkApply measures applying instance creates (the FSM's share of a
// write: decoding, the instance, its version, event, evaluation and audit
// record) one entry per transaction, and 64 per transaction as Raft hands
// committed entries over in batches.
//
//	go test ./server/state -run '^$' -bench Apply -benchtime 5000x
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) {
			s := NewStore()
			now := time.Now()
			cmd := func(typ CommandType, body any) *Command {
				raw, err := Encode(typ, now, body, &protocol.AuditRecord{Action: string(typ), Target: "t"})
				if err != nil {
					b.Fatal(err)
				}
				c, err := DecodeCommand(raw)
				if err != nil {
					b.Fatal(err)
				}
				return c
			}
			if err := s.apply(1, cmd(CmdTenantUpsert, TenantUpsert{Tenant: protocol.Tenant{Name: "t", State: protocol.TenantActive}, Create: true})); err != nil {
				b.Fatal(err)
			}
			entries := make([]Entry, b.N)
			for i := range entries {
				entries[i] = Entry{Index: uint64(i + 2), Cmd: cmd(CmdInstanceCreate, InstanceCreate{Instance: protocol.Instance{
					Tenant: "t", Name: fmt.Sprintf("i%d", i), Spec: protocol.Spec{Command: []string{"/bin/true"}}.WithDefaults()}})}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(entries); i += batch {
				for _, o := range s.applyBatch(entries[i:min(i+batch, len(entries))]) {
					err := o.Err
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
