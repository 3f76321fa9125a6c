package proxy

// Tests of the routing table's internals: lookup of a host, the carrying
// over of backends' state from table to table, the choice of a backend,
// and which failed requests may go to another backend.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

const domain = "drover.test"

func testTable(prev *table, index uint64, routes ...protocol.Route) *table {
	return build(protocol.Routes{Index: index, Routes: routes}, prev)
}

func rt(tenant, name string, domains []string, addrs ...string) protocol.Route {
	r := protocol.Route{Tenant: tenant, Name: name, Domains: domains, Backends: []protocol.Backend{}}
	for _, a := range addrs {
		r.Backends = append(r.Backends, protocol.Backend{Replica: name + "@" + a, Addr: a})
	}
	return r
}

func TestLookup(t *testing.T) {
	tb := testTable(nil, 1,
		rt("acme", "web", nil, "10.0.0.1:80"),
		rt("acme", "api", []string{"shop.example.com", "api.example.org"}, "10.0.0.2:80"),
		// Claims web/acme's generated name: the generated name wins.
		rt("beta", "other", []string{"web.acme.drover.test", "beta.example.com"}, "10.0.0.3:80"),
		rt("acme", "idle", nil),
	)
	for host, want := range map[string]string{
		"web.acme.drover.test":        "acme/web",
		"WEB.ACME.DROVER.TEST":        "acme/web",
		"web.acme.drover.test:8080":   "acme/web",
		"web.acme.drover.test.":       "acme/web",
		"web.acme.drover.test.:8443":  "acme/web",
		"idle.acme.drover.test":       "acme/idle",
		"api.acme.drover.test":        "acme/api",
		"shop.example.com":            "acme/api",
		"Shop.Example.Com:443":        "acme/api",
		"shop.example.com.":           "acme/api",
		"api.example.org":             "acme/api",
		"beta.example.com":            "beta/other",
		"other.beta.drover.test":      "beta/other",
		"x.web.acme.drover.test":      "",
		"web.acme.drover.test.evil":   "",
		"web.acme.drover.testx":       "",
		"web.acme-drover.test":        "",
		"acme.drover.test":            "",
		"drover.test":                 "",
		".drover.test":                "",
		"web..drover.test":            "",
		"nope.acme.drover.test":       "",
		"web.nope.drover.test":        "",
		"www.shop.example.com":        "",
		"example.com":                 "",
		"":                            "",
		"[::1]:8080":                  "",
		"shop.example.com:":           "acme/api",
		"beta.example.com:80:80":      "beta/other",
		"beta/other.beta.drover.test": "",
	} {
		got := ""
		if r := tb.lookup(host, domain); r != nil {
			got = r.tenant + "/" + r.name
		}
		if got != want {
			t.Errorf("lookup(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestBuildCarriesBackendsOver(t *testing.T) {
	t1 := testTable(nil, 1, rt("acme", "web", nil, "10.0.0.1:80", "10.0.0.2:80"))
	old := t1.byID["acme/web"].backends
	old[0].outstanding.Add(3)
	old[1].eject(time.Now(), time.Hour)

	// The same replicas at the same addresses, one more, one moved.
	t2 := testTable(t1, 2,
		protocol.Route{Tenant: "acme", Name: "web", Backends: []protocol.Backend{
			{Replica: "web@10.0.0.1:80", Addr: "10.0.0.1:80"},
			{Replica: "web@10.0.0.2:80", Addr: "10.0.0.9:80"}, // moved
			{Replica: "web@10.0.0.3:80", Addr: "10.0.0.3:80"}, // new
		}})
	bs := t2.byID["acme/web"].backends
	if bs[0] != old[0] || bs[0].outstanding.Load() != 3 {
		t.Errorf("an unchanged replica's backend was not carried over (outstanding %d)", bs[0].outstanding.Load())
	}
	if bs[1] == old[1] || bs[1].ejected(time.Now()) {
		t.Error("a replica at a new address kept the ejection of its old address")
	}
	if bs[2].outstanding.Load() != 0 || bs[2].ejected(time.Now()) {
		t.Error("a new replica starts with state")
	}
	if t2.index != 2 || len(t2.byID) != 1 {
		t.Errorf("table index %d with %d routes, want 2 with 1", t2.index, len(t2.byID))
	}
}

func TestPickPrefersFewerInFlight(t *testing.T) {
	r := testTable(nil, 1, rt("acme", "web", nil, "a:1", "b:1")).byID["acme/web"]
	busy, free := r.backends[0], r.backends[1]
	busy.outstanding.Store(2)
	free.outstanding.Store(1)
	for range 200 {
		if b := r.pick(time.Now(), nil); b != free {
			t.Fatalf("picked %s with %d in flight over %s with %d", b.addr, b.outstanding.Load(), free.addr, free.outstanding.Load())
		}
	}
}

func TestPickSpreadsOverEqualBackends(t *testing.T) {
	r := testTable(nil, 1, rt("acme", "web", nil, "a:1", "b:1", "c:1", "d:1")).byID["acme/web"]
	n := map[string]int{}
	for range 4000 {
		n[r.pick(time.Now(), nil).addr]++
	}
	for _, b := range r.backends {
		if n[b.addr] < 700 || n[b.addr] > 1300 {
			t.Errorf("%s picked %d times of 4000 among 4 idle backends: %v", b.addr, n[b.addr], n)
		}
	}
}

func TestPickAvoidsEjectedAndTried(t *testing.T) {
	now := time.Now()
	r := testTable(nil, 1, rt("acme", "web", nil, "a:1", "b:1", "c:1")).byID["acme/web"]
	a, b, c := r.backends[0], r.backends[1], r.backends[2]
	a.eject(now, time.Second)
	b.outstanding.Store(100) // busy, but not ejected
	for range 100 {
		if got := r.pick(now, []*backend{c}); got != b {
			t.Fatalf("picked %s; want b, the only backend neither tried nor ejected", got.addr)
		}
	}
	// Every other backend tried: an ejected one still beats none.
	if got := r.pick(now, []*backend{b, c}); got != a {
		t.Errorf("picked %v with only the ejected a left; want a", got)
	}
	if got := r.pick(now, []*backend{a, b, c}); got != nil {
		t.Errorf("picked %s with every backend tried; want nil", got.addr)
	}
	// The ejection ends.
	later := now.Add(time.Second)
	b.outstanding.Store(0)
	c.outstanding.Store(1)
	seen := false
	for range 200 {
		seen = seen || r.pick(later, []*backend{c}) == a
	}
	if !seen {
		t.Error("a is never picked after its ejection ended")
	}
	// With every backend ejected, traffic still flows.
	b.eject(now, time.Second)
	c.eject(now, time.Second)
	if got := r.pick(now, nil); got == nil {
		t.Error("no pick from an all-ejected pool")
	}
	if got := testTable(nil, 1, rt("acme", "idle", nil)).byID["acme/idle"].pick(now, nil); got != nil {
		t.Errorf("picked %s from an empty pool", got.addr)
	}
}

func TestRetryable(t *testing.T) {
	read := &heldBody{src: strings.NewReader("x")}
	read.Read(make([]byte, 1))
	for _, tc := range []struct {
		method string
		body   *heldBody
		header string // "Name: value"
		dial   bool
		want   bool
	}{
		// Never sent: always again, unless its body was read.
		{method: http.MethodPost, dial: true, want: true},
		{method: http.MethodPost, body: &heldBody{src: strings.NewReader("x")}, dial: true, want: true},
		{method: http.MethodPost, body: read, dial: true, want: false},
		{method: http.MethodGet, header: "Upgrade: websocket", dial: true, want: true},
		// Failed after it was sent: idempotent requests without a body.
		{method: http.MethodGet, want: true},
		{method: http.MethodHead, want: true},
		{method: http.MethodOptions, want: true},
		{method: http.MethodPut, want: true},
		{method: http.MethodDelete, want: true},
		{method: http.MethodPost, want: false},
		{method: http.MethodPatch, want: false},
		{method: http.MethodPost, header: "Idempotency-Key: k", want: true},
		{method: http.MethodPost, header: "Idempotency-Key: k", body: &heldBody{src: strings.NewReader("x")}, want: false},
		{method: http.MethodPut, body: &heldBody{src: strings.NewReader("x")}, want: false},
		{method: http.MethodGet, header: "Upgrade: websocket", want: false},
	} {
		req, _ := http.NewRequest(tc.method, "http://backend/", nil)
		if k, v, ok := strings.Cut(tc.header, ": "); ok {
			req.Header.Set(k, v)
		}
		if got := retryable(req, tc.body, tc.dial); got != tc.want {
			t.Errorf("%s body=%v started=%v %q dial=%v: retryable = %v, want %v",
				tc.method, tc.body != nil, tc.body != nil && tc.body.started.Load(), tc.header, tc.dial, got, tc.want)
		}
	}
}
