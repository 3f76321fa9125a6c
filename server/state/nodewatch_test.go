package state_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// A node's watch wakes for changes of replicas placed on that node (placed,
// reported, stopped, moved away) and for a restore, and sleeps through
// everything else, other nodes' replicas included.
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
	step("n1's replica reports", func() {
		h.report("n1", protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaHealthy, Health: protocol.HealthPassing})
	}, true, false)
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
