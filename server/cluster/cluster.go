// Package cluster runs the Raft member of a Drover server: hashicorp/raft
// on raft-boltdb/v2 and a file snapshot store in the data directory,
// bootstrap by expected count, joining and leaving, and the leader's
// membership changes.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/drover-dev/drover/internal/uid"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Default Raft timings, chosen for servers on one LAN or in one region: a
// follower that hears nothing from the leader for 0.3 to 0.6 s stands for
// election (the leader sends a heartbeat every 30 ms, so that is ten
// missed in a row), and a split vote is retried after another 0.3 to
// 0.6 s. A dead leader is replaced in under a second (BENCHMARKS.md,
// failover). The leader's lease is as long as the heartbeat timeout: a
// shorter one only makes a busy leader step down sooner (it failed to
// hear a quorum for 150 ms while its host was loaded), and its followers
// then elect another, which costs the whole fleet a reconnect; linearizable
// reads do not rest on the lease (VerifyLeader). hashicorp/raft's own defaults (1 s) are made for WANs and
// slower disks; raise the three together (-raft-*-timeout) for servers
// across regions, or on hosts so loaded that the servers log elections
// nobody asked for ("heartbeat timeout reached").
const (
	DefaultHeartbeatTimeout   = 300 * time.Millisecond
	DefaultElectionTimeout    = 300 * time.Millisecond
	DefaultLeaderLeaseTimeout = 300 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 30 * time.Second
	DefaultApplyTimeout       = 10 * time.Second
)

// ErrNotLeader is returned by Propose on a server that is not the leader,
// or that lost its leadership before the command was in its log: the
// command was not applied, and sending it again is safe.
var ErrNotLeader = errors.New("not the leader")

// ErrOutcomeUnknown is returned by Propose when the command was in the
// log but this server stopped leading (or shut down) before it knew
// whether the command committed: it may have been applied or not, and
// only reading the state tells. hashicorp/raft's ErrLeadershipLost says the
// same.
var ErrOutcomeUnknown = errors.New("outcome unknown: leadership was lost while the change was being committed; it may have been applied")

// Config configures a cluster member. Zero values take the defaults above.
type Config struct {
	// ID of this server; read from DataDir/server-id, created there once.
	ID       string
	DataDir  string
	RaftAddr string // address Raft binds to
	// Advertise is the Raft address other servers dial; RaftAddr when empty.
	Advertise string
	// HTTPAddr is this server's advertised HTTP address (for forwarding).
	HTTPAddr string

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration

	FSM    *state.FSM
	Logger hclog.Logger
	// Clock stamps the commands this member proposes; time.Now when nil.
	Clock func() time.Time

	// Stores, where set, replace the TCP transport and the stores in the
	// data directory: in-process tests run on raft's in-memory ones.
	Stores
}

// Stores are a member's Raft transport and stores. A zero field takes the
// real one: TCP on RaftAddr, raft-boltdb and files in the data directory.
type Stores struct {
	Transport     raft.Transport
	LogStore      raft.LogStore
	StableStore   raft.StableStore
	SnapshotStore raft.SnapshotStore
}

