// Package proxy is drover gateway: the traffic gateway that gives every
// instance one stable address. It routes by Host ({instance}.{tenant}.
// {domain}, or one of the instance's custom domains) to the instance's
// healthy replicas, balancing by the fewer requests in flight of two
// random choices, ejecting a replica that fails to connect, and retrying
// on another replica the requests that never reached one and the
// idempotent ones that failed before an answer. Its routing table comes
// from the servers (watch.go); a replica about to stop leaves that table
// before its agent signals it, after a drain (API.md, "Endpoints").
//
// It is built on net/http/httputil.ReverseProxy: the standard library's
// proxy, kept by the Go team, already handles hop-by-hop headers,
// X-Forwarded-*, protocol upgrades (WebSockets), trailers and flushing of
// streamed answers. What Drover adds is a RoundTripper that picks the
// backend per attempt, which is where balancing, ejection and retries live.
package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/internal/bufpool"
	"github.com/drover-dev/drover/protocol"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultDomain          = "drover.localhost"
	DefaultMaxBodyBytes    = 100 << 20
	DefaultResponseTimeout = 60 * time.Second
	DefaultEjection        = 10 * time.Second
	// maxAttempts bounds the backends one request is tried on.
	maxAttempts = 3
	// retryAfter is the Retry-After of a 503 for an instance with no
	// healthy replica, in seconds.
	retryAfter = "1"
)

// Config configures a Gateway. Zero values take defaults.
type Config struct {
	// Servers are the servers' base URLs (http(s)://host:port).
	Servers []string
	// Token is a token of role gateway (none with ACLs off).
	Token string
	// Domain is the suffix of generated names: {instance}.{tenant}.{Domain}.
	Domain string
	// Client calls the servers (its TLS trusts their CA).
	Client *http.Client
	// MaxBodyBytes bounds a request body (413 past it).
	MaxBodyBytes int64
	// ResponseTimeout bounds the wait for a backend's answer headers; a
	// backend that takes longer is ejected.
	ResponseTimeout time.Duration
	// Ejection is how long a backend that failed to connect or answer
	// gets no traffic while others can take it.
	Ejection time.Duration
	// Wait is the blocking query's wait (default 60s).
	Wait     time.Duration
	Logger   hclog.Logger
	Registry prometheus.Registerer
}

// Gateway is the traffic gateway: an http.Handler for the listener, and
// Run, which keeps its routing table current.
type Gateway struct {
	cfg     Config
	table   atomic.Pointer[table]
	proxy   *httputil.ReverseProxy
	watch   *watcher
	metrics *metrics
}

// New makes a gateway; it answers 503 until Run has fetched a first table.
func New(cfg Config) *Gateway {
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ResponseTimeout == 0 {
		cfg.ResponseTimeout = DefaultResponseTimeout
	}
	if cfg.Ejection == 0 {
		cfg.Ejection = DefaultEjection
	}
	if cfg.Wait == 0 {
		cfg.Wait = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	g := &Gateway{cfg: cfg, metrics: newMetrics(cfg.Registry)}
	upstream := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.ResponseTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "backend" // chosen per attempt by the transport
			pr.Out.Host = pr.In.Host    // the application sees its own name
			pr.SetXForwarded()
		},
		Transport:    &transport{g: g, next: upstream},
		BufferPool:   bufpool.Pool{},
		ErrorHandler: g.proxyError,
		ErrorLog:     cfg.Logger.Named("proxy").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	g.watch = &watcher{servers: cfg.Servers, token: cfg.Token, client: cfg.Client, wait: cfg.Wait,
		logger: cfg.Logger, set: g.install}
	return g
}

// Run keeps the routing table current until ctx ends.
func (g *Gateway) Run(ctx context.Context) { g.watch.run(ctx) }

// Ready reports whether the gateway has a routing table.
func (g *Gateway) Ready() bool { return g.table.Load() != nil }

// install makes a table of the servers' answer the current one.
func (g *Gateway) install(rs protocol.Routes) {
	prev := g.table.Load()
	t := build(rs, prev)
	g.table.Store(t)
	if prev != nil {
		for id, rt := range prev.byID {
			if t.byID[id] == nil {
				rt.gone.Store(true)
				g.metrics.forget(rt)
			}
		}
	}
	g.metrics.tableIndex.Set(float64(t.index))
	g.metrics.routes.Set(float64(len(t.byID)))
	g.cfg.Logger.Debug("routing table installed", "index", t.index, "instances", len(t.byID))
}

// ServeHTTP routes one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := g.table.Load()
	if t == nil {
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, "no routing table yet", http.StatusServiceUnavailable)
		return
	}
	rt := t.lookup(r.Host, g.cfg.Domain)
	if rt == nil {
		// Nothing of the host is echoed: the answer names no instance.
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer func() { g.metrics.observe(rt, rec.status(), time.Since(start)) }()
	if len(rt.backends) == 0 {
		rec.Header().Set("Retry-After", retryAfter)
		http.Error(rec, "no healthy replica of this instance", http.StatusServiceUnavailable)
		return
	}
	if r.ContentLength > g.cfg.MaxBodyBytes {
		http.Error(rec, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	st := &attempts{route: rt}
	if r.Body != nil && r.Body != http.NoBody {
		st.body = &heldBody{src: http.MaxBytesReader(rec, r.Body, g.cfg.MaxBodyBytes)}
		r.Body = st.body
	}
	g.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), attemptsKey{}, st)))
}

