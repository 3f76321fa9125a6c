package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Timings of test clusters: short, so that elections and lease expiries
// happen in tens of milliseconds (as in hashicorp/raft's own tests).
const (
	TestHeartbeatTimeout = 50 * time.Millisecond
	TestElectionTimeout  = 50 * time.Millisecond
	TestLeaseTimeout     = 50 * time.Millisecond
	// TestWait bounds every wait of the helper; a condition not met by
	// then fails the test.
	TestWait = 15 * time.Second
)

// TestConfig configures NewTestCluster. Zero values give three servers
// bootstrapped together.
type TestConfig struct {
	Servers int
	// NoBootstrap leaves the servers without a configuration: no leader is
	// ever elected until a test bootstraps them.
	NoBootstrap bool
	// HTTPAddrs are the servers' advertised HTTP addresses, by position.
	HTTPAddrs         []string
	SnapshotThreshold uint64
}

// TestServer is one member of a TestCluster with its in-memory stores.
type TestServer struct {
	ID       string
	HTTPAddr string
	Cluster  *Cluster
	Store    *state.Store
	FSM      *state.FSM

	addr   raft.ServerAddress
	trans  *raft.InmemTransport
	logs   *raft.InmemStore
	snaps  *raft.InmemSnapshotStore
	ready  atomic.Bool
	stopCh chan struct{}
	doneCh chan struct{}
	down   atomic.Bool
}

// Ready reports whether the server leads and has applied every entry of
// earlier terms (a Barrier), as a real server does before it answers. It
// is the api.Config.Ready of test APIs.
func (s *TestServer) Ready() bool { return s.ready.Load() && s.Cluster.IsLeader() }

// Addr returns the server's Raft address on the in-memory transport.
func (s *TestServer) Addr() string { return string(s.addr) }

// TestCluster is several cluster members in one process on raft's
// in-memory transport, in the style of hashicorp/raft's testing.go. Logs go
// to t.Log, so only failing tests print them.
type TestCluster struct {
	t   testing.TB
	cfg TestConfig
	out *testLogWriter

	mu      sync.Mutex
	servers []*TestServer
}

// NewTestCluster starts cfg.Servers members and, unless cfg.NoBootstrap,
// bootstraps them as voters. It stops them in t.Cleanup.
func NewTestCluster(t testing.TB, cfg TestConfig) *TestCluster {
	t.Helper()
	if cfg.Servers == 0 {
		cfg.Servers = 3
	}
	c := &TestCluster{t: t, cfg: cfg, out: &testLogWriter{t: t}}
	t.Cleanup(c.Close)
	var members []protocol.Member
	for i := 0; i < cfg.Servers; i++ {
		s := c.newServer(i)
		members = append(members, protocol.Member{ID: s.ID, RaftAddr: s.Addr(), HTTPAddr: s.HTTPAddr})
	}
	c.connectAll()
	if !cfg.NoBootstrap {
		if err := c.servers[0].Cluster.Bootstrap(members); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
	}
	return c
}

