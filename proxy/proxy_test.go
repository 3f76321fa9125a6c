package proxy_test

// Tests of drover gateway as its users see it: a real gateway listener in
// front of real backends (httptest servers), fed its routing table by a
// fake server answering GET /v1/routes (routeServer, below) the way the
// servers do, blocking queries included.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drover-dev/drover/internal/promtest"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/proxy"
)

// testDomain is the domain of generated names in these tests.
const testDomain = "drover.test"

// waitFor bounds every wait of these tests for something that takes
// milliseconds when it works.
const waitFor = 5 * time.Second

func hostOf(tenant, name string) string { return name + "." + tenant + "." + testDomain }

// --- the fake server -------------------------------------------------------

// routeServer answers GET /v1/routes as a server does: the table at once
// without ?index, and with ?index=N&wait=D only once its table is past N
// (or D has passed). Tests change its table, make it answer errors, or
// take it down.
type routeServer struct {
	srv      *httptest.Server
	down     chan struct{}
	downOnce sync.Once
	hits     atomic.Int64

	mu      sync.Mutex
	routes  protocol.Routes
	failing bool // answer status and body, not the table
	status  int
	body    string
	changed chan struct{} // closed, and replaced, at every change
	queries []url.Values
	auth    []string
}

func newRouteServer(t *testing.T, rs protocol.Routes) *routeServer {
	t.Helper()
	f := &routeServer{down: make(chan struct{}), routes: rs, changed: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.close)
	return f
}

func (f *routeServer) URL() string { return f.srv.URL }

// set makes rs its table (and it answers it again after fail).
func (f *routeServer) set(rs protocol.Routes) {
	f.update(func() { f.routes, f.failing = rs, false })
}

// fail makes it answer status with body, at once, to every request.
func (f *routeServer) fail(status int, body string) {
	f.update(func() { f.failing, f.status, f.body = true, status, body })
}

func (f *routeServer) update(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	close(f.changed)
	f.changed = make(chan struct{})
}

// requests returns the queries and Authorization headers it was sent.
func (f *routeServer) requests() ([]url.Values, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.queries...), append([]string(nil), f.auth...)
}

// close takes it down: requests in flight are cut, and it listens no more.
func (f *routeServer) close() {
	f.downOnce.Do(func() {
		close(f.down)
		f.srv.Close()
	})
}

func (f *routeServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/v1/routes" {
		http.NotFound(w, r)
		return
	}
	f.hits.Add(1)
	q := r.URL.Query()
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if s := q.Get("index"); s != "" {
		after, err := strconv.ParseUint(s, 10, 64)
		wait, werr := time.ParseDuration(q.Get("wait"))
		if err != nil || werr != nil {
			http.Error(w, "bad index or wait", http.StatusBadRequest)
			return
		}
		if !f.block(r.Context(), after, wait) {
			panic(http.ErrAbortHandler) // cut the connection, as a dying server does
		}
	}
	f.mu.Lock()
	rs, failing, status, body := f.routes, f.failing, f.status, f.body
	f.mu.Unlock()
	select {
	case <-f.down:
		panic(http.ErrAbortHandler)
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	if failing {
		w.WriteHeader(status)
		io.WriteString(w, body)
		return
	}
	json.NewEncoder(w).Encode(rs)
}

// block waits until the table is past after, the answer is an error, or
// wait has passed: true then; false if the server or the client went away.
func (f *routeServer) block(ctx context.Context, after uint64, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		idx, failing, changed := f.routes.Index, f.failing, f.changed
		f.mu.Unlock()
		if idx > after || failing {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		case <-f.down:
			return false
		}
	}
}

func route(tenant, name string, addrs ...string) protocol.Route {
	r := protocol.Route{Tenant: tenant, Name: name, Backends: []protocol.Backend{}}
	for i, a := range addrs {
		r.Backends = append(r.Backends, protocol.Backend{Replica: fmt.Sprintf("%s-%s-%d", tenant, name, i), Addr: a})
	}
	return r
}

func withDomains(r protocol.Route, domains ...string) protocol.Route {
	r.Domains = domains
	return r
}

// --- the gateway -----------------------------------------------------------

type testGateway struct {
	*proxy.Gateway
	srv    *httptest.Server
	client *http.Client
	reg    *prometheus.Registry
}

