package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/server/state"
)

// Option changes how StartCluster starts its servers.
type Option func(*clusterConfig)

type clusterConfig struct {
	// Raft timings; zero leaves the server's default (no flag passed).
	heartbeat, election, leaderLease time.Duration
	logLevel                         string
	extraArgs                        []string
	netns                            bool
	// bin is the drover binary the servers run; the build under test
	// (binPath) when empty.
	bin string
}

// WithBinary runs the servers from another drover binary (an older
// release, for upgrade tests) until Server.Upgrade.
func WithBinary(path string) Option {
	return func(c *clusterConfig) { c.bin = path }
}

// WithRaftTimings passes -raft-heartbeat-timeout, -raft-election-timeout
// and -raft-leader-lease-timeout to every server.
func WithRaftTimings(heartbeat, election, leaderLease time.Duration) Option {
	return func(c *clusterConfig) { c.heartbeat, c.election, c.leaderLease = heartbeat, election, leaderLease }
}

// WithFastRaft sets short Raft timings for tests that wait for elections
// without measuring them.
func WithFastRaft() Option {
	return WithRaftTimings(200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond)
}

// WithServerArgs adds flags to every server's command line after the
// harness's own, so they win (for example "-acl=true" once ACLs exist).
func WithServerArgs(args ...string) Option {
	return func(c *clusterConfig) { c.extraArgs = append(c.extraArgs, args...) }
}

// WithNetns runs each server in a network namespace of its own, attached
// to one bridge (NewBridge): servers listen on their namespace's address,
// which the test and agents on the host reach through the bridge, and
// traffic between two servers can be cut (Server.Netns().Refuse). It skips
// the test where namespaces cannot be made.
func WithNetns() Option {
	return func(c *clusterConfig) { c.netns = true }
}

// Cluster is a set of drover server processes started by one test.
type Cluster struct {
	t         testing.TB
	cfg       clusterConfig
	scheme    string // http, or https when the servers serve TLS
	dir       string
	launch    *launcher
	transport *http.Transport
	servers   []*Server
	nets      []*Netns // each server's namespace, with WithNetns
}

// startAttempts bounds how often StartCluster retries with new ports when
// one was taken before a server could bind it.
const startAttempts = 3

// StartCluster starts n servers that form one cluster (-bootstrap-expect n
// -join <every server's HTTP address>) with ACLs off, and returns once the
// cluster is formed (awaitFormed). Everything it starts is killed when the
// test ends.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := newCluster(t, opts...)
	c.launchAll(n)
	c.awaitFormed()
	return c
}

// newCluster returns a cluster that has started nothing yet.
func newCluster(t testing.TB, opts ...Option) *Cluster {
	cfg := clusterConfig{logLevel: "debug"}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Cluster{
		t: t, cfg: cfg, scheme: "http",
		// One temp dir for all the cluster's data and logs, made before the
		// launcher registers its cleanup: cleanups run last-in first-out, so
		// every process is dead before the directory is removed.
		dir:       t.TempDir(),
		transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	t.Cleanup(c.transport.CloseIdleConnections)
	return c
}

// launchAll starts n servers and waits until each serves HTTP as itself:
// the one way every e2e test starts servers. It retries on other ports
// when one was taken before a server could bind it.
func (c *Cluster) launchAll(n int) {
	t := c.t
	t.Helper()
	if c.cfg.netns {
		// Before the launcher: cleanups run last-in first-out, so every
		// process is dead before its namespace is removed.
		br := NewBridge(t)
		for range n {
			c.nets = append(c.nets, br.Attach())
		}
	}
	c.launch = newLauncher(t)
	for attempt := 1; ; attempt++ {
		err := c.start(n, attempt)
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("start a cluster of %d servers: %v", n, err)
		}
		t.Logf("start a cluster of %d servers: %v; retrying on other ports", n, err)
		c.launch.killAll()
	}
}

