// Package conn is the agent's end of the agent channel: it dials a server
// over WebSocket (outbound only, so hosts behind NAT work), says hello,
// follows redirects to the leader, notices dead connections with pings,
// reconnects with jittered backoff, and delivers status reports until the
// server acknowledges them.
package conn

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/protocol"
)

// Timing defaults.
const (
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 4 * time.Second
	DefaultPingInterval = time.Second
	dialTimeout         = 10 * time.Second
	writeTimeout        = 10 * time.Second
	maxRedirects        = 3
)

// Handler receives what the servers send.
type Handler interface {
	// Welcome is called after each accepted hello, before anything else of
	// that session.
	Welcome(protocol.Welcome)
	// Assign delivers the node's whole desired replica set. ctx is Run's:
	// it outlives the session, so work the handler starts under it (a
	// replica's supervisor) survives reconnects, and ends with Run.
	Assign(ctx context.Context, a protocol.Assign)
	// Logs asks for a replica's output; the handler sends chunks with send
	// until done, or stops when ctx ends (the server cancelled, or the
	// connection ended).
	Logs(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error)
}

// Config configures a Client.
type Config struct {
	// Servers are the servers' addresses (http(s)://host:port or host:port).
	Servers []string
	// Hello returns the hello to send on each connection: current facts,
	// identity and replicas.
	Hello   func() protocol.Hello
	Handler Handler
	// TLS configures https/wss; nil uses the system's roots.
	TLS *tls.Config
	// Dial, when set, makes the TCP connections to the servers (the
	// benchmarks' simulated hosts use it to vanish without closing them).
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger hclog.Logger

	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// ErrRefused is returned by a session the server refused (bad credentials).
var ErrRefused = errors.New("refused by server")

// Client keeps the agent connected.
type Client struct {
	cfg    Config
	logger hclog.Logger
	dialer *http.Client

	mu        sync.Mutex
	servers   []string // configured first, then learned from welcome
	next      int
	pending   map[string]*outEntry // unacknowledged reports by replica
	seq       uint64
	gen       uint64
	notify    chan struct{}
	connected bool
	metrics   *protocol.Metrics // host load not yet sent
}

type outEntry struct {
	report protocol.ReplicaReport
	sent   uint64 // seq of the status message that carried it; 0 = not sent
}

// New returns a client; Run connects it.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("servers: at least one server address is required")
	}
	if cfg.Hello == nil || cfg.Handler == nil {
		return nil, errors.New("conn: Hello and Handler are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	var servers []string
	for _, s := range cfg.Servers {
		u, err := normalize(s)
		if err != nil {
			return nil, fmt.Errorf("servers: %w", err)
		}
		servers = append(servers, u)
	}
	// One transport for every dial, without keep-alives: a dial answered
	// with anything but the upgrade (a proxy's 503) must leave no idle
	// connection, and its goroutines, behind.
	var tr *http.Transport
	if cfg.TLS != nil {
		tr = &http.Transport{TLSClientConfig: cfg.TLS}
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.DisableKeepAlives = true
	if cfg.Dial != nil {
		tr.DialContext = cfg.Dial
	}
	return &Client{cfg: cfg, logger: cfg.Logger.Named("conn"), dialer: &http.Client{Transport: tr}, servers: servers,
		pending: map[string]*outEntry{}, notify: make(chan struct{}, 1)}, nil
}

// normalize turns a server address into a base URL with http or https.
func normalize(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a server address", addr)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("%q: scheme must be http or https", addr)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Report queues replica observations; they are sent now if connected, and
// resent after reconnecting until a server acknowledges them.
func (c *Client) Report(reports []protocol.ReplicaReport, generation uint64) {
	c.mu.Lock()
	for _, r := range reports {
		c.pending[r.ID] = &outEntry{report: r}
	}
	if generation > c.gen {
		c.gen = generation
	}
	c.mu.Unlock()
	c.poke()
}

// Metrics queues the host's load for the next status message. Load is not
// resent after a reconnect: a newer reading follows soon.
func (c *Client) Metrics(m *protocol.Metrics) {
	c.mu.Lock()
	c.metrics = m
	c.mu.Unlock()
	c.poke()
}

// Connected reports whether a session is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *Client) poke() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// errPongLate ends a session whose server did not answer a ping in time.
var errPongLate = errors.New("server did not answer ping")

// errNotLeader is a server's answer when it is not the leader and knows
// of none to redirect to.
var errNotLeader = errors.New("not the leader, and no leader known")

// errBusy is a 503 before the upgrade: a proxy in front of the servers
// that is overloaded or draining.
var errBusy = errors.New("server busy (503)")

// Run keeps a session up until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	// Full jitter over [d/2, d] spreads thousands of agents reconnecting
	// after a leader change.
	wait := backoff.Backoff{Min: c.cfg.MinBackoff, Max: c.cfg.MaxBackoff, Jitter: true}
	redirect := ""
	redirects := 0
	for ctx.Err() == nil {
		target := redirect
		if target == "" {
			target = c.pick()
		}
		redirect = ""
		started := time.Now()
		leader, interval, err := c.session(ctx, target)
		if ctx.Err() != nil {
			return nil
		}
		if leader != "" && redirects < maxRedirects {
			redirects++
			if u, err := normalize(leader); err == nil {
				redirect = u
				if c.usesHTTPS() {
					redirect = "https://" + strings.TrimPrefix(u, "http://")
				}
				c.logger.Debug("redirected to the leader", "leader", redirect)
				continue
			}
		}
		redirects = 0
		if time.Since(started) > 10*time.Second {
			wait.Reset()
		}
		if errors.Is(err, ErrRefused) {
			c.logger.Error("server refused this agent; retrying", "server", target, "error", err)
		} else if errors.Is(err, errNotLeader) {
			// An election under way (a cluster starting, a leader lost):
			// expected, and over within a second or two.
			c.logger.Info("no cluster leader yet; retrying", "server", target)
		} else if errors.Is(err, errBusy) {
			c.logger.Info("server busy; retrying", "server", target)
		} else if err != nil {
			c.logger.Warn("connection to server ended", "server", target, "error", err)
		}
		// The fleet's TTL (three intervals; it grows with the fleet)
		// bounds the backoff too where it is longer than MaxBackoff (at
		// 10,000 agents 6 s), up to four times MaxBackoff: a fleet that a
		// busy server refuses comes back at a rate it can take.
		spread := min(3*interval, 4*c.cfg.MaxBackoff)
		if interval > 0 {
			wait.Max = max(c.cfg.MaxBackoff, spread)
		}
		pause := wait.Next()
		if interval > 0 && wait.Failures() == 1 && !errors.Is(err, errPongLate) {
			// A session that was up ended: when it ended for the whole
			// fleet at once (a leader lost or stepping down), the fleet
			// redials spread over its TTL rather than all within the
			// minimum backoff: hellos at a third of its heartbeats' rate,
			// on a new leader that is also taking over the cluster
			// (spread over one interval, 10,000 agents made 5,000 a
			// second). The new leader gives every node the TTL plus a
			// grace to come back. A connection found dead by a late pong
			// is this host's alone, and its node's deadline is near: it
			// redials at once.
			pause = c.cfg.MinBackoff + rand.N(spread+1)
		}
		if !backoff.Sleep(ctx, pause) {
			return nil
		}
	}
	return nil
}

func (c *Client) usesHTTPS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.HasPrefix(c.servers[0], "https://")
}

// pick returns the next server to dial, round robin.
func (c *Client) pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.servers[c.next%len(c.servers)]
	c.next++
	return s
}

