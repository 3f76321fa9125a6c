package state

// Idempotency keys: a client that sends a change again with the same
// Idempotency-Key, because it never learnt whether the first attempt was
// applied, gets the first attempt's outcome instead of a second change.
// The key travels in the command (Command.Idempotency, scoped to the
// caller's token by the API); the FSM records each keyed entry's outcome
// and answers a repeated key with it, writing nothing else.

import (
	"encoding/json"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// Limits of the records of idempotency keys: the newest
// MaxIdempotencyRecords, none older than IdempotencyRetention (measured
// from each command's time, so that every server drops the same ones).
const (
	MaxIdempotencyRecords = 10000
	IdempotencyRetention  = 24 * time.Hour
	// maxIdempotencyAnswer bounds the answer kept for a key; a larger one
	// is replayed as a conflict naming the index it was applied at.
	maxIdempotencyAnswer = 256 << 10
)

const metaIdempotencyCount = "idempotency_count"

// IdempotencyRecord is the outcome of the first entry with a key.
type IdempotencyRecord struct {
	Key   string
	Index uint64
	Time  time.Time
	Type  CommandType
	// Err is the error the entry failed with; nil when it was applied.
	Err *protocol.Error `json:",omitempty"`
	// Table and Answer are the object the entry wrote (Applied), when it
	// wrote one of answerTables.
	Table  string          `json:",omitempty"`
	Answer json.RawMessage `json:",omitempty"`
}

// Replayed is the FSM's answer to an entry whose idempotency key an
// earlier entry had: that entry's index, and in Value the object it
// wrote (Applied's).
type Replayed struct {
	Index uint64
	Value any
}

// idempotent returns the record of the entry's key, when an earlier entry
// had it.
func (w *writer) idempotent() *IdempotencyRecord {
	if w.cmd.Idempotency == "" || !w.since(2) {
		return nil
	}
	if raw := w.first(tableIdempotency, w.cmd.Idempotency); raw != nil {
		return raw.(*IdempotencyRecord)
	}
	return nil
}

// replay answers an entry with the outcome of the earlier one of its key.
func (w *writer) replay(rec *IdempotencyRecord) error {
	if rec.Type != w.cmd.Type {
		return protocol.Errorf(protocol.CodeConflict, "Idempotency-Key was used for another request (%s at index %d)", rec.Type, rec.Index)
	}
	if rec.Err != nil {
		return rec.Err
	}
	out := Replayed{Index: rec.Index}
	if rec.Table != "" {
		if rec.Answer == nil {
			return protocol.Errorf(protocol.CodeConflict, "this change was applied at index %d; its answer was too large to keep: read the object", rec.Index)
		}
		v, err := newRow(rec.Table)
		if err != nil || json.Unmarshal(rec.Answer, v) != nil {
			abort("idempotency record %s: bad answer", rec.Key)
		}
		out.Value = v
	}
	w.replayed = &out
	return nil
}

// recordKey records the outcome of a keyed entry, dropping the oldest
// records past the limits.
func (w *writer) recordKey(err error) {
	if w.cmd.Idempotency == "" || w.replayed != nil || !w.since(2) {
		return
	}
	if w.earlier != nil && w.since(5) {
		// The key's first entry keeps its record. Before log version 5 an
		// entry refused by the record (another request's key, or the
		// first one's error again) replaced it, and counted one more
		// record where there was none more (recountKeys).
		return
	}
	rec := &IdempotencyRecord{Key: w.cmd.Idempotency, Index: w.index, Time: w.cmd.Time, Type: w.cmd.Type}
	if err != nil {
		rec.Err = protocol.AsError(err)
	} else if w.result != nil {
		rec.Table = w.resultTable
		if b, err := json.Marshal(w.result); err == nil && len(b) <= maxIdempotencyAnswer {
			rec.Answer = b
		}
	}
	w.insert(tableIdempotency, rec)
	if o := w.batch.oldestKey.row; o != nil && o.Key == rec.Key {
		w.batch.oldestKey.dropped() // replaced: the first by index is another
	} else {
		w.batch.oldestKey.added(rec, func(a, b *IdempotencyRecord) bool { return a.Index < b.Index })
	}
	count := w.next(metaIdempotencyCount)
	cutoff := w.cmd.Time.Add(-IdempotencyRetention)
	for count > 0 {
		old := w.batch.oldestKey.get(w.txn, tableIdempotency, "index")
		if old == nil {
			break
		}
		if count <= MaxIdempotencyRecords && !old.Time.Before(cutoff) {
			break
		}
		w.delete(tableIdempotency, old)
		w.batch.oldestKey.dropped()
		count--
	}
	w.setMeta(&Meta{Key: metaIdempotencyCount, N: count})
}

// recountKeys sets the count of idempotency records to the rows there
// are: before log version 5 a key's record replaced by a later entry was
// counted again, and the count grew past the rows, which made the newest
// records be dropped early.
func (w *writer) recountKeys() {
	it, err := w.txn.Get(tableIdempotency, "id")
	if err != nil {
		abort("read %s: %v", tableIdempotency, err)
	}
	n := uint64(0)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	w.touch(tableMeta)
	w.setMeta(&Meta{Key: metaIdempotencyCount, N: n})
}
