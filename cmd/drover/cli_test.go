package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/protocol"
)

// runCLI runs the drover command line and returns what it printed and its
// exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(args, &out, &errb)
	return out.String(), errb.String(), code
}

// fakeAPI is a test server standing for the API: handlers answer fixed
// documents, and the requests it got are kept.
type fakeAPI struct {
	t    *testing.T
	mux  *http.ServeMux
	url  string
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	Method, Path, Query, Auth string
	Body                      []byte
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, mux: http.NewServeMux()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Body: b})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	t.Setenv("DROVER_ADDR", "")
	t.Setenv("DROVER_TOKEN", "")
	return f
}

// answer makes pattern answer status with v as JSON (no body when v is nil).
func (f *fakeAPI) answer(pattern string, status int, v any) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Drover-Index", "7")
		if v == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	})
}

func (f *fakeAPI) fail(pattern string, e *protocol.Error) {
	f.answer(pattern, e.Code.HTTPStatus(), protocol.ErrorBody{Error: e})
}

// request returns the last request to method and path.
func (f *fakeAPI) request(method, path string) seenRequest {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.seen) - 1; i >= 0; i-- {
		if f.seen[i].Method == method && f.seen[i].Path == path {
			return f.seen[i]
		}
	}
	f.t.Fatalf("no %s %s request was made", method, path)
	return seenRequest{}
}

func (f *fakeAPI) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const crmYAML = `tenant: acme
name: crm
environment: production
replicas: 2
spec:
  version: "1.4.2"
  command: ["/opt/crm/bin/crm", "--listen", "127.0.0.1:${PORT}"]
  ports: [http]
  health: {type: http, port: http, path: /healthz, interval: 2s, timeout: 1s}
  update: {min_healthy_time: 5s, healthy_deadline: 2m}
`

