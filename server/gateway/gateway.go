// Package gateway is the servers' end of the agent channel: the WebSocket
// endpoint agents dial, their authentication, the level-triggered push of
// each node's desired replica set, heartbeats tracked in the leader's
// memory, and status reports batched into Raft commands.
package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/uid"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/state"
)

// Defaults of heartbeat timing. A node's TTL grows with the fleet so that
// the leader handles at most MaxHeartbeatsPerSecond; a fleet of up to 5,000
// nodes notices a dead host within MinTTL, one of 10,000 within 6 s.
// Nomad's bound, 50 a second, is for heartbeats that are RPCs through the
// leader and its Raft-backed state; Drover's are WebSocket pings the
// leader answers from memory, about 0.004% of a core each a second
// (BENCHMARKS.md, "Agents"), so 5,000 a second cost it a fifth of a core.
const (
	DefaultMinTTL                 = 3 * time.Second
	DefaultGrace                  = 10 * time.Second
	DefaultMaxHeartbeatsPerSecond = 5000
	helloTimeout                  = 10 * time.Second
	writeTimeout                  = 10 * time.Second
	// disruptionFleet is the smallest fleet the leader holds up when most
	// of it is disconnected (checkHeartbeats); Kubernetes' node lifecycle
	// controller has the same kind of threshold (its large-cluster size,
	// 50) below which a small fleet is not judged by its fractions.
	disruptionFleet = 50
)

// Config configures the gateway.
type Config struct {
	Cluster *cluster.Cluster
	Store   *state.Store
	Logger  hclog.Logger
	Clock   func() time.Time
	// JoinToken lets new agents register (-agent-join-token, a bare secret
	// or a drover-join.SECRET.FINGERPRINT string). The join token created by
	// the ACL bootstrap, whose hash the state keeps, is good as well. With
	// neither, agents register without one unless RequireJoinToken.
	JoinToken string
	// RequireJoinToken refuses registration while no join token exists
	// (ACLs on, not yet bootstrapped).
	RequireJoinToken bool

	MinTTL                 time.Duration
	Grace                  time.Duration
	MaxHeartbeatsPerSecond int
}

// Gateway serves agents.
type Gateway struct {
	cfg    Config
	logger hclog.Logger
	// warn logs warnings about single agents, rate-limited.
	warn *warnings

	mu       sync.Mutex
	leading  bool
	sessions map[string]*session // by node id
	// deadlines are the leader's heartbeat deadlines per node.
	deadlines map[string]time.Time
	// live is what the leader last heard from each node, kept in memory
	// only: committing it would cost a Raft entry per heartbeat.
	live map[string]Live
	// ups are nodes the state has down that were heard from again.
	ups map[string]bool
	// ttl is the current heartbeat TTL, refreshed with each check.
	ttl  time.Duration
	wake chan struct{} // wakes the batcher
	// connects counts the agents' WebSocket requests, refused ones too.
	connects atomic.Int64
	// assigned counts the replicas sent in assignments, whole or changes.
	assigned atomic.Int64
	// held is how many nodes past their deadline the last check kept up
	// because most of the fleet was disconnected (checkHeartbeats).
	held atomic.Int64

	batch batcher
}

// New returns a gateway; it accepts agents while Lead runs.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MinTTL == 0 {
		cfg.MinTTL = DefaultMinTTL
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxHeartbeatsPerSecond == 0 {
		cfg.MaxHeartbeatsPerSecond = DefaultMaxHeartbeatsPerSecond
	}
	logger := cfg.Logger.Named("gateway")
	return &Gateway{cfg: cfg, logger: logger, warn: newWarnings(logger, cfg.Clock), sessions: map[string]*session{},
		deadlines: map[string]time.Time{}, live: map[string]Live{}, ups: map[string]bool{},
		ttl: cfg.MinTTL, wake: make(chan struct{}, 1)}
}

// TTL returns how long a node may stay silent before it is marked down,
// for a fleet of n nodes.
func (g *Gateway) TTL(n int) time.Duration {
	ttl := time.Duration(n) * time.Second / time.Duration(g.cfg.MaxHeartbeatsPerSecond) * 3
	if ttl < g.cfg.MinTTL {
		ttl = g.cfg.MinTTL
	}
	return ttl
}

// interval is how often each side pings: a third of the TTL, so two lost
// pings in a row are tolerated.
func (g *Gateway) interval() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ttl / 3
}