// startGateway runs a gateway (its Run until the test ends) behind a
// listener made by its NewServer. Unset Domain, Wait and Ejection take
// test values.
func startGateway(t *testing.T, cfg proxy.Config) *testGateway {
	t.Helper()
	if cfg.Domain == "" {
		cfg.Domain = testDomain
	}
	if cfg.Wait == 0 {
		cfg.Wait = 200 * time.Millisecond
	}
	if cfg.Ejection == 0 {
		cfg.Ejection = time.Second
	}
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	g := proxy.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("Run did not return %s after its context ended", waitFor)
		}
	})
	srv := httptest.NewUnstartedServer(g)
	srv.Config = g.NewServer()
	srv.Start()
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = 10 * time.Second
	return &testGateway{Gateway: g, srv: srv, client: client, reg: reg}
}

func waitReady(t *testing.T, g *testGateway) {
	t.Helper()
	testwait.Eventually(t, waitFor, "the gateway's first routing table", func() error {
		if !g.Ready() {
			return errors.New("not ready")
		}
		return nil
	})
}

// gatewayFor runs a gateway whose table, from one fake server, routes rs
// (at index 1), and waits until it has it.
func gatewayFor(t *testing.T, cfg proxy.Config, rs ...protocol.Route) (*testGateway, *routeServer) {
	t.Helper()
	f := newRouteServer(t, protocol.Routes{Index: 1, Routes: rs})
	cfg.Servers = []string{f.URL()}
	g := startGateway(t, cfg)
	waitReady(t, g)
	return g, f
}

type answer struct {
	code   int
	body   string
	header http.Header
}

// request makes a request to the gateway for host.
func (g *testGateway) request(t *testing.T, method, host, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, g.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	return req
}

func (g *testGateway) try(req *http.Request) (answer, error) {
	resp, err := g.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s: reading the answer: %w", resp.Status, err)
	}
	return answer{code: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

func (g *testGateway) send(t *testing.T, req *http.Request) answer {
	t.Helper()
	a, err := g.try(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", req.Method, req.URL.Path, req.Host, err)
	}
	return a
}

func (g *testGateway) get(t *testing.T, host string) answer {
	t.Helper()
	return g.send(t, g.request(t, http.MethodGet, host, "/", nil))
}

// metric returns the samples of a metric family by their labels
// ("code=2xx,instance=web,tenant=acme").
func (g *testGateway) metric(t *testing.T, name string) map[string]float64 {
	t.Helper()
	return promtest.Gather(t, g.reg).Series(name)
}

func instanceLabels(tenant, name string) string { return "instance=" + name + ",tenant=" + tenant }

// --- backends --------------------------------------------------------------

type backendServer struct {
	*httptest.Server
	hits atomic.Int64
}

// newBackend is a replica: h behind a counter of the requests it got.
func newBackend(t *testing.T, h http.HandlerFunc) *backendServer {
	t.Helper()
	b := &backendServer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backendServer) addr() string { return b.Listener.Addr().String() }

// says answers its name (after reading the body).
func says(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}
}

// hangsUp closes the connection without answering.
func hangsUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// --- routing ---------------------------------------------------------------

func TestRoutesByHost(t *testing.T) {
	web := newBackend(t, says("web"))
	api := newBackend(t, says("api"))
	other := newBackend(t, says("other"))
	g, _ := gatewayFor(t, proxy.Config{},
		route("acme", "web", web.addr()),
		withDomains(route("acme", "api", api.addr()), "shop.example.com"),
		// other/beta claims web/acme's generated name as a custom domain:
		// the generated name must still reach web/acme.
		withDomains(route("beta", "other", other.addr()), "beta.example.com", hostOf("acme", "web")),
	)
	routed := map[string]string{
		"web.acme.drover.test":       "web",
		"WEB.Acme.DROVER.test":       "web",
		"web.acme.drover.test:8080":  "web",
		"web.acme.drover.test.":      "web",
		"Web.Acme.drover.test.:443":  "web",
		"api.acme.drover.test":       "api",
		"other.beta.drover.test":     "other",
		"shop.example.com":           "api",
		"SHOP.Example.COM:8443":      "api",
		"shop.example.com.":          "api",
		"beta.example.com":           "other",
		"beta.example.com.:80":       "other",
		"OTHER.BETA.drover.test:443": "other",
	}
	for host, want := range routed {
		a := g.get(t, host)
		if a.code != http.StatusOK || a.body != want {
			t.Errorf("Host %q: got %d %q, want 200 from %s", host, a.code, a.body, want)
		}
	}
	const canary = "leak-canary-7f3a"
	unrouted := []string{
		"x.web.acme.drover.test",      // deeper than {instance}.{tenant}
		"a.b.web.acme.drover.test",    // deeper still
		"acme.drover.test",            // a tenant, no instance
		"drover.test",                 // the domain itself
		"nope.acme.drover.test",       // no such instance
		"web.nope.drover.test",        // no such tenant
		"web.acme.drover.test.evil.x", // the domain, not as a suffix
		"web.acme.xdrover.test",       // a suffix that is not the domain
		"www.shop.example.com",        // a subdomain of a custom domain
		"example.com",
		canary + ".acme.drover.test",
		canary + ".example.org:8080",
	}
	for _, host := range unrouted {
		a := g.get(t, host)
		if a.code != http.StatusNotFound {
			t.Errorf("Host %q: got %d %q, want 404", host, a.code, a.body)
		}
		if strings.Contains(strings.ToLower(a.body), strings.ToLower(strings.Split(host, ":")[0])) || strings.Contains(a.body, canary) {
			t.Errorf("Host %q: the 404's body %q echoes the host", host, a.body)
		}
	}
	if n := web.hits.Load() + api.hits.Load() + other.hits.Load(); n != int64(len(routed)) {
		t.Errorf("backends got %d requests, want %d (the routed ones only)", n, len(routed))
	}
}

