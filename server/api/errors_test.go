package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/state"
)

func with(doc map[string]any, edit func(m map[string]any)) map[string]any {
	edit(doc)
	return doc
}

func spec(doc map[string]any) map[string]any { return doc["spec"].(map[string]any) }

// TestErrorCodes exercises the error codes of API.md through the real
// handler on a real cluster member.
func TestErrorCodes(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", map[string]any{"name": "acme"}, nil)
	must(t, 201, "POST", u+"/v1/tenants", map[string]any{"name": "small", "quotas": map[string]any{"instances": 1}}, nil)
	must(t, 200, "PUT", u+"/v1/plans/starter", map[string]any{"max_replicas": 2, "resources": map[string]any{"cpu_millis": 500, "memory_mb": 256}}, nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", instanceDoc("crm"), nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", with(instanceDoc("cheap"), func(m map[string]any) { m["plan"] = "starter"; m["replicas"] = 2 }), nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", instanceDoc("idle"), nil)
	must(t, 200, "POST", u+"/v1/tenants/acme/instances/idle/stop", nil, nil)
	must(t, 201, "POST", u+"/v1/tenants/small/instances", instanceDoc("one"), nil)
	e.c.MustPropose(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h", Node: protocol.Node{ID: "n1", Name: "n1"}})

	big := `{"name":"big","labels":{"k":"` + strings.Repeat("x", protocol.MaxBodyBytes) + `"}}`
	bigInstance := `{"name":"crm","spec":{"command":["x"],"env":{"A":"` + strings.Repeat("x", protocol.MaxBodyBytes) + `"}}}`
	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
		code    protocol.Code
		field   string
		// raft: the request reached the log, so it answers X-Drover-Index.
		raft bool
	}{
		// 400 invalid_argument
		{name: "bad tenant name", method: "POST", path: "/v1/tenants", body: map[string]any{"name": "Acme Inc"}, status: 400, code: protocol.CodeInvalidArgument, field: "name"},
		{name: "bad JSON", method: "POST", path: "/v1/tenants", body: `{"name":`, status: 400, code: protocol.CodeInvalidArgument},
		{name: "not JSON", method: "POST", path: "/v1/tenants", body: `name=acme`, status: 400, code: protocol.CodeInvalidArgument},
		{name: "empty body", method: "POST", path: "/v1/tenants", body: ``, status: 400, code: protocol.CodeInvalidArgument},
		{name: "two JSON values", method: "POST", path: "/v1/tenants", body: `{"name":"a"} {"name":"b"}`, status: 400, code: protocol.CodeInvalidArgument},
		{name: "unknown field", method: "POST", path: "/v1/tenants", body: `{"name":"x","colour":"red"}`, status: 400, code: protocol.CodeInvalidArgument, field: "colour"},
		{name: "unknown nested field", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { spec(m)["cmd"] = []string{"x"} }), status: 400, code: protocol.CodeInvalidArgument, field: "cmd"}, // encoding/json does not say where
		{name: "wrong type", method: "POST", path: "/v1/tenants", body: `{"name":5}`, status: 400, code: protocol.CodeInvalidArgument, field: "name"},
		{name: "wrong nested type", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { spec(m)["command"] = "/bin/app --port 80" }), status: 400, code: protocol.CodeInvalidArgument, field: "spec.command"},
		{name: "bad duration", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { spec(m)["stop"] = map[string]any{"timeout": "soon"} }), status: 400, code: protocol.CodeInvalidArgument, field: "spec.stop.timeout"},
		{name: "empty command", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { spec(m)["command"] = []string{} }), status: 400, code: protocol.CodeInvalidArgument, field: "spec.command"},
		{name: "reserved env", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { spec(m)["env"] = map[string]string{"PORT": "1"} }), status: 400, code: protocol.CodeInvalidArgument, field: "spec.env.PORT"},
		{name: "bad instance name", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { m["name"] = "Bad_Name" }), status: 400, code: protocol.CodeInvalidArgument, field: "name"},
		{name: "too many replicas", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { m["replicas"] = 1001 }), status: 400, code: protocol.CodeInvalidArgument, field: "replicas"},
		{name: "unknown environment", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { m["environment"] = "mars" }), status: 400, code: protocol.CodeInvalidArgument, field: "environment"},
		{name: "unknown plan", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { m["plan"] = "gold" }), status: 400, code: protocol.CodeInvalidArgument, field: "plan"},
		{name: "bad tenant in path", method: "GET", path: "/v1/tenants/Acme", status: 400, code: protocol.CodeInvalidArgument, field: "tenant"},
		{name: "bad instance in path", method: "GET", path: "/v1/tenants/acme/instances/Bad_Name", status: 400, code: protocol.CodeInvalidArgument, field: "name"},
		{name: "rename on update", method: "PUT", path: "/v1/tenants/acme/instances/crm", body: instanceDoc("other"), status: 400, code: protocol.CodeInvalidArgument, field: "name"},
		{name: "bad If-Match", method: "PUT", path: "/v1/tenants/acme/instances/crm", body: instanceDoc("crm"), headers: []string{"If-Match", "latest"}, status: 400, code: protocol.CodeInvalidArgument, field: "If-Match"},
		{name: "scale without replicas", method: "POST", path: "/v1/tenants/acme/instances/crm/scale", body: `{}`, status: 400, code: protocol.CodeInvalidArgument, field: "replicas"},
		{name: "scale negative", method: "POST", path: "/v1/tenants/acme/instances/crm/scale", body: `{"replicas":-1}`, status: 400, code: protocol.CodeInvalidArgument, field: "replicas"},
		{name: "tenant state unknown", method: "PATCH", path: "/v1/tenants/acme", body: `{"state":"gone"}`, status: 400, code: protocol.CodeInvalidArgument, field: "state"},
		{name: "negative quota", method: "PATCH", path: "/v1/tenants/acme", body: `{"quotas":{"replicas":-1}}`, status: 400, code: protocol.CodeInvalidArgument, field: "quotas.replicas"},
		{name: "bad plan", method: "PUT", path: "/v1/plans/huge", body: `{"max_replicas":5000}`, status: 400, code: protocol.CodeInvalidArgument, field: "max_replicas"},
		{name: "eligibility missing", method: "POST", path: "/v1/nodes/n1/eligibility", body: `{}`, status: 400, code: protocol.CodeInvalidArgument, field: "eligible"},
		{name: "drain too long", method: "POST", path: "/v1/nodes/n1/drain", body: `{"enable":true,"deadline":"999h"}`, status: 400, code: protocol.CodeInvalidArgument, field: "deadline"},
		{name: "bad blocking index", method: "GET", path: "/v1/tenants?index=latest", status: 400, code: protocol.CodeInvalidArgument, field: "index"},
		{name: "bad blocking wait", method: "GET", path: "/v1/tenants?index=1&wait=forever", status: 400, code: protocol.CodeInvalidArgument, field: "wait"},
		{name: "restore garbage", method: "PUT", path: "/v1/operator/snapshot", body: "not a snapshot", status: 400, code: protocol.CodeInvalidArgument},

		// 404 not_found
		{name: "unknown tenant", method: "GET", path: "/v1/tenants/nobody", status: 404, code: protocol.CodeNotFound},
		{name: "unknown tenant's instances", method: "GET", path: "/v1/tenants/nobody/instances", status: 404, code: protocol.CodeNotFound},
		{name: "instance in unknown tenant", method: "POST", path: "/v1/tenants/nobody/instances", body: instanceDoc("x"), status: 404, code: protocol.CodeNotFound},
		{name: "patch unknown tenant", method: "PATCH", path: "/v1/tenants/nobody", body: `{}`, status: 404, code: protocol.CodeNotFound},
		{name: "delete unknown tenant", method: "DELETE", path: "/v1/tenants/nobody", status: 404, code: protocol.CodeNotFound, raft: true},
		{name: "unknown instance", method: "GET", path: "/v1/tenants/acme/instances/nope", status: 404, code: protocol.CodeNotFound},
		{name: "update unknown instance", method: "PUT", path: "/v1/tenants/acme/instances/nope", body: instanceDoc("nope"), status: 404, code: protocol.CodeNotFound},
		{name: "scale unknown instance", method: "POST", path: "/v1/tenants/acme/instances/nope/scale", body: `{"replicas":1}`, status: 404, code: protocol.CodeNotFound},
		{name: "stop unknown instance", method: "POST", path: "/v1/tenants/acme/instances/nope/stop", status: 404, code: protocol.CodeNotFound, raft: true},
		{name: "delete unknown instance", method: "DELETE", path: "/v1/tenants/acme/instances/nope", status: 404, code: protocol.CodeNotFound, raft: true},
		{name: "replicas of unknown instance", method: "GET", path: "/v1/tenants/acme/instances/nope/replicas", status: 404, code: protocol.CodeNotFound},
		{name: "events of unknown instance", method: "GET", path: "/v1/tenants/acme/instances/nope/events", status: 404, code: protocol.CodeNotFound},
		{name: "unknown node", method: "GET", path: "/v1/nodes/nope", status: 404, code: protocol.CodeNotFound},
		{name: "drain unknown node", method: "POST", path: "/v1/nodes/nope/drain", body: `{"enable":true}`, status: 404, code: protocol.CodeNotFound},
		{name: "eligibility of unknown node", method: "POST", path: "/v1/nodes/nope/eligibility", body: `{"eligible":false}`, status: 404, code: protocol.CodeNotFound, raft: true},
		{name: "unknown route", method: "GET", path: "/v1/nope", status: 404, code: protocol.CodeNotFound},
		{name: "unknown method", method: "PUT", path: "/v1/tenants", body: `{}`, status: 404, code: protocol.CodeNotFound},

		// 409 conflict
		{name: "duplicate tenant", method: "POST", path: "/v1/tenants", body: `{"name":"acme"}`, status: 409, code: protocol.CodeConflict, raft: true},
		{name: "duplicate instance", method: "POST", path: "/v1/tenants/acme/instances", body: instanceDoc("crm"), status: 409, code: protocol.CodeConflict, raft: true},
		{name: "stale If-Match", method: "PUT", path: "/v1/tenants/acme/instances/crm", body: instanceDoc("crm"), headers: []string{"If-Match", "7"}, status: 409, code: protocol.CodeConflict, raft: true},
		{name: "delete tenant with instances", method: "DELETE", path: "/v1/tenants/acme", status: 409, code: protocol.CodeConflict, raft: true},
		{name: "restart stopped instance", method: "POST", path: "/v1/tenants/acme/instances/idle/restart", status: 409, code: protocol.CodeConflict, raft: true},

		// 413 too_large
		{name: "tenant body over 1 MiB", method: "POST", path: "/v1/tenants", body: big, status: 413, code: protocol.CodeTooLarge},
		{name: "instance body over 1 MiB", method: "PUT", path: "/v1/tenants/acme/instances/crm", body: bigInstance, status: 413, code: protocol.CodeTooLarge},
		// Its length says so before a byte is read: 413, not "invalid JSON".
		{name: "2 MB that is not JSON", method: "POST", path: "/v1/tenants", body: strings.Repeat("x", 2<<20), status: 413, code: protocol.CodeTooLarge},

		// 422 quota_exceeded
		{name: "plan max replicas on create", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) { m["plan"] = "starter"; m["replicas"] = 3 }), status: 422, code: protocol.CodeQuotaExceeded, field: "replicas"},
		{name: "plan max replicas on scale", method: "POST", path: "/v1/tenants/acme/instances/cheap/scale", body: `{"replicas":3}`, status: 422, code: protocol.CodeQuotaExceeded, field: "replicas"},
		{name: "plan cpu", method: "POST", path: "/v1/tenants/acme/instances", body: with(instanceDoc("x"), func(m map[string]any) {
			m["plan"] = "starter"
			spec(m)["resources"] = map[string]any{"cpu_millis": 1000}
		}), status: 422, code: protocol.CodeQuotaExceeded, field: "spec.resources.cpu_millis"},
		{name: "tenant instance quota", method: "POST", path: "/v1/tenants/small/instances", body: instanceDoc("two"), status: 422, code: protocol.CodeQuotaExceeded, raft: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.c.Leader().Store.Snapshot().Index()
			r := do(t, tc.method, u+tc.path, tc.body, tc.headers...)
			if tc.code == protocol.CodeQuotaExceeded && tc.field == "" {
				// The tenant's quotas are checked by the FSM; which field
				// it names is its own choice.
				var body protocol.ErrorBody
				_ = jsonUnmarshal(r.body, &body)
				if body.Error != nil {
					tc.field = body.Error.Field
				}
			}
			checkError(t, r, tc.status, tc.code, tc.field)
			if tc.raft {
				if got := r.index(); got <= before {
					t.Fatalf("refused write that reached the log answers index %q", r.header.Get("X-Drover-Index"))
				}
			}
		})
	}
}