// Lead runs the leader's side of the gateway until ctx ends: heartbeat
// deadlines, the batcher, and pushing assignments. When it returns, every
// agent session is closed and agents redial the next leader.
func (g *Gateway) Lead(ctx context.Context) {
	now := g.cfg.Clock()
	snap := g.cfg.Store.Snapshot()
	ttl := g.TTL(snap.NodeCount())
	grace := ttl + g.cfg.Grace
	g.batch.reset()
	g.mu.Lock()
	g.leading = true
	g.ttl = ttl
	g.ups = map[string]bool{}
	g.deadlines = map[string]time.Time{}
	for _, n := range snap.Nodes() {
		if n.Status != protocol.NodeDown {
			g.deadlines[n.ID] = now.Add(grace)
		}
	}
	g.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { g.batch.run(ctx, g) })
	wg.Go(func() { g.sweep(ctx) })
	g.checkHeartbeats(ctx)
	wg.Wait()

	g.held.Store(0)
	g.mu.Lock()
	g.leading = false
	sessions := make([]*session, 0, len(g.sessions))
	for _, s := range g.sessions {
		sessions = append(sessions, s)
	}
	g.mu.Unlock()
	var closing sync.WaitGroup
	for _, s := range sessions {
		closing.Go(func() { s.close(websocket.StatusGoingAway, "leadership changed") })
	}
	closing.Wait()
}

// sweep ticks every session about once a heartbeat interval
// (session.tick), from one goroutine: a timer per session woke 5,000
// goroutines a second at 10,000 agents, and the leader's Raft goroutines
// waited behind them. Each heartbeatTick it ticks the sessions of one
// slot of the interval's, so that the fleet's probes, and the agents told
// a new interval (whose pings then start over from that moment), are
// spread over the interval rather than all at once.
func (g *Gateway) sweep(ctx context.Context) {
	t := time.NewTicker(heartbeatTick)
	defer t.Stop()
	var due []*session
	for round := uint32(0); ; round++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		iv := g.interval()
		slots := uint32(max(1, iv/heartbeatTick))
		g.mu.Lock()
		for _, s := range g.sessions {
			if s.slot%slots == round%slots {
				due = append(due, s)
			}
		}
		g.mu.Unlock()
		for _, s := range due {
			s.tick(iv)
		}
		clear(due) // keeps no ended session
		due = due[:0]
	}
}

// heartbeatTick is how often deadlines are checked.
const heartbeatTick = 250 * time.Millisecond

// checkHeartbeats marks nodes down when they miss their deadline (unless
// most of the fleet is disconnected: disrupted), and up again when a node
// marked down is heard from without reconnecting.
func (g *Gateway) checkHeartbeats(ctx context.Context) {
	t := time.NewTicker(heartbeatTick)
	defer t.Stop()
	last := g.cfg.Clock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := g.cfg.Clock()
		snap := g.cfg.Store.Snapshot()
		ttl := g.TTL(snap.NodeCount())
		var changes []state.NodeStatus
		g.mu.Lock()
		if grown := ttl - g.ttl; grown > 0 {
			// A growing fleet gives new sessions longer intervals: the
			// deadlines set with the shorter TTL grow too, or a node told
			// to ping every 20 s would be down after 3.
			for id, d := range g.deadlines {
				g.deadlines[id] = d.Add(grown)
			}
		}
		g.ttl = ttl
		// A stall of this server (GC, a paused VM) is not the agents'
		// silence: move every deadline by the time the checker missed.
		if gap := now.Sub(last); gap > 4*heartbeatTick {
			for id, d := range g.deadlines {
				g.deadlines[id] = d.Add(gap)
			}
			g.logger.Warn("heartbeat checker stalled; extended every node's deadline", "stall", gap)
		}
		var expired []string
		for id, d := range g.deadlines {
			if now.After(d) {
				expired = append(expired, id)
			}
		}
		up, connected, held := len(g.deadlines), len(g.sessions), 0
		if len(expired) > 0 && disrupted(up, connected) {
			held = len(expired)
		} else {
			for _, id := range expired {
				changes = append(changes, state.NodeStatus{ID: id, Up: false})
				delete(g.deadlines, id)
			}
		}
		g.held.Store(int64(held))
		for id := range g.ups {
			_, alive := g.deadlines[id]
			if n := snap.Node(id); alive && n != nil && n.Status == protocol.NodeDown {
				changes = append(changes, state.NodeStatus{ID: id, Up: true, Seen: now.UTC()})
			}
			delete(g.ups, id)
		}
		g.mu.Unlock()
		last = now
		if held > 0 {
			g.warn.Warn("fewer than half of the fleet is connected to the leader: marking no node down until half is",
				"connected", connected, "up", up, "past_deadline", held)
		}
		if len(changes) == 0 {
			continue
		}
		for _, c := range changes {
			if c.Up {
				g.logger.Info("node marked down is heard from again; marking it up", "node", c.ID)
			} else {
				g.logger.Warn("node missed its heartbeat deadline; marking it down", "node", c.ID)
			}
		}
		if _, err := g.cfg.Cluster.Propose(ctx, state.CmdNodeStatus, state.NodeStatusUpdate{Nodes: changes}, nil); err != nil {
			g.logger.Error("commit node status", "error", err)
			// Try again at the next tick: downs as expired deadlines, ups
			// as pending ups.
			g.mu.Lock()
			for _, c := range changes {
				if c.Up {
					g.ups[c.ID] = true
				} else if _, ok := g.deadlines[c.ID]; !ok {
					g.deadlines[c.ID] = now
				}
			}
			g.mu.Unlock()
		}
		// The time the commit took is not a stall: the sessions kept
		// hearing the agents meanwhile. Counted as one, a commit slower
		// than the stall threshold (Raft busy with a placement) would
		// move every deadline by its length at every tick, and a vanished
		// host would not be marked down until Raft caught up.
		last = g.cfg.Clock()
	}
}

