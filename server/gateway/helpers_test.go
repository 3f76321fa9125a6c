package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/gateway"
	"github.com/drover-dev/drover/server/state"
)

// wait bounds every wait of these tests for something that should happen.
const wait = 10 * time.Second

// testEnv is an in-process cluster of real servers (clustertest) whose
// gateways the tests' agents dial. The scheduler does not run: tests place
// replicas themselves.
type testEnv struct {
	t    *testing.T
	c    *clustertest.Cluster
	logs *logSink
}

// envConfig configures newEnv; Server is the template of every server's
// configuration.
type envConfig struct {
	Servers int
	Server  server.Config
}

func newEnv(t *testing.T, cfg envConfig) *testEnv {
	t.Helper()
	if cfg.Servers == 0 {
		cfg.Servers = 1
	}
	e := &testEnv{t: t, logs: &logSink{t: t}}
	t.Cleanup(e.logs.close)
	cfg.Server.NoScheduler = true
	cfg.Server.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: e.logs})
	e.c = clustertest.New(t, clustertest.Config{Servers: cfg.Servers, Server: cfg.Server})
	e.leader()
	return e
}

// gws returns a server's gateway.
func gws(s *clustertest.Member) *gateway.Gateway { return s.Server.Gateway() }

// leader waits until one server leads and its gateway accepts agents, and
// returns it.
func (e *testEnv) leader() *clustertest.Member {
	e.t.Helper()
	var leader *clustertest.Member
	testwait.Eventually(e.t, wait, "a leading gateway", func() error {
		leader = e.c.Leader()
		if !gateway.IsLeading(gws(leader)) {
			return fmt.Errorf("%s leads but its gateway does not", leader.ID)
		}
		return nil
	})
	return leader
}

// gw returns the leader's gateway.
func (e *testEnv) gw() *gateway.Gateway { return gws(e.leader()) }

// url returns the leader's base URL.
func (e *testEnv) url() string { return e.leader().URL }

func (e *testEnv) snap() *state.Snapshot { return e.leader().Store.Snapshot() }

// node returns a node as the leader's state has it.
func (e *testEnv) node(id string) *protocol.Node {
	e.t.Helper()
	n := e.snap().Node(id)
	if n == nil {
		e.t.Fatalf("node %s is not in the state", id)
	}
	return n
}

// waitNodeStatus waits until the leader's state has node id in status.
func (e *testEnv) waitNodeStatus(id, status string) {
	e.t.Helper()
	testwait.Eventually(e.t, wait, "node "+id+" to be "+status, func() error {
		if got := e.node(id).Status; got != status {
			return fmt.Errorf("status %s", got)
		}
		return nil
	})
}

// instance creates a tenant's instance at version 1 with one replica
// wanted, and returns its id. The scheduler does not run in these tests:
// replicas are placed with place.
func (e *testEnv) instance(tenant, name string) string {
	e.t.Helper()
	if e.snap().Tenant(tenant) == nil {
		e.c.MustPropose(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: tenant}, Create: true})
	}
	spec := protocol.Spec{Version: "1.0.0", Command: []string{"/opt/app/bin/app", "--port", "${PORT}"}, Ports: []string{"http"}}.WithDefaults()
	e.c.MustPropose(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{
		Tenant: tenant, Name: name, Environment: protocol.DefaultEnvironment, Replicas: 1, Spec: spec}})
	return protocol.InstanceID(tenant, name)
}

// place commits a plan that puts replicas of an instance on a node.
func (e *testEnv) place(instanceID, node string, ids ...string) uint64 {
	e.t.Helper()
	tenant, name, _ := protocol.SplitInstanceID(instanceID)
	var rs []*protocol.Replica
	for _, id := range ids {
		rs = append(rs, &protocol.Replica{ID: id, Tenant: tenant, Instance: name, Node: node, Version: 1})
	}
	return e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: instanceID, Place: rs})
}

