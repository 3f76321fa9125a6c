package e2e

// The traffic gateway under load (issue 11): real servers, agents, a real
// gateway process and real replica processes of the demo app, with 250
// requests a second going through the gateway while the instance changes
// under it. "0 failed requests" is what a user of the instance sees.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// gatewayDemo is the demo app instance the gateway scenarios route to:
// replicas of the demo app, draining for 2s before they stop (the default
// is 5s; 2s keeps the tests short and is still far longer than the
// gateways take to drop a replica).
func gatewayDemo(name string, replicas int) map[string]any {
	doc := demoInstance(name, replicas)
	spec := specOf(doc)
	spec["stop"] = map[string]any{"timeout": "5s", "drain": "2s"}
	spec["update"] = map[string]any{"max_parallel": 1, "min_healthy_time": "1s", "healthy_deadline": "1m"}
	return doc
}

// waitSettled waits until the instance has exactly n replicas that have not
// ended, all healthy and satisfying ok: a change is over, drains included.
func waitSettled(t *testing.T, c *Cluster, tenant, name string, n int, what string, ok func(apiReplica) bool) []apiReplica {
	t.Helper()
	var live []apiReplica
	eventually(t, time.Minute, fmt.Sprintf("%s/%s settled: %d healthy replicas %s, no others", tenant, name, n, what), func() (bool, string) {
		s := c.anyUp()
		if s == nil {
			return false, "no server running"
		}
		rs, err := listReplicas(s, tenant, name)
		if err != nil {
			return false, err.Error()
		}
		live = live[:0]
		good := true
		for _, r := range rs {
			switch r.State {
			case "stopped", "failed", "lost":
				continue
			}
			live = append(live, r)
			good = good && r.State == "healthy" && ok(r)
		}
		return good && len(live) == n, describeReplicas(rs)
	})
	return live
}

