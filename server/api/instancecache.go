package api

import (
	"sync"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// instanceCache keeps the JSON of each instance as answered, but its
// status, so that a list encodes again only the instances that changed and
// the statuses (made from the replicas at each request). An entry belongs
// to one row of the state: rows are never changed in place (a change
// writes a new row), so an entry is good while the state holds the row it
// was made from, on any server and across a restore alike.
//
// At 10,000 instances it holds about 6 MB; a list of them costs a third of
// the CPU it did (BenchmarkListInstances).
type instanceCache struct {
	mu      sync.Mutex
	entries map[string]instanceJSON // by instance id
	// sweepAt is the size at which entries of rows the state no longer
	// holds are dropped; it doubles with what is left, so that sweeping
	// costs a constant amount per entry added.
	sweepAt int
}

// instanceJSON is an instance's JSON around its status: head is the
// object up to the status, tail what follows it (AppendInstanceHead,
// AppendInstanceTail).
type instanceJSON struct {
	row        *protocol.Instance
	head, tail []byte
}

// minSweep is the smallest size at which the cache is swept.
const minSweep = 1024

func newInstanceCache() *instanceCache {
	return &instanceCache{entries: map[string]instanceJSON{}, sweepAt: minSweep}
}

// appendInstance appends the JSON of in, a row of snap, with status st:
// what protocol.AppendInstanceJSON appends for view(in, st).
func (a *API) appendInstance(b []byte, snap *state.Snapshot, in *protocol.Instance, st *protocol.InstanceStatus) ([]byte, error) {
	c := a.instances
	c.mu.Lock()
	e, ok := c.entries[in.ID]
	c.mu.Unlock()
	if !ok || e.row != in {
		v := a.view(in, nil)
		head, err := protocol.AppendInstanceHead(nil, &v)
		if err != nil {
			return b, err
		}
		tail, err := protocol.AppendInstanceTail(nil, &v)
		if err != nil {
			return b, err
		}
		e = instanceJSON{row: in, head: head, tail: tail}
		c.put(snap, e)
	}
	b = append(b, e.head...)
	b, err := protocol.AppendInstanceStatus(b, st)
	if err != nil {
		return b, err
	}
	return append(b, e.tail...), nil
}

// put adds e, first dropping the entries of rows snap does not hold once
// the cache has reached sweepAt.
func (c *instanceCache) put(snap *state.Snapshot, e instanceJSON) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.sweepAt {
		for id, old := range c.entries {
			if snap.Instance(id) != old.row {
				delete(c.entries, id)
			}
		}
		c.sweepAt = max(2*len(c.entries), minSweep)
	}
	c.entries[e.row.ID] = e
}
