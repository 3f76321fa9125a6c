package gateway

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// session is one connected agent on the leader.
type session struct {
	g      *Gateway
	c      *websocket.Conn
	node   string
	remote string
	// changes: the agent takes assignments as changes (Hello.AssignChanges).
	changes bool

	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	logs map[string]*logStream // open log streams by id

	// acked is the highest status seq whose reports are committed; ackCh
	// wakes the goroutine that tells the agent, so the batcher never waits
	// on a slow connection.
	acked atomic.Uint64
	ackCh chan struct{}
	// spoke is set whenever the agent sends something of its own (a
	// message or a ping): the server pings only an agent that was silent
	// for a sweep (two sweeps in a row for an agent that pings: pinger),
	// so that a fleet's heartbeats are the agents' pings alone, not those
	// and the server's. quiet counts those sweeps (written by the sweep's
	// goroutine only).
	spoke  atomic.Bool
	pinger atomic.Bool
	quiet  int
	// probes are the server's pings in flight (one at most).
	probes  sync.WaitGroup
	probing atomic.Bool
	// told is the heartbeat interval the agent was told last (written by
	// write); silent is set by the sweep when the agent is to be pinged;
	// tickCh wakes write to act on either. Only write pings (probe), so
	// that no ping starts once the session has ended.
	told   atomic.Int64
	silent atomic.Bool
	tickCh chan struct{}
	// slot is the session's place in the sweep's rounds (Gateway.sweep).
	slot uint32
}

// logStream is one log stream in flight. Its data channel is never closed:
// done is, so a late chunk can never be sent on a closed channel.
type logStream struct {
	data chan protocol.LogData
	done chan struct{}
	once sync.Once
}

func (l *logStream) end() { l.once.Do(func() { close(l.done) }) }

func newSession(g *Gateway, c *websocket.Conn, node *protocol.Node, remote string, changes bool) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{g: g, c: c, node: node.ID, remote: remote, changes: changes, ctx: ctx, cancel: cancel,
		logs: map[string]*logStream{}, ackCh: make(chan struct{}, 1), tickCh: make(chan struct{}, 1),
		slot: rand.Uint32()}
	// Its hello counts: a session is not silent until an interval without
	// a word (after a leader change every agent reconnects at once, and
	// its first ping comes an interval after its welcome).
	s.spoke.Store(true)
	return s
}

// closeWait bounds how long closing a session waits for the agent to
// answer its close frame.
const closeWait = time.Second

// close ends the session with a close frame that tells the agent why. The
// frame goes first: cancelling ends the session's read, which drops the
// connection at once, often before the frame is written. An agent that
// does not answer is cut off after closeWait.
func (s *session) close(code websocket.StatusCode, reason string) {
	t := time.AfterFunc(closeWait, s.cancel)
	defer t.Stop()
	s.c.Close(code, reason)
	s.cancel()
}

// run serves the session until the connection ends. Two goroutines
// serve it, whatever the fleet's size: this one reads, and write sends.
func (s *session) run(parent context.Context, secret string) {
	defer s.cancel()
	stop := context.AfterFunc(parent, s.cancel)
	defer stop()
	interval := s.g.interval()
	welcome := protocol.Welcome{NodeID: s.node, NodeSecret: secret,
		HeartbeatInterval: protocol.Duration(interval), Servers: s.servers()}
	if err := s.send(protocol.MsgWelcome, welcome); err != nil {
		s.g.warn.Warn("send welcome", "node", s.node, "error", err)
		return
	}
	written := make(chan struct{})
	go func() { defer close(written); s.write(interval) }()
	s.read()
	s.cancel()
	s.c.CloseNow()
	<-written
	s.probes.Wait()
	s.mu.Lock()
	for id, l := range s.logs {
		l.end()
		delete(s.logs, id)
	}
	s.mu.Unlock()
}

func (s *session) servers() []string {
	var out []string
	for _, m := range s.g.cfg.Store.Snapshot().Servers() {
		out = append(out, m.HTTPAddr)
	}
	return out
}

func (s *session) send(typ protocol.MessageType, body any) error {
	return protocol.WriteMessage(s.ctx, s.c, writeTimeout, typ, body)
}

