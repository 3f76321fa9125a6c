package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/gateway"
)

// quiet is how long a test waits to see that a message is not sent.
const quiet = 300 * time.Millisecond

func assignedIDs(a protocol.Assign) []string {
	var ids []string
	for _, r := range a.Replicas {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

// The node's whole desired set is pushed when the session starts and again
// whenever it changes, with a growing generation; changes that leave it as
// it was (other nodes' replicas, reports of its own) push nothing.
func TestAssignPushedWhenDesiredSetChanges(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	_, wb := e.register("host-b")

	first := clustertest.Decode[protocol.Assign](t, a.next(protocol.MsgAssign))
	if first.Replicas == nil || len(first.Replicas) != 0 {
		t.Fatalf("first assign of a new node: %+v, want an empty set", first)
	}
	inst := e.instance("acme", "crm")
	a.none(protocol.MsgAssign, quiet)

	idx := e.place(inst, w.NodeID, "r1")
	as := clustertest.Decode[protocol.Assign](t, a.next(protocol.MsgAssign))
	if got := assignedIDs(as); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("assigned %v after placing r1", got)
	}
	r := as.Replicas[0]
	spec := e.snap().Instance(inst).Spec
	if r.Tenant != "acme" || r.Instance != "crm" || r.Environment != protocol.DefaultEnvironment || r.Version != 1 ||
		!slices.Equal(r.Spec.Command, spec.Command) || as.Generation < idx {
		t.Fatalf("assigned %+v (generation %d), want r1 of acme/crm v1 at generation >= %d", r, as.Generation, idx)
	}
	gen := as.Generation

	e.place(inst, wb.NodeID, "r2")
	a.send(protocol.MsgStatus, protocol.Status{Seq: 1, Generation: gen,
		Replicas: []protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaRunning}}})
	a.next(protocol.MsgAck)
	a.none(protocol.MsgAssign, quiet)

	e.place(inst, w.NodeID, "r3")
	as = clustertest.Decode[protocol.Assign](t, a.next(protocol.MsgAssign))
	if got := assignedIDs(as); !slices.Equal(got, []string{"r1", "r3"}) || as.Generation <= gen {
		t.Fatalf("assigned %v at generation %d after placing r3 (last %d)", got, as.Generation, gen)
	}
	gen = as.Generation

	// The ports an agent chose become part of the assignment, so that they
	// are kept when the agent restarts.
	a.send(protocol.MsgStatus, protocol.Status{Seq: 2, Generation: gen,
		Replicas: []protocol.ReplicaReport{{ID: "r3", State: protocol.ReplicaRunning, Ports: map[string]int{"http": 20007}}}})
	as = clustertest.Decode[protocol.Assign](t, a.next(protocol.MsgAssign))
	for _, r := range as.Replicas {
		if r.ID == "r3" && r.Ports["http"] != 20007 {
			t.Fatalf("r3 assigned with ports %v after reporting its port", r.Ports)
		}
	}

	e.stopReplicas(inst, "r1")
	as = clustertest.Decode[protocol.Assign](t, a.next(protocol.MsgAssign))
	if got := assignedIDs(as); !slices.Equal(got, []string{"r3"}) {
		t.Fatalf("assigned %v after stopping r1", got)
	}
	a.none(protocol.MsgAssign, quiet)
}

// An agent whose hello asks for changes gets the session's first set
// whole and then only what changed: replicas added or changed (a port
// reported), the ids of those removed; nothing when its own set did not
// change. Its next session starts with a whole set again.
func TestAssignChangesToAgentsThatAskForThem(t *testing.T) {
	e := newEnv(t, envConfig{})
	h := testHello("host-a")
	h.AssignChanges = true
	a, w := e.connect(e.url(), h)
	_, wb := e.register("host-b")
	assign := func(what string, whole bool, ids []string, removed ...string) protocol.Assign {
		t.Helper()
		as := clustertest.Decode[protocol.Assign](t, a.next(protocol.MsgAssign))
		if got := assignedIDs(as); as.Changes == whole || as.Replicas == nil || !slices.Equal(got, ids) || !slices.Equal(as.Removed, removed) {
			t.Fatalf("%s: assigned %v, removed %v, changes %v; want %v, removed %v, changes %v", what, got, as.Removed, as.Changes, ids, removed, !whole)
		}
		return as
	}
	assign("first", true, nil)
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	if as := assign("r1 placed", false, []string{"r1"}); as.Replicas[0].Spec.Version != "1.0.0" {
		t.Fatalf("r1 assigned without its spec: %+v", as.Replicas[0])
	}
	e.place(inst, wb.NodeID, "r2")
	a.none(protocol.MsgAssign, quiet)
	e.place(inst, w.NodeID, "r3")
	gen := assign("r3 placed", false, []string{"r3"}).Generation
	a.send(protocol.MsgStatus, protocol.Status{Seq: 1, Generation: gen,
		Replicas: []protocol.ReplicaReport{{ID: "r3", State: protocol.ReplicaRunning, Ports: map[string]int{"http": 20007}}}})
	if as := assign("r3's port reported", false, []string{"r3"}); as.Replicas[0].Ports["http"] != 20007 {
		t.Fatalf("r3 assigned with ports %v after reporting its port", as.Replicas[0].Ports)
	}
	e.stopReplicas(inst, "r1")
	assign("r1 stopped", false, nil, "r1")
	a.none(protocol.MsgAssign, quiet)

	a.ws.CloseNow()
	h = rejoin("host-a", w, w.NodeSecret)
	h.AssignChanges = true
	a, _ = e.connect(e.url(), h)
	assign("a new session", true, []string{"r3"})
	// r1, r3, r3 again, r3 again, and host-b's r2.
	if n := e.gw().Assigned(); n != 5 {
		t.Fatalf("the gateway counts %d replicas sent, want 5", n)
	}
}

