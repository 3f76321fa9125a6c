package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/drover-dev/drover/internal/promtest"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
)

// apiClient calls a real server's API with a token.
type apiClient struct {
	t     *testing.T
	url   string
	token string
}

func (c apiClient) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url+path, in)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must calls and decodes a 2xx answer into out (when not nil).
func (c apiClient) must(method, path string, body, out any) {
	c.t.Helper()
	code, b := c.call(method, path, body)
	if code/100 != 2 {
		c.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (c apiClient) as(token string) apiClient { c.token = token; return c }

// What a user scrapes from a real server (ACL on) agrees with what its
// API says, and a tenant's token reads its own series only.
func TestServerScrape(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Servers: 1, Server: server.Config{ACL: true, ServerJoinToken: "between-servers"}})
	api := apiClient{t: t, url: c.Leader().URL}
	var boot protocol.Token
	api.must("POST", "/v1/acl/bootstrap", nil, &boot)
	mgmt := api.as(boot.Secret)
	for _, tenant := range []string{"acme", "beta"} {
		mgmt.must("POST", "/v1/tenants", map[string]any{"name": tenant}, nil)
	}
	create := func(tenant, name, env string, replicas int) {
		mgmt.must("POST", "/v1/tenants/"+tenant+"/instances", map[string]any{"name": name, "environment": env, "replicas": replicas,
			"spec": map[string]any{"version": "2." + name, "command": []string{"/bin/true"}}}, nil)
	}
	// No agent runs them: their replicas stay pending, and stopped
	// instances stop.
	create("acme", "web", "production", 2)
	create("acme", "api", "production", 1)
	create("beta", "db", "staging", 1)
	create("beta", "old", "staging", 1)
	mgmt.must("POST", "/v1/tenants/beta/instances/old/stop", nil, nil)
	token := func(role, tenant string) string {
		var tok protocol.Token
		mgmt.must("POST", "/v1/acl/tokens", map[string]any{"role": role, "tenant": tenant}, &tok)
		return tok.Secret
	}
	acmeViewer, betaAdmin := api.as(token(protocol.RoleTenantViewer, "acme")), api.as(token(protocol.RoleTenantAdmin, "beta"))

	// The API's count of instances by tenant, environment and state is
	// what drover_instances says, once the scheduler has settled.
	c.Eventually("drover_instances to agree with GET /v1/instances", func() error {
		var list []protocol.Instance
		mgmt.must("GET", "/v1/instances", nil, &list)
		want := map[string]float64{}
		for _, in := range list {
			want[fmt.Sprintf("environment=%s,state=%s,tenant=%s", in.Environment, in.Status.State, in.Tenant)]++
		}
		_, body := mgmt.call("GET", "/metrics", nil)
		got := map[string]float64{}
		for k, v := range promtest.Parse(t, string(body)).Series("drover_instances") {
			if v != 0 {
				got[k] = v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || len(list) != 4 {
			return fmt.Errorf("metrics %v, API %v", got, want)
		}
		if want["environment=staging,state=stopped,tenant=beta"] != 1 {
			return fmt.Errorf("beta/old is not stopped yet: %v", want)
		}
		// The instances' states agree before the scheduler has made
		// their replicas: wait for those too.
		if n := promtest.Parse(t, string(body)).Series("drover_replicas")["environment=production,state=pending,tenant=acme"]; n != 3 {
			return fmt.Errorf("acme's pending replicas = %v, want 3", n)
		}
		return nil
	})
	_, body := mgmt.call("GET", "/metrics", nil)
	fs := promtest.Parse(t, string(body))
	if n := fs.Series("drover_http_requests_total")["code=201,method=post,route=/v1/tenants/{tenant}/instances"]; n != 4 {
		t.Errorf("instance creations counted %v, want 4 under their route", n)
	}
	if n := fs.Series("drover_raft_apply_total")[""]; n == 0 {
		t.Errorf("no Raft applies bridged from go-metrics")
	}

	// A tenant's token: its own series, 404 for the other tenant's, and
	// no access to the fleet's /metrics.
	code, own := acmeViewer.call("GET", "/v1/tenants/acme/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("acme's viewer reading acme's metrics: %d %s", code, own)
	}
	ownFs := promtest.Parse(t, string(own))
	if got := ownFs.Series("drover_instance_info"); len(got) != 2 ||
		got["environment=production,instance=web,product=,tenant=acme,version=2.web"] != 1 {
		t.Errorf("acme's drover_instance_info = %v", got)
	}
	for name := range ownFs {
		for labels := range ownFs.Series(name) {
			if !bytes.Contains([]byte(labels), []byte("tenant=acme")) {
				t.Errorf("acme's metrics hold %s{%s}", name, labels)
			}
		}
	}
	if code, b := betaAdmin.call("GET", "/v1/tenants/acme/metrics", nil); code != http.StatusNotFound {
		t.Errorf("beta's token reading acme's metrics: %d %s, want 404", code, b)
	}
	if code, b := acmeViewer.call("GET", "/metrics", nil); code != http.StatusForbidden {
		t.Errorf("acme's token reading /metrics: %d %s, want 403", code, b)
	}
	if code, _ := mgmt.call("GET", "/v1/tenants/nope/metrics", nil); code != http.StatusNotFound {
		t.Errorf("metrics of a tenant that does not exist: %d, want 404", code)
	}
}