// disrupted reports whether the leader marks no node down: a fleet of at
// least disruptionFleet nodes it holds up, fewer than half of them
// connected, is more likely cut off from the leader, or waiting on it (a
// leader change, a leader too busy to take the fleet's redials), than
// dead. Marking it down would move its replicas all at once, the load
// that keeps a busy leader from taking the redials back, and so on. The
// nodes stay up until half of the fleet is connected; those still past
// their deadline then are marked down. Kubernetes' node lifecycle
// controller stops evicting pods when every zone is fully disrupted, for
// the same reason.
func disrupted(up, connected int) bool {
	return up >= disruptionFleet && 2*connected < up
}

// touch pushes a node's heartbeat deadline forward. A node marked down that
// is heard from again (its session survived the deadline) is marked up at
// the next check.
func (g *Gateway) touch(nodeID string) {
	now := g.cfg.Clock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.leading {
		return
	}
	if _, ok := g.deadlines[nodeID]; !ok {
		// Its deadline passed (or it was down when this term began): if
		// the state has it down by the next check, mark it up.
		g.ups[nodeID] = true
	}
	g.deadlines[nodeID] = now.Add(g.ttl)
	l := g.live[nodeID]
	l.LastSeen = now.UTC()
	g.live[nodeID] = l
}

// Live is what the leader last heard from a node.
type Live struct {
	LastSeen time.Time
	Load     *protocol.Metrics
}

func (g *Gateway) setLoad(nodeID string, m *protocol.Metrics) {
	g.mu.Lock()
	l := g.live[nodeID]
	l.Load = m
	g.live[nodeID] = l
	g.mu.Unlock()
}

// NodeLive returns what this server, as leader, last heard from a node.
func (g *Gateway) NodeLive(nodeID string) (Live, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.live[nodeID]
	return l, ok
}