func replicaIDs(rs []apiReplica) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestGatewayZeroFailedRequests changes an instance of three replicas on
// two hosts in every way a vendor does, each under steady load through the
// gateway, and counts the failed requests: a rolling update, a restart, a
// scale from 3 to 1, a node drain and a kill -9 of the leader. Every one
// must fail none.
func TestGatewayZeroFailedRequests(t *testing.T) {
	c := StartCluster(t, 3, WithFastRaft())
	leader := c.WaitForLeader()
	a1 := StartAgent(t, c)
	StartAgent(t, c)
	createInstance(t, leader, "acme", gatewayDemo("web", 3))
	waitSettled(t, c, "acme", "web", 3, "at version 1", func(r apiReplica) bool { return r.Version == 1 })
	g := StartGateway(t, c, "-response-timeout", "5s")
	url := "http://web.acme.drover.localhost/info"
	eventually(t, waitTimeout, "the instance answers through the gateway", func() (bool, string) {
		code, _, body, err := g.Get(url)
		return err == nil && code == http.StatusOK, fmt.Sprint(code, body, err)
	})
	path := instancePath("acme", "web")
	client := func() *Client { return c.WaitForLeader().Client().WithRetry(10 * time.Second) }

	// Reads, which the gateway may retry, and writes, which it may not
	// once sent: neither may fail.
	underLoad := func(name string, change func()) {
		t.Helper()
		gets := startLoad(g, loadRate, http.MethodGet, url, nil)
		posts := startLoad(g, 50, http.MethodPost, "http://web.acme.drover.localhost/echo", []byte("payload"))
		time.Sleep(500 * time.Millisecond) // traffic flows before the change
		change()
		time.Sleep(500 * time.Millisecond) // and after it
		r := gets.finish()
		checkRate(t, r)
		for _, r := range []loadResult{r, posts.finish()} {
			t.Logf("%s: %s", name, r)
			if r.Failed != 0 {
				t.Errorf("%s: %d of %d requests failed: %v", name, r.Failed, r.Sent, r.Samples)
			}
		}
	}

	underLoad("rolling update of 3 replicas", func() {
		doc := gatewayDemo("web", 3)
		setEnv(doc, "RELEASE", "2")
		client().JSON(http.MethodPut, path, doc, nil)
		waitSettled(t, c, "acme", "web", 3, "at version 2", func(r apiReplica) bool { return r.Version == 2 })
	})

	before := waitSettled(t, c, "acme", "web", 3, "", func(apiReplica) bool { return true })
	underLoad("instance restart", func() {
		client().JSON(http.MethodPost, path+"/restart", nil, nil)
		waitSettled(t, c, "acme", "web", 3, "all new", func(r apiReplica) bool { return !slices.Contains(replicaIDs(before), r.ID) })
	})

	underLoad("scale from 3 to 1", func() {
		client().JSON(http.MethodPost, path+"/scale", map[string]int{"replicas": 1}, nil)
		waitSettled(t, c, "acme", "web", 1, "", func(apiReplica) bool { return true })
	})
	client().JSON(http.MethodPost, path+"/scale", map[string]int{"replicas": 3}, nil)
	rs := waitSettled(t, c, "acme", "web", 3, "", func(apiReplica) bool { return true })

	// Drain the node that runs the most replicas of the instance.
	node := a1.NodeID()
	on := map[string]int{}
	for _, r := range rs {
		on[r.Node]++
	}
	for n, k := range on {
		if k > on[node] {
			node = n
		}
	}
	underLoad("node drain", func() {
		client().JSON(http.MethodPost, "/v1/nodes/"+node+"/drain", map[string]any{"enable": true, "deadline": "1m"}, nil)
		waitSettled(t, c, "acme", "web", 3, "off the drained node", func(r apiReplica) bool { return r.Node != node })
	})
	client().JSON(http.MethodPost, "/v1/nodes/"+node+"/drain", map[string]any{"enable": false}, nil)
	client().JSON(http.MethodPost, "/v1/nodes/"+node+"/eligibility", map[string]any{"eligible": true}, nil)

	underLoad("kill -9 of the leader", func() {
		old := c.WaitForLeader()
		for i, s := range c.Servers() {
			if s == old {
				c.Kill(i)
			}
		}
		c.WaitForNewLeader(old)
		time.Sleep(2 * time.Second) // agents and the gateway move to the new leader
	})
	if got := g.Metrics(); !strings.Contains(got, `drover_gateway_requests_total{code="2xx",instance="web",tenant="acme"}`) {
		t.Errorf("the gateway's metrics have no 2xx count for acme/web:\n%s", got)
	}
}

// TestGatewayReplicaKill kills -9 a replica under load: no idempotent
// request may fail (the gateway retries them on another replica); writes
// in flight on the killed process can fail, and the test reports how many.
func TestGatewayReplicaKill(t *testing.T) {
	c := StartCluster(t, 1)
	s := c.WaitForLeader()
	a := StartAgent(t, c)
	createInstance(t, s, "acme", gatewayDemo("web", 3))
	rs := waitSettled(t, c, "acme", "web", 3, "", func(apiReplica) bool { return true })
	g := StartGateway(t, c, "-response-timeout", "5s")
	gets := startLoad(g, loadRate, http.MethodGet, "http://web.acme.drover.localhost/info", nil)
	posts := startLoad(g, 50, http.MethodPost, "http://web.acme.drover.localhost/echo", []byte("payload"))
	time.Sleep(time.Second)
	victim := mustInfo(t, rs[0].Ports["http"]).PID
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed replica %s (pid %d) on %s", shortID(rs[0].ID), victim, a.Name())
	// The agent restarts it; traffic goes on meanwhile.
	waitReplicas(t, c, "acme", "web", 1, "restarted and healthy", func(r apiReplica) bool {
		return r.ID == rs[0].ID && r.Restarts > 0 && r.State == "healthy"
	})
	time.Sleep(time.Second)
	r := gets.finish()
	checkRate(t, r)
	t.Logf("idempotent (GET): %s", r)
	if r.Failed != 0 {
		t.Errorf("%d GET requests failed: %v", r.Failed, r.Samples)
	}
	w := posts.finish()
	t.Logf("non-idempotent (POST, not retried once sent): %s", w)
}

