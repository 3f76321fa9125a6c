package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/gateway"
)

// testTTL is the heartbeat TTL of most tests here: short, yet a few
// heartbeat ticks and pings long, so that a busy test machine does not miss
// one.
const testTTL = 600 * time.Millisecond

// replicaState returns a replica's state on the leader.
func (e *testEnv) replicaState(id string) string {
	e.t.Helper()
	r := e.snap().Replica(id)
	if r == nil {
		e.t.Fatalf("replica %s is not in the state", id)
	}
	return r.State
}

// lostEvents counts the replica-lost events of an instance.
func (e *testEnv) lostEvents(instanceID string) int {
	n := 0
	for _, ev := range e.snap().Events(instanceID) {
		if ev.Type == "replica-lost" {
			n++
		}
	}
	return n
}

// A node whose agent goes silent is marked down once its TTL passes, and
// its replicas lost: whether the agent vanished without a close frame or
// stopped reading (a half-open connection, which the server's pings
// notice). A node whose agent keeps answering stays up.
func TestSilentNodeMarkedDownAfterTTL(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: testTTL}})
	_, live := e.register("live")
	gone, wGone := e.register("gone")
	_, wMute := e.connectSilent(e.url(), testHello("mute"))
	inst := e.instance("acme", "crm")
	e.place(inst, live.NodeID, "r-live")
	e.place(inst, wGone.NodeID, "r-gone")
	e.place(inst, wMute.NodeID, "r-mute")

	gone.ws.CloseNow() // no close frame: as if the host lost power

	e.waitNodeStatus(wGone.NodeID, protocol.NodeDown)
	e.waitNodeStatus(wMute.NodeID, protocol.NodeDown)
	for _, id := range []string{"r-gone", "r-mute"} {
		if got := e.replicaState(id); got != protocol.ReplicaLost {
			t.Errorf("replica %s on a down node is %s, want lost", id, got)
		}
	}
	// The server gave up on the connection that answered no pings.
	testwait.Eventually(t, wait, "the mute agent's session to end", func() error {
		if n := e.gw().Sessions(); n != 1 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	if got := e.node(live.NodeID).Status; got != protocol.NodeReady {
		t.Fatalf("the live node is %s", got)
	}
	if got := e.replicaState("r-live"); got == protocol.ReplicaLost {
		t.Fatalf("the live node's replica is lost")
	}
}

// A closed connection alone does not mark a node down: an agent that
// reconnects within its TTL (after a restart, a leader change) keeps its
// node up and its replicas.
func TestReconnectWithinTTLKeepsNodeUp(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: testTTL}})
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")

	a.ws.CloseNow()
	e.connect(e.url(), rejoin("host-a", w, w.NodeSecret))

	stayFor(t, 3*testTTL, "node up after a reconnect", func() error {
		if got := e.node(w.NodeID).Status; got != protocol.NodeReady {
			return fmt.Errorf("node is %s", got)
		}
		return nil
	})
	if n := e.lostEvents(inst); n != 0 || e.replicaState("r1") == protocol.ReplicaLost {
		t.Fatalf("replica lost over a reconnect (%d events)", n)
	}
}

// A stall of the leader (a GC pause, a paused VM) is not the agents'
// silence: when the heartbeat checker finds that much time passed since its
// last tick, it moves every deadline by the stall, so no node is marked down
// for it. A node whose agent is really gone is still marked down a TTL
// after it was last heard from.
func TestCheckerStallDoesNotMarkNodesDown(t *testing.T) {
	const ttl = 2 * time.Second
	clock := &offsetClock{}
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: ttl, Clock: clock.now}})
	_, live := e.register("live")
	gone, wGone := e.register("gone")
	gone.ws.CloseNow()

	// Resumed after an hour: every deadline is long past.
	clock.jump(time.Hour)
	testwait.Eventually(t, wait, "the checker to notice the stall", func() error {
		if e.logs.count("heartbeat checker stalled") == 0 {
			return fmt.Errorf("no stall logged")
		}
		return nil
	})
	stayFor(t, ttl/3, "nodes up after the stall", func() error {
		for _, id := range []string{live.NodeID, wGone.NodeID} {
			if got := e.node(id).Status; got != protocol.NodeReady {
				return fmt.Errorf("node %s is %s", e.node(id).Name, got)
			}
		}
		return nil
	})
	e.waitNodeStatus(wGone.NodeID, protocol.NodeDown)
	if got := e.node(live.NodeID).Status; got != protocol.NodeReady {
		t.Fatalf("the live node is %s", got)
	}
}