// Status reports are committed in batches, and each commit is acked with
// the highest seq it covers: an ack never comes before its reports are in
// the state.
func TestStatusCommittedInBatchesAndAcked(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	ids := []string{"r1", "r2", "r3", "r4", "r5"}
	e.place(inst, w.NodeID, ids...)
	leader := e.leader()

	for i, id := range ids {
		a.send(protocol.MsgStatus, protocol.Status{Seq: uint64(i + 1),
			Replicas: []protocol.ReplicaReport{{ID: id, State: protocol.ReplicaRunning, Restarts: i}}})
	}
	var acked uint64
	for acked < uint64(len(ids)) {
		ack := clustertest.Decode[protocol.Ack](t, a.next(protocol.MsgAck))
		if ack.Seq <= acked || ack.Seq > uint64(len(ids)) {
			t.Fatalf("ack %d after ack %d; seqs sent: 1-%d", ack.Seq, acked, len(ids))
		}
		snap := leader.Store.Snapshot()
		for i := range ack.Seq {
			if r := snap.Replica(ids[i]); r.State != protocol.ReplicaRunning || r.Restarts != int(i) {
				t.Fatalf("ack %d came before the report of seq %d was committed: %+v", ack.Seq, i+1, r)
			}
		}
		acked = ack.Seq
	}
	entries := map[uint64]bool{}
	for _, id := range ids {
		entries[e.snap().Replica(id).ModifyIndex] = true
	}
	if len(entries) >= len(ids) {
		t.Fatalf("%d status messages sent together took %d Raft entries, want fewer", len(ids), len(entries))
	}

	// Load alone lives in the leader's memory: nothing to commit or ack.
	a.send(protocol.MsgStatus, protocol.Status{Seq: 6, Metrics: &protocol.Metrics{Load1: 0.5}})
	a.none(protocol.MsgAck, quiet)
	if l, _ := e.gw().NodeLive(w.NodeID); l.Load == nil || l.Load.Load1 != 0.5 {
		t.Fatalf("load of the node: %+v", l.Load)
	}

	// Of several reports of one replica, the latest is the one kept.
	a.send(protocol.MsgStatus, protocol.Status{Seq: 7, Replicas: []protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaUnhealthy}}})
	a.send(protocol.MsgStatus, protocol.Status{Seq: 8, Replicas: []protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaHealthy}}})
	for clustertest.Decode[protocol.Ack](t, a.next(protocol.MsgAck)).Seq < 8 {
	}
	if got := e.snap().Replica("r1").State; got != protocol.ReplicaHealthy {
		t.Fatalf("r1 is %s after its latest report said healthy", got)
	}
}

// The replicas an agent lists in its hello are its first report.
func TestHelloReplicasCommitted(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	a.ws.CloseNow()

	h := rejoin("host-a", w, w.NodeSecret)
	h.Replicas = []protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaHealthy, Restarts: 2}}
	e.connect(e.url(), h)
	testwait.Eventually(t, wait, "the hello's report to be committed", func() error {
		if r := e.snap().Replica("r1"); r.State != protocol.ReplicaHealthy || r.Restarts != 2 {
			return fmt.Errorf("r1: %s, %d restarts", r.State, r.Restarts)
		}
		return nil
	})
}

// An invalid status is answered with an error and ends the session; it
// changes nothing.
func TestInvalidStatusEndsSession(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	a.send(protocol.MsgStatus, protocol.Status{Seq: 1, Replicas: []protocol.ReplicaReport{{ID: "r1", State: "exploded"}}})
	eb := clustertest.Decode[protocol.ChannelError](t, a.next(protocol.MsgError))
	if eb.Code != protocol.CodeInvalidArgument || eb.Message == "" {
		t.Fatalf("error %+v", eb)
	}
	a.closedBy()
	if got := e.replicaState("r1"); got != protocol.ReplicaPending {
		t.Fatalf("r1 is %s after an invalid report", got)
	}
}

