// Package server wires a Drover server together: the Raft member, the
// state, the admin API, and the leader's duties.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/tlsutil"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/console"
	"github.com/drover-dev/drover/server/gateway"
	"github.com/drover-dev/drover/server/metrics"
	"github.com/drover-dev/drover/server/nomad"
	"github.com/drover-dev/drover/server/rollout"
	"github.com/drover-dev/drover/server/scheduler"
	"github.com/drover-dev/drover/server/state"
)

// Config configures a server. Zero values take the defaults.
type Config struct {
	ID       string
	DataDir  string
	HTTPAddr string // listen address of the API and the agent gateway
	RaftAddr string // listen address of Raft
	// Advertise is the host other servers and agents reach this one at;
	// the host of HTTPAddr and RaftAddr when empty.
	Advertise       string
	BootstrapExpect int
	Join            []string

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64

	// ACL requires a token on every API request but GET /v1/health, and a
	// join token of agents registering (server/api, auth.go). drover dev
	// runs with it off.
	ACL bool
	// AgentJoinToken lets agents register. With ACL on and none set, the
	// ACL bootstrap creates one.
	AgentJoinToken string
	// ServerJoinToken is the secret servers present to each other to join
	// the cluster (POST /v1/internal/join) when they do not present TLS
	// certificates of the cluster's CA. With ACL on, no CA and none set,
	// a server can only form a cluster of itself.
	ServerJoinToken string
	// AuditRetention bounds the audit log; the leader writes it into the
	// state when it differs, so the leader's setting wins.
	AuditRetention state.AuditRetention
	// HeartbeatTTL is the shortest time a silent node stays up; it grows
	// with the fleet. HeartbeatGrace is added after a leader change.
	HeartbeatTTL   time.Duration
	HeartbeatGrace time.Duration

	// Pprof serves Go's profiles at /debug/pprof/ (-pprof).
	Pprof bool
	// GatewayURL is the traffic gateways' base URL, from which instances'
	// endpoints are made (api.DefaultGatewayURL when nil).
	GatewayURL *url.URL

	// TLS serves HTTPS when set, and calls other servers with it.
	TLS *tlsutil.Server

	// NomadAddr, when set, is the listen address of the Nomad API
	// (server/nomad); NomadDefaultTenant is the tenant of its "default"
	// namespace ("default" when empty).
	NomadAddr          string
	NomadDefaultTenant string

	Logger hclog.Logger
	// Clock is this server's time: commands, tokens, heartbeat deadlines
	// and the scheduler read it. time.Now when nil.
	Clock func() time.Time
	// MaxHeartbeatsPerSecond bounds the leader's heartbeat load; the TTL
	// grows with the fleet to keep under it (gateway.Config).
	MaxHeartbeatsPerSecond int
	// NoScheduler keeps the leader from running the scheduler: for tests
	// of the agent channel that place replicas themselves (Nomad's servers
	// have NumSchedulers = 0 for the same).
	NoScheduler bool
	// Raft replaces Raft's TCP transport and on-disk stores where set: the
	// in-process tests of clustertest run servers on raft's in-memory
	// transport. RaftAddr is then the transport's address.
	Raft cluster.Stores
}