// awaitFormed waits until the cluster is whole: every server names the
// same leader and lists every server as a voter with its HTTP address.
// Servers keep retrying their join until then; a test that starts only
// afterwards sees a cluster in its steady state.
func (c *Cluster) awaitFormed() {
	c.t.Helper()
	want := c.HTTPAddrs()
	sort.Strings(want)
	eventually(c.t, waitTimeout, "every server to name one leader and list every server as a voter with its address", func() (bool, string) {
		leader, views := c.agreedLeader()
		if leader == nil {
			return false, views
		}
		for _, s := range c.servers {
			st, err := s.status(true)
			if err != nil {
				return false, err.Error()
			}
			var addrs []string
			for _, m := range st.Members {
				if m.Voter {
					addrs = append(addrs, m.HTTPAddr)
				}
			}
			sort.Strings(addrs)
			if !slices.Equal(addrs, want) {
				return false, fmt.Sprintf("%s lists voters at %v", s.name, addrs)
			}
			// Servers of this build raise the log to its version at once
			// (server/upgrade.go); tests start after that.
			if s.binary() == binPath && st.LogVersion != state.LogVersion {
				return false, fmt.Sprintf("%s is at log version %d", s.name, st.LogVersion)
			}
		}
		return true, ""
	})
	c.WaitForLeader()
}