// read handles the agent's messages until the connection fails.
func (s *session) read() {
	for {
		env, err := protocol.ReadMessage(s.ctx, s.c)
		if err != nil {
			if s.ctx.Err() == nil {
				s.g.logger.Debug("agent read ended", "node", s.node, "error", err)
			}
			return
		}
		s.heard()
		switch env.Type {
		case protocol.MsgStatus:
			var st protocol.Status
			err := protocol.DecodeBody(env, &st)
			if err == nil {
				err = st.Validate()
			}
			if err != nil {
				s.g.warn.Warn("invalid status from agent", "node", s.node, "error", err)
				sendError(s.ctx, s.c, protocol.CodeInvalidArgument, err.Error(), nil)
				return
			}
			if st.Metrics != nil {
				s.g.setLoad(s.node, st.Metrics)
			}
			if len(st.Replicas) == 0 {
				continue // load alone lives in the leader's memory: nothing to ack
			}
			seq := st.Seq
			s.g.batch.add(s.node, st.Replicas, func() { s.ack(seq) })
			s.g.kick()
		case protocol.MsgLogData:
			var d protocol.LogData
			if err := protocol.DecodeBody(env, &d); err != nil {
				continue
			}
			s.deliverLog(d)
		case protocol.MsgError:
			s.g.warn.Warn("agent reported an error", "node", s.node, "body", string(env.Body))
			return
		default:
			s.g.warn.Warn("unexpected message from agent", "node", s.node, "type", env.Type)
		}
	}
}

// ack records that status seq is committed. Batches commit in the order
// the session read them, so the highest seq acked covers all before it.
func (s *session) ack(seq uint64) {
	for {
		cur := s.acked.Load()
		if seq <= cur || s.acked.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case s.ackCh <- struct{}{}:
	default:
	}
}

// heard records that the agent sent something of its own.
func (s *session) heard() {
	s.spoke.Store(true)
	s.g.touch(s.node)
}

// write sends the agent what it must know, from one goroutine: the node's
// desired set whenever it changes (whole, or only what changed for an
// agent that asked for changes), which status messages are committed, and
// a new heartbeat interval when the gateway's sweep says so (sweep).
//
// The desired set changes when a replica placed on the node changes, or
// the flags of one of its instances (Store.NodeWatch). A spec change
// reaches a node as new replicas of a new version; the other fields of an
// assignment but the flags (and the plan and release told with them) are
// fixed for a replica's life, so a replica has changed when its version,
// its ports, its flags, its plan or its release have (replicaKey).
func (s *session) write(told time.Duration) {
	s.told.Store(int64(told))
	var sent map[string]string // what the agent has: replicaKey by id; nil before the first set
	var ackSent uint64
	for s.ctx.Err() == nil {
		changed := s.g.cfg.Store.NodeWatch(s.node)
		snap := s.g.cfg.Store.Snapshot()
		if a, now, ok := nextAssignment(Desired(snap, s.node), sent, s.changes); ok {
			a.Generation = snap.Index(state.TableReplicas, state.TableInstances, state.TableFlags, state.TableOverrides)
			if err := s.send(protocol.MsgAssign, a); err != nil {
				s.c.CloseNow()
				return
			}
			s.g.assigned.Add(int64(len(a.Replicas)))
			sent = now
		}
	wait:
		for {
			select {
			case <-changed:
				break wait
			case <-s.ctx.Done():
				return
			case <-s.ackCh:
				if seq := s.acked.Load(); seq > ackSent {
					if err := s.send(protocol.MsgAck, protocol.Ack{Seq: seq}); err != nil {
						s.c.CloseNow()
						return
					}
					ackSent = seq
				}
			case <-s.tickCh:
				if iv := s.g.interval(); iv != time.Duration(s.told.Load()) {
					if err := s.send(protocol.MsgHeartbeat, protocol.Heartbeat{Interval: protocol.Duration(iv)}); err != nil {
						s.c.CloseNow()
						return
					}
					s.told.Store(int64(iv))
				}
				if s.silent.Swap(false) {
					s.probe(time.Duration(s.told.Load()))
				}
			}
		}
	}
}

// tick is the gateway's sweep (Gateway.sweep) of this session, once an
// interval: it wakes write to tell the agent a new interval, or to ping an
// agent that said nothing since the last sweep; an agent that spoke and
// has its interval costs no wake. For an agent that pings, one silent
// sweep is no sign: its ping a little late (a busy leader reads late)
// leaves one sweep without a word and the next with two, and pinging it
// then doubled the fleet's heartbeats exactly when the leader was
// busiest. It is pinged after two silent sweeps in a row, which leave
// the ping the last of the three intervals of its node's TTL. An agent
// that only answers pings is pinged after one.
func (s *session) tick(iv time.Duration) {
	if s.spoke.Swap(false) {
		s.quiet = 0
	} else {
		s.quiet++
	}
	silent := s.quiet >= 1 && !s.pinger.Load() || s.quiet >= 2
	if silent {
		s.silent.Store(true)
	}
	if silent || time.Duration(s.told.Load()) != iv {
		select {
		case s.tickCh <- struct{}{}:
		default:
		}
	}
}

// probe pings an agent that was silent (tick), unless a ping is in
// flight already; a pong missing for two intervals ends the session, so
// that a half-open connection is noticed.
func (s *session) probe(iv time.Duration) {
	if !s.probing.CompareAndSwap(false, true) {
		return
	}
	s.probes.Add(1)
	go func() {
		defer s.probes.Done()
		defer s.probing.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, 2*iv)
		err := s.c.Ping(ctx)
		cancel()
		if err != nil {
			if s.ctx.Err() == nil {
				s.g.warn.Warn("agent did not answer ping; closing", "node", s.node, "error", err)
				s.c.CloseNow()
			}
			return
		}
		s.g.touch(s.node)
	}()
}

