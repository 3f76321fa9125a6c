package state_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// A node's watch wakes for changes of what its agent is assigned (a
// replica placed on the node, its ports reported, stopped, moved away) and
// for a restore, and sleeps through everything else: its replicas' states
// and health, other nodes' replicas.
func TestNodeWatch(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "crm", 2)
	h.node("n1")
	h.node("n2")
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	step := func(what string, change func(), wakes1, wakes2 bool) {
		t.Helper()
		w1, w2 := h.Store.NodeWatch("n1"), h.Store.NodeWatch("n2")
		change()
		if closed(w1) != wakes1 || closed(w2) != wakes2 {
			t.Errorf("%s: n1 woke %v (want %v), n2 woke %v (want %v)", what, closed(w1), wakes1, closed(w2), wakes2)
		}
	}
	step("a replica placed on n1", func() { h.place("acme/crm", "n1", 1, "r1") }, true, false)
	step("a replica placed on n2", func() { h.place("acme/crm", "n2", 1, "r2") }, false, true)
	step("n1's replica reports its state", func() {
		h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy, Health: protocol.HealthPassing})
	}, false, false)
	step("n1's replica reports the ports it took", func() {
		h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy, Health: protocol.HealthPassing,
			Ports: map[string]int{"http": 20001}})
	}, true, false)
	step("n1's replica reports the same ports", func() {
		h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaFailed, Ports: map[string]int{"http": 20001}})
	}, false, false)
	step("a tenant changes", func() { h.tenant("initech") }, false, false)
	step("n2's replica stops", func() {
		h.Must(state.CmdPlanApply, state.Plan{Instance: "acme/crm", EvalIndex: h.Index(), Stop: []state.ReplicaStop{{ID: "r2", Message: "scale down"}}})
	}, false, true)
	step("a restore", func() {
		fsm := state.NewFSM(h.Store, hclog.NewNullLogger())
		var b bytes.Buffer
		if err := state.WriteSnapshot(&b, fsm.StoreDB()); err != nil {
			t.Fatal(err)
		}
		if err := fsm.Restore(io.NopCloser(&b)); err != nil {
			t.Fatal(err)
		}
	}, true, true)
}
