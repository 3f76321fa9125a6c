package api_test

// In-process tests of the gateways' side of the API: GET /v1/routes and
// who may read it, instances' endpoints and custom domains, and the
// traffic parts of a spec (route.port, stop.drain). The scheduler does not
// run here: tests place replicas and report them as agents would.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/state"
)

// newTrafficEnv runs one real server without its scheduler.
func newTrafficEnv(t *testing.T, cfg server.Config) *env {
	t.Helper()
	cfg.NoScheduler = true
	return &env{t: t, c: clustertest.New(t, clustertest.Config{Servers: 1, Server: cfg})}
}

// addNode registers a node the gateways reach at addr.
func (e *env) addNode(id, addr string) {
	e.t.Helper()
	e.c.MustPropose(state.CmdNodeRegister, state.NodeRegister{SecretHash: "hash-" + id, Node: protocol.Node{
		ID: id, Name: id, Address: addr,
		Resources: protocol.NodeResources{CPUMillis: 4000, MemoryMB: 8192, FreeCPUMillis: 4000, FreeMemoryMB: 8192},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 21000}}})
}

// placeReplica puts a replica of an instance's version 1 on a node.
func (e *env) placeReplica(instanceID, node, id string) {
	e.t.Helper()
	tenant, name, _ := protocol.SplitInstanceID(instanceID)
	e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: instanceID,
		Place: []*protocol.Replica{{ID: id, Tenant: tenant, Instance: name, Node: node, Version: 1}}})
}

// report commits what a node's agent reports of a replica.
func (e *env) report(node, id, st string, ports map[string]int) uint64 {
	e.t.Helper()
	return e.c.MustPropose(state.CmdReplicaReports, state.ReplicaReports{Reports: []state.NodeReport{{Node: node,
		Replicas: []protocol.ReplicaReport{{ID: id, State: st, Ports: ports}}}}})
}

// webDoc is an instance request serving on two ports, the route on the
// second, with custom domains.
func webDoc(name string, domains ...string) map[string]any {
	return map[string]any{
		"name":    name,
		"domains": domains,
		"spec": map[string]any{
			"version": "1.0.0",
			"command": []string{"/opt/web/bin/web", "--port", "${PORT}"},
			"ports":   []string{"http", "admin"},
			"route":   map[string]any{"port": "admin"},
		},
	}
}

func getRoutes(t *testing.T, u string) (protocol.Routes, reply) {
	t.Helper()
	var rs protocol.Routes
	r := must(t, 200, "GET", u+"/v1/routes", nil, &rs)
	return rs, r
}

func routeOf(t *testing.T, rs protocol.Routes, tenant, name string) protocol.Route {
	t.Helper()
	for _, rt := range rs.Routes {
		if rt.Tenant == tenant && rt.Name == name {
			return rt
		}
	}
	t.Fatalf("%s/%s is not in the routing table %+v", tenant, name, rs)
	return protocol.Route{}
}

// GET /v1/routes lists every instance with its custom domains and its
// healthy replicas at their node's address and the route's port; an
// instance without one is listed with an empty list, so that gateways
// answer 503 for it rather than 404. The answer's index is the one of its
// X-Drover-Index.
func TestRouteTable(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("crm", "crm.example.com", "www.crm.example.com"), nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("idle"), nil)
	e.addNode("n1", "10.0.0.7")
	e.addNode("n2", "10.0.0.8")
	e.placeReplica("acme/crm", "n1", "r1")
	e.placeReplica("acme/crm", "n2", "r2")

	rs, r := getRoutes(t, u)
	crm := routeOf(t, rs, "acme", "crm")
	if !reflect.DeepEqual(crm.Domains, []string{"crm.example.com", "www.crm.example.com"}) || len(crm.Backends) != 0 {
		t.Fatalf("route of acme/crm before any replica is healthy: %+v", crm)
	}
	var raw struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, rt := range raw.Routes {
		if b := strings.Join(strings.Fields(string(rt["backends"])), ""); b != "[]" {
			t.Fatalf("an instance without backends must answer \"backends\": [], got %s in %s", rt["backends"], r.body)
		}
	}

	e.report("n1", "r1", protocol.ReplicaHealthy, map[string]int{"http": 20001, "admin": 20002})
	idx := e.report("n2", "r2", protocol.ReplicaRunning, map[string]int{"http": 20003, "admin": 20004})
	rs, r = getRoutes(t, u)
	crm = routeOf(t, rs, "acme", "crm")
	want := []protocol.Backend{{Replica: "r1", Addr: "10.0.0.7:20002"}}
	if !reflect.DeepEqual(crm.Backends, want) {
		t.Fatalf("backends of acme/crm: %+v, want %+v (r2 is not healthy)", crm.Backends, want)
	}
	if rs.Index != r.index() || rs.Index < idx {
		t.Fatalf("answer's index %d, header's %d, last write %d", rs.Index, r.index(), idx)
	}
	if got := routeOf(t, rs, "acme", "idle"); len(got.Backends) != 0 || len(got.Domains) != 0 {
		t.Fatalf("route of acme/idle: %+v", got)
	}

	// Stopping the instance takes its replicas out at once.
	e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Stop: []state.ReplicaStop{{ID: "r1", Message: "stopped"}}})
	rs, _ = getRoutes(t, u)
	if got := routeOf(t, rs, "acme", "crm"); len(got.Backends) != 0 {
		t.Fatalf("a replica the scheduler stopped is still routed: %+v", got)
	}
}

