package proxy_test

// Tests of how the gateway keeps its routing table: a blocking query on
// GET /v1/routes of one server after another (routeServer, in
// proxy_test.go, answers as the servers do). Each test has its own servers
// and gateway, and most wait on the watcher's backoff: they run in
// parallel.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/proxy"
)

// routesTo waits until host answers code.
func routesTo(t *testing.T, g *testGateway, host string, code int, what string) {
	t.Helper()
	testwait.Eventually(t, waitFor, what, func() error {
		if a := g.get(t, host); a.code != code {
			return fmt.Errorf("Host %s answers %d %q", host, a.code, a.body)
		}
		return nil
	})
}

// expect checks what host answers now.
func expect(t *testing.T, g *testGateway, host string, code int) {
	t.Helper()
	if a := g.get(t, host); a.code != code {
		t.Errorf("Host %s: got %d %q, want %d", host, a.code, a.body, code)
	}
}

// hitsAtLeast waits until f has had n requests.
func hitsAtLeast(t *testing.T, f *routeServer, n int64, what string) {
	t.Helper()
	testwait.Eventually(t, waitFor, what, func() error {
		if h := f.hits.Load(); h < n {
			return fmt.Errorf("%d requests", h)
		}
		return nil
	})
}

func tableIndex(t *testing.T, g *testGateway) float64 {
	return g.metric(t, "drover_gateway_table_index")[""]
}

func TestWatcherInstallsTheTableAndFollowsIt(t *testing.T) {
	t.Parallel()
	web := newBackend(t, says("web"))
	api := newBackend(t, says("api"))
	f := newRouteServer(t, protocol.Routes{Index: 5, Routes: []protocol.Route{route("acme", "web", web.addr())}})
	g := startGateway(t, proxy.Config{Servers: []string{f.URL()}, Token: "gw-secret", Wait: 200 * time.Millisecond})
	waitReady(t, g)
	expect(t, g, hostOf("acme", "web"), http.StatusOK)
	expect(t, g, hostOf("acme", "api"), http.StatusNotFound)

	// Nothing changes: blocking queries, a few per wait, not a busy loop.
	h0 := f.hits.Load()
	time.Sleep(600 * time.Millisecond)
	if n := f.hits.Load() - h0; n > 8 {
		t.Errorf("%d requests for the table in 600ms with nothing changing and a 200ms wait", n)
	}

	f.set(protocol.Routes{Index: 6, Routes: []protocol.Route{route("acme", "web", web.addr()), route("acme", "api", api.addr())}})
	routesTo(t, g, hostOf("acme", "api"), http.StatusOK, "api to join the table")
	if i := tableIndex(t, g); i != 6 {
		t.Errorf("table index %v, want 6", i)
	}

	queries, auth := f.requests()
	for i, a := range auth {
		if a != "Bearer gw-secret" {
			t.Errorf("request %d for the table: Authorization %q, want the gateway's token", i, a)
		}
	}
	if q := queries[0]; q.Has("index") || q.Has("wait") {
		t.Errorf("first request for the table %v: want no index or wait (nothing to wait for)", q)
	}
	sawBlocking := false
	for _, q := range queries[1:] {
		if q.Get("index") == "5" && q.Get("wait") == "200ms" {
			sawBlocking = true
		}
	}
	if !sawBlocking {
		t.Errorf("no blocking query past index 5 with wait 200ms in %v", queries)
	}
}

func TestWatcherMovesToTheNextServer(t *testing.T) {
	t.Parallel()
	web := newBackend(t, says("web"))
	api := newBackend(t, says("api"))
	s1 := newRouteServer(t, protocol.Routes{Index: 5, Routes: []protocol.Route{route("acme", "web", web.addr())}})
	s2 := newRouteServer(t, protocol.Routes{Index: 6, Routes: []protocol.Route{route("acme", "web", web.addr()), route("acme", "api", api.addr())}})
	g := startGateway(t, proxy.Config{Servers: []string{s1.URL(), s2.URL()}})
	waitReady(t, g)
	hitsAtLeast(t, s1, 3, "a few queries to the first server")
	expect(t, g, hostOf("acme", "api"), http.StatusNotFound)
	if n := s2.hits.Load(); n != 0 {
		t.Errorf("the second server got %d requests while the first answered", n)
	}

	s1.close()
	routesTo(t, g, hostOf("acme", "api"), http.StatusOK, "the second server's table")
	expect(t, g, hostOf("acme", "web"), http.StatusOK)
	queries, _ := s2.requests()
	if len(queries) == 0 || queries[0].Get("index") != "5" {
		t.Errorf("the second server's first query %v: want a blocking query past index 5", queries)
	}
}

