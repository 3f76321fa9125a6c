package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// recorded is one request a test server saw.
type recorded struct {
	Method, Path, Query, Auth, IfMatch, ContentType string
	Body                                            string
}

// recorder is a test server that records requests and answers each with
// the status, index and body the test set.
type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	index  string
	body   string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, recorded{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
		IfMatch: r.Header.Get("If-Match"), ContentType: r.Header.Get("Content-Type"), Body: string(b),
	})
	status, index, body := rec.status, rec.index, rec.body
	rec.mu.Unlock()
	if index != "" {
		w.Header().Set(HeaderIndex, index)
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (rec *recorder) last(t *testing.T) recorded {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("the server got no request")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func newTestClient(t *testing.T, h http.Handler, token string) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Config{Address: srv.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewAddress(t *testing.T) {
	for _, tc := range []struct {
		addr, want string
		bad        bool
	}{
		{addr: "", want: DefaultAddress},
		{addr: "10.0.0.1:4700", want: "http://10.0.0.1:4700"},
		{addr: "https://drover.example:4700/", want: "https://drover.example:4700"},
		{addr: "ftp://x:1", bad: true},
		{addr: "http://", bad: true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			c, err := New(Config{Address: tc.addr})
			if tc.bad {
				if err == nil {
					t.Fatalf("New(%q) = %s, want an error", tc.addr, c.Address())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Address() != tc.want {
				t.Errorf("Address() = %q, want %q", c.Address(), tc.want)
			}
		})
	}
}

func TestErrorsAreDecoded(t *testing.T) {
	rec := &recorder{status: http.StatusBadRequest, body: `{"error":{"code":"invalid_argument","message":"must be between 0 and 1000, got -1","field":"replicas"}}`}
	c := newTestClient(t, rec, "")
	_, _, err := c.ScaleInstance(context.Background(), "acme", "crm", -1)
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %T %v, want a *protocol.Error", err, err)
	}
	if pe.Code != protocol.CodeInvalidArgument || pe.Field != "replicas" || !strings.Contains(pe.Message, "between 0 and 1000") {
		t.Errorf("err = %+v", pe)
	}
	if !errors.Is(err, protocol.ErrInvalid) {
		t.Error("errors.Is(err, protocol.ErrInvalid) = false")
	}

	// An answer without the error envelope (a proxy's page) keeps its
	// status's code and the start of its body.
	rec.status, rec.body = http.StatusServiceUnavailable, "<html>bad gateway</html>"
	_, _, err = c.Status(context.Background(), nil)
	if !errors.Is(err, protocol.ErrUnavailable) || !strings.Contains(err.Error(), "bad gateway") {
		t.Errorf("err = %v, want unavailable with the body", err)
	}
	if !Retryable(err) {
		t.Error("Retryable(unavailable) = false")
	}
	rec.status, rec.body = http.StatusNotFound, `{"error":{"code":"not_found","message":"instance \"acme/x\" not found"}}`
	_, _, err = c.Instance(context.Background(), "acme", "x", nil)
	if !errors.Is(err, protocol.ErrNotFound) || Retryable(err) {
		t.Errorf("err = %v, want a not_found that is not retryable", err)
	}
}

func TestUnreachableIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	c, err := New(Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Health(context.Background())
	if err == nil || !Retryable(err) {
		t.Errorf("Health of a closed server: %v, want a retryable error", err)
	}
}

func TestTokenIndexAndQueryOptions(t *testing.T) {
	rec := &recorder{index: "42", body: `{"leader":"s1","members":[{"id":"s1","voter":true,"state":"leader"}],"index":42,"counts":{"tenants":2}}`}
	c := newTestClient(t, rec, "s3cret")
	st, m, err := c.Status(context.Background(), &QueryOptions{Index: 41, Wait: 10 * time.Second, Stale: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Index != 42 || st.Leader != "s1" || st.Counts.Tenants != 2 || len(st.Members) != 1 {
		t.Errorf("status = %+v, meta %+v", st, m)
	}
	got := rec.last(t)
	if got.Auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got.Auth)
	}
	if got.Query != "index=41&stale=true&wait=10s" {
		t.Errorf("query = %q", got.Query)
	}
	// Without an index there is nothing to block on: no wait is sent.
	rec.body = `[]`
	if _, _, err := c.Tenants(context.Background(), &QueryOptions{Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	if q := rec.last(t).Query; q != "" {
		t.Errorf("query without index = %q, want none", q)
	}
}

// TestMethods checks each typed method's request against API.md.
func TestMethods(t *testing.T) {
	ctx := context.Background()
	two := 2
	for _, tc := range []struct {
		name                   string
		answer                 string
		call                   func(c *Client) error
		method, path, query    string
		body, ifMatch, content string
	}{
		{name: "health", call: func(c *Client) error { return c.Health(ctx) }, method: "GET", path: "/v1/health"},
		{name: "create tenant", answer: `{"name":"acme"}`,
			call: func(c *Client) error {
				_, _, err := c.CreateTenant(ctx, &protocol.Tenant{Name: "acme", Labels: map[string]string{"tier": "gold"}})
				return err
			},
			method: "POST", path: "/v1/tenants", body: `"labels":{"tier":"gold"}`, content: "application/json"},
		{name: "tenant", answer: `{"name":"acme"}`,
			call:   func(c *Client) error { _, _, err := c.Tenant(ctx, "acme", nil); return err },
			method: "GET", path: "/v1/tenants/acme"},
		{name: "patch tenant", answer: `{"name":"acme"}`,
			call: func(c *Client) error {
				s := protocol.TenantSuspended
				_, _, err := c.UpdateTenant(ctx, "acme", &TenantPatch{State: &s})
				return err
			},
			method: "PATCH", path: "/v1/tenants/acme", body: `{"state":"suspended"}`},
		{name: "delete tenant", call: func(c *Client) error { _, err := c.DeleteTenant(ctx, "acme"); return err },
			method: "DELETE", path: "/v1/tenants/acme"},
		{name: "fleet instances", answer: `[]`,
			call: func(c *Client) error {
				_, _, err := c.Instances(ctx, InstanceFilter{Tenant: "acme", Environment: "production"}, nil)
				return err
			},
			method: "GET", path: "/v1/instances", query: "environment=production&tenant=acme"},
		{name: "tenant instances", answer: `[]`,
			call:   func(c *Client) error { _, _, err := c.TenantInstances(ctx, "acme", nil); return err },
			method: "GET", path: "/v1/tenants/acme/instances"},
		{name: "create instance", answer: `{"id":"acme/crm"}`,
			call: func(c *Client) error {
				_, _, err := c.CreateInstance(ctx, "acme", &protocol.InstanceRequest{Name: "crm", Replicas: &two})
				return err
			},
			method: "POST", path: "/v1/tenants/acme/instances", body: `"replicas":2`},
		{name: "update instance", answer: `{"id":"acme/crm"}`,
			call: func(c *Client) error {
				_, _, err := c.UpdateInstance(ctx, "acme", "crm", &protocol.InstanceRequest{Name: "crm"}, 7)
				return err
			},
			method: "PUT", path: "/v1/tenants/acme/instances/crm", body: `"name":"crm"`, ifMatch: "7"},
		{name: "scale", answer: `{}`,
			call:   func(c *Client) error { _, _, err := c.ScaleInstance(ctx, "acme", "crm", 3); return err },
			method: "POST", path: "/v1/tenants/acme/instances/crm/scale", body: `{"replicas":3}`},
		{name: "restart", answer: `{}`,
			call: func(c *Client) error {
				_, _, err := c.InstanceAction(ctx, "acme", "crm", ActionRestart, "")
				return err
			},
			method: "POST", path: "/v1/tenants/acme/instances/crm/restart"},
		{name: "delete instance", call: func(c *Client) error { _, err := c.DeleteInstance(ctx, "acme", "crm", ""); return err },
			method: "DELETE", path: "/v1/tenants/acme/instances/crm"},
		{name: "replicas", answer: `[]`,
			call:   func(c *Client) error { _, _, err := c.Replicas(ctx, "acme", "crm", nil); return err },
			method: "GET", path: "/v1/tenants/acme/instances/crm/replicas"},
		{name: "events", answer: `[]`,
			call:   func(c *Client) error { _, _, err := c.Events(ctx, "acme", "crm", nil); return err },
			method: "GET", path: "/v1/tenants/acme/instances/crm/events"},
		{name: "node", answer: `{"id":"n1","replicas":[]}`,
			call:   func(c *Client) error { _, _, err := c.Node(ctx, "n1", nil); return err },
			method: "GET", path: "/v1/nodes/n1"},
		{name: "drain", answer: `{"id":"n1"}`,
			call: func(c *Client) error {
				_, _, err := c.DrainNode(ctx, "n1", true, 10*time.Minute)
				return err
			},
			method: "POST", path: "/v1/nodes/n1/drain", body: `{"enable":true,"deadline":"10m0s"}`},
		{name: "eligibility", answer: `{"id":"n1"}`,
			call: func(c *Client) error {
				_, _, err := c.SetNodeEligibility(ctx, "n1", false)
				return err
			},
			method: "POST", path: "/v1/nodes/n1/eligibility", body: `{"eligible":false}`},
		{name: "revoke node", answer: `{"id":"n1","revoked":true}`,
			call:   func(c *Client) error { _, _, err := c.RevokeNode(ctx, "n1"); return err },
			method: "POST", path: "/v1/nodes/n1/revoke"},
		{name: "raft peers", answer: `{"servers":[{"id":"s1"}]}`,
			call: func(c *Client) error {
				p, _, err := c.RaftPeers(ctx, nil)
				if err == nil && (len(p) != 1 || p[0].ID != "s1") {
					return errors.New("peers not decoded")
				}
				return err
			},
			method: "GET", path: "/v1/operator/raft"},
		{name: "remove peer", call: func(c *Client) error { _, err := c.RemoveRaftPeer(ctx, "s3"); return err },
			method: "DELETE", path: "/v1/operator/raft/peers/s3"},
		{name: "acl bootstrap", answer: `{"id":"t1","secret":"x"}`,
			call: func(c *Client) error {
				tk, _, err := c.ACLBootstrap(ctx)
				if err == nil && tk.Secret != "x" {
					return errors.New("secret not decoded")
				}
				return err
			},
			method: "POST", path: "/v1/acl/bootstrap"},
		{name: "create token", answer: `{"id":"t2"}`,
			call: func(c *Client) error {
				_, _, err := c.CreateToken(ctx, &protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "acme"})
				return err
			},
			method: "POST", path: "/v1/acl/tokens", body: `{"role":"tenant-admin","tenant":"acme"}`},
		{name: "tokens", answer: `[]`,
			call:   func(c *Client) error { _, _, err := c.Tokens(ctx, nil); return err },
			method: "GET", path: "/v1/acl/tokens"},
		{name: "token self", answer: `{"id":"t1"}`,
			call:   func(c *Client) error { _, _, err := c.TokenSelf(ctx); return err },
			method: "GET", path: "/v1/acl/tokens/self"},
		{name: "revoke token", call: func(c *Client) error { _, err := c.RevokeToken(ctx, "t2"); return err },
			method: "DELETE", path: "/v1/acl/tokens/t2"},
		{name: "audit", answer: `[]`,
			call: func(c *Client) error {
				_, _, err := c.Audit(ctx, AuditFilter{Tenant: "acme", Since: time.Hour}, nil)
				return err
			},
			method: "GET", path: "/v1/audit", query: "since=1h0m0s&tenant=acme"},
		{name: "escaped segment", answer: `{}`,
			call:   func(c *Client) error { _, _, err := c.Node(ctx, "a/b c", nil); return err },
			method: "GET", path: "/v1/nodes/a%2Fb%20c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{body: tc.answer}
			if tc.answer == "" {
				rec.status = http.StatusNoContent
			}
			c := newTestClient(t, rec, "")
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			got := rec.last(t)
			if got.Method != tc.method || got.Path != tc.path || got.Query != tc.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", got.Method, got.Path, got.Query, tc.method, tc.path, tc.query)
			}
			if !strings.Contains(got.Body, tc.body) {
				t.Errorf("body = %s, want it to hold %s", got.Body, tc.body)
			}
			if got.IfMatch != tc.ifMatch {
				t.Errorf("If-Match = %q, want %q", got.IfMatch, tc.ifMatch)
			}
			if tc.content != "" && got.ContentType != tc.content {
				t.Errorf("Content-Type = %q, want %q", got.ContentType, tc.content)
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	var mu sync.Mutex
	var stored []byte
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderIndex, "17")
		_, _ = w.Write([]byte("\x00snapshot bytes\xff"))
	})
	mux.HandleFunc("PUT /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		stored = b
		mu.Unlock()
		w.Header().Set(HeaderIndex, "20")
		_, _ = io.WriteString(w, `{"restored":true,"index":20}`)
	})
	c := newTestClient(t, mux, "")
	var buf bytes.Buffer
	m, err := c.SaveSnapshot(context.Background(), &buf)
	if err != nil || m.Index != 17 || buf.String() != "\x00snapshot bytes\xff" {
		t.Fatalf("SaveSnapshot = %q, %+v, %v", buf.String(), m, err)
	}
	m, err = c.RestoreSnapshot(context.Background(), bytes.NewReader(buf.Bytes()))
	if err != nil || m.Index != 20 {
		t.Fatalf("RestoreSnapshot = %+v, %v", m, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if string(stored) != "\x00snapshot bytes\xff" {
		t.Errorf("server got %q", stored)
	}
}

// TestLogsStream checks that followed output reaches the reader as the
// server writes it, not when the stream ends.
func TestLogsStream(t *testing.T) {
	next := make(chan struct{})
	query := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tenants/{tenant}/instances/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		query <- r.URL.RawQuery
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "line 1\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "line 2\n")
	})
	c := newTestClient(t, mux, "")
	body, err := c.Logs(context.Background(), "acme", "crm", LogOptions{Replica: "r1", Tail: 10, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if q := <-query; q != "follow=true&replica=r1&tail=10" {
		t.Errorf("query = %q", q)
	}
	br := bufio.NewReader(body)
	if l, err := br.ReadString('\n'); err != nil || l != "line 1\n" {
		t.Fatalf("first line = %q, %v", l, err)
	}
	close(next)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "line 2\n" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

func TestLogsError(t *testing.T) {
	rec := &recorder{status: http.StatusNotFound, body: `{"error":{"code":"not_found","message":"replica \"r9\" not found"}}`}
	c := newTestClient(t, rec, "")
	_, err := c.Logs(context.Background(), "acme", "crm", LogOptions{Replica: "r9", Tail: -1})
	if !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("err = %v, want not_found", err)
	}
	if q := rec.last(t).Query; q != "replica=r9" {
		t.Errorf("query = %q: a negative tail leaves the server's default", q)
	}
}

func TestDoDecodesIntoOut(t *testing.T) {
	rec := &recorder{index: "5", body: `[{"name":"default"}]`}
	c := newTestClient(t, rec, "")
	var envs []protocol.Environment
	m, err := c.Do(context.Background(), Request{Method: http.MethodGet, Path: "/v1/environments"}, &envs)
	if err != nil || m.Index != 5 || len(envs) != 1 || envs[0].Name != "default" {
		t.Fatalf("Do = %+v, %+v, %v", envs, m, err)
	}
	rec.body = `{not json`
	if _, err := c.Do(context.Background(), Request{Method: http.MethodGet, Path: "/v1/environments"}, &envs); err == nil {
		t.Error("a malformed answer decoded without error")
	}
}

// A change whose outcome the server says is unknown is sent again with
// the same Idempotency-Key (which the server answers with the first
// attempt's outcome); one refused before Raft is not.
func TestChangeOfUnknownOutcomeIsSentAgainWithItsKey(t *testing.T) {
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get(HeaderIdempotencyKey))
		if len(keys) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":"unavailable","message":"outcome unknown","outcome":"unknown"}}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"name":"acme"}`)
	}))
	defer srv.Close()
	var notes []string
	c, err := New(Config{Address: srv.URL, OnResend: func(m string) { notes = append(notes, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.CreateTenant(context.Background(), &protocol.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] || len(notes) != 1 {
		t.Fatalf("keys %q, notes %q: want one resend with the same key, said once", keys, notes)
	}

	keys = nil
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get(HeaderIdempotencyKey))
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":"unavailable","message":"no leader","outcome":"not_applied"}}`)
	})
	if _, _, err := c.CreateTenant(context.Background(), &protocol.Tenant{Name: "acme"}); err == nil || len(keys) != 1 {
		t.Fatalf("a change refused before Raft: %v after %d attempts, want the error after 1", err, len(keys))
	}
}