// learn adds servers from a welcome to the ones to try.
func (c *Client) learn(addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	https := strings.HasPrefix(c.servers[0], "https://")
	for _, a := range addrs {
		u, err := normalize(a)
		if err != nil {
			continue
		}
		if https {
			u = "https://" + strings.TrimPrefix(u, "http://")
		}
		known := false
		for _, s := range c.servers {
			known = known || s == u
		}
		if !known {
			c.servers = append(c.servers, u)
		}
	}
}

// session runs one connection. It returns the leader's address when the
// server redirected there, and the heartbeat interval of a session that
// was welcomed.
func (c *Client) session(ctx context.Context, base string) (string, time.Duration, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/v1/agent/connect"
	ws, resp, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{HTTPClient: c.dialer})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			return "", 0, fmt.Errorf("%s: %w", base, errBusy)
		}
		return "", 0, fmt.Errorf("dial %s: %w", base, err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(protocol.MaxFrameBytes)

	hello := c.cfg.Hello()
	hello.AssignChanges = true // reader makes the whole sets
	if err := protocol.WriteMessage(dctx, ws, writeTimeout, protocol.MsgHello, hello); err != nil {
		return "", 0, fmt.Errorf("send hello: %w", err)
	}
	env, err := protocol.ReadMessage(dctx, ws)
	if err != nil {
		return "", 0, fmt.Errorf("read welcome: %w", err)
	}
	switch env.Type {
	case protocol.MsgWelcome:
	case protocol.MsgError:
		var e protocol.ChannelError
		_ = json.Unmarshal(env.Body, &e)
		if e.Code == protocol.CodeNotLeader {
			var to protocol.Redirect
			_ = json.Unmarshal(e.Body, &to)
			return to.Leader, 0, fmt.Errorf("%s: %w", base, errNotLeader)
		}
		return "", 0, fmt.Errorf("%w: %s: %s", ErrRefused, e.Code, e.Message)
	default:
		return "", 0, fmt.Errorf("expected welcome, got %s", env.Type)
	}
	var welcome protocol.Welcome
	if err := json.Unmarshal(env.Body, &welcome); err != nil {
		return "", 0, fmt.Errorf("decode welcome: %w", err)
	}
	c.learn(welcome.Servers)
	c.cfg.Handler.Welcome(welcome)
	c.logger.Info("connected", "server", base, "node", welcome.NodeID)

	interval := welcome.HeartbeatInterval.D()
	if interval <= 0 {
		interval = DefaultPingInterval
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	c.setConnected(true)
	defer c.setConnected(false)
	c.resendAll()

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(3)
	intervals := make(chan time.Duration, 1) // from heartbeat messages, newest only
	go func() { defer wg.Done(); errc <- c.pinger(sctx, ws, interval, intervals) }()
	go func() { defer wg.Done(); errc <- c.sender(sctx, ws) }()
	go func() { defer wg.Done(); errc <- c.reader(ctx, sctx, ws, intervals) }()
	err = <-errc
	stop()
	ws.CloseNow()
	wg.Wait()
	return "", interval, err
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	c.mu.Unlock()
}

// resendAll marks every unacknowledged report unsent, for a new session.
func (c *Client) resendAll() {
	c.mu.Lock()
	for _, e := range c.pending {
		e.sent = 0
	}
	c.mu.Unlock()
	c.poke()
}

// reader handles the server's messages of one session (ctx) until the
// connection fails; assignments are handed over with life, Run's context.
func (c *Client) reader(life, ctx context.Context, ws *websocket.Conn, intervals chan time.Duration) error {
	// When the read fails, the applier and the log streams stop at once,
	// not when the session's other goroutines next notice.
	ctx, stop := context.WithCancel(ctx)
	var logs sync.WaitGroup
	streams := map[string]context.CancelFunc{}
	var smu sync.Mutex
	assigns := make(chan protocol.Assign, 1)
	var set assigned // the session's desired set, made whole from changes
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for {
			select {
			case <-ctx.Done():
				return
			case a := <-assigns:
				c.cfg.Handler.Assign(life, a)
			}
		}
	}()
	defer func() {
		stop()
		smu.Lock()
		for _, cancel := range streams {
			cancel()
		}
		smu.Unlock()
		logs.Wait()
		<-applied
	}()
	for {
		env, err := protocol.ReadMessage(ctx, ws)
		if err != nil {
			return err
		}
		switch env.Type {
		case protocol.MsgAssign:
			var a protocol.Assign
			if err := protocol.DecodeBody(env, &a); err != nil {
				return err
			}
			a, err := set.apply(a)
			if err != nil {
				return err
			}
			// Applied by another goroutine, newest first: starting processes
			// must not keep this loop from reading pongs.
			select {
			case <-assigns:
			default:
			}
			assigns <- a
		case protocol.MsgHeartbeat:
			var h protocol.Heartbeat
			if err := json.Unmarshal(env.Body, &h); err == nil && h.Interval > 0 {
				select {
				case <-intervals:
				default:
				}
				intervals <- h.Interval.D()
			}
		case protocol.MsgAck:
			var a protocol.Ack
			if err := json.Unmarshal(env.Body, &a); err == nil {
				c.ack(a.Seq)
			}
		case protocol.MsgLogs:
			var req protocol.LogRequest
			if err := json.Unmarshal(env.Body, &req); err != nil {
				continue
			}
			smu.Lock()
			if req.Cancel {
				if cancel := streams[req.Stream]; cancel != nil {
					cancel()
				}
				smu.Unlock()
				continue
			}
			lctx, cancel := context.WithCancel(ctx)
			streams[req.Stream] = cancel
			smu.Unlock()
			logs.Add(1)
			go func() {
				defer logs.Done()
				defer func() {
					smu.Lock()
					delete(streams, req.Stream)
					smu.Unlock()
					cancel()
				}()
				c.cfg.Handler.Logs(lctx, req, func(d protocol.LogData) error {
					if err := lctx.Err(); err != nil {
						return err
					}
					d.Stream = req.Stream
					// Not with lctx: a write that the stream's cancel
					// cuts short closes the whole connection.
					return protocol.WriteMessage(ctx, ws, writeTimeout, protocol.MsgLogData, d)
				})
			}()
		case protocol.MsgError:
			var e protocol.ChannelError
			_ = json.Unmarshal(env.Body, &e)
			return fmt.Errorf("server error %w", &e)
		}
	}
}