func TestNoTableYetIs503(t *testing.T) {
	f := newRouteServer(t, protocol.Routes{})
	f.fail(http.StatusInternalServerError, `{"error":{"code":"internal","message":"boom"}}`)
	g := startGateway(t, proxy.Config{Servers: []string{f.URL()}})
	testwait.Eventually(t, waitFor, "the gateway to ask for a table twice", func() error {
		if n := f.hits.Load(); n < 2 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	if g.Ready() {
		t.Fatal("Ready with no table")
	}
	for _, host := range []string{hostOf("acme", "web"), "unknown.example.com"} {
		a := g.get(t, host)
		if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
			t.Errorf("Host %s with no table: got %d, Retry-After %q; want 503 with Retry-After 1", host, a.code, a.header.Get("Retry-After"))
		}
	}
}

func TestInstanceWithoutBackendsIs503(t *testing.T) {
	g, _ := gatewayFor(t, proxy.Config{}, withDomains(route("acme", "idle"), "idle.example.com"))
	for _, host := range []string{hostOf("acme", "idle"), "idle.example.com"} {
		a := g.get(t, host)
		if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
			t.Errorf("Host %s: got %d %q, Retry-After %q; want 503 with Retry-After 1", host, a.code, a.body, a.header.Get("Retry-After"))
		}
	}
}

// --- balancing and ejection ------------------------------------------------