// A node marked down whose session keeps talking is marked up again, on
// the same connection.
func TestNodeHeardFromAgainMarkedUp(t *testing.T) {
	// A long TTL: the agent, reading nothing, answers no pings, and the
	// server's first ping (a third of the TTL) must not end the session
	// while the test runs.
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: 6 * time.Second}})
	a, w := e.connectSilent(e.url(), testHello("host-a"))
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	g := e.gw()

	gateway.ExpireDeadline(g, w.NodeID)
	e.waitNodeStatus(w.NodeID, protocol.NodeDown)
	if got := e.replicaState("r1"); got != protocol.ReplicaLost {
		t.Fatalf("replica on the down node is %s", got)
	}

	load := &protocol.Metrics{CPUPercent: 12.5, MemoryUsedMB: 512}
	a.send(protocol.MsgStatus, protocol.Status{Seq: 1, Metrics: load})
	e.waitNodeStatus(w.NodeID, protocol.NodeReady)
	if l, ok := g.NodeLive(w.NodeID); !ok || l.Load == nil || *l.Load != *load || l.LastSeen.IsZero() {
		t.Fatalf("live data of the node: %+v", l)
	}

	// Still the same session: it reads what the server sent meanwhile.
	a.startReading()
	a.next(protocol.MsgAssign)
	if a.ended() || g.Sessions() != 1 {
		t.Fatalf("session ended (%v) or replaced (%d sessions)", a.readErr(), g.Sessions())
	}
}

// When its server loses leadership, the gateway closes every agent session
// (going away), so that agents redial; a follower sends them to the new
// leader, whose grace keeps their nodes up while they come back.
func TestLeadershipLossClosesSessions(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3, Server: server.Config{HeartbeatTTL: testTTL}})
	old := e.leader()
	a, w := e.register("host-a")
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")

	if err := old.Cluster.Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	if ce := a.closedBy(); ce.Code != websocket.StatusGoingAway {
		t.Fatalf("session ended with %v, want going away", ce)
	}
	testwait.Eventually(t, wait, "the old leader's sessions to end", func() error {
		if n := gws(old).Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	leader := e.leader()
	// The old leader, now a follower (another if a busy machine's
	// elections moved leadership back to it), sends the agent on.
	follower := e.c.Followers()[0]
	if leader != old {
		follower = old
	}
	b := dialAgent(t, follower.URL)
	b.send(protocol.MsgHello, rejoin("host-a", w, w.NodeSecret))
	b.startReading()
	eb := clustertest.Decode[protocol.ChannelError](t, b.next(protocol.MsgError))
	var r protocol.Redirect
	if eb.Code != protocol.CodeNotLeader || jsonDecode(eb.Body, &r) != nil || r.Leader != leader.HTTPAddr {
		t.Fatalf("%s answered %+v (%s), want not_leader to %s", follower.ID, eb, eb.Body, leader.HTTPAddr)
	}

	// The new leader gives the node a TTL and a grace to come back, so
	// that a fleet reconnecting with jitter is not marked down.
	stayFor(t, 2*testTTL, "node up while its agent reconnects", func() error {
		if got := e.node(w.NodeID).Status; got != protocol.NodeReady {
			return fmt.Errorf("node is %s", got)
		}
		return nil
	})
	_, w2 := e.connect(leader.URL, rejoin("host-a", w, w.NodeSecret))
	if w2.NodeID != w.NodeID {
		t.Fatalf("new leader welcomed %s, want %s", w2.NodeID, w.NodeID)
	}
	if n := e.lostEvents(inst); n != 0 {
		t.Fatalf("%d replicas lost across the leader change", n)
	}
}

// When the fleet grows, the TTL grows with it: sessions begun in a smaller
// fleet are told the longer interval, and their deadlines grow too, so a
// node told to ping every few seconds is not marked down after the TTL it
// registered with.
func TestGrowingFleetSlowsEarlierSessions(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: 300 * time.Millisecond, MaxHeartbeatsPerSecond: 2}})
	first, w := e.register("first")
	for _, name := range []string{"second", "third", "fourth"} {
		e.register(name)
	}
	// 4 nodes at 2 heartbeats/s: TTL 6 s, interval 2 s, told to the first
	// agent (maybe after shorter ones while the fleet grew).
	if first.await(5*time.Second, func(env *protocol.Envelope) bool {
		var hb protocol.Heartbeat
		return env.Type == protocol.MsgHeartbeat && jsonDecode(env.Body, &hb) == nil && hb.Interval.D() == 2*time.Second
	}) == nil {
		t.Fatalf("no heartbeat message with a 2s interval; got %s", first.queued())
	}
	if w.HeartbeatInterval.D() >= 2*time.Second {
		t.Fatalf("the first session began with %s already: the test shows nothing", w.HeartbeatInterval)
	}
	if n := e.node(w.NodeID); n.Status != protocol.NodeReady {
		t.Fatalf("first node %s after the fleet grew", n.Status)
	}
}