// syncBuffer is the HTTP side of a log stream.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	flushes int
	// gate, when set, holds every Write until it is closed: a reader that
	// does not keep up.
	gate chan struct{}
	// fail, when set, fails every Write: a reader that went away.
	fail bool
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("client went away")
	}
	return s.b.Write(p)
}

func (s *syncBuffer) flush() {
	s.mu.Lock()
	s.flushes++
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logCall is a StreamLogs call in flight.
type logCall struct {
	out  *syncBuffer
	errc chan error
}

func streamLogs(ctx context.Context, g *gateway.Gateway, node string, req protocol.LogRequest, out *syncBuffer) *logCall {
	c := &logCall{out: out, errc: make(chan error, 1)}
	go func() { c.errc <- g.StreamLogs(ctx, node, req, out, out.flush) }()
	return c
}

func (c *logCall) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.errc:
		return err
	case <-time.After(wait):
		t.Fatalf("StreamLogs still running after %s", wait)
		return nil
	}
}

// logChunk sends a chunk of a stream from the agent.
func (a *testAgent) logChunk(d protocol.LogData) { a.send(protocol.MsgLogData, d) }

// StreamLogs asks the agent for a replica's output and copies each chunk
// to the writer, flushing after each, until the agent ends the stream.
func TestStreamLogs(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	g := e.gw()

	{ // until eof
		call := streamLogs(context.Background(), g, w.NodeID, protocol.LogRequest{Replica: "r1", Tail: 10, Follow: true}, &syncBuffer{})
		req := clustertest.Decode[protocol.LogRequest](t, a.next(protocol.MsgLogs))
		if req.Stream == "" || req.Replica != "r1" || req.Tail != 10 || !req.Follow || req.Cancel {
			t.Fatalf("log request %+v", req)
		}
		a.logChunk(protocol.LogData{Stream: req.Stream, Data: "one\n"})
		a.logChunk(protocol.LogData{Stream: "some-other-stream", Data: "not ours\n"})
		a.logChunk(protocol.LogData{Stream: req.Stream, Data: "two\n"})
		a.logChunk(protocol.LogData{Stream: req.Stream, Data: "three\n", EOF: true})
		if err := call.wait(t); err != nil {
			t.Fatalf("StreamLogs: %v", err)
		}
		if got := call.out.String(); got != "one\ntwo\nthree\n" || call.out.flushes != 3 {
			t.Fatalf("copied %q with %d flushes", got, call.out.flushes)
		}
		// The agent ended the stream itself: nothing to cancel.
		a.none(protocol.MsgLogs, quiet)
	}
	{ // agent error
		call := streamLogs(context.Background(), g, w.NodeID, protocol.LogRequest{Replica: "nope"}, &syncBuffer{})
		req := clustertest.Decode[protocol.LogRequest](t, a.next(protocol.MsgLogs))
		a.logChunk(protocol.LogData{Stream: req.Stream, Error: "no replica nope on this node"})
		if err := call.wait(t); protocol.AsError(err).Code != protocol.CodeNotFound {
			t.Fatalf("StreamLogs of a replica the agent does not have: %v", err)
		}
	}
	{ // node not connected
		err := g.StreamLogs(context.Background(), "no-such-node", protocol.LogRequest{Replica: "r1"}, &syncBuffer{}, func() {})
		if protocol.AsError(err).Code != protocol.CodeUnavailable {
			t.Fatalf("StreamLogs of a node without a session: %v", err)
		}
	}
	{ // agent disconnects
		call := streamLogs(context.Background(), g, w.NodeID, protocol.LogRequest{Replica: "r1", Follow: true}, &syncBuffer{})
		a.next(protocol.MsgLogs)
		a.ws.CloseNow()
		if err := call.wait(t); protocol.AsError(err).Code != protocol.CodeUnavailable {
			t.Fatalf("StreamLogs when the node went away: %v", err)
		}
	}
}

// waitCopied waits until the HTTP side of a stream has got want.
func waitCopied(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	testwait.Eventually(t, wait, "the first chunk to be copied", func() error {
		if got := out.String(); got != want {
			return fmt.Errorf("copied %q", got)
		}
		return nil
	})
}

// flood sends the chunks an agent following a log would still send, and
// then a status, and returns how long the ack took: the session's reader
// must not wait for the HTTP side of a stream.
func flood(t *testing.T, a *testAgent, stream string, seq uint64) time.Duration {
	t.Helper()
	start := time.Now()
	for range 200 {
		a.logChunk(protocol.LogData{Stream: stream, Data: "more\n"})
	}
	a.send(protocol.MsgStatus, protocol.Status{Seq: seq, Replicas: []protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaRunning, Restarts: int(seq)}}})
	for clustertest.Decode[protocol.Ack](t, a.next(protocol.MsgAck)).Seq < seq {
	}
	return time.Since(start)
}