func (c *Config) defaults() {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = DefaultLeaderLeaseTimeout
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.Advertise == "" {
		c.Advertise = c.RaftAddr
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Cluster is this server's Raft member.
type Cluster struct {
	cfg    Config
	raft   *raft.Raft
	fsm    *state.FSM
	logger hclog.Logger
	closer []io.Closer

	leaderCh chan bool

	mu          sync.Mutex
	unreachable map[raft.ServerID]bool
	observer    *raft.Observer
	obsCh       chan raft.Observation
	// stopped is closed when Shutdown stops Raft: waits on its futures end.
	stopped chan struct{}
}

// New starts the Raft member. It does not bootstrap: see Bootstrap and Join.
func New(cfg Config) (*Cluster, error) {
	cfg.defaults()
	c := &Cluster{cfg: cfg, fsm: cfg.FSM, logger: cfg.Logger.Named("cluster"),
		leaderCh: make(chan bool, 16), unreachable: map[raft.ServerID]bool{}, stopped: make(chan struct{})}
	if c.cfg.ID == "" {
		id, err := loadOrCreateID(filepath.Join(cfg.DataDir, "server-id"))
		if err != nil {
			return nil, err
		}
		c.cfg.ID = id
	}
	if err := c.openStores(); err != nil {
		c.closeAll()
		return nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.cfg.ID)
	rc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	rc.ElectionTimeout = c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	rc.SnapshotInterval = c.cfg.SnapshotInterval
	rc.TrailingLogs = c.cfg.SnapshotThreshold
	rc.Logger = cfg.Logger.Named("raft")
	rc.NotifyCh = c.leaderCh
	// A buffered apply channel: commands proposed together (ProposeAll)
	// queue at once and go to disk in one write, instead of one write each
	// while the leader's loop takes them one by one.
	rc.BatchApplyCh = true
	r, err := raft.NewRaft(rc, c.fsm, c.cfg.LogStore, c.cfg.StableStore, c.cfg.SnapshotStore, c.cfg.Transport)
	if err != nil {
		c.closeAll()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	c.raft = r
	obsCh := make(chan raft.Observation, 64)
	c.observer = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(c.observer)
	c.obsCh = obsCh
	go c.watchHeartbeats(obsCh)
	return c, nil
}

func (c *Cluster) openStores() error {
	cfg := &c.cfg
	if cfg.DataDir != "" {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, "raft"), 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	if cfg.LogStore == nil {
		path := filepath.Join(cfg.DataDir, "raft", "raft.db")
		// Every commit is fsync'ed (NoSync is never set). The list of free
		// pages is not written at each commit but rebuilt from the pages
		// when the file is opened, as etcd runs bbolt (Consul and Nomad
		// offer it as raft_boltdb no_freelist_sync): a log truncated after
		// each snapshot frees many pages, and writing their list made each
		// commit write more than its entries.
		bs, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{
			NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err != nil {
			return fmt.Errorf("open raft log %s: %w", path, err)
		}
		c.closer = append(c.closer, bs)
		cache, err := raft.NewLogCache(512, bs)
		if err != nil {
			return err
		}
		cfg.LogStore, cfg.StableStore = cache, bs
	}
	if cfg.SnapshotStore == nil {
		ss, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "raft"), 3, cfg.Logger.Named("snapshot"))
		if err != nil {
			return fmt.Errorf("open snapshot store: %w", err)
		}
		cfg.SnapshotStore = ss
	}
	if cfg.Transport == nil {
		addr, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil {
			return fmt.Errorf("raft advertise address %q: %w", cfg.Advertise, err)
		}
		if addr.IP == nil || addr.IP.IsUnspecified() {
			return fmt.Errorf("raft advertise address %q: must be a routable IP, not a wildcard; set -advertise", cfg.Advertise)
		}
		// Pipelined replication off (MaxRPCsInFlight 1): hashicorp/raft's
		// netPipeline can deadlock when a follower stops answering (seen
		// here as a leader that never finishes its shutdown after a one-way
		// partition; hashicorp/raft#612, grafana/pyroscope#5518), and
		// raft's own docs say it helps little with batching.
		t, err := raft.NewTCPTransportWithConfig(cfg.RaftAddr, addr, &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 10 * time.Second, Logger: cfg.Logger.Named("raft-net"), MaxRPCsInFlight: 1})
		if err != nil {
			return fmt.Errorf("listen for raft on %s: %w", cfg.RaftAddr, err)
		}
		c.closer = append(c.closer, t)
		cfg.Transport = t
	}
	return nil
}

func (c *Cluster) closeAll() {
	for i := len(c.closer) - 1; i >= 0; i-- {
		c.closer[i].Close()
	}
}

func (c *Cluster) watchHeartbeats(ch chan raft.Observation) {
	for o := range ch {
		c.mu.Lock()
		switch d := o.Data.(type) {
		case raft.FailedHeartbeatObservation:
			c.unreachable[d.PeerID] = true
		case raft.ResumedHeartbeatObservation:
			delete(c.unreachable, d.PeerID)
		}
		c.mu.Unlock()
	}
}

func loadOrCreateID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id != "" {
			return id, nil
		}
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("read server id: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	id := uid.New()
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	return id, nil
}

// ID returns this server's id.
func (c *Cluster) ID() string { return c.cfg.ID }

// RaftAddr returns the Raft address other servers dial.
func (c *Cluster) RaftAddr() string { return string(c.cfg.Transport.LocalAddr()) }

// HTTPAddr returns this server's advertised HTTP address.
func (c *Cluster) HTTPAddr() string { return c.cfg.HTTPAddr }

// Raft returns the underlying Raft member, for tests and operator tools.
func (c *Cluster) Raft() *raft.Raft { return c.raft }

// LeadershipCh delivers true when this server becomes leader and false when
// it stops being leader.
func (c *Cluster) LeadershipCh() <-chan bool { return c.leaderCh }

// HasState reports whether this server has been part of a cluster before.
func (c *Cluster) HasState() (bool, error) {
	return raft.HasExistingState(c.cfg.LogStore, c.cfg.StableStore, c.cfg.SnapshotStore)
}

// Bootstrap makes servers the initial voters. Every server bootstrapping
// with the same list is safe: the first configuration wins.
func (c *Cluster) Bootstrap(servers []protocol.Member) error {
	var conf raft.Configuration
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.RaftAddr)})
	}
	err := c.raft.BootstrapCluster(conf).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// Propose is how every part of a server changes the state: it encodes a