// TestUsageErrors checks that bad command lines end with exit code 2, a
// one-line error and a hint, without a request to the server.
func TestUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	noTenant := writeFile(t, "crm.yaml", strings.Replace(crmYAML, "tenant: acme\n", "", 1))
	withTenant := writeFile(t, "crm.yaml", crmYAML)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "extra"}, "takes no arguments"},
		{[]string{"status", "-o", "xml"}, `-o "xml": want table, json or yaml`},
		{[]string{"status", "-addr", "ftp://host:1"}, "-addr"},
		{[]string{"instance", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"instance", "list", "-bogus"}, "unknown flag"},
		{[]string{"instance", "status"}, "wants TENANT/NAME, got 0 argument(s)"},
		{[]string{"instance", "status", "a/b", "c/d"}, "wants TENANT/NAME, got 2"},
		{[]string{"instance", "status", "acme"}, `"acme" is not TENANT/NAME`},
		{[]string{"instance", "stop", "Acme/crm"}, "not a valid name"},
		{[]string{"instance", "scale", "acme/crm"}, "wants TENANT/NAME N"},
		{[]string{"instance", "scale", "acme/crm", "three"}, `replica count "three"`},
		{[]string{"instance", "scale", "acme/crm", "-1"}, "-1: a negative number is not a valid count (0 or more)"},
		{[]string{"instance", "create"}, "-f FILE is required"},
		{[]string{"instance", "create", "-f", noTenant}, "no tenant: give -tenant T"},
		{[]string{"instance", "create", "-f", withTenant, "-tenant", "other"}, "-tenant other differs from the tenant acme"},
		{[]string{"instance", "create", "-f", withTenant, "-tenant", "Bad_Name"}, "-tenant"},
		{[]string{"instance", "create", "-f", withTenant, "-timeout", "0s"}, "-timeout 0s"},
		{[]string{"instance", "update", "other/crm", "-f", withTenant}, "names tenant acme, not other"},
		{[]string{"instance", "logs", "acme/crm", "-tail", "-5"}, "-tail -5"},
		{[]string{"instance", "restart", "acme/crm", "-wait", "-timeout", "0s"}, "-timeout 0s"},
		{[]string{"instance", "scale", "acme/crm", "2", "-wait", "-timeout", "-1m"}, "-timeout -1m0s"},
		{[]string{"node", "eligibility", "n1", "maybe"}, `"maybe": want on or off`},
		{[]string{"node", "eligibility", "n1"}, "wants ID on|off"},
		{[]string{"node", "drain", "n1", "-deadline", "-5m"}, "-deadline"},
		{[]string{"operator", "snapshot", "save"}, "wants FILE"},
		{[]string{"operator", "raft", "remove-peer"}, "wants ID"},
		{[]string{"acl", "token", "create"}, "-role: is required"},
		{[]string{"acl", "token", "create", "-role", "wizard"}, `-role: "wizard" is not one of`},
		{[]string{"acl", "token", "create", "-role", "tenant-admin"}, "-tenant: is required"},
		{[]string{"acl", "token", "create", "-role", "operator", "-tenant", "acme"}, "-tenant"},
		{[]string{"audit", "list", "-since", "-1h"}, "-since"},
		{[]string{"server", "-data-dir", "/nonexistent/drover", "-bootstrap-expect", "3"}, "-server-join-token is required"},
		{[]string{"events", "-topic", "instance,bogus"}, `-topic "bogus": want one of instance, deployment`},
		{[]string{"events", "-index", "12.x"}, `-index: "12.x" is not an event id`},
		{[]string{"tenant", "create", "acme", "-label", "novalue"}, `-label "novalue": want key=value`},
		{[]string{"tenant", "update", "acme"}, "nothing to change: give -label"},
		{[]string{"tenant", "update"}, "wants NAME"},
		{[]string{"tenant", "update", "acme", "-label", "tier"}, `-label "tier": want key=value`},
		{[]string{"tenant", "update", "acme", "-label", "a=1", "-remove-label", "a"}, "-remove-label a: the same label is given to -label"},
		{[]string{"tenant", "update", "acme", "-maintenance-window", "tue 1am"}, `-maintenance-window "tue 1am": want "DAYS HH:MM DURATION"`},
		{[]string{"tenant", "update", "acme", "-maintenance-window", "xyz 01:00 4h"}, `"xyz" is not a day`},
		{[]string{"tenant", "update", "acme", "-maintenance-window", "tue 01:00 4h", "-no-maintenance-window"}, "-maintenance-window and -no-maintenance-window: give one"},
		{[]string{"environment", "set"}, "wants NAME"},
		{[]string{"environment", "set", "prod", "-constraint", "tier"}, `-constraint "tier": want key=value`},
		{[]string{"env", "set", "prod", "-clear-constraints", "-region", "eu"}, "-clear-constraints with -constraint or -region"},
		{[]string{"environment", "list", "extra"}, "takes no arguments"},
		{[]string{"plan", "set", "pro", "-cpu", "-5"}, "-cpu -5: want 0 or more"},
		{[]string{"plan", "set", "pro", "-max-replicas", "-1"}, "-max-replicas -1: want 0 or more"},
		{[]string{"plan", "set"}, "wants NAME"},
		{[]string{"instance", "events", "acme"}, `"acme" is not TENANT/NAME`},
		{[]string{"instance", "history"}, "wants TENANT/NAME, got 0"},
		{[]string{"instance", "rollback", "acme/crm", "-to", "x"}, `invalid argument "x"`},
		{[]string{"instance", "rollback", "acme/crm", "-wait", "-timeout", "0s"}, "-timeout 0s"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "-addr") {
				args = append(args, "-addr", f.url)
			}
			stdout, stderr, code := runCLI(t, args...)
			if code != exitUsage {
				t.Fatalf("exit code %d, want %d; stdout %q stderr %q", code, exitUsage, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "Error: ") || !strings.Contains(lines[0], tc.want) ||
				!strings.Contains(lines[1], "--help") {
				t.Errorf("stderr = %q, want an error line with %q and a hint", stderr, tc.want)
			}
		})
	}
	if n := f.requests(); n != 0 {
		t.Errorf("the server got %d requests from bad command lines", n)
	}
}

func TestGroupWithoutVerbPrintsHelp(t *testing.T) {
	stdout, _, code := runCLI(t, "node")
	if code != exitOK || !strings.Contains(stdout, "drover node [command]") || !strings.Contains(stdout, "eligibility") {
		t.Errorf("drover node: exit %d, stdout %q", code, stdout)
	}
}

func TestCompletionWorks(t *testing.T) {
	stdout, stderr, code := runCLI(t, "completion", "bash")
	if code != exitOK || !strings.Contains(stdout, "__start_drover") {
		t.Fatalf("completion bash: exit %d, stderr %q", code, stderr)
	}
	// Dynamic completion of T/NAME asks the server.
	f := newFakeAPI(t)
	f.answer("GET /v1/instances", 200, []*protocol.Instance{{ID: "acme/crm"}, {ID: "beta/web"}})
	stdout, _, code = runCLI(t, "__complete", "instance", "status", "--addr", f.url, "ac")
	if code != exitOK || !strings.Contains(stdout, "acme/crm") || strings.Contains(stdout, "beta/web") {
		t.Errorf("__complete: exit %d, stdout %q", code, stdout)
	}
}

