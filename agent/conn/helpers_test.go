package conn_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/agent/conn"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/gateway"
)

// wait bounds every wait of these tests for something that should happen.
const wait = 10 * time.Second

func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	testwait.Eventually(t, wait, what, cond)
}

// logger sends a component's log lines to t.Log until the test ends.
func logger(t *testing.T, name string) hclog.Logger { return clustertest.TestLogger(t, name) }

// servers is an in-process cluster of real servers (clustertest), whose
// gateways the agent's client dials. The scheduler does not run: tests
// place replicas themselves.
type servers struct {
	t *testing.T
	c *clustertest.Cluster
}

func newServers(t *testing.T, n int, cfg server.Config) *servers {
	t.Helper()
	cfg.NoScheduler = true
	e := &servers{t: t, c: clustertest.New(t, clustertest.Config{Servers: n, Server: cfg})}
	e.leader()
	return e
}

// gw returns a server's gateway.
func gw(s *clustertest.Member) *gateway.Gateway { return s.Server.Gateway() }

// leader waits until a server leads and its gateway takes agents.
func (e *servers) leader() *clustertest.Member {
	e.t.Helper()
	var leader *clustertest.Member
	eventually(e.t, "a leading gateway", func() error {
		leader = e.c.Leader()
		return probe(leader.URL)
	})
	return leader
}

// probe says an invalid hello to a gateway: one that leads refuses it as
// invalid, one that does not answers not_leader.
func probe(base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, base+"/v1/agent/connect", nil)
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	h := testHello()
	h.Name = ""
	b, _ := protocol.EncodeMessage(protocol.MsgHello, "", h)
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return err
	}
	_, b, err = ws.Read(ctx)
	if err != nil {
		return err
	}
	if strings.Contains(string(b), string(protocol.CodeNotLeader)) {
		return fmt.Errorf("gateway does not lead yet")
	}
	return nil
}

// recorder is the agent's side of what the servers send.
type recorder struct {
	mu       sync.Mutex
	events   []string // "welcome", "assign", in order
	welcomes []protocol.Welcome
	assigns  []protocol.Assign
	id       string
	secret   string
	// logs, when set, serves log requests.
	logs func(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error)
}

func (r *recorder) Welcome(w protocol.Welcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "welcome")
	r.welcomes = append(r.welcomes, w)
	r.id = w.NodeID
	if w.NodeSecret != "" {
		r.secret = w.NodeSecret
	}
}

func (r *recorder) Assign(_ context.Context, a protocol.Assign) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "assign")
	r.assigns = append(r.assigns, a)
}

func (r *recorder) Logs(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error) {
	if r.logs != nil {
		r.logs(ctx, req, send)
	}
}

// hello is the agent's hello: its identity once it has one, as the real
// agent keeps it on disk.
func (r *recorder) hello() protocol.Hello {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := testHello()
	h.NodeID, h.NodeSecret = r.id, r.secret
	return h
}

func (r *recorder) welcomeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.welcomes)
}

func (r *recorder) nodeID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.id
}

func testHello() protocol.Hello {
	return protocol.Hello{
		ProtocolVersion: protocol.AgentProtocolVersion, Name: "host-a", Version: "1.2.3",
		Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 8192, FreeCPUMillis: 4000, FreeMemoryMB: 8192},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 21000},
	}
}

// run starts a client and stops it when the test ends; Run must return
// then.
func run(t *testing.T, cfg conn.Config) (*conn.Client, *recorder) {
	t.Helper()
	c, rec, _ := start(t, cfg)
	return c, rec
}

// start starts a client and returns stop, which ends its Run and returns
// what Run returned; the test's end stops it too. The handler is cfg's
// when it is a *recorder.
func start(t *testing.T, cfg conn.Config) (*conn.Client, *recorder, func() error) {
	t.Helper()
	rec, _ := cfg.Handler.(*recorder)
	if rec == nil {
		rec = &recorder{}
		cfg.Handler = rec
	}
	if cfg.Hello == nil {
		cfg.Hello = rec.hello
	}
	if cfg.Logger == nil {
		cfg.Logger = logger(t, "agent")
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 50 * time.Millisecond
	}
	c, err := conn.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(wait):
				runErr = fmt.Errorf("Run did not return within %s of its context ending", wait)
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return c, rec, stop
}