// attempts is what the transport needs to know of a request it sends: its
// route, and its body, to tell whether any of it was read.
type attempts struct {
	route *route
	body  *heldBody
}

type attemptsKey struct{}

// proxyError answers a request no backend answered.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
	case errors.Is(err, errNoBackend):
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, "no healthy replica of this instance", http.StatusServiceUnavailable)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		w.WriteHeader(499) // the client went away; nobody reads this
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			http.Error(w, "the instance did not answer in time", http.StatusGatewayTimeout)
			return
		}
		g.cfg.Logger.Debug("request failed", "host", r.Host, "error", err)
		http.Error(w, "the instance did not answer", http.StatusBadGateway)
	}
}

var errNoBackend = errors.New("no backend")

// transport sends each attempt to a backend it picks.
type transport struct {
	g    *Gateway
	next http.RoundTripper
}

// RoundTrip tries up to maxAttempts backends: another one after a failed
// connection (the request went nowhere), and after any failure before an
// answer when the request is idempotent and has no body.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(attemptsKey{}).(*attempts)
	if st == nil {
		return nil, errNoBackend
	}
	rt := st.route
	var tried []*backend
	var lastErr error = errNoBackend
	for attempt := 0; attempt < maxAttempts; attempt++ {
		now := time.Now()
		b := rt.pick(now, tried)
		if b == nil {
			break
		}
		if attempt > 0 {
			t.g.metrics.retries.WithLabelValues(rt.tenant, rt.name).Inc()
		}
		tried = append(tried, b)
		// A shallow copy with its own URL: the headers are the proxy's
		// copy already, and no attempt changes them.
		out := req.WithContext(req.Context())
		u := *req.URL
		u.Host = b.addr
		out.URL = &u
		if req.Body != nil {
			// The proxy's body closes for good when an attempt fails;
			// the next attempt may still need it.
			out.Body = io.NopCloser(req.Body)
		}
		b.outstanding.Add(1)
		resp, err := t.next.RoundTrip(out)
		if err == nil {
			resp.Body = &release{ReadCloser: resp.Body, inFlight: inFlight{b: b}}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// An upgraded connection is a ReadWriteCloser the proxy
				// writes to; keep that, and count it until it closes.
				if rwc, ok := resp.Body.(*release).ReadCloser.(io.ReadWriteCloser); ok {
					resp.Body = &releaseRW{ReadWriteCloser: rwc, inFlight: inFlight{b: b}}
				}
			}
			return resp, nil
		}
		b.outstanding.Add(-1)
		lastErr = err
		if req.Context().Err() != nil {
			return nil, err
		}
		dial := isDial(err)
		var ne net.Error
		if dial || errors.As(err, &ne) && ne.Timeout() {
			b.eject(now, t.g.cfg.Ejection)
			t.g.metrics.ejections.WithLabelValues(rt.tenant, rt.name).Inc()
		}
		if !retryable(req, st.body, dial) {
			return nil, err
		}
	}
	return nil, lastErr
}

// retryable reports whether a request that failed may go to another
// backend: it never reached one (a failed dial, with its body unread), or
// it is idempotent and has no body to send again.
func retryable(req *http.Request, hb *heldBody, dial bool) bool {
	if dial {
		return hb == nil || !hb.started.Load()
	}
	if hb != nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return req.Header.Get("Upgrade") == ""
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// isDial reports whether err is a failure to connect.
func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// inFlight counts a request out of its backend once, when its answer (or
// upgraded connection) is closed.
type inFlight struct {
	b    *backend
	done atomic.Bool
}

func (f *inFlight) end() {
	if f.done.CompareAndSwap(false, true) {
		f.b.outstanding.Add(-1)
	}
}

// release is an answer's body that counts its request out when closed.
type release struct {
	io.ReadCloser
	inFlight
}

func (r *release) Close() error {
	r.end()
	return r.ReadCloser.Close()
}

// releaseRW is release for an upgraded connection.
type releaseRW struct {
	io.ReadWriteCloser
	inFlight
}

func (r *releaseRW) Close() error {
	r.end()
	return r.ReadWriteCloser.Close()
}

// recorder remembers the status an answer was given.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// statusClass is a status code's class label: 2xx, 3xx, ...
func statusClass(code int) string { return strconv.Itoa(code/100) + "xx" }

// Limits of the gateway's listener.
const (
	MaxHeaderBytes    = 64 << 10
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
)

// NewServer returns the http.Server a gateway listens with: limits on
// headers and their reading time, and on idle connections. Bodies are
// limited by Config.MaxBodyBytes; answers have no time limit, so that
// streams and WebSockets last as long as both ends want.
func (g *Gateway) NewServer() *http.Server {
	return &http.Server{
		Handler: g, MaxHeaderBytes: MaxHeaderBytes, ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: IdleTimeout,
		ErrorLog: g.cfg.Logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}