// stopReplicas commits a plan that stops replicas of an instance.
func (e *testEnv) stopReplicas(instanceID string, ids ...string) uint64 {
	e.t.Helper()
	var stops []state.ReplicaStop
	for _, id := range ids {
		stops = append(stops, state.ReplicaStop{ID: id, Message: "test"})
	}
	return e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: instanceID, Stop: stops})
}

// register connects an agent to the leader with a new hello and returns it
// with its welcome.
func (e *testEnv) register(name string) (*testAgent, protocol.Welcome) {
	e.t.Helper()
	return e.connect(e.url(), testHello(name))
}

// connect dials url, sends h and returns the agent, reading, with the
// welcome it got.
func (e *testEnv) connect(url string, h protocol.Hello) (*testAgent, protocol.Welcome) {
	e.t.Helper()
	a := dialAgent(e.t, url)
	a.send(protocol.MsgHello, h)
	a.startReading()
	env := a.nextAny()
	if env.Type != protocol.MsgWelcome {
		e.t.Fatalf("hello answered with %s %s, want welcome", env.Type, env.Body)
	}
	return a, clustertest.Decode[protocol.Welcome](e.t, env)
}

// connectSilent dials url, sends h and reads the welcome, and then reads
// nothing more: it answers no pings until startReading.
func (e *testEnv) connectSilent(url string, h protocol.Hello) (*testAgent, protocol.Welcome) {
	e.t.Helper()
	a := dialAgent(e.t, url)
	a.send(protocol.MsgHello, h)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, b, err := a.ws.Read(ctx)
	if err != nil {
		e.t.Fatalf("read welcome: %v", err)
	}
	env, err := protocol.DecodeMessage(b)
	if err != nil || env.Type != protocol.MsgWelcome {
		e.t.Fatalf("hello answered with %s (%v), want welcome", b, err)
	}
	return a, clustertest.Decode[protocol.Welcome](e.t, env)
}

// testHello is a valid first hello of a new node.
func testHello(name string) protocol.Hello {
	return protocol.Hello{
		ProtocolVersion: protocol.AgentProtocolVersion, Name: name, Version: "1.2.3", Region: "eu-west",
		Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 8192, FreeCPUMillis: 4000, FreeMemoryMB: 8192},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 21000},
	}
}

// rejoin is the hello of a node that registered before.
func rejoin(name string, w protocol.Welcome, secret string) protocol.Hello {
	h := testHello(name)
	h.NodeID, h.NodeSecret = w.NodeID, secret
	return h
}

// testAgent is the agent's end of the channel, written here so that a test
// controls exactly what it sends, when it reads and how it goes away.
type testAgent struct {
	t  *testing.T
	ws *websocket.Conn

	mu      sync.Mutex
	msgs    []*protocol.Envelope // read, not yet taken
	arrived chan struct{}        // signalled on each message
	done    chan struct{}        // closed when the reader ends
	err     error                // why the reader ended
	reading atomic.Bool
}

func dialAgent(t *testing.T, base string) *testAgent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/agent/connect", nil)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	a := &testAgent{t: t, ws: ws, arrived: make(chan struct{}, 1), done: make(chan struct{})}
	t.Cleanup(func() {
		a.ws.CloseNow()
		if a.reading.Load() {
			<-a.done
		}
	})
	return a
}

// startReading reads every message into a queue from now on. Reading is
// also what answers the server's pings: an agent that does not read is
// silent.
func (a *testAgent) startReading() {
	if a.reading.Swap(true) {
		return
	}
	go func() {
		defer close(a.done)
		for {
			_, b, err := a.ws.Read(context.Background())
			if err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
				return
			}
			env, err := protocol.DecodeMessage(b)
			if err != nil {
				a.t.Errorf("server sent an invalid message %s: %v", b, err)
				continue
			}
			a.mu.Lock()
			a.msgs = append(a.msgs, env)
			a.mu.Unlock()
			select {
			case a.arrived <- struct{}{}:
			default:
			}
		}
	}()
}

