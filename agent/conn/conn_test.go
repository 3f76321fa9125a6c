package conn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/agent/conn"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/state"
)

func reportIDs(st protocol.Status) []string {
	var ids []string
	for _, r := range st.Replicas {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

// Against a real gateway: the hello registers the node, Handler.Welcome is
// called once per session and before anything else of it, and after the
// server ends a session the client says hello again as the same node.
func TestWelcomeOncePerSession(t *testing.T) {
	e := newServers(t, 1, server.Config{})
	leader := e.leader()
	probes := gw(leader).Connects()
	c, rec := run(t, conn.Config{Servers: []string{leader.URL}})

	eventually(t, "the first welcome", func() error {
		if n := rec.welcomeCount(); n != 1 || !c.Connected() {
			return fmt.Errorf("%d welcomes, connected %v", n, c.Connected())
		}
		return nil
	})
	id := rec.nodeID()
	if n := leader.Store.Snapshot().Node(id); n == nil || n.Status != protocol.NodeReady {
		t.Fatalf("node %s after the welcome: %+v", id, n)
	}

	gw(leader).CloseNode(id)
	eventually(t, "a second session", func() error {
		if n := rec.welcomeCount(); n != 2 || !c.Connected() {
			return fmt.Errorf("%d welcomes, connected %v", n, c.Connected())
		}
		return nil
	})
	rec.mu.Lock()
	w := rec.welcomes[1]
	events := slices.Clone(rec.events)
	rec.mu.Unlock()
	if w.NodeID != id || w.NodeSecret != "" {
		t.Fatalf("second welcome %+v, want node %s again without a new secret", w, id)
	}
	if n := len(leader.Store.Snapshot().Nodes()); n != 1 {
		t.Fatalf("%d nodes after a reconnect, want 1", n)
	}
	if dials := gw(leader).Connects() - probes; dials != 2 {
		t.Fatalf("%d dials for 2 welcomes", dials)
	}
	if events[0] != "welcome" {
		t.Fatalf("handler events %v: the first is not the welcome", events)
	}
	// Each session pushes the node's desired set after its welcome.
	eventually(t, "the second session's assign", func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		last := slices.Index(rec.events[1:], "welcome") + 1
		if !slices.Contains(rec.events[last:], "assign") {
			return fmt.Errorf("events %v", rec.events)
		}
		return nil
	})
}

// A client given only a follower is redirected to the leader and connects
// there.
func TestRedirectToLeaderFollowed(t *testing.T) {
	e := newServers(t, 3, server.Config{})
	leader := e.leader()
	follower := e.c.Followers()[0]
	c, rec := run(t, conn.Config{Servers: []string{follower.URL}})
	eventually(t, "a session on the leader", func() error {
		if n := gw(leader).Sessions(); n != 1 || !c.Connected() {
			return fmt.Errorf("%d sessions on the leader, connected %v", n, c.Connected())
		}
		return nil
	})
	if gw(follower).Connects() == 0 || rec.welcomeCount() != 1 {
		t.Fatalf("%d dials of the follower, %d welcomes", gw(follower).Connects(), rec.welcomeCount())
	}
}

// A refused agent (no join token) keeps trying with backoff, and is never
// welcomed.
func TestRefusedAgentRetries(t *testing.T) {
	e := newServers(t, 1, server.Config{AgentJoinToken: "secret"})
	leader := e.leader()
	probes := gw(leader).Connects()
	c, rec := run(t, conn.Config{Servers: []string{leader.URL}})
	eventually(t, "three refused dials", func() error {
		if n := gw(leader).Connects() - probes; n < 3 {
			return fmt.Errorf("%d dials", n)
		}
		return nil
	})
	if rec.welcomeCount() != 0 || c.Connected() || len(leader.Store.Snapshot().Nodes()) != 0 {
		t.Fatalf("refused agent: %d welcomes, connected %v", rec.welcomeCount(), c.Connected())
	}
}

// Through a real gateway: assignments reach the handler, and reports and
// load reach the leader.
func TestAssignAndReportThroughGateway(t *testing.T) {
	e := newServers(t, 1, server.Config{})
	leader := e.leader()
	c, rec := run(t, conn.Config{Servers: []string{leader.URL}})
	eventually(t, "connected", func() error {
		if !c.Connected() {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	node := rec.nodeID()
	e.c.MustPropose(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "acme"}, Create: true})
	e.c.MustPropose(state.CmdInstanceCreate, state.InstanceCreate{Instance: protocol.Instance{Tenant: "acme", Name: "crm",
		Environment: protocol.DefaultEnvironment, Replicas: 1, Spec: protocol.Spec{Command: []string{"/bin/app"}}.WithDefaults()}})
	e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Place: []*protocol.Replica{
		{ID: "r1", Tenant: "acme", Instance: "crm", Node: node, Version: 1}}})

	var gen uint64
	eventually(t, "r1 assigned", func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if n := len(rec.assigns); n > 0 && len(rec.assigns[n-1].Replicas) == 1 && rec.assigns[n-1].Replicas[0].ID == "r1" {
			gen = rec.assigns[n-1].Generation
			return nil
		}
		return fmt.Errorf("assigns %+v", rec.assigns)
	})
	c.Report([]protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaHealthy, Ports: map[string]int{"http": 20001}}}, gen)
	c.Metrics(&protocol.Metrics{Load1: 1.5})
	eventually(t, "the report committed", func() error {
		if r := leader.Store.Snapshot().Replica("r1"); r.State != protocol.ReplicaHealthy || r.Ports["http"] != 20001 {
			return fmt.Errorf("r1 %s %v", r.State, r.Ports)
		}
		if l, _ := gw(leader).NodeLive(node); l.Load == nil || l.Load.Load1 != 1.5 {
			return fmt.Errorf("load %+v", l.Load)
		}
		return nil
	})
}