func TestWatcherKeepsTheLastTableWhileNoServerAnswers(t *testing.T) {
	t.Parallel()
	web := newBackend(t, says("web"))
	api := newBackend(t, says("api"))
	s1 := newRouteServer(t, protocol.Routes{Index: 3, Routes: []protocol.Route{route("acme", "web", web.addr())}})
	s2 := newRouteServer(t, protocol.Routes{})
	s2.fail(http.StatusServiceUnavailable, `{"error":{"code":"unavailable","message":"no leader"}}`)
	g := startGateway(t, proxy.Config{Servers: []string{s1.URL(), s2.URL()}})
	waitReady(t, g)

	s1.close()
	// While the gateway fails to get a table from s1 (down) and s2 (no
	// leader), web is served all along.
	testwait.Eventually(t, waitFor, "the gateway to have tried both servers and failed, twice", func() error {
		expect(t, g, hostOf("acme", "web"), http.StatusOK)
		if h := s2.hits.Load(); h < 2 {
			return fmt.Errorf("s2 got %d requests", h)
		}
		return nil
	})
	expect(t, g, hostOf("acme", "web"), http.StatusOK)
	if !g.Ready() {
		t.Error("not Ready while serving the last table")
	}

	// A server answers again: its table is taken.
	s2.set(protocol.Routes{Index: 4, Routes: []protocol.Route{route("acme", "api", api.addr())}})
	routesTo(t, g, hostOf("acme", "api"), http.StatusOK, "the table of the server that answers again")
	expect(t, g, hostOf("acme", "web"), http.StatusNotFound)
}

func TestWatcherIgnoresAnOlderTable(t *testing.T) {
	t.Parallel()
	web := newBackend(t, says("web"))
	api := newBackend(t, says("api"))
	s1 := newRouteServer(t, protocol.Routes{Index: 10, Routes: []protocol.Route{route("acme", "web", web.addr())}})
	// s2 lags: its table is older, and has no web.
	s2 := newRouteServer(t, protocol.Routes{Index: 7, Routes: []protocol.Route{route("acme", "api", api.addr())}})
	g := startGateway(t, proxy.Config{Servers: []string{s1.URL(), s2.URL()}})
	waitReady(t, g)
	expect(t, g, hostOf("acme", "web"), http.StatusOK)

	s1.close()
	// The third request to s2 is made after its first two answers (index
	// 7, after the wait) were taken in.
	hitsAtLeast(t, s2, 3, "the lagging server's old table, twice")
	expect(t, g, hostOf("acme", "web"), http.StatusOK)
	expect(t, g, hostOf("acme", "api"), http.StatusNotFound)
	if i := tableIndex(t, g); i != 10 {
		t.Errorf("table index %v, want 10 (the newer)", i)
	}
	queries, _ := s2.requests()
	for i, q := range queries {
		if q.Get("index") != "10" {
			t.Errorf("query %d to the lagging server %v: want index 10", i, q)
		}
	}

	// Once s2 is past the table in use, its table is taken.
	s2.set(protocol.Routes{Index: 11, Routes: []protocol.Route{route("acme", "api", api.addr())}})
	routesTo(t, g, hostOf("acme", "api"), http.StatusOK, "the newer table of s2")
	expect(t, g, hostOf("acme", "web"), http.StatusNotFound)
}