func (c *TestCluster) newServer(i int) *TestServer {
	c.t.Helper()
	id := fmt.Sprintf("s%d", i+1)
	s := &TestServer{ID: id, addr: raft.ServerAddress(id + "-raft"), logs: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
	if i < len(c.cfg.HTTPAddrs) {
		s.HTTPAddr = c.cfg.HTTPAddrs[i]
	}
	c.start(s)
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	return s
}

// start runs a member on s's stores with a fresh FSM, as a restarted
// process would.
func (c *TestCluster) start(s *TestServer) {
	c.t.Helper()
	logger := c.Logger(s.ID)
	_, s.trans = raft.NewInmemTransport(s.addr)
	s.Store = state.NewStore()
	s.FSM = state.NewFSM(s.Store, logger)
	cl, err := New(Config{
		ID: s.ID, HTTPAddr: s.HTTPAddr,
		HeartbeatTimeout: TestHeartbeatTimeout, ElectionTimeout: TestElectionTimeout,
		LeaderLeaseTimeout: TestLeaseTimeout, SnapshotThreshold: c.cfg.SnapshotThreshold,
		FSM: s.FSM, Logger: logger,
		Stores: Stores{Transport: s.trans, LogStore: s.logs, StableStore: s.logs, SnapshotStore: s.snaps},
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", s.ID, err)
	}
	s.Cluster = cl
	s.down.Store(false)
	s.ready.Store(false)
	s.stopCh, s.doneCh = make(chan struct{}), make(chan struct{})
	go s.watchLeadership()
}

// watchLeadership keeps ready as a server's leader loop does: true once a
// new leader's Barrier has passed, false when it steps down.
func (s *TestServer) watchLeadership() {
	defer close(s.doneCh)
	for {
		select {
		case <-s.stopCh:
			return
		case leader := <-s.Cluster.LeadershipCh():
			s.ready.Store(false)
			if leader && s.Cluster.Barrier(TestWait) == nil {
				s.ready.Store(true)
			}
		}
	}
}

func (s *TestServer) shutdown() {
	if s.down.Swap(true) {
		return
	}
	_ = s.Cluster.Shutdown(false)
	close(s.stopCh)
	<-s.doneCh
	s.ready.Store(false)
}

// Logger returns a logger that writes to the test's log like the servers'.
func (c *TestCluster) Logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: c.out})
}

// Servers returns every server, stopped ones included.
func (c *TestCluster) Servers() []*TestServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*TestServer(nil), c.servers...)
}

func (c *TestCluster) running() []*TestServer {
	var out []*TestServer
	for _, s := range c.Servers() {
		if !s.down.Load() {
			out = append(out, s)
		}
	}
	return out
}

// Close stops every server. It runs in t.Cleanup; later calls do nothing.
func (c *TestCluster) Close() {
	for _, s := range c.Servers() {
		s.shutdown()
	}
	c.out.close()
}

// Eventually polls cond until it returns nil or TestWait passes, and then
// fails the test with what was awaited and cond's last error.
func (c *TestCluster) Eventually(what string, cond func() error) {
	c.t.Helper()
	Eventually(c.t, TestWait, what, cond)
}

// Eventually polls cond until it returns nil or timeout passes, and then
// fails t with what was awaited and cond's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leader waits until exactly one running server leads and is ready, and
// returns it.
func (c *TestCluster) Leader() *TestServer {
	c.t.Helper()
	return c.WaitForNewLeader(nil)
}

// WaitForNewLeader waits until exactly one running server other than old
// leads and is ready, and returns it.
func (c *TestCluster) WaitForNewLeader(old *TestServer) *TestServer {
	c.t.Helper()
	var leader *TestServer
	c.Eventually("a single ready leader", func() error {
		var leaders []string
		leader = nil
		for _, s := range c.running() {
			if s.Cluster.IsLeader() {
				leaders = append(leaders, s.ID)
				leader = s
			}
		}
		switch {
		case len(leaders) != 1:
			return fmt.Errorf("leaders: %v", leaders)
		case leader == old:
			return fmt.Errorf("%s still leads", old.ID)
		case !leader.Ready():
			return fmt.Errorf("%s leads but has not passed its barrier", leader.ID)
		}
		return nil
	})
	return leader
}

// Followers returns the running servers that follow the current leader.
func (c *TestCluster) Followers() []*TestServer {
	c.t.Helper()
	leader := c.Leader()
	var out []*TestServer
	for _, s := range c.running() {
		if s != leader {
			out = append(out, s)
		}
	}
	return out
}