// A gateway's blocking query on the routing table wakes when a replica
// turns healthy, not at writes to tables the table is not made of.
func TestRouteTableBlockingQuery(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("crm"), nil)
	e.addNode("n1", "10.0.0.7")
	e.placeReplica("acme/crm", "n1", "r1")
	_, r := getRoutes(t, u)
	n := r.index()

	ch := blockingGet(t, fmt.Sprintf("%s/v1/routes?index=%d&wait=20s", u, n))
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"globex"}`, nil) // not a table of routes
	idx := e.report("n1", "r1", protocol.ReplicaHealthy, map[string]int{"http": 20001, "admin": 20002})
	got := await(t, ch)
	var rs protocol.Routes
	if err := json.Unmarshal(got.body, &rs); err != nil || got.status != 200 {
		t.Fatalf("blocking read: %s", got)
	}
	if b := routeOf(t, rs, "acme", "crm").Backends; len(b) != 1 || b[0].Addr != "10.0.0.7:20002" {
		t.Fatalf("blocking read answered %+v at index %d; the report was at %d", rs, got.index(), idx)
	}
	if got.index() != idx || rs.Index != idx {
		t.Fatalf("blocking read answered index %d (body %d), want the report's %d", got.index(), rs.Index, idx)
	}
	if got.took > 15e9 {
		t.Fatalf("blocking read took %s: it waited out its wait", got.took)
	}

	// The scheduler stopping the replica (a change of replicas alone)
	// wakes it as well, without the replica.
	ch = blockingGet(t, fmt.Sprintf("%s/v1/routes?index=%d&wait=20s", u, idx))
	stop := e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: "acme/crm", Stop: []state.ReplicaStop{{ID: "r1", Message: "scale down"}}})
	got = await(t, ch)
	rs = protocol.Routes{}
	if err := json.Unmarshal(got.body, &rs); err != nil || got.status != 200 {
		t.Fatalf("blocking read: %s", got)
	}
	if b := routeOf(t, rs, "acme", "crm").Backends; len(b) != 0 || got.index() != stop || got.took > 15e9 {
		t.Fatalf("blocking read answered %+v at index %d after %s; the stop was at %d", rs, got.index(), got.took, stop)
	}
}

// Instances answer their URLs through the gateways: the generated
// http://{name}.{tenant}.drover.localhost:4780/ and then each custom
// domain, in every answer that holds the instance.
func TestInstanceEndpoints(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	var in protocol.Instance
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("crm", "crm.example.com"), &in)
	want := []string{"http://crm.acme.drover.localhost:4780/", "http://crm.example.com:4780/"}
	if !reflect.DeepEqual(in.Endpoints, want) {
		t.Fatalf("create answered endpoints %q, want %q", in.Endpoints, want)
	}
	must(t, 200, "GET", u+"/v1/tenants/acme/instances/crm", nil, &in)
	if !reflect.DeepEqual(in.Endpoints, want) || !reflect.DeepEqual(in.Domains, []string{"crm.example.com"}) {
		t.Fatalf("get answered domains %q endpoints %q", in.Domains, in.Endpoints)
	}
	for _, path := range []string{"/v1/instances", "/v1/tenants/acme/instances"} {
		var list []protocol.Instance
		must(t, 200, "GET", u+path, nil, &list)
		if len(list) != 1 || !reflect.DeepEqual(list[0].Endpoints, want) {
			t.Fatalf("%s answered %+v", path, list)
		}
	}

	// An update without domains keeps them; one with domains replaces them.
	doc := webDoc("crm")
	delete(doc, "domains")
	must(t, 200, "PUT", u+"/v1/tenants/acme/instances/crm", doc, &in)
	if !reflect.DeepEqual(in.Endpoints, want) {
		t.Fatalf("an update without domains answered endpoints %q", in.Endpoints)
	}
	must(t, 200, "PUT", u+"/v1/tenants/acme/instances/crm", webDoc("crm", "shop.example.org", "crm.example.com"), &in)
	want = []string{"http://crm.acme.drover.localhost:4780/", "http://shop.example.org:4780/", "http://crm.example.com:4780/"}
	if !reflect.DeepEqual(in.Endpoints, want) {
		t.Fatalf("update answered endpoints %q, want %q", in.Endpoints, want)
	}
	must(t, 200, "POST", u+"/v1/tenants/acme/instances/crm/scale", `{"replicas":2}`, &in)
	if !reflect.DeepEqual(in.Endpoints, want) {
		t.Fatalf("scale answered endpoints %q, want %q", in.Endpoints, want)
	}
	var cleared protocol.Instance
	must(t, 200, "PUT", u+"/v1/tenants/acme/instances/crm", with(webDoc("crm"), func(m map[string]any) { m["domains"] = []string{} }), &cleared)
	if !reflect.DeepEqual(cleared.Endpoints, want[:1]) || len(cleared.Domains) != 0 {
		t.Fatalf("an update with domains [] answered domains %q endpoints %q", cleared.Domains, cleared.Endpoints)
	}

	// Another gateway URL: its scheme, domain and port (none here).
	t.Run("gateway url", func(t *testing.T) {
		g, err := url.Parse("https://apps.example.com")
		if err != nil {
			t.Fatal(err)
		}
		e := newTrafficEnv(t, server.Config{GatewayURL: g})
		u := e.url()
		must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
		var in protocol.Instance
		must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("crm", "crm.example.com", "x.drover.localhost"), &in)
		want := []string{"https://crm.acme.apps.example.com/", "https://crm.example.com/", "https://x.drover.localhost/"}
		if !reflect.DeepEqual(in.Endpoints, want) {
			t.Fatalf("endpoints %q, want %q", in.Endpoints, want)
		}
		checkError(t, do(t, "POST", u+"/v1/tenants/acme/instances", webDoc("shop", "shop.apps.example.com")),
			400, protocol.CodeInvalidArgument, "domains[0]")
	})
}

// Custom domains that are not lower-case host names of two labels or more,
// are named twice, are too many, or lie under the gateways' own domain are
// refused naming the domain; a domain another instance has, of any tenant,
// is a conflict naming it, on create and on update.
func TestInstanceDomainsRefused(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"globex"}`, nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("crm", "crm.example.com"), nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("other", "other.example.com"), nil)

	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf("d%d.example.com", i)
	}
	for _, tc := range []struct {
		name    string
		domains []string
		field   string
	}{
		{"upper case", []string{"Shop.example.com"}, "domains[0]"},
		{"one label", []string{"shop.example.com", "shop"}, "domains[1]"},
		{"with a port", []string{"shop.example.com:80"}, "domains[0]"},
		{"named twice", []string{"shop.example.com", "shop.example.com"}, "domains[1]"},
		{"17 domains", many, "domains"},
		{"the gateway's domain", []string{"drover.localhost"}, "domains[0]"},
		{"under the gateway's domain", []string{"shop.example.com", "shop.drover.localhost"}, "domains[1]"},
		{"deep under the gateway's domain", []string{"a.b.drover.localhost"}, "domains[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, do(t, "POST", u+"/v1/tenants/globex/instances", webDoc("shop", tc.domains...)), 400, protocol.CodeInvalidArgument, tc.field)
			checkError(t, do(t, "PUT", u+"/v1/tenants/acme/instances/other", webDoc("other", tc.domains...)), 400, protocol.CodeInvalidArgument, tc.field)
		})
	}
	// A name that merely ends like the gateway's domain is not under it.
	must(t, 201, "POST", u+"/v1/tenants/globex/instances", webDoc("near", "notdrover.localhost"), nil)
	if n := len(e.c.Leader().Store.Snapshot().Instances(state.InstanceFilter{Tenant: "globex"})); n != 1 {
		t.Fatalf("globex has %d instances after refused creates, want 1", n)
	}

	// Clashes: 409 naming the domain, on create and on update, across tenants.
	checkError(t, do(t, "POST", u+"/v1/tenants/globex/instances", webDoc("shop", "shop.example.com", "crm.example.com")), 409, protocol.CodeConflict, "domains[1]")
	checkError(t, do(t, "POST", u+"/v1/tenants/acme/instances", webDoc("crm2", "crm.example.com")), 409, protocol.CodeConflict, "domains[0]")
	r := do(t, "PUT", u+"/v1/tenants/acme/instances/other", webDoc("other", "crm.example.com"))
	checkError(t, r, 409, protocol.CodeConflict, "domains[0]")
	var in protocol.Instance
	must(t, 200, "GET", u+"/v1/tenants/acme/instances/other", nil, &in)
	if in.Version != 1 || !reflect.DeepEqual(in.Domains, []string{"other.example.com"}) {
		t.Fatalf("a refused update changed the instance: version %d domains %q", in.Version, in.Domains)
	}
	// An instance naming its own domains again is no clash.
	must(t, 200, "PUT", u+"/v1/tenants/acme/instances/crm", webDoc("crm", "www.crm.example.com", "crm.example.com"), nil)
	// A deleted instance's domains are free again.
	must(t, 204, "DELETE", u+"/v1/tenants/acme/instances/crm", nil, nil)
	must(t, 201, "POST", u+"/v1/tenants/globex/instances", webDoc("shop", "crm.example.com"), nil)
}