// Reports are resent on every new session until a server acks the status
// that carried them; an ack covers the reports of that seq and before, not
// newer ones, nor a newer report of the same replica. Load is sent once.
func TestReportsResentUntilAcked(t *testing.T) {
	f := newFakeServer(t, nil)
	// The sessions' long heartbeat interval would spread redials over a
	// TTL of three minutes, but for the cap of four MaxBackoffs.
	c, rec := run(t, conn.Config{Servers: []string{f.srv.URL}, MaxBackoff: 250 * time.Millisecond})
	report := func(id, st string, gen uint64) {
		c.Report([]protocol.ReplicaReport{{ID: id, State: st}}, gen)
	}
	session := func() *fakeConn {
		t.Helper()
		s := f.accept()
		if err := s.welcome(time.Minute); err != nil {
			t.Fatal(err)
		}
		return s
	}
	status := func(s *fakeConn, want ...string) protocol.Status {
		t.Helper()
		st := clustertest.Decode[protocol.Status](t, s.next(protocol.MsgStatus))
		if got := reportIDs(st); !slices.Equal(got, want) {
			t.Fatalf("status %d reports %v, want %v", st.Seq, got, want)
		}
		return st
	}
	gen := uint64(10)
	ack := func(s *fakeConn, seq uint64) {
		t.Helper()
		gen++
		if err := s.send(protocol.MsgAck, protocol.Ack{Seq: seq}); err != nil {
			t.Fatal(err)
		}
		// The client reads in order: once this assign is applied, so is
		// the ack.
		if err := s.send(protocol.MsgAssign, protocol.Assign{Generation: gen, Replicas: []protocol.AssignedReplica{}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the assign after the ack", func() error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if n := len(rec.assigns); n == 0 || rec.assigns[n-1].Generation != gen {
				return fmt.Errorf("assigns %+v", rec.assigns)
			}
			return nil
		})
	}

	report("r-a", protocol.ReplicaRunning, 3)
	c.Metrics(&protocol.Metrics{Load1: 2})
	s1 := session()
	st1 := status(s1, "r-a")
	if st1.Generation != 3 || st1.Metrics == nil {
		t.Fatalf("first status %+v, want generation 3 and the load", st1)
	}
	s1.finish() // nothing acked

	s2 := session()
	st2 := status(s2, "r-a")
	if st2.Seq <= st1.Seq || st2.Metrics != nil {
		t.Fatalf("status after a reconnect %+v: want a newer seq than %d and no load", st2, st1.Seq)
	}
	report("r-a", protocol.ReplicaHealthy, 3) // supersedes the one sent
	status(s2, "r-a")
	report("r-b", protocol.ReplicaStarting, 3)
	status(s2, "r-b")
	ack(s2, st2.Seq) // the first r-a only
	s2.finish()

	s3 := session()
	st5 := status(s3, "r-a", "r-b")
	for _, r := range st5.Replicas {
		if r.ID == "r-a" && r.State != protocol.ReplicaHealthy {
			t.Fatalf("resent %+v, want r-a's newer report", r)
		}
	}
	ack(s3, st5.Seq)
	report("r-c", protocol.ReplicaPending, 3)
	status(s3, "r-c")
	s3.finish()

	s4 := session()
	status(s4, "r-c") // r-a and r-b were acked
	s4.finish()
}