// TestGatewayFrozenHost freezes a host with SIGSTOP, its agent and its
// replicas: connections to it neither fail nor answer. Traffic must leave
// it (the gateway ejects a replica that does not answer in time, and the
// servers mark the node down after the heartbeat TTL and replace its
// replicas); the test reports the failures and when the last slow answer
// came.
func TestGatewayFrozenHost(t *testing.T) {
	c := StartCluster(t, 1, WithServerArgs("-heartbeat-ttl", schedTTL.String()))
	s := c.WaitForLeader()
	a1 := StartAgent(t, c)
	a2 := StartAgent(t, c)
	createInstance(t, s, "acme", gatewayDemo("web", 2))
	rs := waitSettled(t, c, "acme", "web", 2, "", func(apiReplica) bool { return true })
	if rs[0].Node == rs[1].Node {
		t.Fatalf("both replicas on one node: %s", describeReplicas(rs))
	}
	g := StartGateway(t, c, "-response-timeout", "1s")
	frozen := a2
	pids := append([]int{frozen.PID()}, frozen.ReplicaPIDs()...)
	t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	l := startLoad(g, loadRate, http.MethodGet, "http://web.acme.drover.localhost/info", nil)
	time.Sleep(500 * time.Millisecond)
	frozenAt := time.Now()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	// The servers notice, and place a replacement on the other host.
	waitReplicas(t, c, "acme", "web", 2, "healthy on "+a1.Name(), func(r apiReplica) bool {
		return r.State == "healthy" && r.Node == a1.NodeID()
	})
	replaced := time.Since(frozenAt)
	time.Sleep(time.Second)
	r := l.finish()
	checkRate(t, r)
	t.Logf("host frozen: %s; replaced on the other host after %s", r, replaced.Round(time.Millisecond))
	// After the replacement, the frozen host gets nothing: every answer
	// comes, quickly, from the live host.
	after := startLoad(g, loadRate, http.MethodGet, "http://web.acme.drover.localhost/info", nil)
	time.Sleep(2 * time.Second)
	ar := after.finish()
	t.Logf("after the replacement: %s", ar)
	if ar.Failed != 0 {
		t.Errorf("requests failed after the frozen host's replicas were replaced: %v", ar.Samples)
	}
}