func TestBalancingPrefersTheLessBusyBackend(t *testing.T) {
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "slow")
	})
	fast := newBackend(t, says("fast"))
	g, _ := gatewayFor(t, proxy.Config{}, route("acme", "web", slow.addr(), fast.addr()))
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	results := make(chan error, 128)
	var wg sync.WaitGroup
	// launch sends one request and waits until it has either been
	// answered (by fast) or is held by slow: true if held.
	launch := func() bool {
		done := make(chan error, 1)
		req := g.request(t, http.MethodGet, hostOf("acme", "web"), "/", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := g.try(req)
			if err == nil && a.code != http.StatusOK {
				err = fmt.Errorf("got %d %q", a.code, a.body)
			}
			done <- err
			results <- err
		}()
		select {
		case <-arrived:
			return true
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return false
		case <-time.After(waitFor):
			t.Fatal("a request was neither answered nor held")
			return false
		}
	}
	// Until one request is held by slow, both are free and either may get
	// a request; more than a few misses would mean slow is never picked.
	held := 0
	for i := 0; held == 0; i++ {
		if i == 30 {
			t.Fatal("30 requests and none went to the slow backend")
		}
		if launch() {
			held++
		}
	}
	// With one request in flight at slow and none at fast, every new
	// request should go to fast.
	fastBefore := fast.hits.Load()
	const n = 20
	for range n {
		if launch() {
			held++
		}
	}
	if got := fast.hits.Load() - fastBefore; got < n-1 {
		t.Errorf("while slow held a request, fast got %d of %d new requests (slow holds %d)", got, n, held)
	}
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestEjectionOfABackendThatRefusesConnections(t *testing.T) {
	const ejection = time.Second
	dead := closedAddr(t)
	live := newBackend(t, says("live"))
	g, _ := gatewayFor(t, proxy.Config{Ejection: ejection}, route("acme", "web", dead, live.addr()))
	ejections := func() float64 {
		return g.metric(t, "drover_gateway_ejections_total")[instanceLabels("acme", "web")]
	}

	// Requests go to either backend until one tries the dead one: that one
	// is retried on the live one, and the dead one is ejected.
	var ejectedAfter time.Time
	for i := 0; ejections() == 0; i++ {
		if i == 50 {
			t.Fatal("50 requests and the dead backend was never ejected")
		}
		ejectedAfter = time.Now()
		if a := g.get(t, hostOf("acme", "web")); a.code != http.StatusOK || a.body != "live" {
			t.Fatalf("request %d: got %d %q, want 200 from live", i, a.code, a.body)
		}
	}
	if r := g.metric(t, "drover_gateway_retries_total")[instanceLabels("acme", "web")]; r != 1 {
		t.Errorf("retries_total = %v after one failed dial, want 1", r)
	}

	// The dead backend comes back at once; while ejected it gets nothing.
	var mu sync.Mutex
	var hitsAt []time.Time
	ln, err := net.Listen("tcp", dead)
	if err != nil {
		t.Fatalf("listen again on %s: %v", dead, err)
	}
	back := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hitsAt = append(hitsAt, time.Now())
		mu.Unlock()
		io.WriteString(w, "back")
	})}
	go back.Serve(ln)
	t.Cleanup(func() { back.Close() })
	ejectedUntil := ejectedAfter.Add(ejection)
	sent := 0
	for time.Now().Add(100*time.Millisecond).Before(ejectedUntil) && sent < 20 {
		a := g.get(t, hostOf("acme", "web"))
		if a.code != http.StatusOK {
			t.Fatalf("got %d %q during the ejection", a.code, a.body)
		}
		sent++
	}
	if sent == 0 {
		t.Fatal("no request could be sent within the ejection time")
	}
	mu.Lock()
	for _, at := range hitsAt {
		if at.Before(ejectedUntil) {
			t.Errorf("the ejected backend got a request %s before its ejection ended", ejectedUntil.Sub(at))
		}
	}
	mu.Unlock()

	// After the ejection it takes traffic again.
	testwait.Eventually(t, waitFor, "the backend to get traffic after its ejection", func() error {
		if a := g.get(t, hostOf("acme", "web")); a.code != http.StatusOK {
			return fmt.Errorf("got %d %q", a.code, a.body)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(hitsAt) == 0 {
			return errors.New("no request reached it")
		}
		return nil
	})
	if e := ejections(); e != 1 {
		t.Errorf("ejections_total = %v, want 1", e)
	}
}

func TestTimeoutEjectsAndRetries(t *testing.T) {
	stuck := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(waitFor):
		}
	}
	slow := newBackend(t, stuck)
	lone := newBackend(t, stuck)
	good := newBackend(t, says("good"))
	g, _ := gatewayFor(t, proxy.Config{ResponseTimeout: 150 * time.Millisecond, Ejection: time.Minute},
		route("acme", "web", slow.addr(), good.addr()),
		route("acme", "lone", lone.addr()),
	)
	for i := 0; slow.hits.Load() == 0; i++ {
		if i == 50 {
			t.Fatal("50 requests and none went to the slow backend")
		}
		if a := g.get(t, hostOf("acme", "web")); a.code != http.StatusOK || a.body != "good" {
			t.Fatalf("request %d: got %d %q, want 200 from good (retried after the timeout)", i, a.code, a.body)
		}
	}
	// Timed out once, slow is ejected: no more requests for a minute.
	for range 10 {
		if a := g.get(t, hostOf("acme", "web")); a.code != http.StatusOK {
			t.Fatalf("got %d %q", a.code, a.body)
		}
	}
	if n := slow.hits.Load(); n != 1 {
		t.Errorf("the slow backend got %d requests, want 1 (ejected after its timeout)", n)
	}
	// With no other backend, the timeout is the answer.
	start := time.Now()
	a := g.get(t, hostOf("acme", "lone"))
	if a.code != http.StatusGatewayTimeout {
		t.Errorf("only backend timing out: got %d %q, want 504", a.code, a.body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the 504 took %s with a response timeout of 150ms", d)
	}
}

// --- retries ---------------------------------------------------------------

