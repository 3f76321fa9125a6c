package state

// The event stream (GET /v1/events): every event the state machine makes,
// in one table ordered by Raft index, the same on every server.

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/drover-dev/drover/protocol"
)

// MaxFeedEvents is how many events of the stream every server keeps; a
// reader that falls further behind is told it lost events.
const MaxFeedEvents = 20000

// Meta keys of the stream.
const (
	metaFeedCount   = "feed_count"
	metaFeedDropped = "feed_dropped" // Value: the id of the newest event dropped
)

// publish adds an event to the stream at the entry's index, dropping the
// oldest past MaxFeedEvents. The drops are made when the batch ends
// (batch.flush): the rows they remove and the counters they leave are
// those of dropping one at each event, and reading the oldest row after
// each insert made memdb copy the table's tree nodes again at each (a read
// of a table a transaction changed forgets which nodes it already copied).
func (w *writer) publish(e protocol.StreamEvent) {
	if !w.since(2) || w.batch.quiet {
		return // the stream came with log version 2; a fork has none
	}
	e.Index, e.Seq = w.index, w.published
	w.published++
	if e.Time.IsZero() {
		e.Time = w.cmd.Time
	}
	w.insert(tableFeed, &e)
	if w.next(metaFeedCount) <= MaxFeedEvents {
		return
	}
	count := w.meta(metaFeedCount)
	count.N--
	w.setMeta(count)
	w.batch.feedDrops++
}

// dropFeed removes the n oldest events of the stream and records the
// newest of them as dropped.
func dropFeed(txn *memdb.Txn, b *batch, n int) {
	it, err := txn.Get(tableFeed, "id")
	if err != nil {
		panic(err) // the schema is a constant
	}
	var drop []*protocol.StreamEvent
	for raw := it.Next(); raw != nil && len(drop) < n; raw = it.Next() {
		drop = append(drop, raw.(*protocol.StreamEvent))
	}
	if len(drop) < n {
		panic(fmt.Sprintf("state: %d stream events to drop, %d held", n, len(drop)))
	}
	for _, e := range drop {
		if err := txn.Delete(tableFeed, e); err != nil {
			panic(err)
		}
	}
	b.meta[metaFeedDropped] = &Meta{Key: metaFeedDropped, Value: drop[n-1].ID().String()}
}

// publishNode adds a node's event to the stream.
func (w *writer) publishNode(n *protocol.Node, typ, format string, args ...any) {
	w.publish(protocol.StreamEvent{Topic: protocol.TopicNode, Type: typ, Node: n.ID,
		Message: fmt.Sprintf("node %s: ", n.Name) + fmt.Sprintf(format, args...)})
}

// publishRollout adds a rollout's change of state to the stream (the
// changes of its instances are events of each instance).
func (w *writer) publishRollout(old, r *protocol.Rollout) {
	if old != nil && old.State == r.State {
		return
	}
	msg := fmt.Sprintf("rollout %s of %s %s: %s", r.ID, r.Product, r.Release, r.State)
	if r.Message != "" {
		msg += " (" + r.Message + ")"
	}
	w.publish(protocol.StreamEvent{Topic: protocol.TopicRollout, Type: "rollout-" + r.State, Rollout: r.ID, Message: msg})
}

// FeedAfter returns up to limit events of the stream that come after id,
// oldest first.
func (s *Snapshot) FeedAfter(id protocol.EventID, limit int) []*protocol.StreamEvent {
	it, err := s.txn.LowerBound(tableFeed, "id", id.Index, id.Seq+1)
	if err != nil {
		panic(fmt.Sprintf("state: read %s: %v", tableFeed, err)) // the schema is a constant
	}
	var out []*protocol.StreamEvent
	for raw := it.Next(); raw != nil && len(out) < limit; raw = it.Next() {
		out = append(out, raw.(*protocol.StreamEvent))
	}
	return out
}

// FeedDropped returns the id of the newest event the stream dropped (zero
// while it dropped none): a reader whose last event comes before it lost
// events.
func (s *Snapshot) FeedDropped() protocol.EventID {
	m := s.Meta(metaFeedDropped)
	if m == nil {
		return protocol.EventID{}
	}
	id, err := protocol.ParseEventID(m.Value)
	if err != nil {
		panic(fmt.Sprintf("state: %s holds %q: %v", metaFeedDropped, m.Value, err))
	}
	return id
}