// spec.route.port names one of spec.ports; spec.stop.drain is 0s to 10m,
// 5s when not given, and an explicit 0s is kept.
func TestRouteAndDrainInSpec(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	bad := func(name string, edit func(spec map[string]any), field string) {
		t.Helper()
		doc := webDoc(name)
		edit(spec(doc))
		checkError(t, do(t, "POST", u+"/v1/tenants/acme/instances", doc), 400, protocol.CodeInvalidArgument, field)
	}
	bad("a", func(s map[string]any) { s["route"] = map[string]any{"port": "metrics"} }, "spec.route.port")
	bad("b", func(s map[string]any) { delete(s, "ports") }, "spec.route.port")
	bad("c", func(s map[string]any) { s["stop"] = map[string]any{"drain": "-1s"} }, "spec.stop.drain")
	bad("d", func(s map[string]any) { s["stop"] = map[string]any{"drain": "10m1s"} }, "spec.stop.drain")

	for _, tc := range []struct {
		name  string
		drain any // nil: not given
		want  string
	}{
		{"default", nil, "5s"},
		{"none", "0s", "0s"},
		{"max", "10m", "10m0s"},
	} {
		doc := webDoc("drain-" + tc.name)
		if tc.drain != nil {
			spec(doc)["stop"] = map[string]any{"drain": tc.drain}
		}
		var created struct {
			Spec struct {
				Stop struct {
					Drain *string `json:"drain"`
				} `json:"stop"`
				Route *protocol.RouteSpec `json:"route"`
			} `json:"spec"`
		}
		must(t, 201, "POST", u+"/v1/tenants/acme/instances", doc, &created)
		if d := created.Spec.Stop.Drain; d == nil || *d != tc.want {
			t.Fatalf("%s: answered drain %v, want %s", tc.name, d, tc.want)
		}
		if created.Spec.Route == nil || created.Spec.Route.Port != "admin" {
			t.Fatalf("%s: answered route %+v", tc.name, created.Spec.Route)
		}
		stored := e.c.Leader().Store.Snapshot().Instance("acme/drain-" + tc.name)
		if d := stored.Spec.Stop.Drain; d == nil || d.String() != tc.want {
			t.Fatalf("%s: stored drain %v, want %s", tc.name, d, tc.want)
		}
	}
}