// Server is a running Drover server.
type Server struct {
	cfg     Config
	logger  hclog.Logger
	store   *state.Store
	fsm     *state.FSM
	cluster *cluster.Cluster
	api     *api.API
	gateway *gateway.Gateway
	metrics *metrics.Metrics
	http    *http.Server
	ln      net.Listener
	nomad   *http.Server // the Nomad API's, when NomadAddr is set
	nomadLn net.Listener
	// peers calls other servers (joins, their builds' log versions) over
	// scheme.
	peers  *http.Client
	scheme string

	ready  atomic.Bool   // leader has applied everything before its term
	joined chan struct{} // closed when this server is a registered member

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a server: it listens, starts Raft, and begins forming or
// joining the cluster in the background.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:4700"
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = "127.0.0.1:4701"
	}
	if cfg.DataDir == "" {
		return nil, errors.New("data-dir is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, joined: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on http-addr %s: %w", cfg.HTTPAddr, err)
	}
	s.ln = ln
	started := false
	defer func() {
		if !started { // an error below: close what was opened
			ln.Close()
			if s.nomadLn != nil {
				s.nomadLn.Close()
			}
		}
	}()
	if cfg.NomadAddr != "" {
		if s.nomadLn, err = net.Listen("tcp", cfg.NomadAddr); err != nil {
			return nil, fmt.Errorf("listen on nomad-addr %s: %w", cfg.NomadAddr, err)
		}
	}
	httpAdv, err := advertised(cfg.Advertise, ln.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("advertise: %w", err)
	}
	var raftAdv string
	if cfg.Raft.Transport != nil {
		raftAdv = string(cfg.Raft.Transport.LocalAddr())
	} else if raftAdv, err = advertised(cfg.Advertise, cfg.RaftAddr); err != nil {
		return nil, fmt.Errorf("advertise: %w", err)
	}

	s.store = state.NewStore()
	s.fsm = state.NewFSM(s.store, cfg.Logger)
	s.cluster, err = cluster.New(cluster.Config{
		ID: cfg.ID, DataDir: cfg.DataDir, RaftAddr: cfg.RaftAddr, Advertise: raftAdv, HTTPAddr: httpAdv,
		HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout,
		LeaderLeaseTimeout: cfg.LeaderLeaseTimeout, SnapshotThreshold: cfg.SnapshotThreshold,
		FSM: s.fsm, Logger: cfg.Logger, Clock: cfg.Clock, Stores: cfg.Raft,
	})
	if err != nil {
		return nil, err
	}
	scheme := "http"
	var listenTLS, dialTLS *tls.Config
	caFingerprint := ""
	if cfg.TLS != nil {
		scheme = "https"
		listenTLS, dialTLS, caFingerprint = cfg.TLS.Listen, cfg.TLS.Dial, cfg.TLS.CAFingerprint
	}
	// Servers call each other (forming the cluster, forwarding to the
	// leader) with this transport: over TLS it presents this server's
	// certificate. Without TLS, the shared secret authenticates them; with
	// ACL on and none given, a random one lets this server call only
	// itself, which recording its own address in the cluster needs.
	serverToken := cfg.ServerJoinToken
	if serverToken == "" && cfg.ACL {
		serverToken = secret.New()
	}
	// Idle connections to keep per server: as many as the writes a busy
	// follower forwards at once, so that it does not dial the leader anew
	// for each past that count.
	peerTransport := &http.Transport{TLSClientConfig: dialTLS,
		MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}
	s.peers = &http.Client{Timeout: 5 * time.Second, Transport: withServerToken{peerTransport, serverToken}}
	s.scheme = scheme
	s.gateway = gateway.New(gateway.Config{
		Cluster: s.cluster, Store: s.store, Logger: cfg.Logger, Clock: cfg.Clock,
		JoinToken: cfg.AgentJoinToken, RequireJoinToken: cfg.ACL,
		MinTTL: cfg.HeartbeatTTL, Grace: cfg.HeartbeatGrace, MaxHeartbeatsPerSecond: cfg.MaxHeartbeatsPerSecond,
	})
	s.metrics = metrics.New(metrics.Config{
		Store: s.store, IsLeader: s.cluster.IsLeader, AppliedIndex: s.cluster.AppliedIndex,
		Sessions: s.gateway.Sessions, Connects: s.gateway.Connects, Assigned: s.gateway.Assigned,
		Held: s.gateway.Held,
	})
	gatewayURL := cfg.GatewayURL
	if gatewayURL == nil {
		gatewayURL, _ = api.ParseGatewayURL(api.DefaultGatewayURL)
	}
	s.api = api.New(api.Config{
		Cluster: s.cluster, Store: s.store, Logger: cfg.Logger, Clock: cfg.Clock, Scheme: scheme, Transport: peerTransport,
		Ready: s.ready.Load, Logs: s.gateway,
		Live: func(node string) (time.Time, *protocol.Metrics, bool) {
			l, ok := s.gateway.NodeLive(node)
			return l.LastSeen, l.Load, ok
		}, Nodes: s.gateway,
		ACL: cfg.ACL, ServerToken: serverToken, RequireServerAuth: caFingerprint != "",
		AgentJoinToken: cfg.AgentJoinToken, CAFingerprint: caFingerprint, GatewayURL: gatewayURL, Pprof: cfg.Pprof, Unformed: s.unformed,
		Metrics: s.metrics.Handler(), TenantMetrics: s.metrics.TenantHandler,
		Mount: func(mux *http.ServeMux) {
			mux.Handle("GET /v1/agent/connect", s.gateway)
			mux.Handle("GET /{$}", console.Redirect())
			mux.Handle("GET "+console.Prefix, console.Handler())
		},
	})
	s.http = &http.Server{Handler: s.metrics.Instrument(s.api), TLSConfig: listenTLS, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: cfg.Logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}

	if s.nomadLn != nil {
		s.serveNomad(listenTLS)
	}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		var err error
		if cfg.TLS != nil {
			err = s.http.ServeTLS(ln, "", "")
		} else {
			err = s.http.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.leaderLoop()
	}()
	go func() {
		defer s.wg.Done()
		if hint := s.unformed(); hint != "" && cfg.BootstrapExpect == 0 && len(cfg.Join) == 0 {
			s.logger.Warn(hint)
		}
		j := &cluster.Joiner{Cluster: s.cluster, Peers: cfg.Join, Expect: cfg.BootstrapExpect, Scheme: scheme, Client: s.peers}
		if err := j.Run(s.ctx); err == nil {
			s.logger.Info("member of the cluster", "id", s.cluster.ID())
			close(s.joined)
		}
	}()
	s.logger.Info("server started", "id", s.cluster.ID(), "http", httpAdv, "raft", raftAdv)
	started = true
	return s, nil
}