func TestRequestErrorsExitOne(t *testing.T) {
	f := newFakeAPI(t)
	f.fail("GET /v1/tenants/acme/instances/nope", protocol.NotFound("instance", "acme/nope"))
	f.fail("POST /v1/tenants/acme/instances/crm/scale", protocol.FieldError("replicas", "must be between 0 and 1000, got 5000"))
	f.fail("GET /v1/status", &protocol.Error{Code: protocol.CodeUnauthenticated, Message: "a token is required"})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"instance", "status", "acme/nope"}, `Error: instance "acme/nope" not found`},
		{[]string{"instance", "scale", "acme/crm", "5000"}, "Error: must be between 0 and 1000, got 5000 (field: replicas)"},
		{[]string{"status"}, "Error: a token is required; give a token with -token or DROVER_TOKEN"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, append(tc.args, "-addr", f.url)...)
			if code != exitFailed || strings.TrimSpace(stderr) != tc.want {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.want)
			}
		})
	}
	// A server that does not answer.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, stderr, code := runCLI(t, "status", "-addr", srv.URL)
	if code != exitFailed || !strings.HasPrefix(stderr, "Error: cannot reach the server at "+srv.URL) {
		t.Errorf("unreachable: exit %d, stderr %q", code, stderr)
	}
}

func TestTokenAndAddressFromEnvironment(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/status", 200, protocol.ClusterStatus{Leader: "s1"})
	t.Setenv("DROVER_ADDR", f.url)
	t.Setenv("DROVER_TOKEN", "from-env")
	if _, stderr, code := runCLI(t, "status"); code != 0 {
		t.Fatalf("status: exit %d, %s", code, stderr)
	}
	if got := f.request("GET", "/v1/status").Auth; got != "Bearer from-env" {
		t.Errorf("Authorization = %q, want the environment's token", got)
	}
	if _, _, code := runCLI(t, "status", "-token", "from-flag"); code != 0 {
		t.Fatal("status failed")
	}
	if got := f.request("GET", "/v1/status").Auth; got != "Bearer from-flag" {
		t.Errorf("Authorization = %q, want the flag's token", got)
	}
}

func testFleet() []*protocol.Instance {
	return []*protocol.Instance{
		{ID: "acme/crm", Tenant: "acme", Name: "crm", Environment: "production", Version: 3, Replicas: 2,
			Spec:   protocol.Spec{Version: "1.4.2", Secrets: map[string]string{"DB_PASSWORD": "(secret)"}},
			Status: &protocol.InstanceStatus{State: protocol.InstanceRunning, Replicas: protocol.ReplicaCounts{Desired: 2, Healthy: 2, Running: 2}}},
		{ID: "beta/web", Tenant: "beta", Name: "web", Environment: "staging", Version: 1, Replicas: 1,
			Status: &protocol.InstanceStatus{State: protocol.InstanceDegraded, Replicas: protocol.ReplicaCounts{Desired: 1}}},
	}
}

func TestOutputFormats(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/instances", 200, testFleet())
	f.answer("GET /v1/tenants/acme/instances", 200, testFleet()[:1])
	f.answer("DELETE /v1/tenants/acme/instances/crm", http.StatusNoContent, nil)

	stdout, _, code := runCLI(t, "instance", "list", "-addr", f.url)
	want := "" +
		"ID        ENV         VERSION    STATE     HEALTHY/DESIRED\n" +
		"acme/crm  production  3 (1.4.2)  running   2/2\n" +
		"beta/web  staging     1          degraded  0/1\n"
	if code != 0 || stdout != want {
		t.Errorf("instance list: exit %d\n%s\nwant\n%s", code, stdout, want)
	}

	stdout, _, code = runCLI(t, "instance", "list", "-addr", f.url, "-o", "json", "-env", "staging")
	var got []protocol.Instance
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 0 {
		t.Fatalf("instance list -o json: exit %d, %v: %q", code, err, stdout)
	}
	if len(got) != 2 || got[0].Spec.Secrets["DB_PASSWORD"] != "(secret)" {
		t.Errorf("-o json = %+v, want the API's documents", got)
	}
	if q := f.request("GET", "/v1/instances").Query; q != "environment=staging" {
		t.Errorf("query = %q, want the environment filter", q)
	}

	// -tenant reads the tenant's path and filters the environment here.
	stdout, _, _ = runCLI(t, "instance", "list", "-addr", f.url, "-tenant", "acme", "-env", "staging", "-o", "json")
	if strings.TrimSpace(stdout) != "[]" {
		t.Errorf("-tenant acme -env staging = %q, want []", stdout)
	}

	// A deletion answers no body; -o json still prints one document.
	stdout, _, code = runCLI(t, "instance", "delete", "acme/crm", "-addr", f.url, "-o", "json")
	var del map[string]any
	if err := json.Unmarshal([]byte(stdout), &del); err != nil || code != 0 || del["id"] != "acme/crm" || del["deleted"] != true {
		t.Errorf("delete -o json: exit %d, %q", code, stdout)
	}

	// -confirm names the instance again for a protected environment.
	if _, _, code := runCLI(t, "instance", "delete", "acme/crm", "-addr", f.url, "-confirm", "crm"); code != 0 {
		t.Errorf("delete -confirm: exit %d", code)
	}
	if q := f.request("DELETE", "/v1/tenants/acme/instances/crm").Query; q != "confirm=crm" {
		t.Errorf("delete -confirm sent query %q, want confirm=crm", q)
	}
}