// start makes a fresh set of servers on newly chosen ports and waits until
// each one serves HTTP.
func (c *Cluster) start(n, attempt int) error {
	ports, err := freePorts(2 * n)
	if err != nil {
		return err
	}
	c.servers = make([]*Server, n)
	for i := range c.servers {
		name := fmt.Sprintf("s%d", i)
		dir := filepath.Join(c.dir, fmt.Sprintf("attempt%d", attempt), name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		host := "127.0.0.1"
		var ns *Netns
		if c.nets != nil {
			ns = c.nets[i]
			host = ns.NsIP
		}
		c.servers[i] = &Server{
			c: c, i: i, name: name, ns: ns,
			httpAddr: host + ":" + strconv.Itoa(ports[2*i]),
			raftAddr: host + ":" + strconv.Itoa(ports[2*i+1]),
			dataDir:  filepath.Join(dir, "data"),
			logPath:  filepath.Join(dir, name+".log"),
		}
	}
	for _, s := range c.servers {
		if err := s.launch(); err != nil {
			return err
		}
	}
	for _, s := range c.servers {
		if err := s.awaitServing(); err != nil {
			return err
		}
	}
	return nil
}

// Server returns the i-th server (from 0).
func (c *Cluster) Server(i int) *Server { return c.servers[i] }

// Servers returns every server, running or not.
func (c *Cluster) Servers() []*Server { return append([]*Server(nil), c.servers...) }

// Kill sends SIGKILL to server i's process group and waits for it to end.
func (c *Cluster) Kill(i int) { c.t.Helper(); c.servers[i].Kill() }

// Stop sends SIGTERM to server i and waits for it to exit; it returns the
// exit code.
func (c *Cluster) Stop(i int) int { c.t.Helper(); return c.servers[i].Stop() }

// Pause stops server i with SIGSTOP.
func (c *Cluster) Pause(i int) { c.t.Helper(); c.servers[i].Pause() }

// Cont resumes server i with SIGCONT.
func (c *Cluster) Cont(i int) { c.t.Helper(); c.servers[i].Cont() }

// Restart starts server i again with the same data dir, ports and flags,
// stopping it first (SIGTERM) if it runs.
func (c *Cluster) Restart(i int) { c.t.Helper(); c.servers[i].Restart() }

// Leader returns the server that every running, unpaused server names as
// leader (GET /v1/status?stale=true on each), or nil while they disagree,
// name none, or name one that is down. It does not wait.
func (c *Cluster) Leader() *Server {
	s, _ := c.agreedLeader()
	return s
}

// WaitForLeader waits until Leader is not nil and every running, unpaused
// server answers a linearizable GET /v1/status (forwarding it to the
// leader), and returns the leader.
func (c *Cluster) WaitForLeader() *Server {
	c.t.Helper()
	return c.waitLeader("a leader", func(*Server) bool { return true })
}

// WaitForNewLeader waits, like WaitForLeader, for a leader other than old.
func (c *Cluster) WaitForNewLeader(old *Server) *Server {
	c.t.Helper()
	return c.waitLeader("a leader other than "+old.name, func(s *Server) bool { return s != old })
}

// Followers waits for a leader and returns the other running, unpaused
// servers.
func (c *Cluster) Followers() []*Server {
	c.t.Helper()
	leader := c.WaitForLeader()
	var out []*Server
	for _, s := range c.up() {
		if s != leader {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) waitLeader(what string, accept func(*Server) bool) *Server {
	c.t.Helper()
	var leader *Server
	eventually(c.t, waitTimeout, what+" named by every running server, each serving linearizable reads", func() (bool, string) {
		s, views := c.agreedLeader()
		if s == nil {
			return false, views
		}
		if !accept(s) {
			return false, views + "; not accepted"
		}
		// Right after a restart a follower knows the leader's id before its
		// state holds the leader's address; until then it cannot forward.
		for _, u := range c.up() {
			r, err := u.Client().WithTimeout(2*time.Second).Try(http.MethodGet, "/v1/status", nil)
			if err != nil {
				return false, fmt.Sprintf("%s; GET /v1/status on %s: %v", views, u.name, err)
			}
			if !r.OK() {
				return false, fmt.Sprintf("%s; %s: %s", views, u.name, r)
			}
		}
		leader = s
		return true, views
	})
	return leader
}

// agreedLeader returns the leader every running, unpaused server names, or
// nil, and what each server said.
func (c *Cluster) agreedLeader() (*Server, string) {
	var views []string
	leaderID, agree := "", true
	up := c.up()
	for _, s := range up {
		st, err := s.status(true)
		if err != nil {
			views = append(views, fmt.Sprintf("%s: %v", s.name, err))
			agree = false
			continue
		}
		views = append(views, fmt.Sprintf("%s names %s", s.name, c.nameOf(st.Leader)))
		if st.Leader == "" || (leaderID != "" && st.Leader != leaderID) {
			agree = false
		}
		leaderID = st.Leader
	}
	desc := strings.Join(views, ", ")
	if !agree || len(up) == 0 {
		return nil, desc
	}
	for _, s := range up {
		if s.ID() == leaderID {
			return s, desc
		}
	}
	return nil, desc + " (not a running server)"
}

// up returns the running, unpaused servers.
func (c *Cluster) up() []*Server {
	var out []*Server
	for _, s := range c.servers {
		if s.Running() && !s.Paused() {
			out = append(out, s)
		}
	}
	return out
}

// nameOf names a server id as the harness does ("s1"), for messages.
func (c *Cluster) nameOf(id string) string {
	if id == "" {
		return "no leader"
	}
	for _, s := range c.servers {
		if s.ID() == id {
			return s.name
		}
	}
	return id
}

// IDs returns the servers' ids.
func (c *Cluster) IDs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.ID())
	}
	return out
}

// HTTPAddrs returns the servers' HTTP addresses (host:port).
func (c *Cluster) HTTPAddrs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.httpAddr)
	}
	return out
}

// Agents (StartAgent) and network cuts live in agent_harness_test.go, on
// the same launcher and waits.

// Server is one drover server process of a Cluster. Its data dir and ports
// stay the same across restarts.
type Server struct {
	c        *Cluster
	i        int
	name     string // s0, s1, ... in messages and log names
	httpAddr string
	raftAddr string
	dataDir  string
	logPath  string
	ns       *Netns // with WithNetns

	mu     sync.Mutex
	id     string // learnt at the first start, checked at restarts
	proc   *process
	paused bool
	bin    string // the binary it runs; the cluster's when empty
}