// untilHit sends requests made by mk until one reaches bad; it returns
// that request's answer and how many requests good got for it. Requests
// that went to good first must succeed.
func untilHit(t *testing.T, g *testGateway, bad, good *backendServer, mk func() *http.Request) (answer, int64) {
	t.Helper()
	for i := 0; i < 50; i++ {
		b0, g0 := bad.hits.Load(), good.hits.Load()
		a := g.send(t, mk())
		if bad.hits.Load() > b0 {
			return a, good.hits.Load() - g0
		}
		if a.code != http.StatusOK {
			t.Fatalf("a request that went straight to the good backend: got %d %q", a.code, a.body)
		}
	}
	t.Fatal("50 requests and none reached the failing backend")
	return answer{}, 0
}

func TestRetriesAfterAConnectionClosedWithoutAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		body    string
		chunked bool
		key     bool
		retried bool
	}{
		{name: "GET", method: http.MethodGet, retried: true},
		{name: "HEAD", method: http.MethodHead, retried: true},
		{name: "PUT without body", method: http.MethodPut, retried: true},
		{name: "DELETE", method: http.MethodDelete, retried: true},
		{name: "POST without body", method: http.MethodPost},
		{name: "POST with body", method: http.MethodPost, body: "order=1"},
		{name: "POST with chunked body", method: http.MethodPost, body: "order=1", chunked: true},
		{name: "PATCH without body", method: http.MethodPatch},
		{name: "POST with Idempotency-Key", method: http.MethodPost, key: true, retried: true},
		// A body already sent to a backend cannot be sent again: not
		// retried even with an Idempotency-Key (the documented rule:
		// idempotent requests without a body).
		// (httputil.ReverseProxy hands the transport the body in a wrapper
		// of its own: the gateway must still know it is there.)
		{name: "POST with body and Idempotency-Key", method: http.MethodPost, body: "order=1", key: true},
		{name: "PUT with body", method: http.MethodPut, body: "x=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := newBackend(t, hangsUp)
			good := newBackend(t, says("good"))
			g, _ := gatewayFor(t, proxy.Config{}, route("acme", "web", bad.addr(), good.addr()))
			a, goodHits := untilHit(t, g, bad, good, func() *http.Request {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
					if tc.chunked {
						body = io.MultiReader(body) // no length known: sent chunked
					}
				}
				req := g.request(t, tc.method, hostOf("acme", "web"), "/", body)
				if tc.key {
					req.Header.Set("Idempotency-Key", "k-1")
				}
				return req
			})
			if tc.retried {
				if a.code != http.StatusOK || goodHits != 1 {
					t.Errorf("got %d %q, good backend got %d requests; want 200 after one retry", a.code, a.body, goodHits)
				}
				if tc.method != http.MethodHead && a.body != "good" {
					t.Errorf("body %q, want good", a.body)
				}
			} else if a.code != http.StatusBadGateway || goodHits != 0 {
				t.Errorf("got %d %q, good backend got %d requests; want 502 and no retry", a.code, a.body, goodHits)
			}
			if n := bad.hits.Load(); n != 1 {
				t.Errorf("the failing backend got %d requests, want 1", n)
			}
			want := 0.0
			if tc.retried {
				want = 1
			}
			if r := g.metric(t, "drover_gateway_retries_total")[instanceLabels("acme", "web")]; r != want {
				t.Errorf("retries_total = %v, want %v", r, want)
			}
		})
	}
}