// A 503 before the upgrade (a proxy in front of the servers, overloaded
// or draining) is retried with backoff until the client is let in.
func TestBusyServerRetried(t *testing.T) {
	f := newFakeServer(t, nil)
	f.busy.Store(3)
	_, rec := run(t, conn.Config{Servers: []string{f.srv.URL}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	s := f.accept()
	if err := s.welcome(time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the welcome", func() error {
		if rec.welcomeCount() != 1 {
			return fmt.Errorf("no welcome yet")
		}
		return nil
	})
	if n := len(f.dialTimes()); n != 4 {
		t.Fatalf("%d dials, want 3 refused and the one let in", n)
	}
}

// After the server closes the connection the client redials with a
// backoff that doubles from MinBackoff and stops growing at MaxBackoff (or
// the fleet's TTL, when that is longer).
func TestReconnectBackoff(t *testing.T) {
	const minB, maxB = 20 * time.Millisecond, 80 * time.Millisecond
	f := newFakeServer(t, func(fc *fakeConn) {
		// Welcomed, then closed at once. The heartbeat interval is a third
		// of MaxBackoff or less: the fleet's TTL (three intervals) bounds
		// the backoff too, where it is longer than MaxBackoff.
		_ = fc.welcome(maxB / 4)
	})
	run(t, conn.Config{Servers: []string{f.srv.URL}, MinBackoff: minB, MaxBackoff: maxB})
	const n = 9
	eventually(t, fmt.Sprintf("%d dials", n), func() error {
		if got := len(f.dialTimes()); got < n {
			return fmt.Errorf("%d dials", got)
		}
		return nil
	})
	dials := f.dialTimes()
	for k := 1; k < n; k++ {
		gap := dials[k].Sub(dials[k-1])
		b := min(minB<<(k-1), maxB)
		if gap < b/2 {
			t.Errorf("redial %d came %s after the one before, under its backoff's least %s", k, gap, b/2)
		}
		// Unbounded doubling would wait over a second by the last.
		if gap > time.Second {
			t.Errorf("redial %d came %s after the one before; MaxBackoff is %s", k, gap, maxB)
		}
	}
}

// A server that stops answering pings (a connection a proxy dropped) is
// noticed within two and a half heartbeat intervals (a ping each interval,
// one and a half for its pong), and the client redials at once, before the
// server's TTL of three intervals would mark its node down.
func TestUnansweredPingsRedial(t *testing.T) {
	const interval = 200 * time.Millisecond
	f := newFakeServer(t, nil)
	c, rec := run(t, conn.Config{Servers: []string{f.srv.URL}})
	s1 := f.accept()
	if err := s1.welcome(interval); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	// s1 reads nothing from now on, so it answers no pings.
	s2 := f.accept()
	took := time.Since(since)
	if took < 2*interval || took > 3*interval+100*time.Millisecond {
		t.Fatalf("redialled %s after the server went silent, want about two and a half intervals of %s", took, interval)
	}
	if err := s2.welcome(time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected again", func() error {
		if n := rec.welcomeCount(); n != 2 || !c.Connected() {
			return fmt.Errorf("%d welcomes, connected %v", n, c.Connected())
		}
		return nil
	})
}

