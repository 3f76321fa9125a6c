package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
)

// A list of instances answers each instance byte for byte as its own GET
// does (secrets redacted, status derived from its replicas, endpoints),
// for every caller: lists are encoded one instance at a time, and their
// statuses read from one scan of the replicas.
func TestListInstancesAnswersEachAsItsGet(t *testing.T) {
	e := newACLEnv(t, server.Config{NoScheduler: true})
	mgmt := e.bootstrap().Secret
	for _, tenant := range []string{"acme", "acme2", "globex"} {
		e.ok(mgmt, "POST", "/v1/tenants", map[string]string{"name": tenant}, nil)
	}
	for _, id := range []string{"acme/crm", "acme/web", "acme2/crm", "globex/crm"} {
		tenant, name, _ := protocol.SplitInstanceID(id)
		e.ok(mgmt, "POST", "/v1/tenants/"+tenant+"/instances", with(instanceDoc(name), func(m map[string]any) { m["replicas"] = 2 }), nil)
	}
	// Replicas in several states, of instances whose tenants and names
	// begin one another's; a suspended tenant's instance shows stopped.
	te := &env{t: t, c: e.c}
	te.addNode("n1", "127.0.0.1")
	for id, states := range map[string][]string{"acme/crm": {"healthy", "healthy"}, "acme/web": {"starting"}, "acme2/crm": {"failed"}, "globex/crm": {"healthy"}} {
		for i, st := range states {
			r := fmt.Sprintf("%s-%d", strings.ReplaceAll(id, "/", "-"), i)
			te.placeReplica(id, "n1", r)
			te.report("n1", r, st, nil)
		}
	}
	e.ok(mgmt, "PATCH", "/v1/tenants/globex", map[string]string{"state": protocol.TenantSuspended}, nil)
	viewer := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantViewer, Tenant: "acme"}).Secret

	everyone := []string{"acme/crm", "acme/web", "acme2/crm", "globex/crm"}
	acme := []string{"acme/crm", "acme/web"}
	for _, tc := range []struct {
		name, token, path string
		want              []string
	}{
		{"all", mgmt, "/v1/instances", everyone},
		{"one tenant", mgmt, "/v1/instances?tenant=acme", acme},
		{"the tenant's route", mgmt, "/v1/tenants/acme2/instances", []string{"acme2/crm"}},
		{"by state", mgmt, "/v1/instances?state=running", []string{"acme/crm"}},
		{"suspended", mgmt, "/v1/instances?state=stopped", []string{"globex/crm"}},
		{"tenant token", viewer, "/v1/instances", acme},
		{"tenant token, its tenant", viewer, "/v1/instances?tenant=acme", acme},
		{"tenant token, another tenant", viewer, "/v1/instances?tenant=globex", nil},
		{"tenant token, the tenant's route", viewer, "/v1/tenants/acme/instances", acme},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(tc.token, "GET", tc.path, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, r.status, r.body)
			}
			var each []string
			for _, id := range tc.want {
				tenant, name, _ := protocol.SplitInstanceID(id)
				one := e.call(mgmt, "GET", "/v1/tenants/"+tenant+"/instances/"+name, nil)
				each = append(each, strings.TrimSuffix(string(one.body), "\n"))
			}
			if want := "[" + strings.Join(each, ",") + "]\n"; string(r.body) != want {
				t.Fatalf("GET %s answered\n%s\nwant\n%s", tc.path, r.body, want)
			}
			if strings.Contains(string(r.body), "hunter2") {
				t.Fatalf("GET %s answered a secret: %s", tc.path, r.body)
			}
			var list []protocol.Instance
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatal(err)
			}
			for _, in := range list {
				if in.Status == nil || in.Spec.Secrets["DB_PASSWORD"] != "(secret)" || len(in.Endpoints) == 0 {
					t.Fatalf("GET %s answered %s without its status, redacted secret or endpoints", tc.path, in.ID)
				}
			}
		})
	}
}

// BenchmarkListInstances measures GET /v1/instances over 10,000 instances
// of replicas 0, as the e2e reads scenario lists them, on an in-process
// server.
//
//	go test ./server/api -run '^$' -bench ListInstances -benchtime 50x
func BenchmarkListInstances(b *testing.B) {
	c := clustertest.New(b, clustertest.Config{Servers: 1, Server: server.Config{}})
	u := c.Leader().URL
	if r := do(b, "POST", u+"/v1/tenants", `{"name":"read"}`); r.status != http.StatusCreated {
		b.Fatalf("create tenant: %s", r)
	}
	const n, workers = 10000, 64
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				body := fmt.Sprintf(`{"name":"r%d","replicas":0,"spec":{"command":["/bin/true"]}}`, i)
				resp, err := httpClient.Post(u+"/v1/tenants/read/instances", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err.Error()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- resp.Status
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		b.Fatalf("create instance: %s", e)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := httpClient.Get(u + "/v1/instances")
		if err != nil {
			b.Fatal(err)
		}
		m, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /v1/instances: %s", resp.Status)
		}
		b.SetBytes(m)
	}
}