// Upgrade stops the server and starts it again from the build under test
// (binPath), on the same data directory and addresses.
func (s *Server) Upgrade() {
	s.c.t.Helper()
	s.mu.Lock()
	s.bin = binPath
	s.mu.Unlock()
	s.Restart()
}

// binary is the drover binary the server runs.
func (s *Server) binary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.bin != "":
		return s.bin
	case s.c.cfg.bin != "":
		return s.c.cfg.bin
	}
	return binPath
}

// Name is the server's name in the harness's messages: s0, s1, ...
func (s *Server) Name() string { return s.name }

// Addr is the server's HTTP address, host:port.
func (s *Server) Addr() string { return s.httpAddr }

// URL is the server's API base URL.
func (s *Server) URL() string {
	if s.c == nil || s.c.scheme == "" {
		return "http://" + s.httpAddr // a server this harness did not start
	}
	return s.c.scheme + "://" + s.httpAddr
}

// RaftAddr is the server's Raft address, host:port.
func (s *Server) RaftAddr() string { return s.raftAddr }

// Netns is the server's network namespace, nil unless WithNetns.
func (s *Server) Netns() *Netns { return s.ns }

// DataDir is the server's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// LogPath is the file the server's output goes to (all its runs).
func (s *Server) LogPath() string { return s.logPath }

// ID is the server's id (as in GET /v1/status).
func (s *Server) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Running reports whether the server's process is alive (paused or not).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// Paused reports whether the server was paused and not resumed.
func (s *Server) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// Client returns an API client for this server.
func (s *Server) Client() *Client {
	return &Client{t: s.c.t, base: s.URL(), hc: &http.Client{Transport: s.c.transport, Timeout: defaultRequestTimeout}}
}

func (s *Server) args() []string {
	cfg := s.c.cfg
	a := []string{"server",
		"-data-dir", s.dataDir,
		"-http-addr", s.httpAddr,
		"-raft-addr", s.raftAddr,
		"-bootstrap-expect", strconv.Itoa(len(s.c.servers)),
		"-join", strings.Join(s.c.HTTPAddrs(), ","),
		"-acl=false",
		"-log-level", cfg.logLevel,
	}
	if cfg.heartbeat > 0 {
		a = append(a, "-raft-heartbeat-timeout", cfg.heartbeat.String())
	}
	if cfg.election > 0 {
		a = append(a, "-raft-election-timeout", cfg.election.String())
	}
	if cfg.leaderLease > 0 {
		a = append(a, "-raft-leader-lease-timeout", cfg.leaderLease.String())
	}
	return append(a, cfg.extraArgs...)
}

// launch starts the process without waiting for it to serve.
func (s *Server) launch() error {
	argv := append([]string{s.binary()}, s.args()...)
	if s.ns != nil {
		argv = append(s.ns.ExecPrefix(), argv...)
	}
	p, err := s.c.launch.startArgv(s.name, s.logPath, argv)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc, s.paused = p, false
	s.mu.Unlock()
	return nil
}

// selfInfo is GET /v1/internal/self, which servers use to find each other.
type selfInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

// awaitServing waits until this process answers HTTP. The answer must name
// this server's Raft address (and, after the first start, its id): another
// program that took the port in between would not.
func (s *Server) awaitServing() error {
	s.mu.Lock()
	p, wantID := s.proc, s.id
	s.mu.Unlock()
	var gotErr error
	ok, state := waitUntil(waitTimeout, func() (bool, string) {
		if p.exited() {
			gotErr = exitError(p, s.logPath)
			return true, ""
		}
		r, err := s.Client().WithTimeout(2*time.Second).Try(http.MethodGet, "/v1/internal/self", nil)
		if err != nil {
			return false, err.Error()
		}
		var self selfInfo
		if !r.OK() || r.Decode(&self) != nil {
			return false, r.String()
		}
		if self.RaftAddr != s.raftAddr || (wantID != "" && self.ID != wantID) {
			gotErr = fmt.Errorf("%s: %s answers as %s at %s, not this server (id %q at %s)",
				s.name, s.httpAddr, self.ID, self.RaftAddr, wantID, s.raftAddr)
			return true, ""
		}
		s.mu.Lock()
		s.id = self.ID
		s.mu.Unlock()
		return true, ""
	})
	if gotErr != nil {
		return gotErr
	}
	if !ok {
		return fmt.Errorf("%s (pid %d) does not serve HTTP on %s after %v: %s", s.name, p.pid(), s.httpAddr, waitTimeout, state)
	}
	return nil
}

