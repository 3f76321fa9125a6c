package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// BenchmarkApply measures applying instance creates (the FSM's share of a
// write: decoding, the instance, its version, event, evaluation and audit
// record, and the event stream's copies of the last two) one entry per
// transaction, and 64 per transaction as Raft hands committed entries over
// in batches. The state is as the servers run it: at the current log
// version, its event stream full (each new stream entry drops the oldest).
//
//	go test ./server/state -run '^$' -bench Apply -benchtime 5000x
func BenchmarkApply(b *testing.B) {
	unverified(b)
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) {
			s := NewStore()
			now := time.Now()
			cmd := func(typ CommandType, body any) *Command { return benchCommand(b, now, typ, body) }
			index := uint64(0)
			create := func(name string) Entry {
				index++
				return Entry{Index: index, Cmd: cmd(CmdInstanceCreate, InstanceCreate{Instance: protocol.Instance{
					Tenant: "t", Name: name, Spec: protocol.Spec{Command: []string{"/bin/true"}}.WithDefaults()}})}
			}
			apply := func(entries []Entry) {
				for _, o := range s.applyBatch(entries) {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
			index += 2
			apply([]Entry{{Index: 1, Cmd: cmd(CmdLogVersion, LogVersionSet{Version: LogVersion})},
				{Index: 2, Cmd: cmd(CmdTenantUpsert, TenantUpsert{Tenant: protocol.Tenant{Name: "t", State: protocol.TenantActive}, Create: true})}})
			for s.Snapshot().Meta(metaFeedDropped) == nil {
				var fill []Entry
				for range 64 {
					fill = append(fill, create(fmt.Sprintf("fill%d", index)))
				}
				apply(fill)
			}
			entries := make([]Entry, b.N)
			for i := range entries {
				entries[i] = create(fmt.Sprintf("i%d", i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(entries); i += batch {
				apply(entries[i:min(i+batch, len(entries))])
			}
		})
	}
}

// BenchmarkNodeDownUp measures a node marked down and up again in a state
// of 10,000 replicas on 1,000 nodes: the entries a fleet that redials after
// a leader change, or a flapping host, makes. Up asks the scheduler to look
// at the instances with replicas waiting for a node (evalWaiting), which
// the waiting index finds without reading every replica.
//
//	go test ./server/state -run '^$' -bench NodeDownUp -benchtime 2000x
func BenchmarkNodeDownUp(b *testing.B) {
	unverified(b)
	const nodes, instances, replicas = 1000, 1000, 10
	s := NewStore()
	now := time.Now()
	index := uint64(0)
	apply := func(typ CommandType, body any) {
		index++
		if err := s.apply(index, benchCommand(b, now, typ, body)); err != nil {
			b.Fatal(err)
		}
	}
	apply(CmdTenantUpsert, TenantUpsert{Tenant: protocol.Tenant{Name: "t", State: protocol.TenantActive}, Create: true})
	for n := range nodes {
		apply(CmdNodeRegister, NodeRegister{Node: protocol.Node{ID: fmt.Sprintf("n%d", n), Name: fmt.Sprintf("n%d", n),
			Resources: protocol.NodeResources{CPUMillis: 64000, MemoryMB: 65536}}, SecretHash: fmt.Sprintf("hash-%d", n)})
	}
	for i := range instances {
		name := fmt.Sprintf("i%d", i)
		apply(CmdInstanceCreate, InstanceCreate{Instance: protocol.Instance{
			Tenant: "t", Name: name, Replicas: replicas, Spec: protocol.Spec{Command: []string{"/bin/true"}}.WithDefaults()}})
		var place []*protocol.Replica
		for r := range replicas {
			place = append(place, &protocol.Replica{ID: fmt.Sprintf("%s-%d", name, r), Tenant: "t", Instance: name,
				Node: fmt.Sprintf("n%d", (i*replicas+r)%nodes), Version: 1})
		}
		apply(CmdPlanApply, Plan{Instance: "t/" + name, EvalIndex: index, Place: place})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("n%d", i%nodes)
		apply(CmdNodeStatus, NodeStatusUpdate{Nodes: []NodeStatus{{ID: id, Up: false}}})
		apply(CmdNodeStatus, NodeStatusUpdate{Nodes: []NodeStatus{{ID: id, Up: true}}})
	}
}

// unverified turns off the tests' check of each row read (rowMismatch)
// for a benchmark, which measures the reads as the servers make them.
func unverified(b *testing.B) {
	check := rowMismatch
	rowMismatch = nil
	b.Cleanup(func() { rowMismatch = check })
}

// logCommand is a command as the FSM gets it from the log: encoded with
// its audit record, and decoded.
func logCommand(tb testing.TB, now time.Time, typ CommandType, body any, audit *protocol.AuditRecord) *Command {
	tb.Helper()
	raw, err := Encode(typ, now, body, audit)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := DecodeCommand(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// benchCommand is logCommand with the benchmarks' audit record.
func benchCommand(b *testing.B, now time.Time, typ CommandType, body any) *Command {
	return logCommand(b, now, typ, body, &protocol.AuditRecord{Action: string(typ), Target: "t"})
}
