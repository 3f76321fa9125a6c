package scheduler

import (
	"context"
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

// EvaluateBatch runs one batch of the worker over the store's evals: each
// scheduled on a fork where the plans before it are played, as the worker
// does, with plans "committed" without Raft (the store is not changed).
func EvaluateBatch(store *state.Store, evals []*state.Eval, now time.Time, ids func() string) {
	w := NewWorker(WorkerConfig{Store: store, Clock: func() time.Time { return now }, IDs: ids,
		ProposeAll: func(_ context.Context, ps []*state.Plan) []Committed { return make([]Committed, len(ps)) }})
	instances := make([]string, len(evals))
	for i, e := range evals {
		instances[i] = e.Instance
	}
	w.evaluate(context.Background(), instances)
}
