// Package clustertest runs Drover servers in one test process, in the
// style of hashicorp/raft's testing.go: several members on raft's in-memory
// transport with timeouts of tens of milliseconds, logs sent to t.Log, and
// helpers to find the leader, partition, heal, restart and compare states.
//
// A member is the real server (server.New: the API behind a real HTTP
// listener, the agent gateway, the scheduler, the leader's duties), or, for
// the tests of Raft itself (Config.Bare), a bare cluster member. Only tests
// import this package: the production binary never links `testing`.
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/internal/tlsutil"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/state"
	"github.com/drover-dev/drover/server/state/statetest"
)

// Timings of test clusters: short, so that elections and lease expiries
// happen in tens of milliseconds (as in hashicorp/raft's own tests).
const (
	HeartbeatTimeout = 50 * time.Millisecond
	ElectionTimeout  = 50 * time.Millisecond
	LeaseTimeout     = 50 * time.Millisecond
	// Wait bounds every wait of the helper; a condition not met by then
	// fails the test.
	Wait = 15 * time.Second
)

// Config configures New. The zero value gives three real servers
// bootstrapped together.
type Config struct {
	Servers int
	// NoBootstrap leaves the servers without a configuration: no leader is
	// ever elected until a test bootstraps them.
	NoBootstrap       bool
	SnapshotThreshold uint64

	// Bare runs bare Raft members (cluster.New and the FSM) instead of
	// real servers, for the tests of the cluster package itself; they
	// advertise HTTPAddrs, by position, and serve no HTTP.
	Bare      bool
	HTTPAddrs []string

	// Server is the template of every real server's configuration: the
	// harness fills in the data directory, addresses, Raft stores and
	// timings, the logger and, when set here, nothing else.
	Server server.Config
}

// Member is one server of a Cluster with its in-memory Raft stores, which
// survive its restarts.
type Member struct {
	ID string
	// HTTPAddr is the address its API listens on (real servers), or the
	// one it advertises (bare members). URL is its base URL.
	HTTPAddr string
	URL      string
	Cluster  *cluster.Cluster
	Store    *state.Store
	// Server is the real server; nil for bare members.
	Server *server.Server

	dataDir string
	addr    raft.ServerAddress
	trans   *raft.InmemTransport
	logs    *raft.InmemStore
	snaps   *raft.InmemSnapshotStore
	// bareReady, bareStop and bareDone run a bare member's stand-in for
	// the leader loop.
	bareReady atomic.Bool
	bareStop  chan struct{}
	bareDone  chan struct{}
	down      atomic.Bool
}

// Ready reports whether the member leads and has applied every entry of
// earlier terms (a Barrier), as a real server does before it answers.
func (s *Member) Ready() bool {
	if s.Server != nil {
		return s.Server.Ready()
	}
	return s.bareReady.Load() && s.Cluster.IsLeader()
}

// Addr returns the member's Raft address on the in-memory transport.
func (s *Member) Addr() string { return string(s.addr) }

// Cluster is several members in one process on raft's in-memory
// transport. Logs go to t.Log, so only failing tests print them.
type Cluster struct {
	t   testing.TB
	cfg Config
	out *testLogWriter

	mu      sync.Mutex
	servers []*Member
}

// New starts cfg.Servers members and, unless cfg.NoBootstrap, bootstraps
// them as voters. It stops them in t.Cleanup.
func New(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.Servers == 0 {
		cfg.Servers = 3
	}
	c := &Cluster{t: t, cfg: cfg, out: &testLogWriter{t: t}}
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
		if !cfg.Bare {
			// What every real server does before it serves: a leader,
			// and every address recorded so that followers forward.
			c.Leader()
			c.waitRecorded()
			c.Eventually("the cluster at this build's log version", func() error {
				if v := c.Leader().Store.Snapshot().LogVersion(); v != state.LogVersion {
					return fmt.Errorf("log version %d", v)
				}
				return nil
			})
		}
	}
	return c
}

func (c *Cluster) newServer(i int) *Member {
	c.t.Helper()
	id := fmt.Sprintf("s%d", i+1)
	s := &Member{ID: id, addr: raft.ServerAddress(id + "-raft"), logs: raft.NewInmemStore(),
		snaps: raft.NewInmemSnapshotStore(), dataDir: c.t.TempDir()}
	if c.cfg.Bare && i < len(c.cfg.HTTPAddrs) {
		s.HTTPAddr = c.cfg.HTTPAddrs[i]
	}
	c.start(s)
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	return s
}