// GET /v1/routes is for gateway, operator and management tokens. A
// gateway token reaches nothing else, tenant tokens do not reach it, and
// gateway tokens take no tenant.
func TestRoutesRoles(t *testing.T) {
	e := newACLEnv(t, server.Config{NoScheduler: true})
	mgmt := e.bootstrap().Secret
	e.ok(mgmt, "POST", "/v1/tenants", protocol.Tenant{Name: "acme"}, nil)
	e.ok(mgmt, "POST", "/v1/tenants/acme/instances", webDoc("crm", "crm.example.com"), nil)
	gw := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleGateway, Description: "edge"})
	if gw.Role != protocol.RoleGateway || gw.Tenant != "" {
		t.Fatalf("gateway token: %+v", gw)
	}
	op := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleOperator})
	admin := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantAdmin, Tenant: "acme"})
	viewer := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantViewer, Tenant: "acme"})

	for who, tok := range map[string]string{"gateway": gw.Secret, "operator": op.Secret, "management": mgmt} {
		var rs protocol.Routes
		e.ok(tok, "GET", "/v1/routes", nil, &rs)
		if len(rs.Routes) != 1 || rs.Routes[0].Name != "crm" || rs.Routes[0].Domains[0] != "crm.example.com" {
			t.Fatalf("%s token read routes %+v", who, rs)
		}
	}
	for who, tok := range map[string]string{"tenant-admin": admin.Secret, "tenant-viewer": viewer.Secret} {
		if r := e.call(tok, "GET", "/v1/routes", nil); r.status != 403 || r.code() != protocol.CodePermissionDenied {
			t.Fatalf("%s token on GET /v1/routes: %d %s", who, r.status, r.body)
		}
	}
	if r := e.call("", "GET", "/v1/routes", nil); r.status != 401 {
		t.Fatalf("GET /v1/routes without a token: %d %s", r.status, r.body)
	}
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/instances", nil},
		{"GET", "/v1/tenants", nil},
		{"GET", "/v1/tenants/acme/instances/crm", nil},
		{"GET", "/v1/nodes", nil},
		{"GET", "/v1/status", nil},
		{"GET", "/v1/acl/tokens", nil},
		{"POST", "/v1/tenants/acme/instances", webDoc("x")},
		{"POST", "/v1/acl/tokens", protocol.TokenRequest{Role: protocol.RoleGateway}},
	} {
		if r := e.call(gw.Secret, call.method, call.path, call.body); r.status != 403 || r.code() != protocol.CodePermissionDenied {
			t.Fatalf("gateway token on %s %s: %d %s", call.method, call.path, r.status, r.body)
		}
	}

	r := e.call(mgmt, "POST", "/v1/acl/tokens", protocol.TokenRequest{Role: protocol.RoleGateway, Tenant: "acme"})
	var eb protocol.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || r.status != 400 || eb.Error == nil ||
		eb.Error.Code != protocol.CodeInvalidArgument || eb.Error.Field != "tenant" {
		t.Fatalf("a gateway token with a tenant: %d %s, want 400 naming tenant", r.status, r.body)
	}
	var list []protocol.Token
	e.ok(mgmt, "GET", "/v1/acl/tokens?role=gateway", nil, &list)
	if len(list) != 1 || list[0].ID != gw.ID {
		t.Fatalf("gateway tokens: %+v", list)
	}
}

// Before any node registers or instance exists, the routing table answers
// the same index as its X-Drover-Index, not 0: a gateway waits with the
// answer's index, and drover gateway treats 0 as "no table yet" and asks
// again at once, without blocking.
func TestRouteTableIndexOfAnEmptyCluster(t *testing.T) {

	e := newTrafficEnv(t, server.Config{})
	rs, r := getRoutes(t, e.url())
	if rs.Index == 0 || rs.Index != r.index() {
		t.Fatalf("routing table of an empty cluster answers index %d, X-Drover-Index %d", rs.Index, r.index())
	}
}