// A request that never reached a backend goes to another, body and all:
// the body, unread, is sent whole (the proxy's wrapper of it, which a
// failed attempt's transport closes, must not end it).
func TestRetryAfterAFailedDial(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{name: "POST without body"},
		{name: "POST with body", size: 256 << 10},
		{name: "POST with chunked body", size: 256 << 10, chunked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type got struct {
				n   int
				sum string
			}
			arrived := make(chan got, 64)
			echo := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				s := sha256.Sum256(b)
				arrived <- got{len(b), hex.EncodeToString(s[:])}
				fmt.Fprintf(w, "%d %x", len(b), s)
			})
			dead := closedAddr(t)
			g, _ := gatewayFor(t, proxy.Config{Ejection: time.Millisecond}, route("acme", "web", dead, echo.addr()))
			ejections := func() float64 {
				return g.metric(t, "drover_gateway_ejections_total")[instanceLabels("acme", "web")]
			}
			// POST until one tries the dead backend first: that one must
			// reach the live one, body and all, once.
			for i := 0; ejections() == 0; i++ {
				if i == 50 {
					t.Fatal("50 requests and none tried the dead backend")
				}
				payload := make([]byte, tc.size)
				rand.Read(payload)
				want := sha256.Sum256(payload)
				var body io.Reader
				if tc.size > 0 {
					body = bytes.NewReader(payload)
					if tc.chunked {
						body = io.MultiReader(body) // no length known: sent chunked
					}
				}
				a := g.send(t, g.request(t, http.MethodPost, hostOf("acme", "web"), "/upload", body))
				if a.code != http.StatusOK {
					t.Fatalf("POST %d: got %d %q, want 200", i, a.code, a.body)
				}
				select {
				case at := <-arrived:
					if at.n != len(payload) || at.sum != hex.EncodeToString(want[:]) {
						t.Fatalf("POST %d: the backend got %d bytes (sha256 %s), want the %d sent (%x)", i, at.n, at.sum, len(payload), want)
					}
				default:
					t.Fatalf("POST %d answered 200 without reaching the backend", i)
				}
				if len(arrived) != 0 {
					t.Fatalf("POST %d reached the backend more than once", i)
				}
			}
			if r := g.metric(t, "drover_gateway_retries_total")[instanceLabels("acme", "web")]; r != 1 {
				t.Errorf("retries_total = %v after one failed dial, want 1", r)
			}
		})
	}
}

// The retries metric counts requests sent again to another replica, not
// the retries for which no other replica was left.
func TestRetriesMetricCountsOnlyRequestsSentAgain(t *testing.T) {
	lone := newBackend(t, hangsUp)
	a1 := newBackend(t, hangsUp)
	a2 := newBackend(t, hangsUp)
	g, _ := gatewayFor(t, proxy.Config{},
		route("acme", "lone", lone.addr()),
		route("acme", "pair", a1.addr(), a2.addr()),
	)
	if a := g.get(t, hostOf("acme", "lone")); a.code != http.StatusBadGateway {
		t.Fatalf("got %d %q, want 502", a.code, a.body)
	}
	if a := g.get(t, hostOf("acme", "pair")); a.code != http.StatusBadGateway {
		t.Fatalf("got %d %q, want 502", a.code, a.body)
	}
	if n := a1.hits.Load() + a2.hits.Load(); n != 2 {
		t.Fatalf("the pair got %d requests, want 2 (one retry)", n)
	}
	retries := g.metric(t, "drover_gateway_retries_total")
	if r := retries[instanceLabels("acme", "lone")]; r != 0 {
		t.Errorf("lone: retries_total = %v, want 0 (no other replica to send it to)", r)
	}
	if r := retries[instanceLabels("acme", "pair")]; r != 1 {
		t.Errorf("pair: retries_total = %v, want 1 (sent again once)", r)
	}
}

// --- bodies ----------------------------------------------------------------

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprint(w, len(b))
	})
	g, _ := gatewayFor(t, proxy.Config{MaxBodyBytes: limit}, route("acme", "web", be.addr()))
	for _, tc := range []struct {
		size    int
		chunked bool
		want    int
	}{
		{size: limit, want: http.StatusOK},
		{size: limit + 1, want: http.StatusRequestEntityTooLarge},
		{size: 64 << 10, want: http.StatusRequestEntityTooLarge},
		{size: limit, chunked: true, want: http.StatusOK},
		{size: limit + 1, chunked: true, want: http.StatusRequestEntityTooLarge},
		{size: 4 * limit, chunked: true, want: http.StatusRequestEntityTooLarge},
	} {
		t.Run(fmt.Sprintf("%d bytes chunked=%v", tc.size, tc.chunked), func(t *testing.T) {
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("x"), tc.size))
			if tc.chunked {
				body = io.MultiReader(body)
			}
			hits := be.hits.Load()
			req := g.request(t, http.MethodPost, hostOf("acme", "web"), "/", body)
			a := g.send(t, req)
			if a.code != tc.want {
				t.Fatalf("got %d %q, want %d", a.code, a.body, tc.want)
			}
			if tc.want == http.StatusOK && a.body != strconv.Itoa(tc.size) {
				t.Errorf("the backend got %s bytes, want %d", a.body, tc.size)
			}
			if tc.want != http.StatusOK && !tc.chunked && be.hits.Load() != hits {
				t.Errorf("a body over the limit by its Content-Length reached the backend")
			}
		})
	}
}