// ServeHTTP accepts an agent's WebSocket (GET /v1/agent/connect).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.connects.Add(1)
	// The agent's pings count as heartbeats, like its messages and its
	// pongs: the TTL (three intervals) runs from its last ping that
	// arrived, not from the last pong of the server's own pings, which may
	// be an interval older.
	var sess atomic.Pointer[session]
	c, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			if s := sess.Load(); s != nil {
				s.pinger.Store(true)
				s.heard()
			}
			return true
		},
	})
	if err != nil {
		g.warn.Warn("agent websocket handshake failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	c.SetReadLimit(protocol.MaxFrameBytes)
	ctx := r.Context()
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	env, err := protocol.ReadMessage(hctx, c)
	cancel()
	if err != nil {
		g.warn.Warn("agent sent no valid hello", "remote", r.RemoteAddr, "error", err)
		c.Close(websocket.StatusPolicyViolation, "hello expected")
		return
	}
	if env.Type != protocol.MsgHello {
		g.refuse(ctx, c, r, protocol.CodeInvalidArgument, "first message must be hello, got "+string(env.Type))
		return
	}
	var hello protocol.Hello
	if err := protocol.DecodeBody(env, &hello); err != nil {
		g.refuse(ctx, c, r, protocol.CodeInvalidArgument, err.Error())
		return
	}
	if hello.ProtocolVersion != protocol.AgentProtocolVersion {
		g.refuse(ctx, c, r, protocol.CodeInvalidArgument, fmt.Sprintf("protocol version %d not supported; this server speaks %d", hello.ProtocolVersion, protocol.AgentProtocolVersion))
		return
	}
	if !g.isLeading() {
		g.redirect(ctx, c)
		return
	}
	node, nodeSecret, err := g.register(ctx, &hello, r)
	if err != nil {
		e := protocol.AsError(err)
		if errors.Is(err, cluster.ErrNotLeader) {
			g.redirect(ctx, c)
			return
		}
		g.refuse(ctx, c, r, e.Code, e.Message)
		return
	}
	s := newSession(g, c, node, r.RemoteAddr, hello.AssignChanges)
	sess.Store(s)
	if !g.addSession(s) {
		g.redirect(ctx, c)
		return
	}
	g.logger.Info("agent connected", "node", node.ID, "name", node.Name, "remote", r.RemoteAddr)
	// The session goes on in a goroutine of its own and this one ends,
	// with its request: the stack that registered the node, as deep as a
	// Raft proposal from under the HTTP server's middleware, is not kept
	// for the session's life, and neither is the request. The hijacked
	// connection's request context would end now; the session ends with
	// its connection or the leadership (Lead).
	go func() {
		defer g.removeSession(s)
		s.run(context.Background(), nodeSecret)
		g.logger.Info("agent disconnected", "node", node.ID, "name", node.Name)
	}()
}

// sessionBuffer is the size of each agent connection's read and write
// buffers. Agents' messages are small (pings, status batches); a larger
// one (an assignment) is read or written through the buffer in a few
// system calls. net/http's are 4 KiB each, which at 10,000 agents is
// 80 MB of the leader's memory.
const sessionBuffer = 512

// smallBuffers is the agent endpoint's ResponseWriter: the connection it
// hijacks comes with buffers of sessionBuffer bytes.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		c.Close()
		return nil, nil, err
	}
	// Bytes the agent sent after its request are in net/http's reader:
	// they go into the new one's buffer, where the WebSocket library
	// looks for them.
	n := brw.Reader.Buffered()
	br := bufio.NewReaderSize(c, sessionBuffer)
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), c), max(n, sessionBuffer))
		if _, err := br.Peek(n); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, sessionBuffer)), nil
}

func (g *Gateway) isLeading() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leading
}

func (g *Gateway) addSession(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.leading {
		return false
	}
	if old := g.sessions[s.node]; old != nil {
		go old.close(websocket.StatusPolicyViolation, "replaced by a newer connection of the same node")
	}
	g.sessions[s.node] = s
	return true
}

func (g *Gateway) removeSession(s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sessions[s.node] == s {
		delete(g.sessions, s.node)
	}
}

func (g *Gateway) session(node string) *session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sessions[node]
}

// CloseNode ends the session of a node (after its secret is revoked).
func (g *Gateway) CloseNode(node string) {
	if s := g.session(node); s != nil {
		s.close(websocket.StatusPolicyViolation, "node revoked")
	}
}

func (g *Gateway) redirect(ctx context.Context, c *websocket.Conn) {
	leader := ""
	if id, _ := g.cfg.Cluster.Leader(); id != "" {
		if m := g.cfg.Store.Snapshot().Server(id); m != nil {
			leader = m.HTTPAddr
		}
	}
	sendError(ctx, c, protocol.CodeNotLeader, "this server is not the leader", protocol.Redirect{Leader: leader})
	c.Close(websocket.StatusTryAgainLater, "not the leader")
}

func (g *Gateway) refuse(ctx context.Context, c *websocket.Conn, r *http.Request, code protocol.Code, msg string) {
	g.warn.Warn("agent refused", "remote", r.RemoteAddr, "code", code, "reason", msg)
	sendError(ctx, c, code, msg, nil)
	c.Close(websocket.StatusPolicyViolation, protocol.Truncate(msg, 120))
}