// The servers a welcome lists are dialled too, round robin with the
// configured ones, each once however its address is written.
func TestServersLearnedFromWelcome(t *testing.T) {
	a := newFakeServer(t, nil)
	b := newFakeServer(t, nil)
	hostport := func(f *fakeServer) string { return strings.TrimPrefix(f.srv.URL, "http://") }
	_, rec := run(t, conn.Config{Servers: []string{a.srv.URL}, MaxBackoff: 250 * time.Millisecond})

	next := func() string {
		t.Helper()
		select {
		case fc := <-a.conns:
			fc.finish()
			return "a"
		case fc := <-b.conns:
			if err := fc.welcome(time.Minute); err != nil {
				t.Fatal(err)
			}
			fc.finish()
			return "b"
		case <-time.After(wait):
			t.Fatalf("no dial within %s", wait)
			return ""
		}
	}
	s := a.accept()
	if err := s.welcome(time.Minute, hostport(a), "ws://"+hostport(b), hostport(b)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the welcome", func() error {
		if rec.welcomeCount() != 1 {
			return fmt.Errorf("no welcome yet")
		}
		return nil
	})
	s.finish()
	if got := []string{next(), next()}; !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("dialled %v after a's welcome listed a and b, want b then a", got)
	}
}

// Run returns when its context ends, with a session up and a log stream in
// flight, and leaves no goroutine behind.
func TestRunReturnsLeavingNoGoroutines(t *testing.T) {
	e := newServers(t, 1, server.Config{})
	leader := e.leader()
	before := runtime.NumGoroutine()

	streaming := make(chan struct{})
	rec := &recorder{logs: func(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error) {
		_ = send(protocol.LogData{Data: "line\n"})
		close(streaming)
		<-ctx.Done()
	}}
	c, _, stop := start(t, conn.Config{Servers: []string{leader.URL}, Handler: rec})
	eventually(t, "connected", func() error {
		if !c.Connected() {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	logsDone := make(chan error, 1)
	go func() {
		logsDone <- gw(leader).StreamLogs(context.Background(), rec.nodeID(), protocol.LogRequest{Replica: "r1", Follow: true}, &bytes.Buffer{}, func() {})
	}()
	<-streaming
	c.Report([]protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaRunning}}, 1)

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c.Connected() {
		t.Fatalf("connected after Run returned")
	}
	select {
	case <-logsDone:
	case <-time.After(wait):
		t.Fatalf("the server's log stream did not end with the session")
	}
	checkGoroutines(t, before)
}

// checkGoroutines waits until no more goroutines run than before, and none
// in the client's code.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n, left := runtime.NumGoroutine(), clientGoroutines()
		if n <= before && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines %s after Run returned, %d before; client's: %v\n%s",
				n, wait, before, left, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Dials that fail (a proxy answering 503 in front of the servers) leave no
// connections or goroutines behind once Run returns, over http or https.
func TestFailedDialsLeaveNoGoroutines(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			var dials atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				dials.Add(1)
				http.Error(w, "no upstream", http.StatusServiceUnavailable)
			})
			var srv *httptest.Server
			var tlsCfg *tls.Config
			if scheme == "https" {
				srv = httptest.NewTLSServer(h)
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				tlsCfg = &tls.Config{RootCAs: pool}
			} else {
				srv = httptest.NewServer(h)
			}
			t.Cleanup(srv.Close)
			before := runtime.NumGoroutine()
			_, rec, stop := start(t, conn.Config{Servers: []string{srv.URL}, TLS: tlsCfg})
			eventually(t, "five failed dials", func() error {
				if n := dials.Load(); n < 5 {
					return fmt.Errorf("%d dials", n)
				}
				return nil
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if rec.welcomeCount() != 0 {
				t.Fatalf("welcomed by a server answering 503")
			}
			checkGoroutines(t, before)
		})
	}
}