// Sessions that begin and end while the gateway's sweep finds their agents
// silent are welcomed and end cleanly: the sweep only wakes a session's
// writer, which pings, so no ping starts before the welcome is sent (the
// sweep pinging a session at once closed some before their welcome) or
// after the session has ended (the leader panicked on the session's
// WaitGroup, in a fleet benchmark; this test does not reproduce that
// race reliably).
func TestSweepOfEndingSessions(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: 30 * time.Millisecond}})
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		a, _ := e.connectSilent(e.url(), testHello(fmt.Sprintf("host-%d", i)))
		time.Sleep(time.Duration(i%7) * time.Millisecond)
		a.ws.CloseNow()
	}
	testwait.Eventually(t, wait, "every session to end", func() error {
		if n := e.gw().Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
}

// When fewer than half of a fleet of 50 or more nodes are connected to the
// leader, it marks none down: such a fleet is more likely cut off from the
// leader, or waiting on it, than dead, and moving all its replicas at once
// would add to the load. The leader says so (its log, the held gauge).
// Once half of the fleet is connected again, the nodes still past their
// deadline are marked down.
func TestMostOfTheFleetGoneMarksNoneDown(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{HeartbeatTTL: testTTL}})
	const fleet, gone, back = 60, 40, 15
	agents := make([]*testAgent, fleet)
	welcomes := make([]protocol.Welcome, fleet)
	name := func(i int) string { return fmt.Sprintf("host-%02d", i) }
	for i := range fleet {
		agents[i], welcomes[i] = e.register(name(i))
	}
	for _, a := range agents[:gone] {
		a.ws.CloseNow()
	}
	testwait.Eventually(t, wait, "the leader holding the silent nodes up", func() error {
		if n := e.gw().Held(); n != gone {
			return fmt.Errorf("%d nodes held up", n)
		}
		return nil
	})
	stayFor(t, 3*testTTL, "every node up while most of the fleet is disconnected", func() error {
		for _, w := range welcomes {
			if n := e.node(w.NodeID); n.Status != protocol.NodeReady {
				return fmt.Errorf("%s is %s", n.Name, n.Status)
			}
		}
		return nil
	})
	if e.logs.count("fewer than half of the fleet is connected") == 0 {
		t.Fatal("the leader did not say why it marks no node down")
	}

	for i := range back {
		e.connect(e.url(), rejoin(name(i), welcomes[i], welcomes[i].NodeSecret))
	}
	for i, w := range welcomes[:gone] {
		if i >= back {
			e.waitNodeStatus(w.NodeID, protocol.NodeDown)
		}
	}
	for i, w := range welcomes {
		if (i < back || i >= gone) && e.node(w.NodeID).Status != protocol.NodeReady {
			t.Errorf("%s, connected, is %s", name(i), e.node(w.NodeID).Status)
		}
	}
	if n := e.gw().Held(); n != 0 {
		t.Fatalf("%d nodes still held up with most of the fleet connected", n)
	}
}
