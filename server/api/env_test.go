package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/clustertest"
)

// env is an in-process cluster of real servers (clustertest), each with
// its API behind a real HTTP listener.
type env struct {
	t *testing.T
	c *clustertest.Cluster
}

type envConfig struct {
	Servers     int
	NoBootstrap bool
	ACL         bool
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	if cfg.Servers == 0 {
		cfg.Servers = 1
	}
	c := clustertest.New(t, clustertest.Config{Servers: cfg.Servers, NoBootstrap: cfg.NoBootstrap,
		Server: server.Config{ACL: cfg.ACL}})
	return &env{t: t, c: c}
}

// url is the base URL of the leader's API.
func (e *env) url() string { return e.c.Leader().URL }

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) index() uint64 {
	n, _ := strconv.ParseUint(r.header.Get(api.HeaderIndex), 10, 64)
	return n
}

func (r reply) String() string {
	return strconv.Itoa(r.status) + " " + strings.TrimSpace(string(r.body))
}

// do sends a request: body is raw when a string or []byte, JSON otherwise.
// Headers come as name, value pairs.
func do(t testing.TB, method, url string, body any, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

var httpClient = &http.Client{Timeout: time.Minute}

// must sends a request that must answer want, and decodes its body into out.
func must(t testing.TB, want int, method, url string, body any, out any, headers ...string) reply {
	t.Helper()
	r := do(t, method, url, body, headers...)
	if r.status != want {
		t.Fatalf("%s %s: got %s, want %d", method, url, r, want)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, r.body, err)
		}
	}
	return r
}

// checkError checks that r is an error answer of status and code, naming
// field ("" for none), with exactly the shape of API.md:
// {"error": {"code": ..., "message": ..., "field": ...}}.
func checkError(t testing.TB, r reply, status int, code protocol.Code, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %s, want %d %s", r, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error answered as %q: %s", ct, r)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Fatalf("error body is not {\"error\": {...}}: %s", r.body)
	}
	var inner map[string]any
	if err := json.Unmarshal(top["error"], &inner); err != nil {
		t.Fatalf("error is not an object: %s", r.body)
	}
	for k, v := range inner {
		if k == "outcome" && code == protocol.CodeUnavailable {
			if v != protocol.OutcomeNotApplied && v != protocol.OutcomeUnknown || r.header.Get(api.HeaderOutcome) != v {
				t.Fatalf("outcome %v (header %q): %s", v, r.header.Get(api.HeaderOutcome), r.body)
			}
			continue
		}
		if k != "code" && k != "message" && k != "field" {
			t.Fatalf("error has an extra key %q: %s", k, r.body)
		}
		if _, ok := v.(string); !ok {
			t.Fatalf("error key %q is not a string: %s", k, r.body)
		}
	}
	if inner["code"] != string(code) {
		t.Fatalf("code %v, want %s: %s", inner["code"], code, r.body)
	}
	if msg, _ := inner["message"].(string); msg == "" {
		t.Fatalf("error without a message: %s", r.body)
	}
	if got, _ := inner["field"].(string); got != field {
		t.Fatalf("field %q, want %q: %s", got, field, r.body)
	}
}

// instanceDoc is a valid instance request body.
func instanceDoc(name string) map[string]any {
	return map[string]any{
		"name": name,
		"spec": map[string]any{
			"version": "1.0.0",
			"command": []string{"/opt/app/bin/app", "--port", "${PORT}"},
			"env":     map[string]string{"LOG_LEVEL": "info"},
			"secrets": map[string]string{"DB_PASSWORD": "hunter2"},
			"ports":   []string{"http"},
			"health":  map[string]any{"type": "http", "port": "http", "path": "/healthz", "interval": "2s"},
		},
	}
}