// fakeServer is a WebSocket server written for a test, for behaviour that
// is purely the client's: the test drives each connection (or serve does).
type fakeServer struct {
	t     *testing.T
	srv   *httptest.Server
	conns chan *fakeConn
	stop  chan struct{}
	serve func(*fakeConn) // when set, serves every connection itself
	busy  atomic.Int32    // dials still to refuse with 503, as a busy server

	mu    sync.Mutex
	dials []time.Time
	pings []time.Time // pings received, over all connections
}

func newFakeServer(t *testing.T, serve func(*fakeConn)) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, conns: make(chan *fakeConn, 64), stop: make(chan struct{}), serve: serve}
	var handlers sync.WaitGroup
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/agent/connect" {
			http.NotFound(w, r)
			return
		}
		handlers.Add(1)
		defer handlers.Done()
		f.mu.Lock()
		f.dials = append(f.dials, time.Now())
		f.mu.Unlock()
		if f.busy.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OnPingReceived: func(context.Context, []byte) bool {
			f.mu.Lock()
			f.pings = append(f.pings, time.Now())
			f.mu.Unlock()
			return true
		}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(protocol.MaxFrameBytes)
		fc := &fakeConn{t: t, ws: ws, done: make(chan struct{})}
		if f.serve != nil {
			f.serve(fc)
			return
		}
		f.conns <- fc
		select {
		case <-fc.done:
		case <-f.stop:
		}
	}))
	t.Cleanup(func() {
		close(f.stop)
		f.srv.Close()
		handlers.Wait()
	})
	return f
}

// accept returns the next connection, for the test to drive.
func (f *fakeServer) accept() *fakeConn {
	f.t.Helper()
	select {
	case fc := <-f.conns:
		return fc
	case <-time.After(wait):
		f.t.Fatalf("no connection within %s", wait)
		return nil
	}
}

func (f *fakeServer) pingTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.pings...)
}

func (f *fakeServer) dialTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.dials...)
}

// fakeConn is one connection of a fakeServer.
type fakeConn struct {
	t    *testing.T
	ws   *websocket.Conn
	done chan struct{}
	once sync.Once
}

// finish ends the connection without a close frame.
func (fc *fakeConn) finish() {
	fc.once.Do(func() { close(fc.done) })
	fc.ws.CloseNow()
}

func (fc *fakeConn) read() (*protocol.Envelope, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, b, err := fc.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeMessage(b)
}

// next returns the next message, of type typ.
func (fc *fakeConn) next(typ protocol.MessageType) *protocol.Envelope {
	fc.t.Helper()
	env, err := fc.read()
	if err != nil {
		fc.t.Fatalf("read %s: %v", typ, err)
	}
	if env.Type != typ {
		fc.t.Fatalf("got %s %s, want %s", env.Type, env.Body, typ)
	}
	return env
}

func (fc *fakeConn) send(typ protocol.MessageType, body any) error {
	b, err := protocol.EncodeMessage(typ, "", body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return fc.ws.Write(ctx, websocket.MessageText, b)
}

// welcome reads the hello and answers it.
func (fc *fakeConn) welcome(interval time.Duration, servers ...string) error {
	env, err := fc.read()
	if err != nil {
		return err
	}
	if env.Type != protocol.MsgHello {
		return fmt.Errorf("first message %s, want hello", env.Type)
	}
	return fc.send(protocol.MsgWelcome, protocol.Welcome{NodeID: "node-1", NodeSecret: "secret-1",
		HeartbeatInterval: protocol.Duration(interval), Servers: servers})
}

// clientGoroutines lists the goroutines running the client's code.
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "drover/agent/conn.") {
			out = append(out, g)
		}
	}
	return out
}