func TestStatusTables(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var b strings.Builder
	nodesTable(&b, []*protocol.Node{{ID: "n1", Name: "web-1", Region: "eu", Status: protocol.NodeReady, Eligible: true,
		Resources: protocol.NodeResources{CPUMillis: 4000, FreeCPUMillis: 1500, MemoryMB: 8192, FreeMemoryMB: 4096}}})
	want := "" +
		"ID  NAME   REGION  STATUS  ELIGIBLE  CPU FREE/TOTAL  MEMORY FREE/TOTAL\n" +
		"n1  web-1  eu      ready   yes       1500/4000m      4096/8192MB\n"
	if b.String() != want {
		t.Errorf("nodes table:\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	replicasTable(&b, []*protocol.Replica{
		{ID: "r1", Node: "n1", State: protocol.ReplicaHealthy, Desired: protocol.DesiredRun, Version: 3,
			Ports: map[string]int{"http": 20001, "admin": 20002}, Restarts: 1, StartedAt: now.Add(-90 * time.Second)},
		{ID: "r2", State: protocol.ReplicaPending, Desired: protocol.DesiredRun, Version: 3, Message: "no node has 2048 MB free"},
	}, now)
	want = "" +
		"ID  NODE  STATE    VERSION  PORTS                   RESTARTS  AGE  MESSAGE\n" +
		"r1  n1    healthy  3        admin:20002,http:20001  1         1m   -\n" +
		"r2  -     pending  3        -                       0         -    no node has 2048 MB free\n"
	if b.String() != want {
		t.Errorf("replicas table:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestInstanceStatus(t *testing.T) {
	f := newFakeAPI(t)
	in := testFleet()[0]
	in.Deployment = &protocol.Deployment{ID: "d3", FromVersion: 2, ToVersion: 3, State: protocol.DeploymentSuccessful}
	f.answer("GET /v1/tenants/acme/instances/crm", 200, in)
	f.answer("GET /v1/tenants/acme/instances/crm/replicas", 200, []*protocol.Replica{
		{ID: "r0", Node: "n1", State: protocol.ReplicaFailed, Desired: protocol.DesiredStop, Version: 2, Message: "exit code 3"},
		{ID: "r1", Node: "n1", State: protocol.ReplicaHealthy, Desired: protocol.DesiredRun, Version: 3}})
	f.answer("GET /v1/tenants/acme/instances/crm/events", 200, []*protocol.Event{
		{Type: "deployment-successful", Message: "version 3 is healthy"}})

	stdout, stderr, code := runCLI(t, "instance", "status", "acme/crm", "-addr", f.url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"ID:", "acme/crm", "running", "2/2 healthy", "last: d3: version 2 -> 3, successful", "r1", "version 3 is healthy"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("instance status lacks %q:\n%s", want, stdout)
		}
	}
	// The live set first; the replica that ended is history, below it.
	if live, ended := strings.Index(stdout, "r1 "), strings.Index(stdout, "Ended (1 replica"); live < 0 || ended < live ||
		strings.Index(stdout, "r0 ") < ended {
		t.Errorf("instance status mixes live and ended replicas:\n%s", stdout)
	}
	stdout, _, _ = runCLI(t, "instance", "status", "acme/crm", "-addr", f.url, "-o", "json")
	var doc instanceStatus
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc.Instance.ID != "acme/crm" || len(doc.Replicas) != 2 || len(doc.Events) != 1 {
		t.Errorf("instance status -o json = %q (%v)", stdout, err)
	}
}

// deployAPI answers the create of acme/crm and then, to the reads that
// follow, the instance and replicas the test gives.
func deployAPI(t *testing.T, in *protocol.Instance, reps []*protocol.Replica, events []*protocol.Event) *fakeAPI {
	f := newFakeAPI(t)
	created := *in
	created.Status = &protocol.InstanceStatus{State: protocol.InstanceDeploying}
	f.answer("POST /v1/tenants/acme/instances", http.StatusCreated, &created)
	f.answer("PUT /v1/tenants/acme/instances/crm", http.StatusOK, &created)
	f.answer("GET /v1/tenants/acme/instances/crm", 200, in)
	f.answer("GET /v1/tenants/acme/instances/crm/replicas", 200, reps)
	f.answer("GET /v1/tenants/acme/instances/crm/events", 200, events)
	return f
}

func TestInstanceCreateWaitsUntilHealthy(t *testing.T) {
	in := testFleet()[0]
	in.Version = 1
	in.Deployment = &protocol.Deployment{ID: "d1", ToVersion: 1, State: protocol.DeploymentSuccessful}
	reps := []*protocol.Replica{
		{ID: "r1", Node: "n1", State: protocol.ReplicaHealthy, Desired: protocol.DesiredRun, Version: 1},
		{ID: "r2", Node: "n2", State: protocol.ReplicaHealthy, Desired: protocol.DesiredRun, Version: 1},
	}
	f := deployAPI(t, in, reps, nil)
	file := writeFile(t, "crm.yaml", crmYAML+"id: acme/crm\nstatus: {state: running}\n")

	stdout, stderr, code := runCLI(t, "instance", "create", "-f", file, "-addr", f.url)
	if code != 0 {
		t.Fatalf("exit %d; stdout %q; stderr %q", code, stdout, stderr)
	}
	for _, want := range []string{
		"Created instance acme/crm, version 1",
		"acme/crm version 1: 2/2 placed, 2/2 running, 2/2 healthy; deployment successful\n",
		"Instance acme/crm version 1 is healthy: 2/2 replicas healthy",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// The body is the API's instance document: no tenant, no read-only
	// fields, durations as strings.
	var body map[string]any
	if err := json.Unmarshal(f.request("POST", "/v1/tenants/acme/instances").Body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tenant", "id", "status"} {
		if _, ok := body[k]; ok {
			t.Errorf("request body has %q: %v", k, body)
		}
	}
	health := body["spec"].(map[string]any)["health"].(map[string]any)
	if health["interval"] != "2s" || body["replicas"] != 2.0 {
		t.Errorf("request body = %v", body)
	}

	// -o json: progress on stderr, the instance alone on stdout.
	stdout, stderr, code = runCLI(t, "instance", "create", "-f", file, "-addr", f.url, "-o", "json")
	var got protocol.Instance
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 0 || got.ID != "acme/crm" {
		t.Errorf("-o json: exit %d, stdout %q (%v)", code, stdout, err)
	}
	if !strings.Contains(stderr, "2/2 healthy") {
		t.Errorf("-o json: progress missing from stderr %q", stderr)
	}

	// -detach makes no read.
	before := f.requests()
	stdout, _, code = runCLI(t, "instance", "create", "-f", file, "-addr", f.url, "-detach")
	if code != 0 || !strings.Contains(stdout, "Created instance acme/crm") || f.requests() != before+1 {
		t.Errorf("-detach: exit %d, %d requests, stdout %q", code, f.requests()-before, stdout)
	}
}

func TestInstanceUpdateReportsFailure(t *testing.T) {
	in := testFleet()[0]
	in.Version = 4
	in.Deployment = &protocol.Deployment{ID: "d4", FromVersion: 3, ToVersion: 4, State: protocol.DeploymentFailed,
		Message: "no replica healthy within 2m"}
	reps := []*protocol.Replica{
		{ID: "r1", Node: "n1", State: protocol.ReplicaUnhealthy, Desired: protocol.DesiredRun, Version: 4, Message: "health check: HTTP 500"},
		{ID: "r0", Node: "n1", State: protocol.ReplicaHealthy, Desired: protocol.DesiredRun, Version: 3},
	}
	events := []*protocol.Event{{Type: "deployment-failed", Message: "deployment d4 failed"}}
	f := deployAPI(t, in, reps, events)
	file := writeFile(t, "crm.yaml", crmYAML)

	_, stderr, code := runCLI(t, "instance", "update", "acme/crm", "-f", file, "-addr", f.url)
	if code != exitFailed {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
	}
	for _, want := range []string{
		"Error: deployment d4 of version 4 failed: no replica healthy within 2m",
		"r1 (n1) unhealthy: health check: HTTP 500",
		"deployment-failed",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.HasPrefix(stderr, "Error: ") {
		t.Errorf("stderr does not start with the error line: %q", stderr)
	}
}

func TestInstanceCreateTimesOut(t *testing.T) {
	in := testFleet()[0]
	in.Version = 1
	reps := []*protocol.Replica{{ID: "r1", State: protocol.ReplicaPending, Desired: protocol.DesiredRun, Version: 1,
		Message: "no node has 2048 MB free"}}
	f := deployAPI(t, in, reps, nil)
	// The fake answers blocking queries at once, so the wait polls until
	// its timeout.
	file := writeFile(t, "crm.yaml", crmYAML)
	_, stderr, code := runCLI(t, "instance", "create", "-f", file, "-addr", f.url, "-timeout", "300ms")
	if code != exitFailed || !strings.Contains(stderr, "timed out after 300ms") ||
		!strings.Contains(stderr, "no node has 2048 MB free") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestLogsAndSnapshots(t *testing.T) {
	f := newFakeAPI(t)
	f.mux.HandleFunc("GET /v1/tenants/acme/instances/crm/logs", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello\nworld\n")
	})
	f.mux.HandleFunc("GET /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Drover-Index", "12")
		_, _ = io.WriteString(w, "SNAPSHOT")
	})
	f.answer("PUT /v1/operator/snapshot", 200, map[string]any{"restored": true, "index": 13})
	f.answer("GET /v1/tenants/acme/instances/crm/replicas", 200, []protocol.Replica{{ID: "5f1c2a90-1111"}, {ID: "5f1c3b00-2222"}, {ID: "r1"}})

	stdout, _, code := runCLI(t, "instance", "logs", "acme/crm", "-replica", "r1", "-f", "-addr", f.url)
	if code != 0 || stdout != "hello\nworld\n" {
		t.Errorf("logs: exit %d, %q", code, stdout)
	}
	if q := f.request("GET", "/v1/tenants/acme/instances/crm/logs").Query; q != "follow=true&replica=r1&tail=100" {
		t.Errorf("logs query = %q", q)
	}
	// A unique prefix of a replica's id is the replica; an ambiguous one
	// names the replicas it matches.
	if _, stderr, code := runCLI(t, "instance", "logs", "acme/crm", "-replica", "5f1c2a", "-addr", f.url); code != 0 {
		t.Errorf("logs -replica 5f1c2a: exit %d %s", code, stderr)
	}
	if q := f.request("GET", "/v1/tenants/acme/instances/crm/logs").Query; q != "replica=5f1c2a90-1111&tail=100" {
		t.Errorf("logs -replica 5f1c2a: query %q", q)
	}
	if _, stderr, code := runCLI(t, "instance", "logs", "acme/crm", "-replica", "5f1c", "-addr", f.url); code != exitFailed || !strings.Contains(stderr, "names 2 replicas") {
		t.Errorf("logs -replica 5f1c: exit %d %q", code, stderr)
	}

	path := filepath.Join(t.TempDir(), "backup.snap")
	stdout, _, code = runCLI(t, "operator", "snapshot", "save", path, "-addr", f.url)
	if b, err := os.ReadFile(path); err != nil || string(b) != "SNAPSHOT" || code != 0 {
		t.Fatalf("snapshot save: exit %d, file %q, %v", code, b, err)
	}
	if !strings.Contains(stdout, "index 12") {
		t.Errorf("snapshot save said %q", stdout)
	}
	if _, _, code := runCLI(t, "operator", "snapshot", "restore", path, "-addr", f.url); code != 0 {
		t.Fatalf("snapshot restore: exit %d", code)
	}
	if b := f.request("PUT", "/v1/operator/snapshot").Body; string(b) != "SNAPSHOT" {
		t.Errorf("restore sent %q", b)
	}
	// A failed save leaves no file behind.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	missing := filepath.Join(t.TempDir(), "never.snap")
	if _, _, code := runCLI(t, "operator", "snapshot", "save", missing, "-addr", bad.URL); code != exitFailed {
		t.Errorf("save from a failing server: exit %d", code)
	}
	if entries, _ := os.ReadDir(filepath.Dir(missing)); len(entries) != 0 {
		t.Errorf("a failed save left %v", entries)
	}
}

// TestEveryVerbHasHelp checks that each CLI command has a summary and
// examples in its help.
func TestEveryVerbHasHelp(t *testing.T) {
	root := newRoot()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" || c.Example == "" {
			t.Errorf("%s has no short help or no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, noun := range []string{"status", "tenant", "instance", "node", "operator", "acl", "audit"} {
		c, _, err := root.Find([]string{noun})
		if err != nil || c == root {
			t.Fatalf("no %s command", noun)
		}
		walk(c)
	}
}

// In a protected environment, stop and delete say which flag to give,
// as the command to type, not the API's query parameter.
func TestProtectedEnvironmentNamesTheFlag(t *testing.T) {
	f := newFakeAPI(t)
	refusal := &protocol.Error{Code: protocol.CodeInvalidArgument, Field: "confirm",
		Message: `instance acme/prod is in the protected environment "production": repeat with ?confirm=prod`}
	f.fail("DELETE /v1/tenants/acme/instances/prod", refusal)
	f.fail("POST /v1/tenants/acme/instances/prod/stop", refusal)
	for _, verb := range []string{"delete", "stop"} {
		_, stderr, code := runCLI(t, "instance", verb, "acme/prod", "-addr", f.url)
		want := "drover instance " + verb + " acme/prod -confirm prod"
		if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "?confirm") {
			t.Errorf("instance %s in a protected environment: exit %d, %q; want exit 1 naming %q", verb, code, stderr, want)
		}
	}
}