// --- headers ---------------------------------------------------------------

func TestForwardedHeaders(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"host":  r.Host,
			"uri":   r.RequestURI,
			"xff":   strings.Join(r.Header.Values("X-Forwarded-For"), ","),
			"proto": strings.Join(r.Header.Values("X-Forwarded-Proto"), ","),
			"xfh":   strings.Join(r.Header.Values("X-Forwarded-Host"), ","),
			"fwd":   strings.Join(r.Header.Values("Forwarded"), ","),
			"other": r.Header.Get("X-App"),
		})
	})
	g, _ := gatewayFor(t, proxy.Config{}, withDomains(route("acme", "web", be.addr()), "shop.example.com"))
	for _, host := range []string{"Web.Acme.drover.test:8080", "shop.example.com"} {
		req := g.request(t, http.MethodGet, host, "/a/b?x=1&y=2", nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("Forwarded", "for=6.6.6.6;proto=https")
		req.Header.Set("X-App", "kept")
		a := g.send(t, req)
		if a.code != http.StatusOK {
			t.Fatalf("got %d %q", a.code, a.body)
		}
		var seen map[string]string
		if err := json.Unmarshal([]byte(a.body), &seen); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"host": host, "uri": "/a/b?x=1&y=2",
			"xff": "127.0.0.1", "proto": "http", "xfh": host, "fwd": "", "other": "kept",
		}
		for k, v := range want {
			if seen[k] != v {
				t.Errorf("Host %s: the backend saw %s = %q, want %q", host, k, seen[k], v)
			}
		}
	}
}

// --- streams and upgrades --------------------------------------------------

func TestStreamedAnswerIsPassedThroughAsWritten(t *testing.T) {
	const lines = 3
	read := make(chan struct{}) // the client read a line
	var closeRead sync.Once
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range lines {
			fmt.Fprintf(w, "line %d\n", i)
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
			if i == lines-1 {
				return
			}
			// The next line is written only once the client has this one.
			select {
			case <-read:
			case <-r.Context().Done():
				return
			}
		}
	})
	g, _ := gatewayFor(t, proxy.Config{}, route("acme", "web", be.addr()))
	t.Cleanup(func() { closeRead.Do(func() { close(read) }) })
	resp, err := g.client.Do(g.request(t, http.MethodGet, hostOf("acme", "web"), "/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range lines {
		got := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if want := fmt.Sprintf("line %d\n", i); line != want {
				t.Fatalf("read %q, want %q", line, want)
			}
		case <-time.After(waitFor):
			closeRead.Do(func() { close(read) })
			t.Fatalf("line %d did not reach the client while the backend waited for it to be read", i)
		}
		select {
		case read <- struct{}{}:
		case <-time.After(waitFor):
			t.Fatalf("the backend did not wait for line %d to be read", i)
		}
		if i == lines-2 {
			break
		}
	}
	rest, _ := br.ReadString('\n')
	if want := fmt.Sprintf("line %d\n", lines-1); rest != want {
		t.Errorf("last line %q, want %q", rest, want)
	}
}

func TestWebSocketEcho(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	})
	g, _ := gatewayFor(t, proxy.Config{}, route("acme", "web", be.addr()))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.srv.URL, "http")+"/echo",
		&websocket.DialOptions{Host: hostOf("acme", "web")})
	if err != nil {
		t.Fatalf("dial through the gateway: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", resp.StatusCode)
	}
	c.SetReadLimit(1 << 20)
	big := make([]byte, 300<<10)
	rand.Read(big)
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello")},
		{websocket.MessageBinary, big},
		{websocket.MessageText, []byte("bye")},
	} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatalf("write: %v", err)
		}
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if typ != m.typ || !bytes.Equal(data, m.data) {
			t.Fatalf("echo of a %v message of %d bytes: got a %v message of %d bytes", m.typ, len(m.data), typ, len(data))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
	if n := be.hits.Load(); n != 1 {
		t.Errorf("the backend got %d requests, want 1 (the upgrade)", n)
	}
}

// --- metrics ---------------------------------------------------------------