func (c *Client) ack(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.pending {
		if e.sent != 0 && e.sent <= seq {
			delete(c.pending, id)
		}
	}
}

// sender sends unsent reports whenever there are some.
func (c *Client) sender(ctx context.Context, ws *websocket.Conn) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.notify:
		}
		c.mu.Lock()
		c.seq++
		st := protocol.Status{Seq: c.seq, Generation: c.gen, Metrics: c.metrics}
		c.metrics = nil
		for _, e := range c.pending {
			if e.sent == 0 {
				e.sent = c.seq
				st.Replicas = append(st.Replicas, e.report)
			}
		}
		c.mu.Unlock()
		if len(st.Replicas) == 0 && st.Metrics == nil {
			continue
		}
		if err := protocol.WriteMessage(ctx, ws, writeTimeout, protocol.MsgStatus, st); err != nil {
			return fmt.Errorf("send status: %w", err)
		}
	}
}

// pinger pings the server every interval; a pong missing for one and a
// half intervals ends the session, so a connection a proxy silently
// dropped is noticed within two and a half intervals of the last ping that
// arrived, and redialled before the server's TTL (three intervals from
// that ping) marks the node down. One interval left no slack: at 10,000
// hosts a leader busy for a moment (a placement, a GC) answered late,
// every agent redialled at once, and the redials kept it busy.
func (c *Client) pinger(ctx context.Context, ws *websocket.Conn, interval time.Duration, intervals <-chan time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case interval = <-intervals:
			t.Reset(interval)
			continue
		case <-t.C:
		}
		wait := interval * 3 / 2
		pctx, cancel := context.WithTimeout(ctx, wait)
		err := ws.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%w within %s: %w", errPongLate, wait, err)
		}
	}
}