// Counts read as English: "1 replica", "2 replicas", "0 nodes".
func TestCountsAgree(t *testing.T) {
	for n, want := range map[int]string{0: "0 replicas", 1: "1 replica", 2: "2 replicas"} {
		if got := count(n, "replica"); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
	f := newFakeAPI(t)
	f.answer("GET /v1/status", 200, protocol.ClusterStatus{Leader: "s1", Counts: protocol.Counts{Tenants: 1, Instances: 1, Replicas: 2, Nodes: 0}})
	stdout, _, code := runCLI(t, "status", "-addr", f.url)
	if code != 0 || !strings.Contains(stdout, "1 tenant, 1 instance, 2 replicas, 0 nodes") {
		t.Errorf("drover status: exit %d\n%s", code, stdout)
	}
}

// -o yaml prints the API's document as YAML: its field names, in block
// style, what JSON prints.
func TestOutputYAML(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/status", 200, protocol.ClusterStatus{Leader: "s1", Index: 7,
		Members: []protocol.Member{{ID: "s1", HTTPAddr: "127.0.0.1:4700", Voter: true, State: "leader"}}})
	stdout, stderr, code := runCLI(t, "status", "-addr", f.url, "-o", "yaml")
	var got protocol.ClusterStatus
	if code != 0 || yaml.Unmarshal([]byte(stdout), &got) != nil {
		t.Fatalf("status -o yaml: exit %d %q %q", code, stdout, stderr)
	}
	for _, want := range []string{"leader: s1\n", "index: 7\n", "members:\n", "  - id: s1\n", "    http_addr: 127.0.0.1:4700\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status -o yaml lacks %q:\n%s", want, stdout)
		}
	}
	if strings.ContainsAny(stdout, "{}") {
		t.Errorf("status -o yaml is in flow style:\n%s", stdout)
	}
}

