package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/state"
)

// Every write answers X-Drover-Index, the index it was committed at: a
// read at that index sees the write.
func TestWritesAnswerTheirIndex(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	e.c.MustPropose(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h", Node: protocol.Node{ID: "n1", Name: "n1"}})
	var backup []byte
	steps := []struct {
		name, method, path string
		body               any
		status             int
		check              func(t *testing.T)
	}{
		{"create tenant", "POST", "/v1/tenants", `{"name":"acme","labels":{"tier":"gold"}}`, 201, nil},
		{"patch tenant", "PATCH", "/v1/tenants/acme", `{"labels":{"tier":"silver"}}`, 200, func(t *testing.T) {
			var tn protocol.Tenant
			must(t, 200, "GET", u+"/v1/tenants/acme", nil, &tn)
			if tn.Labels["tier"] != "silver" || tn.State != protocol.TenantActive {
				t.Fatalf("patched tenant: %+v", tn)
			}
		}},
		{"put environment", "PUT", "/v1/environments/production", `{"protected":true}`, 200, nil},
		{"put plan", "PUT", "/v1/plans/pro", `{"max_replicas":5}`, 200, nil},
		{"create instance", "POST", "/v1/tenants/acme/instances", instanceDoc("crm"), 201, func(t *testing.T) {
			var in protocol.Instance
			r := must(t, 200, "GET", u+"/v1/tenants/acme/instances/crm", nil, &in)
			if in.ID != "acme/crm" || in.Version != 1 || in.Replicas != 1 || in.Environment != "default" || in.Status == nil || r.header.Get("ETag") != "1" {
				t.Fatalf("instance: %+v", in)
			}
			if in.Spec.Secrets["DB_PASSWORD"] == "hunter2" || strings.Contains(string(r.body), "hunter2") {
				t.Fatalf("an answer shows a secret: %s", r.body)
			}
			if in.Spec.Restart.Policy != "always" || in.Spec.Health.Timeout.D() == 0 {
				t.Fatalf("stored spec lacks its defaults: %+v", in.Spec)
			}
		}},
		{"update instance", "PUT", "/v1/tenants/acme/instances/crm", with(instanceDoc("crm"), func(m map[string]any) {
			spec(m)["version"] = "1.1.0"
			spec(m)["secrets"] = map[string]string{"DB_PASSWORD": "(secret)"}
		}), 200, func(t *testing.T) {
			in := e.c.Leader().Store.Snapshot().Instance("acme/crm")
			if in.Version != 2 || in.Spec.Version != "1.1.0" || in.Spec.Secrets["DB_PASSWORD"] != "hunter2" {
				t.Fatalf("updated instance: version %d spec %+v", in.Version, in.Spec)
			}
		}},
		{"update with If-Match", "PUT", "/v1/tenants/acme/instances/crm", instanceDoc("crm"), 200, nil},
		{"scale", "POST", "/v1/tenants/acme/instances/crm/scale", `{"replicas":3}`, 200, nil},
		{"stop", "POST", "/v1/tenants/acme/instances/crm/stop", nil, 200, nil},
		{"start", "POST", "/v1/tenants/acme/instances/crm/start", nil, 200, nil},
		{"restart", "POST", "/v1/tenants/acme/instances/crm/restart", nil, 200, func(t *testing.T) {
			var evs []protocol.Event
			must(t, 200, "GET", u+"/v1/tenants/acme/instances/crm/events", nil, &evs)
			// The scheduler's own events (deployments, replicas placed
			// and stopped) come between those of the writes.
			var types []string
			for _, ev := range evs {
				if ev.Type != "deployment" && !strings.HasPrefix(ev.Type, "replica-") {
					types = append(types, ev.Type)
				}
			}
			if got := strings.Join(types, ","); got != "created,updated,updated,scaled,stop,start,restart" {
				t.Fatalf("events: %s", got)
			}
		}},
		{"drain", "POST", "/v1/nodes/n1/drain", `{"enable":true,"deadline":"10m"}`, 200, nil},
		{"eligibility", "POST", "/v1/nodes/n1/eligibility", `{"eligible":false}`, 200, func(t *testing.T) {
			var n protocol.Node
			must(t, 200, "GET", u+"/v1/nodes/n1", nil, &n)
			if n.Eligible || n.Status != protocol.NodeDraining || n.Drain == nil {
				t.Fatalf("node: %+v", n)
			}
		}},
		{"save snapshot", "GET", "/v1/operator/snapshot", nil, 200, nil},
		{"delete instance", "DELETE", "/v1/tenants/acme/instances/crm", nil, 204, nil},
		{"delete tenant", "DELETE", "/v1/tenants/acme", nil, 204, func(t *testing.T) {
			checkError(t, do(t, "GET", u+"/v1/tenants/acme", nil), 404, protocol.CodeNotFound, "")
		}},
		{"restore snapshot", "PUT", "/v1/operator/snapshot", func() any { return backup }, 200, func(t *testing.T) {
			var in protocol.Instance
			must(t, 200, "GET", u+"/v1/tenants/acme/instances/crm", nil, &in)
			if in.Version != 3 || in.Stopped || in.Replicas != 3 {
				t.Fatalf("restored instance: %+v", in)
			}
		}},
	}
	last := uint64(0)
	for _, st := range steps {
		body := st.body
		if f, ok := body.(func() any); ok {
			body = f()
		}
		var headers []string
		if st.name == "update with If-Match" {
			headers = []string{"If-Match", `"2"`}
		}
		r := do(t, st.method, u+st.path, body, headers...)
		if r.status != st.status {
			t.Fatalf("%s: %s", st.name, r)
		}
		idx := r.index()
		if idx == 0 {
			t.Fatalf("%s answers no %s: %v", st.name, api.HeaderIndex, r.header)
		}
		if idx < last || (idx == last && st.method != "GET") {
			t.Fatalf("%s: index %d after %d", st.name, idx, last)
		}
		last = idx
		if st.name == "save snapshot" {
			backup = r.body
			if !bytes.HasPrefix(backup, []byte(`{"format":"drover-state"`)) {
				t.Fatalf("snapshot: %.100s", backup)
			}
		}
		// A blocking read just below the write's index answers at once
		// with the write in it.
		rr := must(t, 200, "GET", u+"/v1/status?index="+strconv.FormatUint(idx-1, 10)+"&wait=30s", nil, nil)
		if rr.index() < idx {
			t.Fatalf("%s: status at index %d after a write at %d", st.name, rr.index(), idx)
		}
		if st.check != nil {
			st.check(t)
		}
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	must(t, 201, "POST", e.url()+"/v1/tenants", `{"name":"acme"}`, nil)
	leader := e.c.Leader()
	for _, s := range e.c.Servers() {
		var st protocol.ClusterStatus
		r := must(t, 200, "GET", s.URL+"/v1/status", nil, &st)
		if st.Leader != leader.ID || len(st.Members) != 3 || st.Counts.Tenants != 1 || st.Index == 0 || r.index() == 0 {
			t.Fatalf("status from %s: %+v", s.ID, st)
		}
		for _, m := range st.Members {
			if m.HTTPAddr == "" || m.RaftAddr == "" || !m.Voter || (m.ID == leader.ID) != (m.State == "leader") {
				t.Fatalf("member: %+v", m)
			}
		}
	}
	var peers struct {
		Servers []protocol.Member `json:"servers"`
	}
	must(t, 200, "GET", e.url()+"/v1/operator/raft", nil, &peers)
	if len(peers.Servers) != 3 {
		t.Fatalf("raft peers: %+v", peers)
	}
	// The leader cannot remove itself; a follower it can, once.
	checkError(t, do(t, "DELETE", e.url()+"/v1/operator/raft/peers/"+leader.ID, nil), 409, protocol.CodeConflict, "")
	f := e.c.Followers()[0]
	r := do(t, "DELETE", e.url()+"/v1/operator/raft/peers/"+f.ID, nil)
	if r.status != 204 || r.index() == 0 {
		t.Fatalf("remove peer: %s %v", r, r.header)
	}
	checkError(t, do(t, "DELETE", e.url()+"/v1/operator/raft/peers/"+f.ID, nil), 404, protocol.CodeNotFound, "")
	must(t, 200, "GET", e.url()+"/v1/operator/raft", nil, &peers)
	if len(peers.Servers) != 2 {
		t.Fatalf("raft peers after removal: %+v", peers)
	}
	if leader.Store.Snapshot().Server(f.ID) != nil {
		t.Fatal("removed server's record kept")
	}
}

// An answer to a write is what the write did, even when another write
// changes or deletes the object before the answer is built: a scale and a
// delete racing each other both answer, neither drops its connection.
func TestWriteAnswersWhatItApplied(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	for i := range 30 {
		name := fmt.Sprintf("web%d", i)
		must(t, 201, "POST", u+"/v1/tenants/acme/instances", instanceDoc(name), nil)
		path := u + "/v1/tenants/acme/instances/" + name
		type answer struct {
			reply
			err error
		}
		scaled := make(chan answer, 1)
		go func() {
			resp, err := httpClient.Post(path+"/scale", "application/json", strings.NewReader(`{"replicas": 3}`))
			if err != nil {
				scaled <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			scaled <- answer{reply{status: resp.StatusCode, header: resp.Header, body: b}, err}
		}()
		deleted := do(t, "DELETE", path, nil)
		s := <-scaled
		if s.err != nil {
			t.Fatalf("scale raced with a delete and got no answer: %v", s.err)
		}
		if deleted.status != http.StatusNoContent {
			t.Fatalf("delete: %s", deleted)
		}
		switch s.status {
		case http.StatusOK:
			var in protocol.Instance
			if err := json.Unmarshal(s.body, &in); err != nil || in.Replicas != 3 || in.Name != name {
				t.Fatalf("scale answered %s, want the instance with 3 replicas", s)
			}
		case http.StatusNotFound: // the delete came first
		default:
			t.Fatalf("scale: %s", s)
		}
	}
}

// A change sent again with the same Idempotency-Key (a client that never
// learnt the first outcome) answers the first outcome and changes nothing
// more: a create is not a 409, an update makes no second version.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)

	first := must(t, 201, "POST", u+"/v1/tenants/acme/instances", instanceDoc("web"), nil, api.HeaderIdempotencyKey, "create-web-1")
	again := must(t, 201, "POST", u+"/v1/tenants/acme/instances", instanceDoc("web"), nil, api.HeaderIdempotencyKey, "create-web-1")
	if again.header.Get(api.HeaderReplayed) != "true" || again.index() != first.index() {
		t.Fatalf("repeated create answered index %d (replayed %q), want the first's %d", again.index(), again.header.Get(api.HeaderReplayed), first.index())
	}
	var in protocol.Instance
	if err := json.Unmarshal(again.body, &in); err != nil || in.Name != "web" || in.Version != 1 {
		t.Fatalf("repeated create answered %s", again)
	}
	// Without the key, the same create is what it is: a conflict.
	checkError(t, do(t, "POST", u+"/v1/tenants/acme/instances", instanceDoc("web")), 409, protocol.CodeConflict, "")

	doc := instanceDoc("web")
	spec(doc)["version"] = "2.0.0"
	for range 2 {
		must(t, 200, "PUT", u+"/v1/tenants/acme/instances/web", doc, &in, api.HeaderIdempotencyKey, "update-web-2")
	}
	if in.Version != 2 {
		t.Fatalf("an update sent twice with one key made version %d, want 2", in.Version)
	}
	// A failed change fails again the same way.
	for range 2 {
		checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"acme"}`, api.HeaderIdempotencyKey, "tenant-again"), 409, protocol.CodeConflict, "")
	}
	checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"x"}`, api.HeaderIdempotencyKey, "has space"), 400, protocol.CodeInvalidArgument, api.HeaderIdempotencyKey)
	checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"x"}`, api.HeaderIdempotencyKey, strings.Repeat("k", api.MaxIdempotencyKey+1)), 400, protocol.CodeInvalidArgument, api.HeaderIdempotencyKey)
}