// serveNomad serves the Nomad API (server/nomad) on its own listener.
func (s *Server) serveNomad(tlsConfig *tls.Config) {
	h := nomad.New(nomad.Config{API: s.api, Caller: s.api.Caller, Store: s.store, Cluster: s.cluster,
		DefaultTenant: s.cfg.NomadDefaultTenant, Logger: s.cfg.Logger})
	s.nomad = &http.Server{Handler: h, TLSConfig: tlsConfig, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: s.cfg.Logger.Named("nomad").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if tlsConfig != nil {
			err = s.nomad.ServeTLS(s.nomadLn, "", "")
		} else {
			err = s.nomad.Serve(s.nomadLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("nomad api server stopped", "error", err)
		}
	}()
	s.logger.Info("nomad api listening", "addr", s.nomadLn.Addr().String())
}

// NomadAddr returns the address the Nomad API listens on, or "".
func (s *Server) NomadAddr() string {
	if s.nomadLn == nil {
		return ""
	}
	return s.nomadLn.Addr().String()
}

// unformed says, while this server is in no cluster yet, why and what to
// set; "" once it is a member (its Raft log has a configuration).
func (s *Server) unformed() string {
	if has, err := s.cluster.HasState(); err != nil || has {
		return ""
	}
	if s.cfg.BootstrapExpect == 0 && len(s.cfg.Join) == 0 {
		return "this server is in no cluster and was given no way to form or join one: start it with " +
			"-bootstrap-expect N (the number of servers; 1 for a single server) and -join with the servers' " +
			"HTTP addresses (bootstrap_expect and join in its config file)"
	}
	if s.cfg.BootstrapExpect > 0 {
		return fmt.Sprintf("this server is in no cluster yet: it waits until %d servers (-bootstrap-expect) have found each other through -join %s; retry",
			s.cfg.BootstrapExpect, strings.Join(s.cfg.Join, ","))
	}
	return fmt.Sprintf("this server is in no cluster yet: it is asking to join one through -join %s; retry", strings.Join(s.cfg.Join, ","))
}

// withServerToken adds the servers' shared secret to calls to other servers.
type withServerToken struct {
	base  http.RoundTripper
	token string
}

func (t withServerToken) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token == "" {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set(api.HeaderServerToken, t.token)
	return t.base.RoundTrip(r)
}

// advertised returns listen with its host replaced by advertise when given,
// refusing wildcard hosts that others could not dial.
func advertised(advertise, listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if advertise != "" {
		if h, p, err := net.SplitHostPort(advertise); err == nil {
			_ = p // a port in -advertise is ignored: each listener keeps its own
			advertise = h
		}
		host = advertise
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("listening on %s: set -advertise to an address other servers can reach", listen)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("bad port in %s", listen)
	}
	return net.JoinHostPort(host, port), nil
}

// HTTPAddr returns the address the API listens on.
func (s *Server) HTTPAddr() string { return s.ln.Addr().String() }

// Ready reports whether this server leads and has applied everything
// committed before its term, so that it serves current reads and runs the
// leader's duties.
func (s *Server) Ready() bool { return s.ready.Load() && s.cluster.IsLeader() }

// Joined is closed once this server is a member of a cluster with a
// leader and its address is recorded in the state.
func (s *Server) Joined() <-chan struct{} { return s.joined }

// Gateway returns the agents' gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.gateway }

// Cluster returns the Raft member.
func (s *Server) Cluster() *cluster.Cluster { return s.cluster }

// Store returns the state store.
func (s *Server) Store() *state.Store { return s.store }

// leaderLoop runs the leader's duties while this server is leader.
func (s *Server) leaderLoop() {
	var duties *task
	defer func() {
		duties.stop()
		s.ready.Store(false)
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case leader := <-s.cluster.LeadershipCh():
			duties.stop()
			duties = nil
			s.ready.Store(false)
			if !leader {
				s.logger.Info("no longer the leader")
				continue
			}
			s.logger.Info("became the leader")
			duties = startTask(s.ctx, s.leaderDuties)
		}
	}
}