// With ACL on, a request needs a token (401) whose role allows it (403);
// a tenant's token does not learn of other tenants (404).
func TestUnauthenticatedAndPermissionDenied(t *testing.T) {
	e := newEnv(t, envConfig{ACL: true})
	u := e.url()
	checkError(t, do(t, "GET", u+"/v1/tenants", nil), 401, protocol.CodeUnauthenticated, "")
	checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"acme"}`, "Authorization", "Bearer nonsense"), 401, protocol.CodeUnauthenticated, "")
	must(t, 200, "GET", u+"/v1/health", nil, nil)

	var root protocol.Token
	must(t, 200, "POST", u+"/v1/acl/bootstrap", nil, &root)
	checkError(t, do(t, "POST", u+"/v1/acl/bootstrap", nil), 409, protocol.CodeConflict, "")
	mgmt := []string{"Authorization", "Bearer " + root.Secret}
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil, mgmt...)
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"globex"}`, nil, mgmt...)
	var viewer protocol.Token
	must(t, 201, "POST", u+"/v1/acl/tokens", `{"role":"tenant-viewer","tenant":"acme"}`, &viewer, mgmt...)
	view := []string{"Authorization", "Bearer " + viewer.Secret}

	must(t, 200, "GET", u+"/v1/tenants/acme", nil, nil, view...)
	checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"initech"}`, view...), 403, protocol.CodePermissionDenied, "")
	checkError(t, do(t, "POST", u+"/v1/tenants/acme/instances", instanceDoc("crm"), view...), 403, protocol.CodePermissionDenied, "")
	checkError(t, do(t, "GET", u+"/v1/tenants/globex", nil, view...), 404, protocol.CodeNotFound, "")
	checkError(t, do(t, "GET", u+"/v1/operator/snapshot", nil, view...), 403, protocol.CodePermissionDenied, "")
}

// A follower answers 503 unavailable while it knows no leader; stale reads
// it answers from its own state.
func TestUnavailableWithoutLeader(t *testing.T) {
	e := newEnv(t, envConfig{NoBootstrap: true})
	u := e.c.Servers()[0].URL
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/v1/tenants", `{"name":"acme"}`},
		{"GET", "/v1/tenants", ""},
		{"GET", "/v1/status", ""},
		{"DELETE", "/v1/tenants/acme", ""},
	} {
		checkError(t, do(t, req.method, u+req.path, req.body), http.StatusServiceUnavailable, protocol.CodeUnavailable, "")
	}
	var tenants []protocol.Tenant
	must(t, 200, "GET", u+"/v1/tenants?stale=true", nil, &tenants)
	must(t, 200, "GET", u+"/v1/health", nil, nil)
}

// Without a quorum no server accepts writes or linearizable reads. Each
// refused write says whether it may have been applied: one answered
// "not_applied" never is, even after the cluster heals.
func TestUnavailableWithoutQuorum(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	must(t, 201, "POST", e.url()+"/v1/tenants", `{"name":"acme"}`, nil)
	e.c.WaitForReplication()
	servers := e.c.Servers()
	e.c.Partition(servers[0])
	e.c.Partition(servers[1]) // now every server is alone
	var notApplied []string
	for i, s := range servers {
		u := s.URL
		attempt := 0
		e.c.Eventually(s.ID+" to refuse writes with 503", func() error {
			attempt++
			name := fmt.Sprintf("x%d-%d", i, attempt)
			r := do(t, "POST", u+"/v1/tenants", `{"name":"`+name+`"}`)
			if r.status == http.StatusServiceUnavailable && r.header.Get(api.HeaderOutcome) == protocol.OutcomeNotApplied {
				notApplied = append(notApplied, name)
			}
			if r.status != http.StatusServiceUnavailable {
				return errorf("got %s", r)
			}
			checkError(t, r, http.StatusServiceUnavailable, protocol.CodeUnavailable, "")
			return nil
		})
		checkError(t, do(t, "GET", u+"/v1/tenants/acme", nil), http.StatusServiceUnavailable, protocol.CodeUnavailable, "")
		must(t, 200, "GET", u+"/v1/tenants/acme?stale=true", nil, nil)
	}
	e.c.Heal()
	must(t, 201, "POST", e.url()+"/v1/tenants", `{"name":"after"}`, nil)
	e.c.WaitForReplication()
	e.c.EnsureSame()
	if len(notApplied) == 0 {
		t.Fatal("no write was answered not_applied: a server that knows no leader refuses before Raft")
	}
	for _, name := range notApplied {
		if r := do(t, "GET", e.url()+"/v1/tenants/"+name, nil); r.status != http.StatusNotFound {
			t.Errorf("tenant %s was answered not_applied, and exists after healing: %s", name, r)
		}
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