// nextAssignment returns the assignment that takes an agent that has sent
// (replicaKey by id; nil: nothing yet) to the desired set a, and what it
// has then; ok is false when it has a already. The session's first
// assignment is the whole set, and so is every one to an agent that did
// not ask for changes.
func nextAssignment(a protocol.Assign, sent map[string]string, changes bool) (msg protocol.Assign, now map[string]string, ok bool) {
	now = make(map[string]string, len(a.Replicas))
	diff := []protocol.AssignedReplica{}
	for _, r := range a.Replicas {
		k := replicaKey(&r)
		now[r.ID] = k
		if old, ok := sent[r.ID]; !ok || old != k {
			diff = append(diff, r)
		}
	}
	var removed []string
	for id := range sent {
		if _, ok := now[id]; !ok {
			removed = append(removed, id)
		}
	}
	switch {
	case sent == nil || !changes && (len(diff) > 0 || len(removed) > 0):
		return a, now, true
	case len(diff) == 0 && len(removed) == 0:
		return msg, sent, false
	}
	slices.Sort(removed)
	return protocol.Assign{Changes: true, Replicas: diff, Removed: removed}, now, true
}

// replicaKey identifies what an agent is told of a replica that can change
// while it is assigned: its version, ports, flags, and the plan and
// release told with its flags.
func replicaKey(r *protocol.AssignedReplica) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(r.Version, 10))
	b.WriteByte(' ')
	b.WriteString(r.Plan)
	b.WriteByte(' ')
	b.WriteString(r.Release)
	names := slices.Sorted(maps.Keys(r.Ports))
	for _, n := range names {
		b.WriteByte(' ')
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(r.Ports[n]))
	}
	for _, f := range r.Flags {
		b.WriteByte(' ')
		b.WriteString(f.Key)
		b.WriteByte('=')
		b.WriteString(f.Source)
		b.WriteByte(':')
		b.Write(f.Value)
	}
	return b.String()
}

// Desired returns the replicas a node must run: those placed on it that the
// scheduler wants running, each with the spec of its version.
func Desired(snap *state.Snapshot, node string) protocol.Assign {
	a := protocol.Assign{Replicas: []protocol.AssignedReplica{}}
	flags := map[string][]protocol.ResolvedFlag{} // by instance: resolved once
	for _, r := range snap.NodeReplicas(node) {
		if r.Desired != protocol.DesiredRun {
			continue
		}
		id := protocol.InstanceID(r.Tenant, r.Instance)
		in := snap.Instance(id)
		v := snap.Version(id, r.Version)
		if in == nil || v == nil {
			continue
		}
		fl, ok := flags[id]
		if !ok {
			fl = snap.InstanceFlags(in)
			flags[id] = fl
		}
		a.Replicas = append(a.Replicas, protocol.AssignedReplica{
			ID: r.ID, Tenant: r.Tenant, Instance: r.Instance, Environment: in.Environment,
			Version: r.Version, Spec: v.Spec, Ports: r.Ports,
			Plan: in.Plan, Release: in.Release, Flags: fl,
		})
	}
	return a
}

// logStall is how long a log chunk may wait for a slow HTTP reader before
// the stream is cut: the session's reader must not wait, or pongs go
// unread and the node misses its deadline.
const logStall = time.Second

func (s *session) deliverLog(d protocol.LogData) {
	s.mu.Lock()
	l := s.logs[d.Stream]
	s.mu.Unlock()
	if l == nil {
		return
	}
	select {
	case l.data <- d:
		return
	case <-l.done:
		return
	default:
	}
	t := time.NewTimer(logStall)
	defer t.Stop()
	select {
	case l.data <- d:
	case <-l.done:
	case <-s.ctx.Done():
	case <-t.C:
		s.endLog(d.Stream)
	}
}

func (s *session) openLog(id string) *logStream {
	l := &logStream{data: make(chan protocol.LogData, 64), done: make(chan struct{})}
	s.mu.Lock()
	s.logs[id] = l
	s.mu.Unlock()
	return l
}

func (s *session) endLog(id string) {
	s.mu.Lock()
	if l, ok := s.logs[id]; ok {
		l.end()
		delete(s.logs, id)
	}
	s.mu.Unlock()
}

// sendError sends an error message; the caller then closes the
// connection, so a failure to send changes nothing.
func sendError(ctx context.Context, c *websocket.Conn, code protocol.Code, msg string, body any) {
	e, err := protocol.NewChannelError(code, msg, body)
	if err != nil {
		return
	}
	_ = protocol.WriteMessage(ctx, c, 2*time.Second, protocol.MsgError, e)
}