func TestRequestMetrics(t *testing.T) {
	be := newBackend(t, says("web"))
	f := newRouteServer(t, protocol.Routes{Index: 1, Routes: []protocol.Route{
		route("acme", "web", be.addr()),
		route("acme", "idle"),
	}})
	g := startGateway(t, proxy.Config{Servers: []string{f.URL()}, MaxBodyBytes: 16})
	waitReady(t, g)
	for range 3 {
		if a := g.get(t, hostOf("acme", "web")); a.code != http.StatusOK {
			t.Fatalf("got %d", a.code)
		}
	}
	for range 2 {
		if a := g.get(t, hostOf("acme", "idle")); a.code != http.StatusServiceUnavailable {
			t.Fatalf("got %d", a.code)
		}
	}
	if a := g.send(t, g.request(t, http.MethodPost, hostOf("acme", "web"), "/", strings.NewReader(strings.Repeat("x", 17)))); a.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d", a.code)
	}
	g.get(t, "unknown.example.com") // routed nowhere: no series
	want := map[string]float64{
		"code=2xx," + instanceLabels("acme", "web"):  3,
		"code=4xx," + instanceLabels("acme", "web"):  1,
		"code=5xx," + instanceLabels("acme", "idle"): 2,
	}
	requests := g.metric(t, "drover_gateway_requests_total")
	if fmt.Sprint(requests) != fmt.Sprint(want) {
		t.Errorf("drover_gateway_requests_total = %v, want %v", requests, want)
	}
	if n, err := testutil.GatherAndCount(g.reg, "drover_gateway_request_duration_seconds"); err != nil || n != 2 {
		t.Errorf("request_duration_seconds has %d series (%v), want 2", n, err)
	}
	if r := g.metric(t, "drover_gateway_routes")[""]; r != 2 {
		t.Errorf("drover_gateway_routes = %v, want 2", r)
	}

	// web leaves the table (no request in flight): its series go, idle's
	// stay.
	f.set(protocol.Routes{Index: 2, Routes: []protocol.Route{route("acme", "idle")}})
	testwait.Eventually(t, waitFor, "the table without web", func() error {
		if i := g.metric(t, "drover_gateway_table_index")[""]; i != 2 {
			return fmt.Errorf("table index %v", i)
		}
		return nil
	})
	for _, name := range []string{"drover_gateway_requests_total", "drover_gateway_request_duration_seconds"} {
		for k := range g.metric(t, name) {
			if strings.Contains(k, "instance=web,") {
				t.Errorf("%s{%s} is still there after web left the table", name, k)
			}
		}
	}
	if a := g.get(t, hostOf("acme", "web")); a.code != http.StatusNotFound {
		t.Errorf("web after it left the table: got %d, want 404", a.code)
	}
	if v := g.metric(t, "drover_gateway_requests_total")["code=5xx,"+instanceLabels("acme", "idle")]; v != 2 {
		t.Errorf("idle's 5xx count = %v, want 2 (kept)", v)
	}
	if r := g.metric(t, "drover_gateway_routes")[""]; r != 1 {
		t.Errorf("drover_gateway_routes = %v, want 1", r)
	}
}

// A request in flight when its instance leaves the table (a long poll, a
// stream, a WebSocket) ends after the instance's series were dropped: it
// must not bring them back, for they would stay as long as the gateway runs.
func TestMetricsOfARemovedInstanceDoNotComeBack(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "done")
	})
	f := newRouteServer(t, protocol.Routes{Index: 1, Routes: []protocol.Route{route("acme", "web", be.addr())}})
	g := startGateway(t, proxy.Config{Servers: []string{f.URL()}})
	waitReady(t, g)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	done := make(chan answer, 1)
	req := g.request(t, http.MethodGet, hostOf("acme", "web"), "/long-poll", nil)
	go func() {
		a, _ := g.try(req)
		done <- a
	}()
	select {
	case <-arrived:
	case <-time.After(waitFor):
		t.Fatal("the request did not reach the backend")
	}
	f.set(protocol.Routes{Index: 2})
	testwait.Eventually(t, waitFor, "the table without web", func() error {
		if i := g.metric(t, "drover_gateway_table_index")[""]; i != 2 {
			return fmt.Errorf("table index %v", i)
		}
		return nil
	})
	once.Do(func() { close(release) })
	if a := <-done; a.code != http.StatusOK {
		t.Fatalf("the request in flight: got %d %q, want 200", a.code, a.body)
	}
	for _, name := range []string{"drover_gateway_requests_total", "drover_gateway_request_duration_seconds"} {
		for k := range g.metric(t, name) {
			if strings.Contains(k, "instance=web,") {
				t.Errorf("%s{%s} is there, for an instance no longer in the table", name, k)
			}
		}
	}
}