// register authenticates a hello and records the node. It returns the node
// and, for a node registering for the first time, its new secret.
func (g *Gateway) register(ctx context.Context, h *protocol.Hello, r *http.Request) (*protocol.Node, string, error) {
	if err := h.Validate(); err != nil {
		return nil, "", err
	}
	snap := g.cfg.Store.Snapshot()
	var nodeSecret, hash string
	id := h.NodeID
	if h.NodeID != "" && h.NodeSecret != "" {
		cred := snap.Credential(secret.Hash(h.NodeSecret))
		n := snap.Node(h.NodeID)
		if cred == nil || cred.Kind != state.CredentialNode || cred.Owner != h.NodeID || n == nil || n.Revoked {
			return nil, "", protocol.Errorf(protocol.CodeUnauthenticated, "node %s: unknown or revoked node secret", h.NodeID)
		}
	} else {
		if err := g.checkJoinToken(snap, h.JoinToken); err != nil {
			return nil, "", err
		}
		id = uid.New()
		nodeSecret = secret.New()
		hash = secret.Hash(nodeSecret)
	}
	n := protocol.Node{
		ID: id, Name: h.Name, Region: h.Region, Labels: h.Labels,
		Resources: h.Resources, Facts: h.Facts, PortRange: h.PortRange, Address: h.Address,
	}
	if n.Address == "" {
		// The address the agent dials from is where the servers, and so
		// most likely the gateways, reach it.
		n.Address, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	n.Facts.AgentVersion = h.Version
	// A node that redials (a leader change, a dropped connection) and is
	// up in the state as it describes itself costs no Raft entry: after a
	// leader change that is the whole fleet at once.
	if old := snap.Node(id); hash != "" || old == nil || old.Status == protocol.NodeDown || !sameNode(old, &n) {
		if _, err := g.cfg.Cluster.Propose(ctx, state.CmdNodeRegister, state.NodeRegister{Node: n, SecretHash: hash}, nil); err != nil {
			return nil, "", err
		}
		snap = g.cfg.Store.Snapshot()
	}
	g.touch(id)
	// The agent's replicas as it sees them on connect are its first report.
	if len(h.Replicas) > 0 {
		g.batch.add(id, h.Replicas, nil)
		g.kick()
	}
	return snap.Node(id), nodeSecret, nil
}

// sameNode reports whether a node's hello describes it as the state has
// it. What the host reports as free and its CPU's current clock change
// from one hello to the next and change nothing the servers decide; the
// load that matters comes with status messages.
func sameNode(old, n *protocol.Node) bool {
	capacity := func(r protocol.NodeResources) protocol.NodeResources {
		r.FreeCPUMillis, r.FreeMemoryMB, r.FreeDiskMB = 0, 0, 0
		return r
	}
	of, nf := old.Facts, n.Facts
	of.CPUMHz, nf.CPUMHz = 0, 0
	return old.Name == n.Name && old.Region == n.Region && maps.Equal(old.Labels, n.Labels) &&
		capacity(old.Resources) == capacity(n.Resources) && of == nf &&
		old.PortRange == n.PortRange && old.Address == n.Address
}

// checkJoinToken checks the join token of an agent registering: the one of
// -agent-join-token or the one the ACL bootstrap made. With neither, any
// agent may register, unless RequireJoinToken.
func (g *Gateway) checkJoinToken(snap *state.Snapshot, presented string) error {
	var want []string // hashes of the good secrets
	if g.cfg.JoinToken != "" {
		if jt, err := secret.ParseJoinToken(g.cfg.JoinToken); err == nil {
			want = append(want, secret.Hash(jt.Secret))
		}
	}
	if m := snap.Meta(state.MetaJoinTokenHash); m != nil && m.Value != "" {
		want = append(want, m.Value)
	}
	if len(want) == 0 {
		if g.cfg.RequireJoinToken {
			return protocol.Errorf(protocol.CodeUnauthenticated, "this cluster has no agent join token yet: bootstrap its ACLs (drover acl bootstrap) or start the servers with -agent-join-token")
		}
		return nil
	}
	if presented == "" {
		return protocol.Errorf(protocol.CodeUnauthenticated, "a join token or a node secret is required")
	}
	jt, err := secret.ParseJoinToken(presented)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnauthenticated, "invalid join token: %v", err)
	}
	got := secret.Hash(jt.Secret)
	ok := false
	for _, w := range want {
		ok = secret.Equal(got, w) || ok
	}
	if !ok {
		return protocol.Errorf(protocol.CodeUnauthenticated, "invalid join token")
	}
	return nil
}

func (g *Gateway) kick() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Connects counts the agents' connection attempts to this server since it
// started, refused ones included: a number that climbs while Sessions
// stays level is agents redialling.
func (g *Gateway) Connects() int64 { return g.connects.Load() }

// Held is how many nodes past their heartbeat deadline the leader keeps up
// because fewer than half of the fleet is connected to it.
func (g *Gateway) Held() int64 { return g.held.Load() }

// Assigned counts the replicas this server has sent agents in
// assignments (a whole set counts each of its replicas, changes each
// replica added or changed) since it started.
func (g *Gateway) Assigned() int64 { return g.assigned.Load() }

// Sessions counts the agents connected to this server.
func (g *Gateway) Sessions() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions)
}
