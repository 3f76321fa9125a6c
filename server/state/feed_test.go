package state_test

import (
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// The stream holds, in Raft order, what each entry did: an instance's
// events on their topics, nodes going down, and audit records; an entry
// with several events numbers them.
func TestFeedOrdersEventsByEntry(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	created := h.Must(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: "acme", Name: "web", Environment: "default", Replicas: 2, Spec: testSpec("1")}})
	if err := h.ApplyAudited(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "web", Replicas: 3},
		&protocol.AuditRecord{Tenant: "acme", Action: "instance.scale", Target: "acme/web"}); err != nil {
		t.Fatal(err)
	}

	all := h.Snapshot().FeedAfter(protocol.EventID{}, 100)
	var got []string
	for i, e := range all {
		if i > 0 && !all[i-1].ID().Before(e.ID()) {
			t.Fatalf("event %s comes after %s", e.ID(), all[i-1].ID())
		}
		if e.Index >= created {
			got = append(got, e.ID().String()+" "+e.Topic+" "+e.Type)
		}
	}
	scaled := created + 1
	want := []string{
		idString(created, 0) + " instance created",
		idString(scaled, 0) + " instance scaled",
		idString(scaled, 1) + " audit instance.scale",
	}
	if len(got) != len(want) {
		t.Fatalf("stream from the create on:\n%v\nwant\n%v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stream from the create on:\n%v\nwant\n%v", got, want)
		}
	}
	// Reading on from an event gives what follows it only.
	rest := h.Snapshot().FeedAfter(protocol.EventID{Index: scaled}, 100)
	if len(rest) != 1 || rest[0].Type != "instance.scale" || rest[0].Audit == nil || rest[0].Audit.Target != "acme/web" {
		t.Fatalf("after %d: %+v", scaled, rest)
	}
}

func idString(index, seq uint64) string { return protocol.EventID{Index: index, Seq: seq}.String() }

// The stream keeps the newest MaxFeedEvents events and says which was the
// last it dropped, so that a reader knows it lost some.
func TestFeedDropsTheOldest(t *testing.T) {
	h := newHarness(t)
	h.tenant("acme")
	h.instance("acme", "web", 1)
	first := h.Snapshot().FeedAfter(protocol.EventID{}, 1)[0]
	if d := h.Snapshot().FeedDropped(); d != (protocol.EventID{}) {
		t.Fatalf("dropped %s before the limit", d)
	}
	for i := 0; h.Snapshot().FeedDropped() == (protocol.EventID{}); i++ {
		if i > state.MaxFeedEvents {
			t.Fatalf("%d scales and nothing dropped", i)
		}
		h.Must(state.CmdInstanceScale, state.InstanceScale{Tenant: "acme", Name: "web", Replicas: 1 + i%2})
	}
	snap := h.Snapshot()
	if got := snap.FeedDropped(); got != first.ID() {
		t.Fatalf("dropped %s, want the oldest %s", got, first.ID())
	}
	kept := snap.FeedAfter(protocol.EventID{}, 2*state.MaxFeedEvents)
	if len(kept) != state.MaxFeedEvents {
		t.Fatalf("kept %d events, want %d", len(kept), state.MaxFeedEvents)
	}
	if !first.ID().Before(kept[0].ID()) {
		t.Fatalf("oldest kept %s is not after the dropped %s", kept[0].ID(), first.ID())
	}
}

// Nodes' changes are events of no tenant.
func TestFeedNodeEvents(t *testing.T) {
	h := newHarness(t)
	h.node("n1")
	h.Must(state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: []state.NodeStatus{{ID: "n1", Up: false}}})
	var types []string
	for _, e := range h.Snapshot().FeedAfter(protocol.EventID{}, 100) {
		if e.Topic == protocol.TopicNode {
			if e.Tenant != "" || e.Node != "n1" {
				t.Fatalf("node event %+v", e)
			}
			types = append(types, e.Type)
		}
	}
	if len(types) != 2 || types[0] != "node-registered" || types[1] != "node-down" {
		t.Fatalf("node events %v, want node-registered, node-down", types)
	}
}