// Every noun takes show and status alike, and a mistyped verb gets the
// verbs it is close to, at every level.
func TestVerbsAliasesAndSuggestions(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/tenants/acme", 200, protocol.Tenant{Name: "acme", State: protocol.TenantActive})
	f.answer("GET /v1/tenants/acme/instances/crm", 200, protocol.Instance{ID: "acme/crm", Tenant: "acme", Name: "crm"})
	f.answer("GET /v1/tenants/acme/instances/crm/replicas", 200, []protocol.Replica{})
	f.answer("GET /v1/tenants/acme/instances/crm/events", 200, []protocol.Event{})
	for _, args := range [][]string{{"tenant", "status", "acme"}, {"tenant", "show", "acme"}, {"instance", "show", "acme/crm"}} {
		if _, stderr, code := runCLI(t, append(args, "-addr", f.url)...); code != 0 {
			t.Errorf("drover %s: exit %d %s", strings.Join(args, " "), code, stderr)
		}
	}
	_, stderr, code := runCLI(t, "instance", "stats", "acme/crm")
	if code != exitUsage || !strings.Contains(stderr, "Did you mean this?") || !strings.Contains(stderr, "status") {
		t.Errorf("instance stats: exit %d, %q; want a suggestion of status", code, stderr)
	}
}