// task is a goroutine with its owner's handle to stop it.
type task struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startTask(parent context.Context, fn func(context.Context)) *task {
	ctx, cancel := context.WithCancel(parent)
	t := &task{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		fn(ctx)
	}()
	return t
}

// stop cancels the task and waits for it to end; a nil task is stopped.
func (t *task) stop() {
	if t == nil {
		return
	}
	t.cancel()
	<-t.done
}

// leaderDuties runs while this server leads: it waits until the state is
// current, records its own address and the default environments, then
// serves (Ready) until ctx ends.
func (s *Server) leaderDuties(ctx context.Context) {
	wait := backoff.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	for s.cluster.Barrier(10*time.Second) != nil {
		if !backoff.Sleep(ctx, wait.Next()) {
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	// Ready once the defaults exist: a request on a new cluster must not
	// meet a missing "production" environment.
	s.establish(ctx)
	s.ready.Store(true)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.gateway.Lead(ctx)
	}()
	rollouts := rollout.NewController(rollout.Config{Store: s.store, Clock: s.cfg.Clock, Logger: s.logger,
		Propose: func(ctx context.Context, st *state.RolloutStep) error {
			_, err := s.cluster.Propose(ctx, state.CmdRolloutStep, st, nil)
			return err
		}})
	wg.Add(1)
	go func() {
		defer wg.Done()
		rollouts.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.upgradeLog(ctx, s.peers, s.scheme)
	}()
	if !s.cfg.NoScheduler {
		worker := scheduler.NewWorker(scheduler.WorkerConfig{
			Store: s.store, Logger: s.logger, Clock: s.cfg.Clock, Observe: s.metrics.ObserveScheduler,
			Propose: func(ctx context.Context, p *state.Plan) (uint64, error) {
				return s.cluster.Propose(ctx, state.CmdPlanApply, p, nil)
			},
			ProposeAll: func(ctx context.Context, ps []*state.Plan) []scheduler.Committed {
				bodies := make([]any, len(ps))
				for i, p := range ps {
					bodies[i] = p
				}
				out := make([]scheduler.Committed, len(ps))
				for i, r := range s.cluster.ProposeAll(ctx, state.CmdPlanApply, bodies) {
					out[i] = scheduler.Committed{Index: r.Index, Err: r.Err}
				}
				return out
			},
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker.Run(ctx)
		}()
	}
	wg.Wait()
}

// DefaultEnvironments exist in every cluster; operators add others.
var DefaultEnvironments = []protocol.Environment{
	{Name: protocol.DefaultEnvironment},
	{Name: "dev"},
	{Name: "staging"},
	{Name: "production", Protected: true},
}

func (s *Server) establish(ctx context.Context) {
	snap := s.store.Snapshot()
	me := protocol.Member{ID: s.cluster.ID(), RaftAddr: s.cluster.RaftAddr(), HTTPAddr: s.cluster.HTTPAddr(), Voter: true}
	if cur := snap.Server(me.ID); cur == nil || cur.HTTPAddr != me.HTTPAddr || cur.RaftAddr != me.RaftAddr {
		if _, err := s.cluster.Propose(ctx, state.CmdServerUpsert, state.ServerUpsert{Member: me}, nil); err != nil {
			s.logger.Warn("record own address", "error", err)
		}
	}
	if want := s.cfg.AuditRetention.WithDefaults(); want != snap.AuditRetention() {
		if _, err := s.cluster.Propose(ctx, state.CmdAuditRetention, want, nil); err != nil {
			s.logger.Warn("set the audit log's retention", "error", err)
		}
	}
	for _, e := range DefaultEnvironments {
		if snap.Environment(e.Name) == nil {
			if _, err := s.cluster.Propose(ctx, state.CmdEnvironmentUpsert, state.EnvironmentUpsert{Environment: e}, nil); err != nil {
				s.logger.Warn("create default environment", "name", e.Name, "error", err)
			}
		}
	}
}

// Shutdown stops the server. A leader hands leadership over first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.logger.Info("shutting down")
	// Stop taking requests and let those in flight finish (connections
	// that never sent one would hold Shutdown for its whole timeout), then
	// write the queued audit records of refused requests while this server
	// may still lead, then hand leadership over and stop Raft.
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	if e := s.http.Shutdown(hctx); e != nil {
		s.http.Close()
	}
	cancel()
	if s.nomad != nil {
		s.nomad.Close()
	}
	s.api.Close()
	err := s.cluster.Shutdown(true)
	s.cancel()
	s.wg.Wait()
	return err
}