// start runs a member on s's stores with a fresh state, as a restarted
// process would.
func (c *Cluster) start(s *Member) {
	c.t.Helper()
	_, s.trans = raft.NewInmemTransport(s.addr)
	stores := cluster.Stores{Transport: s.trans, LogStore: s.logs, StableStore: s.logs, SnapshotStore: s.snaps}
	s.down.Store(false)
	if c.cfg.Bare {
		c.startBare(s, stores)
		return
	}
	sc := c.cfg.Server
	sc.ID, sc.DataDir, sc.HTTPAddr, sc.Raft = s.ID, s.dataDir, "127.0.0.1:0", stores
	sc.HeartbeatTimeout, sc.ElectionTimeout, sc.LeaderLeaseTimeout = HeartbeatTimeout, ElectionTimeout, LeaseTimeout
	sc.SnapshotThreshold = c.cfg.SnapshotThreshold
	if sc.Logger == nil {
		sc.Logger = c.Logger(s.ID)
	}
	srv, err := server.New(sc)
	if err != nil {
		c.t.Fatalf("start %s: %v", s.ID, err)
	}
	s.Server, s.Cluster, s.Store = srv, srv.Cluster(), srv.Store()
	s.HTTPAddr = srv.HTTPAddr()
	scheme := "http"
	if sc.TLS != nil {
		scheme = "https"
	}
	s.URL = scheme + "://" + s.HTTPAddr
}

func (c *Cluster) startBare(s *Member, stores cluster.Stores) {
	logger := c.Logger(s.ID)
	s.Store = state.NewStore()
	cl, err := cluster.New(cluster.Config{
		ID: s.ID, HTTPAddr: s.HTTPAddr, DataDir: s.dataDir,
		HeartbeatTimeout: HeartbeatTimeout, ElectionTimeout: ElectionTimeout,
		LeaderLeaseTimeout: LeaseTimeout, SnapshotThreshold: c.cfg.SnapshotThreshold,
		FSM: state.NewFSM(s.Store, logger), Logger: logger, Stores: stores,
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", s.ID, err)
	}
	s.Cluster = cl
	s.bareReady.Store(false)
	s.bareStop, s.bareDone = make(chan struct{}), make(chan struct{})
	go s.watchLeadership()
}

// watchLeadership keeps a bare member's readiness as a server's leader
// loop does: true once a new leader's Barrier has passed, false when it
// steps down.
func (s *Member) watchLeadership() {
	defer close(s.bareDone)
	for {
		select {
		case <-s.bareStop:
			return
		case leader := <-s.Cluster.LeadershipCh():
			s.bareReady.Store(false)
			if leader && s.Cluster.Barrier(Wait) == nil {
				s.bareReady.Store(true)
			}
		}
	}
}

func (s *Member) shutdown() {
	if s.down.Swap(true) {
		return
	}
	if s.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		defer cancel()
		_ = s.Server.Shutdown(ctx)
		return
	}
	_ = s.Cluster.Shutdown(false)
	close(s.bareStop)
	<-s.bareDone
	s.bareReady.Store(false)
}

// Logger returns a logger that writes to the test's log like the servers'.
func (c *Cluster) Logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: c.out})
}

// Servers returns every member, stopped ones included.
func (c *Cluster) Servers() []*Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Member(nil), c.servers...)
}

func (c *Cluster) running() []*Member {
	var out []*Member
	for _, s := range c.Servers() {
		if !s.down.Load() {
			out = append(out, s)
		}
	}
	return out
}

// Close stops every member. It runs in t.Cleanup; later calls do nothing.
func (c *Cluster) Close() {
	for _, s := range c.Servers() {
		s.shutdown()
	}
	c.out.close()
}

// Eventually polls cond until it returns nil or Wait passes, and then
// fails the test with what was awaited and cond's last error.
func (c *Cluster) Eventually(what string, cond func() error) {
	c.t.Helper()
	testwait.Eventually(c.t, Wait, what, cond)
}

// Leader waits until exactly one running member leads and is ready, and
// returns it.
func (c *Cluster) Leader() *Member {
	c.t.Helper()
	return c.WaitForNewLeader(nil)
}

