package e2e

// Scenarios of the issue "CLI": the real drover binary's verbs against a
// real server, as an operator types them: exit codes (0 done, 1 the
// request failed, 2 bad usage), the tables, and -o json documents that
// parse as the API's.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cliTimeout bounds one CLI command; the ones that wait get their own
// -timeout, well below it.
const cliTimeout = time.Minute

// cliResult is what one CLI command printed and its exit code.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return "drover " + strings.Join(r.args, " ") + ": exit " + strconv.Itoa(r.code) +
		"\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// runCLI runs the drover CLI against server s (-addr) and returns what it
// printed. It fails the test only if the command cannot be run.
func runCLI(t *testing.T, s *Server, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	full := append(append([]string{}, args...), "-addr", s.URL())
	cmd := exec.CommandContext(ctx, binPath, full...)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("drover %s: %v\nstderr:\n%s", strings.Join(args, " "), err, r.stderr)
	}
	return r
}

// cliOK runs a command that must succeed and returns its stdout.
func cliOK(t *testing.T, s *Server, args ...string) string {
	t.Helper()
	r := runCLI(t, s, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	return r.stdout
}

// cliJSON runs a command with -o json that must succeed and decodes its
// one document into out.
func cliJSON(t *testing.T, s *Server, out any, args ...string) {
	t.Helper()
	stdout := cliOK(t, s, append(args, "-o", "json")...)
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(out); err != nil {
		t.Fatalf("drover %s -o json: %v\n%s", strings.Join(args, " "), err, stdout)
	}
	if dec.More() {
		t.Fatalf("drover %s -o json printed more than one document:\n%s", strings.Join(args, " "), stdout)
	}
}

// cliFails runs a command that must end with code and an error line
// holding want.
func cliFails(t *testing.T, s *Server, code int, want string, args ...string) {
	t.Helper()
	r := runCLI(t, s, args...)
	if r.code != code || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, want) {
		t.Fatalf("want exit %d and an error with %q: %s", code, want, r)
	}
}

// instanceFile writes the instance document of API.md as YAML, with a
// tenant key, the way an operator keeps it.
func instanceFile(t *testing.T, tenant, name, version string) string {
	t.Helper()
	doc := `tenant: ` + tenant + `
name: ` + name + `
environment: staging
replicas: 2
spec:
  version: "` + version + `"
  command: [/bin/sleep, "1000"]
  env: {LOG_LEVEL: info}
  secrets: {DB_PASSWORD: hunter2}
  ports: [http]
  resources: {cpu_millis: 100, memory_mb: 64}
  health: {type: tcp, port: http, interval: 2s, timeout: 1s}
  update: {min_healthy_time: 1s, healthy_deadline: 1m}
`
	p := filepath.Join(t.TempDir(), name+"-"+version+".yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIStatusAndTenants(t *testing.T) {
	c := StartCluster(t, 1)
	s := c.WaitForLeader()

	out := cliOK(t, s, "status")
	if !strings.Contains(out, "Leader:") || !strings.Contains(out, s.ID()) || !strings.Contains(out, "leader") {
		t.Errorf("status table does not name the leader %s:\n%s", s.ID(), out)
	}
	var st apiStatus
	cliJSON(t, s, &st, "status")
	if st.Leader != s.ID() || len(st.Members) != 1 || st.Members[0].HTTPAddr != s.Addr() {
		t.Errorf("status -o json = %+v", st)
	}

	var tn apiTenant
	cliJSON(t, s, &tn, "tenant", "create", "acme", "-label", "tier=gold")
	if tn.Name != "acme" || tn.Labels["tier"] != "gold" {
		t.Errorf("tenant create -o json = %+v", tn)
	}
	cliOK(t, s, "tenant", "create", "beta")
	cliFails(t, s, 1, "acme", "tenant", "create", "acme")

	out = cliOK(t, s, "tenant", "list")
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "acme") || !strings.Contains(out, "tier=gold") {
		t.Errorf("tenant list:\n%s", out)
	}
	var list []apiTenant
	cliJSON(t, s, &list, "tenant", "list")
	if len(list) != 2 {
		t.Errorf("tenant list -o json = %+v, want acme and beta", list)
	}
	cliJSON(t, s, &tn, "tenant", "show", "acme")
	if tn.Name != "acme" {
		t.Errorf("tenant show -o json = %+v", tn)
	}

	cliOK(t, s, "tenant", "delete", "beta")
	cliFails(t, s, 1, "not found", "tenant", "show", "beta")
	cliFails(t, s, 2, "wants NAME", "tenant", "show")
	cliFails(t, s, 2, "want table, json or yaml", "tenant", "list", "-o", "xml")
	if out := cliOK(t, s, "tenant", "show", "acme", "-o", "yaml"); !strings.Contains(out, "name: acme\n") {
		t.Errorf("tenant show -o yaml:\n%s", out)
	}
	cliFails(t, s, 2, "unknown flag", "tenant", "list", "-bogus")
}