func TestWatcherInstallsOnlyTablesAnsweredOK(t *testing.T) {
	// Each refusal's body would parse as a newer, empty table: installing
	// it would make web unknown.
	const emptyNewer = `{"index":99,"routes":[],"error":{"code":"permission_denied","message":"token lacks role gateway"}}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"401", http.StatusUnauthorized, emptyNewer},
		{"403", http.StatusForbidden, emptyNewer},
		{"500", http.StatusInternalServerError, emptyNewer},
		{"200 not JSON", http.StatusOK, `<html>proxy login</html>`},
		{"200 malformed", http.StatusOK, `{"index":99,"routes":"none"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			web := newBackend(t, says("web"))
			api := newBackend(t, says("api"))
			f := newRouteServer(t, protocol.Routes{Index: 3, Routes: []protocol.Route{route("acme", "web", web.addr())}})
			g := startGateway(t, proxy.Config{Servers: []string{f.URL()}})
			waitReady(t, g)
			h := f.hits.Load()
			f.fail(tc.status, tc.body)
			hitsAtLeast(t, f, h+3, "three refused queries")
			expect(t, g, hostOf("acme", "web"), http.StatusOK)
			if i := tableIndex(t, g); i != 3 {
				t.Errorf("table index %v after refusals, want 3", i)
			}

			f.set(protocol.Routes{Index: 4, Routes: []protocol.Route{route("acme", "web", web.addr()), route("acme", "api", api.addr())}})
			routesTo(t, g, hostOf("acme", "api"), http.StatusOK, "the table once the server answers again")
		})
	}
}

func TestWatcherNotReadyWhileRefused(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			f := newRouteServer(t, protocol.Routes{})
			f.fail(status, `{"index":99,"routes":[],"error":{"code":"unauthenticated","message":"bad token"}}`)
			g := startGateway(t, proxy.Config{Servers: []string{f.URL()}, Token: "wrong"})
			hitsAtLeast(t, f, 3, "three refused queries")
			if g.Ready() {
				t.Fatal("Ready after refusals only")
			}
			a := g.get(t, hostOf("acme", "web"))
			if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
				t.Errorf("got %d, Retry-After %q; want 503 with Retry-After", a.code, a.header.Get("Retry-After"))
			}
		})
	}
}

// A server that takes connections and never answers (hung, or behind a
// network that drops its packets) must not hold the watcher forever: it
// gives up on it after the wait and a grace, and asks the next. The grace
// is fixed (answerGrace, 10s), so this test takes that long: it runs in
// parallel with the others, and not with -short.
func TestWatcherMovesPastAServerThatNeverAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the watcher's answer grace (10s)")
	}
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	web := newBackend(t, says("web"))
	good := newRouteServer(t, protocol.Routes{Index: 1, Routes: []protocol.Route{route("acme", "web", web.addr())}})
	g := startGateway(t, proxy.Config{Servers: []string{"http://" + ln.Addr().String(), good.URL()}, Wait: 200 * time.Millisecond})
	// The wait (200ms) and the grace (10s), and some.
	testwait.Eventually(t, 15*time.Second, "a table from the server that answers", func() error {
		if !g.Ready() {
			return errors.New("not ready")
		}
		return nil
	})
	expect(t, g, hostOf("acme", "web"), http.StatusOK)
}

// A table at index 0 (a new cluster: no node, instance or replica written
// yet) is waited on like any other, not asked for again and again: that
// would be a busy loop of consistent reads on the servers for as long as
// the cluster stays empty.
func TestWatcherWaitsOnATableAtIndexZero(t *testing.T) {
	t.Parallel()
	web := newBackend(t, says("web"))
	f := newRouteServer(t, protocol.Routes{Index: 0, Routes: []protocol.Route{}})
	g := startGateway(t, proxy.Config{Servers: []string{f.URL()}, Wait: 200 * time.Millisecond})
	waitReady(t, g)
	h0 := f.hits.Load()
	time.Sleep(600 * time.Millisecond)
	if n := f.hits.Load() - h0; n > 8 {
		t.Errorf("%d requests for an unchanged table in 600ms with a 200ms wait", n)
	}
	f.set(protocol.Routes{Index: 1, Routes: []protocol.Route{route("acme", "web", web.addr())}})
	routesTo(t, g, hostOf("acme", "web"), http.StatusOK, "the first instance")
}