// command of type typ with body, stamped with this member's clock and
// carrying the audit record of the request that caused it (nil for the
// server's own duties: the scheduler, the agent gateway, the leader), and
// waits until it is committed and applied here. It returns the Raft index
// and the FSM's answer (an error that changed nothing, or nil); ErrNotLeader
// when this member does not lead. Callers keep requests concurrent: Raft
// batches concurrent proposals into one disk write.
func (c *Cluster) Propose(ctx context.Context, typ state.CommandType, body any, audit *protocol.AuditRecord) (uint64, error) {
	idx, _, err := c.ProposeValue(ctx, typ, body, audit)
	return idx, err
}

// ProposeValue is Propose that also returns what the command wrote, as
// the FSM answered it (state.Applied's value; nil for commands that write
// no object an answer shows).
func (c *Cluster) ProposeValue(ctx context.Context, typ state.CommandType, body any, audit *protocol.AuditRecord) (uint64, any, error) {
	if err := c.checkVersion(typ); err != nil {
		return 0, nil, err
	}
	key, _ := ctx.Value(idempotencyKey{}).(string)
	cmd, err := state.EncodeKeyed(typ, c.cfg.Clock(), body, audit, key)
	if err != nil {
		return 0, nil, err
	}
	f, err := c.start(ctx, cmd)
	if err != nil {
		return 0, nil, err
	}
	idx, err := c.result(f)
	if err != nil {
		return idx, nil, err
	}
	switch a := f.Response().(type) {
	case state.Applied:
		return idx, a.Value, nil
	case state.Replayed:
		return idx, a, nil
	}
	return idx, nil, nil
}

type idempotencyKey struct{}

// WithIdempotencyKey makes the commands proposed with ctx carry key (a
// request's Idempotency-Key, scoped to its caller): a command with the key
// of an earlier one answers that one's outcome, as a state.Replayed value.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// Now returns the time of this member's clock, the one its proposals are
// stamped with.
func (c *Cluster) Now() time.Time { return c.cfg.Clock() }

// Result is the outcome of one command of ProposeAll.
type Result struct {
	Index uint64
	Err   error
}

// ProposeAll proposes commands of one type, without audit records, in
// order and without waiting for one to commit before proposing the next,
// and then waits for all of them: they are applied in that order, and
// Raft writes most of them to disk together.
func (c *Cluster) ProposeAll(ctx context.Context, typ state.CommandType, bodies []any) []Result {
	out := make([]Result, len(bodies))
	if err := c.checkVersion(typ); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	futures := make([]raft.ApplyFuture, len(bodies))
	now := c.cfg.Clock()
	for i, body := range bodies {
		cmd, err := state.Encode(typ, now, body, nil)
		if err != nil {
			out[i].Err = err
			continue
		}
		if futures[i], out[i].Err = c.start(ctx, cmd); out[i].Err != nil {
			break // what follows would commit out of order
		}
	}
	for i, f := range futures {
		if f != nil {
			out[i].Index, out[i].Err = c.result(f)
		} else if out[i].Err == nil {
			out[i].Err = protocol.Errorf(protocol.CodeUnavailable, "not proposed: a command before it was refused")
		}
	}
	return out
}

// checkVersion refuses a command newer than the cluster's log version:
// some server would not know it (state/version.go). The entry that raises
// the version is the leader's own business.
func (c *Cluster) checkVersion(typ state.CommandType) error {
	need, _ := state.CommandVersion(typ)
	if typ == state.CmdLogVersion || need <= c.cfg.FSM.LogVersion() {
		return nil
	}
	return &protocol.Error{Code: protocol.CodeUnavailable, Outcome: protocol.OutcomeNotApplied,
		Message: fmt.Sprintf("%s needs log version %d, and the cluster is at %d until every server runs a build of version %d: finish upgrading the servers", typ, need, c.cfg.FSM.LogVersion(), need)}
}

// start hands a command to Raft.
func (c *Cluster) start(ctx context.Context, cmd []byte) (raft.ApplyFuture, error) {
	timeout := DefaultApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		// raft treats a timeout of 0 as none at all.
		return nil, protocol.Errorf(protocol.CodeUnavailable, "request ended before its command was proposed")
	}
	return c.raft.Apply(cmd, timeout), nil
}

// result waits for a proposed command: its index, and the error the FSM
// answered, or why it was not committed.
func (c *Cluster) result(f raft.ApplyFuture) (uint64, error) {
	if err := c.wait(f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
			// Refused before the leader put it in its log.
			return 0, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
			return 0, ErrOutcomeUnknown
		}
		return 0, fmt.Errorf("%w (%v)", ErrOutcomeUnknown, err)
	}
	if resp, ok := f.Response().(error); ok && resp != nil {
		return f.Index(), resp
	}
	return f.Index(), nil
}