// WaitForNewLeader waits until exactly one running member other than old
// leads and is ready, and returns it.
func (c *Cluster) WaitForNewLeader(old *Member) *Member {
	c.t.Helper()
	var leader *Member
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

// Followers returns the running members that follow the current leader.
func (c *Cluster) Followers() []*Member {
	c.t.Helper()
	leader := c.Leader()
	var out []*Member
	for _, s := range c.running() {
		if s != leader {
			out = append(out, s)
		}
	}
	return out
}

// connectAll connects every running member's transport to every other.
func (c *Cluster) connectAll() {
	rs := c.running()
	for _, a := range rs {
		for _, b := range rs {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// Partition cuts the members far off from the others' Raft; each side
// keeps talking within itself. Heal joins them again. (HTTP between real
// servers is not cut: a follower cut off knows no leader to forward to.)
func (c *Cluster) Partition(far ...*Member) {
	isFar := map[*Member]bool{}
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

// Heal reconnects every running member to every other.
func (c *Cluster) Heal() { c.connectAll() }

// WaitForReplication waits until servers (every running one when none is
// given) have applied everything the leader had applied when it was called.
func (c *Cluster) WaitForReplication(servers ...*Member) {
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

// waitRecorded waits until every running real server has registered (its
// joiner ended, so no request of its own is still in flight) and the state
// holds its current HTTP address.
func (c *Cluster) waitRecorded() {
	c.t.Helper()
	c.Eventually("every server's address in the state", func() error {
		for _, s := range c.running() {
			select {
			case <-s.Server.Joined():
			default:
				return fmt.Errorf("%s has not registered yet", s.ID)
			}
		}
		snap := c.Leader().Store.Snapshot()
		for _, s := range c.running() {
			if rec := snap.Server(s.ID); rec == nil || rec.HTTPAddr != s.HTTPAddr {
				return fmt.Errorf("%s recorded as %+v, listens on %s", s.ID, rec, s.HTTPAddr)
			}
		}
		return nil
	})
	c.WaitForReplication()
}

// StateBytes returns a member's whole state as snapshot bytes.
func (s *Member) StateBytes() []byte {
	var b bytes.Buffer
	if err := s.Cluster.Snapshot(&b); err != nil {
		panic(err) // writing to memory does not fail
	}
	return b.Bytes()
}

// EnsureSame waits until every given member (every running one when none
// is given) holds byte for byte the same state.
func (c *Cluster) EnsureSame(servers ...*Member) {
	c.t.Helper()
	if len(servers) == 0 {
		servers = c.running()
	}
	c.Eventually("the same state on "+ids(servers), func() error {
		first := servers[0].StateBytes()
		for _, s := range servers[1:] {
			if other := s.StateBytes(); !bytes.Equal(first, other) {
				return fmt.Errorf("%s and %s differ: %s", servers[0].ID, s.ID, statetest.FirstDiff(strings.Split(string(first), "\n"), strings.Split(string(other), "\n")))
			}
		}
		return nil
	})
}

func ids(servers []*Member) string {
	var out []string
	for _, s := range servers {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

// Propose proposes a command through the leader, retrying while leadership
// moves, and returns its index and the FSM's answer.
func (c *Cluster) Propose(typ state.CommandType, body any) (uint64, error) {
	c.t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		idx, err := c.Leader().Cluster.Propose(context.Background(), typ, body, nil)
		if errors.Is(err, cluster.ErrNotLeader) && time.Now().Before(deadline) {
			continue
		}
		return idx, err
	}
}

// MustPropose is Propose that fails the test unless the command succeeds.
func (c *Cluster) MustPropose(typ state.CommandType, body any) uint64 {
	c.t.Helper()
	idx, err := c.Propose(typ, body)
	if err != nil {
		c.t.Fatalf("propose %s: %v", typ, err)
	}
	return idx
}

// RecordServers writes every bare member's addresses into the state, as a
// real server does for itself, so that followers can forward to it.
func (c *Cluster) RecordServers() {
	c.t.Helper()
	for _, s := range c.running() {
		c.MustPropose(state.CmdServerUpsert, state.ServerUpsert{Member: protocol.Member{ID: s.ID, RaftAddr: s.Addr(), HTTPAddr: s.HTTPAddr, Voter: true}})
	}
}

// Stop shuts a member down and cuts it off; Restart brings it back.
func (c *Cluster) Stop(s *Member) {
	c.Partition(s)
	s.shutdown()
}

// Restart stops s if it runs and starts it again from its log, stable and
// snapshot stores and data directory with an empty state, as after a
// process restart. A real server listens on a new port.
func (c *Cluster) Restart(s *Member) {
	c.t.Helper()
	c.Stop(s)
	c.start(s)
	c.connectAll()
}

// AddServer starts a new, empty member connected to the others. It is not
// a member of the Raft configuration until the leader adds it
// (Cluster.AddVoter).
func (c *Cluster) AddServer() *Member {
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

// NewTLS makes a CA and a server certificate for 127.0.0.1 in a temporary
// folder, and returns the servers' TLS material (Config.Server.TLS) and a
// client that trusts the CA.
func NewTLS(t testing.TB) (*tlsutil.Server, *http.Client) {
	t.Helper()
	ca, err := tlsutil.NewCA("clustertest", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsutil.NewCert(ca, tlsutil.KindServer, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caPath, _, err := tlsutil.WritePair(dir, "ca", ca)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := tlsutil.WritePair(dir, "server", cert)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsutil.LoadServer(certPath, keyPath, caPath)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := tlsutil.LoadRoots(caPath)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{TLSClientConfig: tlsutil.ClientConfig(roots, nil)}}
	return srv, client
}

// Decode decodes the body of a message of the agent channel, failing the
// test when it does not decode.
func Decode[T any](t testing.TB, env *protocol.Envelope) T {
	t.Helper()
	var v T
	if err := protocol.DecodeBody(env, &v); err != nil {
		t.Fatalf("%s %s: %v", env.Type, env.Body, err)
	}
	return v
}