// assigned is the desired set of a session, by replica id: the last whole
// set, changed by the assignments of changes since.
type assigned map[string]protocol.AssignedReplica

// apply takes a, a whole set or changes, and returns the whole set the
// agent must run: a whole set as it came, one made of changes in the order
// of the replicas' ids.
// Changes before a whole set, or a set past MaxAssignReplicas, are refused:
// the session ends, and the next begins with a whole set.
func (s *assigned) apply(a protocol.Assign) (protocol.Assign, error) {
	if len(a.Replicas) > protocol.MaxAssignReplicas || len(a.Removed) > protocol.MaxAssignReplicas {
		return a, fmt.Errorf("assign with %d replicas and %d removed: over the limit of %d", len(a.Replicas), len(a.Removed), protocol.MaxAssignReplicas)
	}
	switch {
	case !a.Changes:
		*s = make(assigned, len(a.Replicas))
	case *s == nil:
		return a, errors.New("assign of changes before a whole set")
	}
	for _, id := range a.Removed {
		delete(*s, id)
	}
	for _, r := range a.Replicas {
		(*s)[r.ID] = r
	}
	if len(*s) > protocol.MaxAssignReplicas {
		return a, fmt.Errorf("assign of changes makes %d replicas: over the limit of %d", len(*s), protocol.MaxAssignReplicas)
	}
	if !a.Changes {
		return a, nil
	}
	whole := protocol.Assign{Generation: a.Generation, Replicas: make([]protocol.AssignedReplica, 0, len(*s))}
	for _, id := range slices.Sorted(maps.Keys(*s)) {
		whole.Replicas = append(whole.Replicas, (*s)[id])
	}
	return whole, nil
}