// IsLeader reports whether this server believes it is the leader.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the current leader's id and Raft address, if known.
func (c *Cluster) Leader() (id, raftAddr string) {
	addr, sid := c.raft.LeaderWithID()
	return string(sid), string(addr)
}

// VerifyLeader confirms with a quorum that this server is still the leader,
// so that a read served now is linearizable.
func (c *Cluster) VerifyLeader() error {
	if err := c.raft.VerifyLeader().Error(); err != nil {
		return ErrNotLeader
	}
	return nil
}

// Barrier waits until every entry committed before it is applied here.
func (c *Cluster) Barrier(timeout time.Duration) error {
	return c.wait(c.raft.Barrier(timeout))
}

// wait returns a Raft future's error, or ErrRaftShutdown once Shutdown
// began. hashicorp/raft answers the futures of Apply and Barrier from its
// FSM loop, and one that was still queued there when Raft shut down is
// never answered (its Error has no shutdown case): without this, whoever
// waits on it would wait forever, and Shutdown with it. The goroutine
// left waiting on such a future ends with the process.
func (c *Cluster) wait(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-c.stopped:
		return raft.ErrRaftShutdown
	}
}

// AppliedIndex returns the last index applied to the FSM here.
func (c *Cluster) AppliedIndex() uint64 { return c.raft.AppliedIndex() }

// AddVoter adds a server as a voter, or does nothing if it is one already
// at that address.
func (c *Cluster) AddVoter(id, raftAddr string) error {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id && string(s.Address) == raftAddr && s.Suffrage == raft.Voter {
			return nil
		}
	}
	if err := c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 30*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("add voter %s at %s: %w", id, raftAddr, err)
	}
	return nil
}

// RemoveServer removes a server from the configuration.
func (c *Cluster) RemoveServer(id string) error {
	found := false
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			found = true
		}
	}
	if !found {
		return protocol.NotFound("raft peer", id)
	}
	if err := c.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// Members returns the servers of the Raft configuration with their roles as
// this server sees them, and their HTTP addresses from the state.
func (c *Cluster) Members(snap *state.Snapshot) ([]protocol.Member, error) {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, err
	}
	leaderID, _ := c.Leader()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.Member
	for _, s := range cf.Configuration().Servers {
		m := protocol.Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter}
		if rec := snap.Server(m.ID); rec != nil {
			m.HTTPAddr = rec.HTTPAddr
		}
		switch {
		case m.ID == leaderID:
			m.State = "leader"
		case c.IsLeader() && c.unreachable[s.ID]:
			m.State = "unreachable"
		case m.Voter:
			m.State = "follower"
		default:
			m.State = "nonvoter"
		}
		out = append(out, m)
	}
	return out, nil
}

// Snapshot streams a copy of the whole state (for backups).
func (c *Cluster) Snapshot(w io.Writer) error {
	return state.WriteSnapshot(w, c.fsm.StoreDB())
}

// Restore replaces the whole cluster's state with a backup from r. Only the
// leader may restore; followers receive it as a Raft snapshot.
func (c *Cluster) Restore(r io.Reader) error {
	// Read and check it completely first, so that a bad file changes nothing.
	db, err := state.ReadSnapshot(r)
	if err != nil {
		return protocol.Errorf(protocol.CodeInvalidArgument, "%v", err)
	}
	// The backup's server records belong to the cluster it came from: keep
	// this cluster's, or followers could no longer forward to the leader.
	if err := state.KeepServers(db, c.fsm.Store().Snapshot().Servers()); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.cfg.DataDir, "restore-*.snap")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := state.WriteSnapshot(tmp, db); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	n, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: n}
	if err := c.raft.Restore(meta, tmp, time.Minute); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// voters counts the voters of the current configuration.
func (c *Cluster) voters() int {
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// Shutdown stops the member. With transfer, a leader first hands
// leadership to another server so that writes pause as little as possible.
func (c *Cluster) Shutdown(transfer bool) error {
	if transfer && c.IsLeader() && c.voters() > 1 {
		if err := c.raft.LeadershipTransfer().Error(); err != nil {
			c.logger.Warn("leadership transfer failed", "error", err)
		} else {
			c.logger.Info("transferred leadership before shutdown")
		}
	}
	c.raft.DeregisterObserver(c.observer)
	close(c.obsCh) // no more sends after deregistering: ends watchHeartbeats
	close(c.stopped)
	err := c.raft.Shutdown().Error()
	c.closeAll()
	return err
}