// instance list -state asks the API for the state, and refuses a state
// that does not exist before asking anything.
func TestInstanceListState(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/instances", 200, []protocol.Instance{})
	if _, stderr, code := runCLI(t, "instance", "list", "-state", "failed", "-addr", f.url); code != 0 {
		t.Fatalf("instance list -state failed: exit %d %s", code, stderr)
	}
	if q := f.request("GET", "/v1/instances").Query; q != "state=failed" {
		t.Errorf("query %q, want state=failed", q)
	}
	n := f.requests()
	if _, stderr, code := runCLI(t, "instance", "list", "-state", "broken", "-addr", f.url); code != exitUsage || !strings.Contains(stderr, "-state") {
		t.Errorf("-state broken: exit %d %q", code, stderr)
	}
	if f.requests() != n {
		t.Errorf("a bad -state still asked the API")
	}
}

// A server whose certificate this machine does not trust: the error says
// to give -ca-file.
func TestTLSErrorNamesCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	t.Setenv("DROVER_CA_FILE", "")
	_, stderr, code := runCLI(t, "status", "-addr", srv.URL)
	if code != exitFailed || !strings.Contains(stderr, "-ca-file") {
		t.Errorf("status against an untrusted certificate: exit %d, %q; want a hint to give -ca-file", code, stderr)
	}
}