// When the HTTP side of a log stream ends (its request cancelled, its
// client gone, or too slow to keep up), StreamLogs returns, the agent is
// told to stop streaming, and the chunks it still sends neither panic nor
// hold up the session.
func TestStreamLogsEndedByHTTPSide(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	g := e.gw()
	var seq atomic.Uint64

	cancelled := func(t *testing.T, stream string) {
		t.Helper()
		req := clustertest.Decode[protocol.LogRequest](t, a.next(protocol.MsgLogs))
		if !req.Cancel || req.Stream != stream {
			t.Fatalf("after the HTTP side ended, the agent got %+v, want a cancel of %s", req, stream)
		}
	}

	{ // request cancelled
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		call := streamLogs(ctx, g, w.NodeID, protocol.LogRequest{Replica: "r1", Follow: true}, &syncBuffer{})
		req := clustertest.Decode[protocol.LogRequest](t, a.next(protocol.MsgLogs))
		a.logChunk(protocol.LogData{Stream: req.Stream, Data: "first\n"})
		waitCopied(t, call.out, "first\n")
		cancel()
		if err := call.wait(t); err != nil {
			t.Fatalf("cancelled StreamLogs: %v", err)
		}
		cancelled(t, req.Stream)
		if d := flood(t, a, req.Stream, seq.Add(1)); d >= gateway.LogStall {
			t.Fatalf("chunks of a cancelled stream held the session up for %s", d)
		}
		if got := call.out.String(); got != "first\n" {
			t.Fatalf("copied %q after the request was cancelled", got)
		}
	}
	{ // client gone
		out := &syncBuffer{fail: true}
		call := streamLogs(context.Background(), g, w.NodeID, protocol.LogRequest{Replica: "r1", Follow: true}, out)
		req := clustertest.Decode[protocol.LogRequest](t, a.next(protocol.MsgLogs))
		a.logChunk(protocol.LogData{Stream: req.Stream, Data: "first\n"})
		if err := call.wait(t); err != nil {
			t.Fatalf("StreamLogs to a failing writer: %v", err)
		}
		cancelled(t, req.Stream)
		if d := flood(t, a, req.Stream, seq.Add(1)); d >= gateway.LogStall {
			t.Fatalf("chunks of an ended stream held the session up for %s", d)
		}
	}
	{ // too slow
		out := &syncBuffer{gate: make(chan struct{})}
		call := streamLogs(context.Background(), g, w.NodeID, protocol.LogRequest{Replica: "r1", Follow: true}, out)
		req := clustertest.Decode[protocol.LogRequest](t, a.next(protocol.MsgLogs))
		// The writer holds the first chunk; the stream's buffer fills, and
		// after gateway.LogStall the stream is cut rather than the session held.
		if d := flood(t, a, req.Stream, seq.Add(1)); d > gateway.LogStall+wait/2 {
			t.Fatalf("a stuck HTTP reader held the session up for %s", d)
		}
		close(out.gate)
		if err := call.wait(t); err != nil {
			t.Fatalf("StreamLogs cut for being too slow: %v", err)
		}
		cancelled(t, req.Stream)
		if d := flood(t, a, req.Stream, seq.Add(1)); d >= gateway.LogStall {
			t.Fatalf("chunks of a cut stream held the session up for %s", d)
		}
	}
}

// A report is acked only once committed: a leader cut off from its
// followers acks nothing, and closes the session when it steps down; the
// agent's resend to the leader after that is committed and acked.
func TestStatusNotAckedUntilCommitted(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	old := e.leader()
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	e.c.WaitForReplication()
	report := protocol.Status{Seq: 1, Replicas: []protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaRunning}}}

	e.c.Partition(old)
	a.send(protocol.MsgStatus, report)
	a.closedBy()
	if m := a.take(ofType(protocol.MsgAck)); m != nil {
		t.Fatalf("a leader cut off from its followers acked %s", m.Body)
	}
	e.c.Heal()
	leader := e.leader() // whichever: old may win again once healed

	b, _ := e.connect(leader.URL, rejoin("host-a", w, w.NodeSecret))
	b.send(protocol.MsgStatus, report)
	if ack := clustertest.Decode[protocol.Ack](t, b.next(protocol.MsgAck)); ack.Seq != 1 {
		t.Fatalf("ack %d, want 1", ack.Seq)
	}
	if got := leader.Store.Snapshot().Replica("r1").State; got != protocol.ReplicaRunning {
		t.Fatalf("r1 is %s after its report was acked", got)
	}
}