// running returns the live process or fails the test.
func (s *Server) running(op string) *process {
	s.c.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil || p.exited() {
		s.c.t.Fatalf("%s %s: not running", op, s.name)
	}
	return p
}

// Kill sends SIGKILL to the server's process group and waits for it to end.
func (s *Server) Kill() {
	s.c.t.Helper()
	if err := s.running("kill").kill(); err != nil {
		s.c.t.Fatal(err)
	}
}

// stopTimeout bounds a graceful stop: the server gives itself 15 s.
const stopTimeout = 30 * time.Second

// Stop sends SIGTERM (resuming a paused server first) and waits for the
// process to exit; it returns the exit code. A server still running after
// stopTimeout is killed and fails the test.
func (s *Server) Stop() int {
	s.c.t.Helper()
	p := s.running("stop")
	if s.Paused() {
		s.Cont()
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		s.c.t.Fatalf("stop %s: %v", s.name, err)
	}
	if !p.waitExit(stopTimeout) {
		// SIGQUIT first: Go prints every goroutine's stack to the log,
		// which the test prints, to show where the shutdown hangs.
		_ = p.signal(syscall.SIGQUIT)
		if !p.waitExit(5 * time.Second) {
			_ = p.kill()
		}
		s.c.t.Fatalf("stop %s: still running %v after SIGTERM; killed it with SIGQUIT (its goroutines are in its log)", s.name, stopTimeout)
	}
	return p.exitCode()
}

// Pause stops the server's process with SIGSTOP: it holds its ports and
// state but answers nothing, like a hung machine.
func (s *Server) Pause() {
	s.c.t.Helper()
	if err := s.running("pause").signal(syscall.SIGSTOP); err != nil {
		s.c.t.Fatalf("pause %s: %v", s.name, err)
	}
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
}

// Cont resumes a paused server with SIGCONT.
func (s *Server) Cont() {
	s.c.t.Helper()
	if err := s.running("resume").signal(syscall.SIGCONT); err != nil {
		s.c.t.Fatalf("resume %s: %v", s.name, err)
	}
	s.mu.Lock()
	s.paused = false
	s.mu.Unlock()
}

// Restart starts the server again with the same data dir, ports and flags,
// after stopping it (SIGTERM) if it runs, and waits until it serves HTTP
// with the id it had. A port taken meanwhile is retried until waitTimeout.
func (s *Server) Restart() {
	s.c.t.Helper()
	if s.Running() {
		s.Stop()
	}
	var last error
	ok, _ := waitUntil(waitTimeout, func() (bool, string) {
		if last = s.launch(); last != nil {
			return false, ""
		}
		last = s.awaitServing()
		return last == nil || !errors.Is(last, errPortTaken), ""
	})
	if !ok || last != nil {
		s.c.t.Fatalf("restart %s: %v", s.name, last)
	}
}

// status is this server's own view of the cluster: GET /v1/status, with
// ?stale=true when stale so that a follower answers itself.
func (s *Server) status(stale bool) (*apiStatus, error) {
	path := "/v1/status"
	if stale {
		path += "?stale=true"
	}
	r, err := s.Client().WithTimeout(2*time.Second).Try(http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		return nil, errors.New(r.String())
	}
	var st apiStatus
	if err := r.Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}
