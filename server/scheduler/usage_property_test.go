package scheduler

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/drover-dev/drover/protocol"
)

// The FSM's usage rows must equal what the replicas that hold a place
// reserve, whatever happened.
func TestUsageRowsAreWhatPlacedReplicasReserve(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := &world{rt: rt, h: newHarness(rt)}
		for range rapid.IntRange(1, 4).Draw(rt, "nodes") {
			w.addNode()
		}
		for i := range rapid.IntRange(1, 3).Draw(rt, "instances") {
			w.instances = append(w.instances, w.h.create(fmt.Sprintf("i%d", i), rapid.IntRange(0, 4).Draw(rt, "replicas"), w.spec()))
		}
		w.h.settle()
		w.checkUsage()
		for range rapid.IntRange(0, 30).Draw(rt, "steps") {
			w.step()
			w.checkUsage()
			w.h.settle()
			w.checkUsage()
		}
	})
}

func (w *world) checkUsage() {
	snap := w.h.Snapshot()
	for _, n := range snap.Nodes() {
		var want protocol.Reservation
		count := 0
		for _, r := range snap.NodeReplicas(n.ID) {
			if r.Holds() {
				want.CPUMillis += r.Reserved.CPUMillis
				want.MemoryMB += r.Reserved.MemoryMB
				want.Ports += r.Reserved.Ports
				count++
			}
		}
		got := snap.NodeUsageRow(n.ID)
		if got.Reservation != want || got.Replicas != count {
			w.rt.Fatalf("node %s usage row %+v, replicas hold %+v in %d", n.ID, got, want, count)
		}
	}
}