func (a *testAgent) send(typ protocol.MessageType, body any) {
	a.t.Helper()
	if err := a.trySend(typ, body); err != nil {
		a.t.Fatalf("send %s: %v", typ, err)
	}
}

func (a *testAgent) trySend(typ protocol.MessageType, body any) error {
	b, err := protocol.EncodeMessage(typ, "", body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return a.ws.Write(ctx, websocket.MessageText, b)
}

// take removes and returns the first queued message that match accepts.
func (a *testAgent) take(match func(*protocol.Envelope) bool) *protocol.Envelope {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, m := range a.msgs {
		if match(m) {
			a.msgs = append(a.msgs[:i], a.msgs[i+1:]...)
			return m
		}
	}
	return nil
}

func (a *testAgent) ended() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// await waits up to d for a message match accepts; nil if none came.
func (a *testAgent) await(d time.Duration, match func(*protocol.Envelope) bool) *protocol.Envelope {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if m := a.take(match); m != nil {
			return m
		}
		if a.ended() {
			// The reader queued everything before it ended.
			return a.take(match)
		}
		select {
		case <-a.arrived:
		case <-a.done:
		case <-deadline.C:
			return a.take(match)
		}
	}
}

func ofType(typ protocol.MessageType) func(*protocol.Envelope) bool {
	return func(e *protocol.Envelope) bool { return e.Type == typ }
}

// next returns the next message of type typ, failing the test when none
// comes.
func (a *testAgent) next(typ protocol.MessageType) *protocol.Envelope {
	a.t.Helper()
	m := a.await(wait, ofType(typ))
	if m == nil {
		a.t.Fatalf("no %s message within %s; connection ended: %v (%v); queued: %s", typ, wait, a.ended(), a.readErr(), a.queued())
	}
	return m
}

// nextAny returns the next message of any type.
func (a *testAgent) nextAny() *protocol.Envelope {
	a.t.Helper()
	m := a.await(wait, func(*protocol.Envelope) bool { return true })
	if m == nil {
		a.t.Fatalf("no message within %s; connection ended: %v (%v)", wait, a.ended(), a.readErr())
	}
	return m
}

// none fails the test when a message of type typ arrives within d.
func (a *testAgent) none(typ protocol.MessageType, d time.Duration) {
	a.t.Helper()
	if m := a.await(d, ofType(typ)); m != nil {
		a.t.Fatalf("unexpected %s message: %s", typ, m.Body)
	}
}

func (a *testAgent) queued() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, m := range a.msgs {
		out = append(out, string(m.Type)+" "+string(m.Body))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func (a *testAgent) readErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// closedBy waits until the server ends the connection and returns the
// close status it sent (-1 for none).
func (a *testAgent) closedBy() websocket.CloseError {
	a.t.Helper()
	select {
	case <-a.done:
	case <-time.After(wait):
		a.t.Fatalf("the server did not close the connection within %s; queued: %s", wait, a.queued())
	}
	var ce websocket.CloseError
	if !errors.As(a.readErr(), &ce) {
		ce.Code = -1
	}
	return ce
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

// logSink keeps the gateways' log lines, so that a test can wait for one,
// and copies them to t.Log until the test ends.
type logSink struct {
	t      *testing.T
	mu     sync.Mutex
	lines  []string
	closed bool
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := strings.TrimRight(string(p), "\n")
	l.lines = append(l.lines, line)
	if !l.closed {
		l.t.Log(line)
	}
	return len(p), nil
}

func (l *logSink) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// count returns how many lines contain s.
func (l *logSink) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// offsetClock is a gateway clock the test can move forward at once, as
// when a paused process resumes.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func (c *offsetClock) jump(d time.Duration) { c.off.Add(int64(d)) }

// stayFor fails the test when cond returns an error at any time during d.
func stayFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
