// Package statetest drives a real FSM the way Raft does, for the tests of
// the state, the scheduler and their benchmarks: one log entry at a time,
// growing indexes, a clock the test moves, every entry kept for replays.
// Only tests import it.
package statetest

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// TB is what the harness needs of *testing.T, *testing.B and *rapid.T.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Epoch is the harness clock's start.
var Epoch = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// Harness is a real FSM over a real Store. Entries are applied one at a
// time whichever goroutine proposes them, as Raft applies them.
type Harness struct {
	Store *state.Store
	FSM   *state.FSM

	t       TB
	mu      sync.Mutex
	index   uint64
	now     time.Time
	clock   func() time.Time
	entries [][]byte
}

// New returns a harness over an empty state at this build's log version
// (its first entry, as a new cluster's leader proposes it), its clock at
// Epoch.
func New(t TB) *Harness {
	h := Over(t, state.NewStore())
	h.Must(state.CmdLogVersion, state.LogVersionSet{Version: state.LogVersion})
	return h
}

// Over returns a harness over st (a Fork of a prepared state, say).
func Over(t TB, st *state.Store) *Harness {
	return &Harness{t: t, Store: st, FSM: state.NewFSM(st, nil), now: Epoch}
}

// WithClock stamps commands with clock instead of the harness's own time.
func (h *Harness) WithClock(clock func() time.Time) *Harness {
	h.clock = clock
	return h
}

// Now is the time the next command is stamped with.
func (h *Harness) Now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clock != nil {
		return h.clock()
	}
	return h.now
}

// Advance moves the harness's clock.
func (h *Harness) Advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// SetNow sets the harness's clock.
func (h *Harness) SetNow(t time.Time) {
	h.mu.Lock()
	h.now = t
	h.mu.Unlock()
}

// SetIndex makes the next entry's index i+1, as when Raft's log has a gap
// (a snapshot restored) or a test starts from a saved state.
func (h *Harness) SetIndex(i uint64) {
	h.mu.Lock()
	h.index = i
	h.mu.Unlock()
}

// Index is the index of the last entry applied.
func (h *Harness) Index() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.index
}

// Entries returns every command entry applied, in order.
func (h *Harness) Entries() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.entries...)
}

// Entry applies a log entry of any type at the next index and returns the
// FSM's answer.
func (h *Harness) Entry(l *raft.Log) any {
	_, resp := h.entry(l)
	return resp
}

func (h *Harness) entry(l *raft.Log) (uint64, any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.index++
	l.Index = h.index
	if l.Term == 0 {
		l.Term = 1
	}
	if l.Type == raft.LogCommand {
		h.entries = append(h.entries, l.Data)
	}
	return h.index, h.FSM.Apply(l)
}

// Commit applies a command as Raft commits a proposal, from any
// goroutine, and returns its index and the FSM's answer.
func (h *Harness) Commit(typ state.CommandType, body any) (uint64, error) {
	b, err := state.Encode(typ, h.Now(), body, nil)
	if err != nil {
		return 0, err
	}
	idx, resp := h.entry(&raft.Log{Type: raft.LogCommand, Data: b})
	if err, ok := resp.(error); ok {
		return idx, err
	}
	return idx, nil
}

// Raw applies the bytes of one command entry and returns the FSM's answer.
func (h *Harness) Raw(b []byte) error {
	switch resp := h.Entry(&raft.Log{Type: raft.LogCommand, Data: b}).(type) {
	case nil, state.Applied, state.Replayed:
		return nil
	case error:
		return resp
	default:
		h.t.Fatalf("Apply answered %T %v, want nil, an error or state.Applied", resp, resp)
		return nil
	}
}

// ApplyAudited applies a command carrying an audit record.
func (h *Harness) ApplyAudited(typ state.CommandType, body any, audit *protocol.AuditRecord) error {
	h.t.Helper()
	b, err := state.Encode(typ, h.Now(), body, audit)
	if err != nil {
		h.t.Fatalf("encode %s: %v", typ, err)
	}
	return h.Raw(b)
}

// Apply applies a command and returns the FSM's answer.
func (h *Harness) Apply(typ state.CommandType, body any) error {
	h.t.Helper()
	return h.ApplyAudited(typ, body, nil)
}

// Must applies a command that must succeed and returns its index.
func (h *Harness) Must(typ state.CommandType, body any) uint64 {
	h.t.Helper()
	if err := h.Apply(typ, body); err != nil {
		h.t.Fatalf("%s: %v", typ, err)
	}
	return h.Index()
}

// Snapshot returns the current state to read.
func (h *Harness) Snapshot() *state.Snapshot { return h.Store.Snapshot() }

// Bytes returns the whole state as snapshot bytes.
func (h *Harness) Bytes() []byte {
	var b bytes.Buffer
	if err := state.WriteSnapshot(&b, h.FSM.StoreDB()); err != nil {
		h.t.Fatalf("snapshot: %v", err)
	}
	return b.Bytes()
}

// Diff compares two states as snapshot bytes, leaving out what every
// entry may change even when its command is refused: the table indexes,
// the audit trail (also as events of the stream), the outcomes of
// idempotency keys and their counters. It
// returns "" when they hold the same state, else the first row that
// differs.
func Diff(a, b []byte) string {
	return FirstDiff(keptRows(a), keptRows(b))
}

// FirstDiff returns the first line where a and b differ, or "".
func FirstDiff(a, b []string) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
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
				Key   string
				Topic string `json:"topic"`
			} `json:"v"`
		}
		_ = json.Unmarshal(line, &row)
		switch {
		case row.T == "index", row.T == "audit", row.T == "idempotency": // kept for refused entries too
			continue
		case row.T == "feed" && row.V.Topic == "audit": // the audit record, streamed
			continue
		case row.T == "meta" && (row.V.Key == "audit_count" || row.V.Key == "feed_count" || row.V.Key == "feed_dropped" || row.V.Key == "idempotency_count"):
			continue
		}
		out = append(out, string(line))
	}
	return out
}