// TestGatewayRouting runs a gateway with a token of role gateway against a
// cluster with ACLs and TLS, and checks what users of instances see: the
// generated and custom names, the headers their app gets, a 404 that names
// nothing, a 503 with Retry-After for an instance with no healthy replica,
// a WebSocket and a streamed answer passed through, and the endpoints the
// API and the CLI show.
func TestGatewayRouting(t *testing.T) {
	ac := startACLCluster(t, aclOptions{tls: true})
	s := ac.leader()
	mgmt := ac.client(s, ac.Mgmt)
	ac.node(ac.startAgent(ac.JoinToken))
	mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "acme"}, nil)
	web := gatewayDemo("web", 1)
	web["domains"] = []string{"crm.acme.test"}
	mgmt.JSON(http.MethodPost, "/v1/tenants/acme/instances", web, nil)
	idle := gatewayDemo("idle", 0)
	mgmt.JSON(http.MethodPost, "/v1/tenants/acme/instances", idle, nil)

	// A custom domain is one instance's only, and never under the
	// gateways' own domain.
	clash := gatewayDemo("other", 1)
	clash["domains"] = []string{"crm.acme.test"}
	if r, _ := mgmt.Try(http.MethodPost, "/v1/tenants/acme/instances", clash); r.Status != http.StatusConflict || !strings.Contains(r.String(), "domains[0]") {
		t.Errorf("a domain another instance has: want 409 naming domains[0], got %s", r)
	}
	clash["domains"] = []string{"x.acme.drover.localhost"}
	if r, _ := mgmt.Try(http.MethodPost, "/v1/tenants/acme/instances", clash); r.Status != http.StatusBadRequest || !strings.Contains(r.String(), "domains[0]") {
		t.Errorf("a domain under the gateways' domain: want 400 naming domains[0], got %s", r)
	}

	// The gateway's token reads routes and nothing else.
	_, gwToken := ac.token("gateway", "")
	if r, _ := ac.client(s, gwToken).Try(http.MethodGet, "/v1/instances", nil); r.Status != http.StatusForbidden {
		t.Errorf("a gateway token lists instances: want 403, got %s", r)
	}
	g := StartGateway(t, ac.Cluster, "-token", gwToken, "-ca-file", ac.caFile)

	var seen struct {
		Host    string      `json:"host"`
		Header  http.Header `json:"header"`
		Replica string      `json:"replica"`
	}
	for _, host := range []string{"web.acme.drover.localhost", "WEB.acme.drover.localhost.", "crm.acme.test"} {
		eventually(t, waitTimeout, host+" answers through the gateway", func() (bool, string) {
			code, _, body, err := g.Get("http://" + host + "/request")
			if err != nil || code != http.StatusOK {
				return false, fmt.Sprint(code, body, err)
			}
			return json.Unmarshal([]byte(body), &seen) == nil, body
		})
		if seen.Header.Get("X-Forwarded-For") != "127.0.0.1" || seen.Header.Get("X-Forwarded-Proto") != "http" ||
			seen.Header.Get("X-Forwarded-Host") != host || seen.Host != host {
			t.Errorf("%s: the app saw host %q and headers %v; want its own host and X-Forwarded-For/Proto/Host", host, seen.Host, seen.Header)
		}
		t.Logf("%s: replica %s saw host %s, X-Forwarded-For %s", host, shortID(seen.Replica), seen.Host, seen.Header.Get("X-Forwarded-For"))
	}

	for _, host := range []string{"nobody.acme.drover.localhost", "web.nobody.drover.localhost", "a.web.acme.drover.localhost", "crm.other.test"} {
		code, _, body, err := g.Get("http://" + host + "/")
		if err != nil || code != http.StatusNotFound || strings.Contains(body, "acme") || strings.Contains(body, "nobody") || strings.Contains(body, "web") {
			t.Errorf("unknown host %s: want a 404 that names nothing, got %d %q %v", host, code, body, err)
		}
	}
	code, hdr, body, err := g.Get("http://idle.acme.drover.localhost/")
	if err != nil || code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("an instance with no healthy replica: want 503 with Retry-After, got %d %v %q %v", code, hdr, body, err)
	}

	// A WebSocket echo, through the gateway.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://web.acme.drover.localhost/ws", &websocket.DialOptions{HTTPClient: g.client})
	if err != nil {
		t.Fatalf("websocket through the gateway: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	for _, msg := range []string{"hello", strings.Repeat("x", 100_000)} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("websocket echo: got %d bytes, %v; want %d bytes back", len(got), err, len(msg))
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// A streamed answer: its first line arrives while the app still holds
	// the second back for 30 seconds. A gateway that buffered answers would
	// deliver nothing before the deadline.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, "http://web.acme.drover.localhost/stream?n=2&every=30s", nil)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("stream through the gateway: %v", err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(line, "line 1 of 2") {
		t.Errorf("streamed answer: first line %q, %v; want it before the answer ends", line, err)
	}

	// Endpoints in the API and the CLI.
	var in struct {
		Endpoints []string `json:"endpoints"`
	}
	mgmt.JSON(http.MethodGet, instancePath("acme", "web"), nil, &in)
	want := []string{"http://web.acme.drover.localhost:4780/", "http://crm.acme.test:4780/"}
	if !slices.Equal(in.Endpoints, want) {
		t.Errorf("endpoints %v, want %v", in.Endpoints, want)
	}
	if out := ac.cli(s, ac.Mgmt, "instance", "status", "acme/web"); !strings.Contains(out, "Endpoints:") || !strings.Contains(out, want[0]) || !strings.Contains(out, want[1]) {
		t.Errorf("drover instance status shows no endpoints:\n%s", out)
	}
}