// A log stream through a real gateway: the handler's chunks reach
// StreamLogs until EOF; when the HTTP side goes away, the handler's
// context ends.
func TestLogsThroughGateway(t *testing.T) {
	e := newServers(t, 1, server.Config{})
	leader := e.leader()
	var followEnded atomic.Bool
	rec := &recorder{logs: func(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error) {
		if !req.Follow {
			_ = send(protocol.LogData{Data: "one\n"})
			_ = send(protocol.LogData{Data: "two\n", EOF: true})
			return
		}
		_ = send(protocol.LogData{Data: "tail\n"})
		<-ctx.Done()
		followEnded.Store(true)
	}}
	c, _ := run(t, conn.Config{Servers: []string{leader.URL}, Handler: rec})
	eventually(t, "connected", func() error {
		if !c.Connected() {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	g := gw(leader)

	var out bytes.Buffer
	if err := g.StreamLogs(context.Background(), rec.nodeID(), protocol.LogRequest{Replica: "r1", Tail: 2}, &out, func() {}); err != nil || out.String() != "one\ntwo\n" {
		t.Fatalf("StreamLogs: %q, %v", out.String(), err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var follow bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- g.StreamLogs(ctx, rec.nodeID(), protocol.LogRequest{Replica: "r1", Follow: true}, writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return follow.Write(p)
		}), func() {})
	}()
	eventually(t, "the followed log's first chunk", func() error {
		mu.Lock()
		defer mu.Unlock()
		if follow.String() != "tail\n" {
			return fmt.Errorf("got %q", follow.String())
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("cancelled StreamLogs: %v", err)
	}
	eventually(t, "the agent to stop following", func() error {
		if !followEnded.Load() {
			return fmt.Errorf("handler still following")
		}
		return nil
	})
	if !c.Connected() {
		t.Fatalf("the session ended with the log stream")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The server cancelling a log stream while the handler's write of it is
// held up by a slow connection stops the stream, not the session.
func TestLogCancelDuringWriteKeepsSession(t *testing.T) {
	var sending atomic.Int64 // when the write in progress began; 0 for none
	var ended atomic.Bool
	rec := &recorder{logs: func(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error) {
		defer ended.Store(true)
		chunk := strings.Repeat("x", 1<<20)
		for ctx.Err() == nil {
			sending.Store(time.Now().UnixNano())
			err := send(protocol.LogData{Data: chunk})
			sending.Store(0)
			if err != nil {
				return
			}
		}
	}}
	f := newFakeServer(t, nil)
	c, _ := run(t, conn.Config{Servers: []string{f.srv.URL}, Handler: rec})
	s := f.accept()
	if err := s.welcome(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.send(protocol.MsgLogs, protocol.LogRequest{Stream: "s1", Replica: "r1", Follow: true}); err != nil {
		t.Fatal(err)
	}
	// The server reads nothing: the socket fills and a write blocks.
	eventually(t, "a log write held up", func() error {
		if at := sending.Load(); at == 0 || time.Since(time.Unix(0, at)) < 200*time.Millisecond {
			return fmt.Errorf("no write held up")
		}
		return nil
	})
	if err := s.send(protocol.MsgLogs, protocol.LogRequest{Stream: "s1", Cancel: true}); err != nil {
		t.Fatal(err)
	}
	// A report now waits for the held-up write, and then goes out on the
	// same connection.
	c.Report([]protocol.ReplicaReport{{ID: "r1", State: protocol.ReplicaRunning}}, 1)
	for {
		env, err := s.read()
		if err != nil {
			t.Fatalf("the connection ended after a log stream was cancelled: %v", err)
		}
		if env.Type == protocol.MsgStatus {
			break
		}
	}
	eventually(t, "the handler to stop", func() error {
		if !ended.Load() {
			return fmt.Errorf("still streaming")
		}
		return nil
	})
	if n := len(f.dialTimes()); n != 1 {
		t.Fatalf("%d dials: the session did not survive", n)
	}
	s.finish()
}

// A heartbeat message changes the interval the client pings at, without a
// new session: a fleet that grew slows down its earlier agents.
func TestHeartbeatMessageSlowsPings(t *testing.T) {
	changed := make(chan time.Time, 1)
	f := newFakeServer(t, func(fc *fakeConn) {
		if fc.welcome(30*time.Millisecond) != nil {
			return
		}
		read := make(chan struct{})
		go func() { // keep reading, so that pings are answered
			defer close(read)
			for {
				if _, _, err := fc.ws.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		defer func() { fc.ws.CloseNow(); <-read }()
		time.Sleep(300 * time.Millisecond) // a few fast pings first
		if fc.send(protocol.MsgHeartbeat, protocol.Heartbeat{Interval: protocol.Duration(400 * time.Millisecond)}) != nil {
			return
		}
		changed <- time.Now()
		select {
		case <-read:
		case <-time.After(5 * time.Second):
		}
	})
	run(t, conn.Config{Servers: []string{f.srv.URL}})
	var at time.Time
	select {
	case at = <-changed:
	case <-time.After(wait):
		t.Fatal("the server never sent its heartbeat message")
	}
	eventually(t, "three pings after the heartbeat message", func() error {
		var after int
		for _, p := range f.pingTimes() {
			if p.After(at) {
				after++
			}
		}
		if after < 3 {
			return fmt.Errorf("%d pings since", after)
		}
		return nil
	})
	var before, after []time.Time
	for _, p := range f.pingTimes() {
		if p.After(at.Add(50 * time.Millisecond)) {
			after = append(after, p)
		} else {
			before = append(before, p)
		}
	}
	if len(before) < 3 {
		t.Fatalf("only %d pings at the fast interval", len(before))
	}
	for i := 1; i < len(after); i++ {
		if gap := after[i].Sub(after[i-1]); gap < 300*time.Millisecond {
			t.Fatalf("pings %s apart after the server asked for 400ms", gap)
		}
	}
	if len(f.dialTimes()) != 1 {
		t.Fatalf("%d dials: the interval must change within the session", len(f.dialTimes()))
	}
}

// Sessions that were up ending all at once (a leader lost or stepping
// down) are redialled spread over the fleet's TTL (three heartbeat
// intervals), not all within the minimum backoff: a new leader is not met
// by the whole fleet in one instant.
func TestFleetRedialsSpreadOverTheTTL(t *testing.T) {
	const interval, clients = 300 * time.Millisecond, 24
	const ttl = 3 * interval
	var phase atomic.Int32 // 0: first sessions; 1: after they were closed
	closing := make(chan struct{})
	f := newFakeServer(t, func(fc *fakeConn) {
		if phase.Load() == 0 {
			if fc.welcome(interval) == nil {
				<-closing
			}
			return // closes the connection
		}
		if fc.welcome(time.Minute) == nil {
			for {
				if _, err := fc.read(); err != nil {
					return
				}
			}
		}
	})
	for range clients {
		run(t, conn.Config{Servers: []string{f.srv.URL}, MaxBackoff: 2 * time.Second})
	}
	eventually(t, "every client connected", func() error {
		if n := len(f.dialTimes()); n < clients {
			return fmt.Errorf("%d dials", n)
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // every session welcomed
	phase.Store(1)
	closed := time.Now()
	close(closing)
	eventually(t, "every client redialled", func() error {
		if n := len(f.dialTimes()); n < 2*clients {
			return fmt.Errorf("%d of %d redials", n-clients, clients)
		}
		return nil
	})
	var early, late int
	for _, d := range f.dialTimes()[clients:] {
		after := d.Sub(closed)
		switch {
		case after < ttl/6:
			early++
		case after > ttl/2:
			late++
		}
		if after > ttl+2*time.Second {
			t.Errorf("a client redialled %s after its session ended; its TTL was %s", d.Sub(closed), ttl)
		}
	}
	// Spread uniformly, a sixth of the redials would come in the first
	// sixth of the TTL and half in its second half; all at once would put
	// every one in the first, and spread over one interval none in the
	// second half.
	if early > clients/2 || late < clients/6 {
		t.Fatalf("of %d redials, %d came within %s of the close and %d after %s: not spread over the TTL",
			clients, early, ttl/6, late, ttl/2)
	}
}

// An agent asks for assignments as changes; the client makes each one the
// whole set again, from the session's last set, before the agent sees it.
// Changes that come before any whole set end the session, and the next
// session starts from its own whole set.
func TestAssignChangesMadeWhole(t *testing.T) {
	f := newFakeServer(t, nil)
	_, rec := run(t, conn.Config{Servers: []string{f.srv.URL}})
	replica := func(id string, version uint64) protocol.AssignedReplica {
		return protocol.AssignedReplica{ID: id, Tenant: "acme", Instance: "crm", Version: version}
	}
	last := func(want string) {
		t.Helper()
		eventually(t, "the agent assigned "+want, func() error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.assigns) == 0 {
				return fmt.Errorf("no assignment")
			}
			a := rec.assigns[len(rec.assigns)-1]
			var got []string
			for _, r := range a.Replicas {
				got = append(got, fmt.Sprintf("%s@%d", r.ID, r.Version))
			}
			if s := strings.Join(got, " "); s != want || a.Changes || a.Replicas == nil {
				return fmt.Errorf("last assignment %q (changes %v, nil %v)", s, a.Changes, a.Replicas == nil)
			}
			return nil
		})
	}
	session := func() *fakeConn {
		t.Helper()
		fc := f.accept()
		var h protocol.Hello
		if err := protocol.DecodeBody(fc.next(protocol.MsgHello), &h); err != nil || !h.AssignChanges {
			t.Fatalf("hello %+v (%v): the client must ask for changes", h, err)
		}
		if err := fc.send(protocol.MsgWelcome, protocol.Welcome{NodeID: "node-1", NodeSecret: "s",
			HeartbeatInterval: protocol.Duration(100 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		return fc
	}

	fc := session()
	if err := fc.send(protocol.MsgAssign, protocol.Assign{Generation: 1, Changes: true,
		Replicas: []protocol.AssignedReplica{replica("r9", 1)}}); err != nil {
		t.Fatal(err)
	}
	fc = session() // the client ended the first
	must := func(a protocol.Assign) {
		t.Helper()
		if err := fc.send(protocol.MsgAssign, a); err != nil {
			t.Fatal(err)
		}
	}
	must(protocol.Assign{Generation: 2, Replicas: []protocol.AssignedReplica{replica("r1", 1), replica("r2", 1)}})
	last("r1@1 r2@1")
	must(protocol.Assign{Generation: 3, Changes: true,
		Replicas: []protocol.AssignedReplica{replica("r3", 1), replica("r1", 2)}, Removed: []string{"r2"}})
	last("r1@2 r3@1")
	must(protocol.Assign{Generation: 4, Replicas: []protocol.AssignedReplica{replica("r5", 1)}})
	last("r5@1")
	must(protocol.Assign{Generation: 5, Changes: true, Removed: []string{"r5"}})
	last("")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, a := range rec.assigns {
		for _, r := range a.Replicas {
			if r.ID == "r9" {
				t.Fatalf("the agent was given r9 of changes that came before a whole set: %+v", a)
			}
		}
	}
	fc.finish()
}
