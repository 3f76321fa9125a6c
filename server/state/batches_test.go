package state_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/server/state"
)

// Raft hands each server its committed entries in batches of its own, and
// the FSM applies a batch in one transaction: the state must not depend on
// where the batches begin and end. Every entry of the rich state, and the
// commands of every kind the fuzz seeds add on top, applied one at a time
// and in random batches, leave the same snapshot. The package's tests also
// check each row the FSM reads by id from its batch against the
// transaction (rows.first), which the batches here exercise.
func TestBatchesApplyAsOneByOne(t *testing.T) {
	fuzzSetup(t)
	var logs []*raft.Log
	for i, b := range fuzzSeeds {
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b})
	}
	snapshot := func(apply func(*state.FSM)) []byte {
		st := state.NewStore()
		fsm := state.NewFSM(st, nil)
		apply(fsm)
		var b bytes.Buffer
		if err := state.WriteSnapshot(&b, fsm.StoreDB()); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	one := snapshot(func(fsm *state.FSM) {
		for _, l := range logs {
			fsm.ApplyBatch([]*raft.Log{l})
		}
	})
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		batched := snapshot(func(fsm *state.FSM) {
			for rest := logs; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(12))
				fsm.ApplyBatch(rest[:n])
				rest = rest[n:]
			}
		})
		if !bytes.Equal(one, batched) {
			t.Fatalf("seed %d: the batches left another state than one entry at a time", seed)
		}
	}
}
