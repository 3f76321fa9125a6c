package scheduler

import (
	"time"

	"github.com/drover-dev/drover/server/state"
)

// ScheduleBatch schedules evals one after the other against one table of
// the snapshot's nodes, as a batch of the worker does (without playing
// the plans between them).
func ScheduleBatch(snap *state.Snapshot, evals []*state.Eval, now time.Time, ids func() string) {
	t := newNodeTable(snap)
	for _, e := range evals {
		schedule(snap, e, now, ids, t)
	}
}