// connectAll connects every running server's transport to every other.
func (c *TestCluster) connectAll() {
	rs := c.running()
	for _, a := range rs {
		for _, b := range rs {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// Partition cuts the servers far off from the others; each side keeps
// talking within itself. Heal joins them again.
func (c *TestCluster) Partition(far ...*TestServer) {
	isFar := map[*TestServer]bool{}
	for _, s := range far {
		isFar[s] = true
	}
	for _, a := range c.running() {
		for _, b := range c.running() {
			if isFar[a] != isFar[b] {
				a.trans.Disconnect(b.addr)
			}
		}
	}
}

// Heal reconnects every running server to every other.
func (c *TestCluster) Heal() { c.connectAll() }

// WaitForReplication waits until servers (every running one when none is
// given) have applied everything the leader had applied when it was called.
func (c *TestCluster) WaitForReplication(servers ...*TestServer) {
	c.t.Helper()
	want := c.Leader().Cluster.AppliedIndex()
	if len(servers) == 0 {
		servers = c.running()
	}
	c.Eventually(fmt.Sprintf("replication up to index %d", want), func() error {
		for _, s := range servers {
			if got := s.Cluster.AppliedIndex(); got < want {
				return fmt.Errorf("%s applied %d", s.ID, got)
			}
		}
		return nil
	})
}

// StateBytes returns a server's whole state as snapshot bytes.
func (s *TestServer) StateBytes() []byte {
	var b bytes.Buffer
	if err := s.Cluster.Snapshot(&b); err != nil {
		panic(err) // writing to memory does not fail
	}
	return b.Bytes()
}

// EnsureSame waits until every given server (every running one when none is
// given) holds byte for byte the same state.
func (c *TestCluster) EnsureSame(servers ...*TestServer) {
	c.t.Helper()
	if len(servers) == 0 {
		servers = c.running()
	}
	c.Eventually("the same state on "+ids(servers), func() error {
		first := servers[0].StateBytes()
		for _, s := range servers[1:] {
			if other := s.StateBytes(); !bytes.Equal(first, other) {
				return fmt.Errorf("%s and %s differ: %s", servers[0].ID, s.ID, firstDiff(first, other))
			}
		}
		return nil
	})
}

func ids(servers []*TestServer) string {
	var out []string
	for _, s := range servers {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

func firstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: %q vs %q", i+1, x, y)
		}
	}
	return "none"
}

// Apply proposes a command through the leader, retrying while leadership
// moves, and returns its index and the FSM's answer.
func (c *TestCluster) Apply(typ state.CommandType, body any) (uint64, error) {
	c.t.Helper()
	deadline := time.Now().Add(TestWait)
	for {
		idx, err := c.Leader().Cluster.Propose(context.Background(), typ, body, nil)
		if errors.Is(err, ErrNotLeader) && time.Now().Before(deadline) {
			continue
		}
		return idx, err
	}
}

// MustApply is Apply that fails the test unless the command succeeds.
func (c *TestCluster) MustApply(typ state.CommandType, body any) uint64 {
	c.t.Helper()
	idx, err := c.Apply(typ, body)
	if err != nil {
		c.t.Fatalf("apply %s: %v", typ, err)
	}
	return idx
}

// RecordServers writes every server's addresses into the state, as a
// leader does for itself, so that followers can forward to it.
func (c *TestCluster) RecordServers() {
	c.t.Helper()
	for _, s := range c.running() {
		c.MustApply(state.CmdServerUpsert, state.ServerUpsert{Member: protocol.Member{ID: s.ID, RaftAddr: s.Addr(), HTTPAddr: s.HTTPAddr, Voter: true}})
	}
}

// Stop shuts a server down and cuts it off; Restart brings it back.
func (c *TestCluster) Stop(s *TestServer) {
	c.Partition(s)
	s.shutdown()
}

// Restart stops s if it runs and starts it again from its log, stable and
// snapshot stores with an empty FSM, as after a process restart.
func (c *TestCluster) Restart(s *TestServer) {
	c.t.Helper()
	c.Stop(s)
	c.start(s)
	c.connectAll()
}

// AddServer starts a new, empty server connected to the others. It is not
// a member until the leader adds it (Cluster.AddVoter).
func (c *TestCluster) AddServer() *TestServer {
	c.t.Helper()
	s := c.newServer(len(c.Servers()))
	c.connectAll()
	return s
}

// TestLogger returns a logger whose lines go to t.Log until the test ends,
// so that only failing tests print them.
func TestLogger(t testing.TB, name string) hclog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(w.close)
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: w})
}

// testLogWriter sends log lines to t.Log until the cluster is closed;
// raft may still log while it stops, and t.Log after a test ends panics.
type testLogWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