// Node commands take a whole id, a unique prefix of one or a node's name,
// as the help's examples do; an ambiguous prefix names the nodes it
// matches.
func TestNodeByPrefixOrName(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /v1/nodes", 200, []protocol.Node{
		{ID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", Name: "web-1"},
		{ID: "7c9e0000-0000-0000-0000-000000000000", Name: "web-2"},
	})
	f.answer("GET /v1/nodes/7c9e6679-7425-40de-944b-e07fc1f90ae7", 200, protocol.Node{ID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", Name: "web-1"})
	for _, typed := range []string{"7c9e6679", "web-1", "7c9e6679-7425-40de-944b-e07fc1f90ae7"} {
		if _, stderr, code := runCLI(t, "node", "status", typed, "-addr", f.url); code != 0 {
			t.Errorf("node status %s: exit %d %s", typed, code, stderr)
		}
	}
	// Tables show the short ids commands take.
	if stdout, _, code := runCLI(t, "node", "list", "-addr", f.url); code != 0 || !strings.Contains(stdout, "7c9e6679 ") ||
		strings.Contains(stdout, "7c9e6679-7425") {
		t.Errorf("node list shows no short ids: exit %d\n%s", code, stdout)
	}
	_, stderr, code := runCLI(t, "node", "status", "7c9e", "-addr", f.url)
	if code != exitFailed || !strings.Contains(stderr, "names 2 nodes") {
		t.Errorf("node status 7c9e (two nodes): exit %d %q", code, stderr)
	}
	_, stderr, code = runCLI(t, "node", "status", "nope", "-addr", f.url)
	if code != exitFailed || !strings.Contains(stderr, `"nope"`) {
		t.Errorf("node status nope: exit %d %q", code, stderr)
	}
}

// Help lists flags with one dash, as the README and the examples write
// them; both forms are accepted.
func TestHelpFlagsSingleDash(t *testing.T) {
	stdout, _, code := runCLI(t, "instance", "list", "-help")
	if code != 0 || !strings.Contains(stdout, "\n      -tenant string ") || !strings.Contains(stdout, "\n  -o, -output string ") ||
		strings.Contains(stdout, "--tenant") {
		t.Errorf("exit %d, help:\n%s", code, stdout)
	}
}

// A second server certificate in the same folder gets another name: the
// command says where it goes, and -dir (made if missing) keeps one folder
// per host.
func TestTLSCertCreateSaysWhereASecondGoes(t *testing.T) {
	dir := t.TempDir()
	ca := []string{"-ca", filepath.Join(dir, "drover-ca.pem"), "-ca-key", filepath.Join(dir, "drover-ca-key.pem")}
	if _, stderr, code := runCLI(t, "tls", "ca", "create", "-dir", dir); code != 0 {
		t.Fatalf("tls ca create: exit %d: %s", code, stderr)
	}
	create := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := runCLI(t, append(append([]string{"tls", "cert", "create", "-server"}, ca...), args...)...)
		if code != 0 {
			t.Fatalf("tls cert create %v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	if out := create("-dir", filepath.Join(dir, "10.0.0.1")); strings.Contains(out, "exists") ||
		!strings.Contains(out, filepath.Join(dir, "10.0.0.1", "drover-server.pem")) {
		t.Errorf("first certificate:\n%s", out)
	}
	create("-dir", dir)
	if out := create("-dir", dir); !strings.Contains(out, "drover-server-1.pem") ||
		!strings.Contains(out, "copy these to their host as drover-server.pem and drover-server-key.pem") {
		t.Errorf("second certificate in one folder:\n%s", out)
	}
}