func TestCLIInstanceLifecycle(t *testing.T) {
	c := StartCluster(t, 1)
	s := c.WaitForLeader()
	cliOK(t, s, "tenant", "create", "acme")
	v1 := instanceFile(t, "acme", "crm", "1.0.0")

	var in apiInstance
	cliJSON(t, s, &in, "instance", "create", "-f", v1, "-detach")
	if in.ID != "acme/crm" || in.Replicas != 2 || in.Spec.Version != "1.0.0" || in.Spec.Secrets["DB_PASSWORD"] == "hunter2" {
		t.Fatalf("instance create -o json = %+v", in)
	}
	cliFails(t, s, 1, "already exists", "instance", "create", "-f", v1, "-detach")
	cliFails(t, s, 2, "differs from the tenant acme", "instance", "create", "-f", v1, "-tenant", "beta")

	// Without agents nothing becomes healthy: the wait ends at its
	// timeout with exit 1, and the instance stays.
	v1b := instanceFile(t, "acme", "web", "1.0.0")
	r := runCLI(t, s, "instance", "create", "-f", v1b, "-timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stdout, "Created instance acme/web") || !strings.HasPrefix(r.stderr, "Error: ") {
		t.Errorf("instance create waiting with no agent: %s", r)
	}

	out := cliOK(t, s, "instance", "list")
	for _, want := range []string{"ID", "ENV", "VERSION", "STATE", "HEALTHY/DESIRED", "acme/crm", "acme/web", "staging", "1 (1.0.0)"} {
		if !strings.Contains(out, want) {
			t.Errorf("instance list lacks %q:\n%s", want, out)
		}
	}
	var list []apiInstance
	cliJSON(t, s, &list, "instance", "list", "-tenant", "acme", "-env", "staging")
	if len(list) != 2 {
		t.Errorf("instance list -tenant acme -env staging = %+v", list)
	}
	cliJSON(t, s, &list, "instance", "list", "-env", "production")
	if len(list) != 0 {
		t.Errorf("instance list -env production = %+v, want none", list)
	}

	var st struct {
		Instance apiInstance       `json:"instance"`
		Replicas []json.RawMessage `json:"replicas"`
		Events   []struct {
			Message string `json:"message"`
		} `json:"events"`
	}
	cliJSON(t, s, &st, "instance", "status", "acme/crm")
	if st.Instance.ID != "acme/crm" || st.Instance.Status == nil || len(st.Events) == 0 {
		t.Errorf("instance status -o json = %+v", st)
	}
	out = cliOK(t, s, "instance", "status", "acme/crm")
	if !strings.Contains(out, "acme/crm") || !strings.Contains(out, "Replicas:") {
		t.Errorf("instance status:\n%s", out)
	}

	cliJSON(t, s, &in, "instance", "scale", "acme/crm", "3")
	if in.Replicas != 3 {
		t.Errorf("after scale 3: replicas %d", in.Replicas)
	}
	var stopped struct {
		apiInstance
		Stopped bool `json:"stopped"`
	}
	cliJSON(t, s, &stopped, "instance", "stop", "acme/crm")
	if !stopped.Stopped {
		t.Errorf("after stop: %+v", stopped)
	}
	cliJSON(t, s, &stopped, "instance", "start", "acme/crm")
	if stopped.Stopped || stopped.Replicas != 3 {
		t.Errorf("after start: %+v, want running with 3 replicas", stopped)
	}
	cliOK(t, s, "instance", "restart", "acme/crm")

	v2 := instanceFile(t, "acme", "crm", "2.0.0")
	cliJSON(t, s, &in, "instance", "update", "acme/crm", "-f", v2, "-detach")
	if in.Version <= 1 || in.Spec.Version != "2.0.0" || in.Replicas != 2 {
		t.Errorf("after update: %+v, want a new version of spec 2.0.0", in)
	}
	cliFails(t, s, 1, "not found", "instance", "scale", "acme/nope", "1")
	cliFails(t, s, 2, "is not TENANT/NAME", "instance", "scale", "crm", "1")
	cliFails(t, s, 2, "replica count", "instance", "scale", "acme/crm", "many")

	cliOK(t, s, "instance", "delete", "acme/crm")
	cliFails(t, s, 1, "not found", "instance", "status", "acme/crm")
}

func TestCLINodesAndOperator(t *testing.T) {
	c := StartCluster(t, 1)
	s := c.WaitForLeader()

	out := cliOK(t, s, "node", "list")
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, "ELIGIBLE") {
		t.Errorf("node list:\n%s", out)
	}
	var nodes []json.RawMessage
	cliJSON(t, s, &nodes, "node", "list")
	if len(nodes) != 0 {
		t.Errorf("node list -o json = %d nodes, want none (no agent runs)", len(nodes))
	}
	cliFails(t, s, 1, "not found", "node", "status", "no-such-node")
	cliFails(t, s, 1, "not found", "node", "drain", "no-such-node")
	cliFails(t, s, 2, "want on or off", "node", "eligibility", "n1", "maybe")

	var peers struct {
		Servers []apiMember `json:"servers"`
	}
	cliJSON(t, s, &peers, "operator", "raft", "list-peers")
	if len(peers.Servers) != 1 || peers.Servers[0].ID != s.ID() {
		t.Errorf("raft list-peers -o json = %+v", peers)
	}
	if out := cliOK(t, s, "operator", "raft", "list-peers"); !strings.Contains(out, s.ID()) {
		t.Errorf("raft list-peers:\n%s", out)
	}

	// Save, change, restore: the change is gone.
	cliOK(t, s, "tenant", "create", "kept")
	snap := filepath.Join(t.TempDir(), "backup.snap")
	out = cliOK(t, s, "operator", "snapshot", "save", snap)
	if fi, err := os.Stat(snap); err != nil || fi.Size() == 0 || !strings.Contains(out, "Saved snapshot") {
		t.Fatalf("snapshot save: %q, file %v", out, err)
	}
	cliOK(t, s, "tenant", "create", "lost")
	cliOK(t, s, "operator", "snapshot", "restore", snap)
	var list []apiTenant
	cliJSON(t, s, &list, "tenant", "list")
	if len(list) != 1 || list[0].Name != "kept" {
		t.Errorf("tenants after restore = %+v, want only kept", list)
	}
	cliFails(t, s, 1, "snapshot file", "operator", "snapshot", "restore", filepath.Join(t.TempDir(), "missing.snap"))
}
