package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/state"
)

const joinSecret = "test-join-secret"

// A hello with the join token registers the node: the welcome carries its
// new id and secret, the state has it ready with its facts, and the secret
// (kept only as a hash) lets it say hello again as the same node.
func TestHelloWithJoinTokenRegistersNode(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{AgentJoinToken: joinSecret, HeartbeatTTL: 900 * time.Millisecond}})
	leader := e.leader()

	h := testHello("host-a")
	h.JoinToken = secret.JoinToken{Secret: joinSecret}.String() // as operators pass it around
	h.Labels = map[string]string{"disk": "ssd"}
	a, w := e.connect(e.url(), h)

	if w.NodeID == "" || w.NodeSecret == "" {
		t.Fatalf("welcome without node id or secret: %+v", w)
	}
	if got, want := w.HeartbeatInterval.D(), 300*time.Millisecond; got != want {
		t.Errorf("heartbeat interval %s, want a third of the TTL, %s", got, want)
	}
	if !slices.Contains(w.Servers, leader.HTTPAddr) {
		t.Errorf("welcome lists servers %v, without the leader's %s", w.Servers, leader.HTTPAddr)
	}
	n := e.node(w.NodeID)
	if n.Name != "host-a" || n.Status != protocol.NodeReady || !n.Eligible || n.Region != "eu-west" ||
		n.Labels["disk"] != "ssd" || n.Facts.AgentVersion != "1.2.3" || n.PortRange != h.PortRange {
		t.Fatalf("registered node: %+v", n)
	}
	cred := e.snap().Credential(secret.Hash(w.NodeSecret))
	if cred == nil || cred.Kind != state.CredentialNode || cred.Owner != w.NodeID {
		t.Fatalf("credential of the node secret: %+v", cred)
	}
	if got := e.gw().Sessions(); got != 1 {
		t.Fatalf("%d sessions, want 1", got)
	}

	// Again with its secret, without the join token: the same node, no new
	// secret, and the older connection of the node is closed.
	b, w2 := e.connect(e.url(), rejoin("host-a", w, w.NodeSecret))
	if w2.NodeID != w.NodeID || w2.NodeSecret != "" {
		t.Fatalf("welcome of a known node: %+v, want id %s and no secret", w2, w.NodeID)
	}
	if ce := a.closedBy(); ce.Code != websocket.StatusPolicyViolation {
		t.Fatalf("the replaced connection ended with %v, want policy violation", ce)
	}
	if got := len(e.snap().Nodes()); got != 1 {
		t.Fatalf("%d nodes after the same node said hello again, want 1", got)
	}
	// The newer session is the node's: it still gets its assignments.
	inst := e.instance("acme", "crm")
	e.place(inst, w.NodeID, "r1")
	for {
		as := clustertest.Decode[protocol.Assign](t, b.next(protocol.MsgAssign))
		if len(as.Replicas) == 1 && as.Replicas[0].ID == "r1" {
			break
		}
	}
}

// A node that redials as it was (a leader change makes the whole fleet
// do so) is not registered again: no Raft entry. What the host reports as
// free, and its CPU's clock, do not count as a change; a label does.
func TestReconnectOfAnUnchangedNodeWritesNothing(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	before := e.node(w.NodeID)

	a.ws.CloseNow()
	h := rejoin("host-a", w, w.NodeSecret)
	h.Resources.FreeMemoryMB -= 100
	h.Facts.CPUMHz = 2400
	b, _ := e.connect(e.url(), h)
	if n := e.node(w.NodeID); n.ModifyIndex != before.ModifyIndex || n.Status != protocol.NodeReady {
		t.Errorf("the unchanged node's reconnect changed it: modify index %d -> %d, status %s",
			before.ModifyIndex, n.ModifyIndex, n.Status)
	}
	b.next(protocol.MsgAssign) // the session is served as any other

	b.ws.CloseNow()
	h.Labels = map[string]string{"disk": "ssd"}
	e.connect(e.url(), h)
	if n := e.node(w.NodeID); n.ModifyIndex == before.ModifyIndex || n.Labels["disk"] != "ssd" {
		t.Errorf("a reconnect with a new label left the node as it was: %+v", n)
	}
}

// The join token that the ACL bootstrap made, whose hash the state keeps,
// registers agents as well as the configured one; with ACLs required and
// neither, nobody registers.
func TestJoinTokenSources(t *testing.T) {
	t.Run("acl bootstrap", func(t *testing.T) {
		e := newEnv(t, envConfig{Server: server.Config{ACL: true}})
		e.c.MustPropose(state.CmdACLBootstrap, state.ACLBootstrap{
			Token:         protocol.Token{ID: "boot", Role: protocol.RoleManagement},
			SecretHash:    secret.Hash("management-secret"),
			JoinTokenHash: secret.Hash("bootstrap-join"),
		})
		e.c.WaitForReplication()
		h := testHello("host-a")
		h.JoinToken = "bootstrap-join"
		_, w := e.connect(e.url(), h)
		e.node(w.NodeID)

		h.JoinToken = joinSecret
		checkRefused(t, e, h, protocol.CodeUnauthenticated)
	})
	t.Run("required but none exists", func(t *testing.T) {
		e := newEnv(t, envConfig{Server: server.Config{ACL: true}})
		h := testHello("host-a")
		h.JoinToken = "anything"
		checkRefused(t, e, h, protocol.CodeUnauthenticated)
		h.JoinToken = ""
		checkRefused(t, e, h, protocol.CodeUnauthenticated)
	})
	t.Run("none configured", func(t *testing.T) {
		e := newEnv(t, envConfig{})
		_, w := e.register("host-a")
		e.node(w.NodeID)
	})
}

// checkRefused sends first to the leader and checks that the gateway
// answers an error of code with a message, closes the connection, and
// registers nothing.
func checkRefused(t *testing.T, e *testEnv, first any, code protocol.Code) {
	t.Helper()
	before, sessions := len(e.snap().Nodes()), e.gw().Sessions()
	a := dialAgent(t, e.url())
	typ := protocol.MsgHello
	if _, ok := first.(protocol.Status); ok {
		typ = protocol.MsgStatus
	}
	a.send(typ, first)
	a.startReading()
	env := a.nextAny()
	if env.Type != protocol.MsgError {
		t.Fatalf("answered %s %s, want an error", env.Type, env.Body)
	}
	eb := clustertest.Decode[protocol.ChannelError](t, env)
	if eb.Code != code || eb.Message == "" {
		t.Fatalf("error %+v, want code %s with a message", eb, code)
	}
	if ce := a.closedBy(); ce.Code != websocket.StatusPolicyViolation {
		t.Fatalf("connection ended with %v, want policy violation", ce)
	}
	if m := a.take(func(*protocol.Envelope) bool { return true }); m != nil {
		t.Fatalf("refused agent got %s %s", m.Type, m.Body)
	}
	if after := len(e.snap().Nodes()); after != before {
		t.Fatalf("a refused hello changed the nodes: %d, then %d", before, after)
	}
	if got := e.gw().Sessions(); got > sessions {
		t.Fatalf("%d sessions after a refusal, %d before", got, sessions)
	}
}

// Wrong credentials, wrong first messages and invalid hellos are refused
// with an error message and the connection is closed.
func TestHelloRefused(t *testing.T) {
	e := newEnv(t, envConfig{Server: server.Config{AgentJoinToken: joinSecret}})
	ok := testHello("host-a")
	ok.JoinToken = joinSecret
	a, w := e.connect(e.url(), ok)
	a.ws.CloseNow()
	other := testHello("host-b")
	other.JoinToken = joinSecret
	b, wb := e.connect(e.url(), other)
	b.ws.CloseNow()
	testwait.Eventually(t, wait, "both sessions to end", func() error {
		if n := e.gw().Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})

	with := func(f func(h *protocol.Hello)) protocol.Hello {
		h := testHello("host-c")
		f(&h)
		return h
	}
	tests := []struct {
		name  string
		first any
		code  protocol.Code
	}{
		{"wrong join token", with(func(h *protocol.Hello) { h.JoinToken = "guess" }), "unauthenticated"},
		{"no join token", with(func(h *protocol.Hello) {}), "unauthenticated"},
		{"wrong node secret", rejoin("host-a", w, secret.New()), "unauthenticated"},
		{"another node's secret", rejoin("host-a", w, wb.NodeSecret), "unauthenticated"},
		{"unknown node", with(func(h *protocol.Hello) { h.NodeID, h.NodeSecret = "no-such-node", w.NodeSecret }), "unauthenticated"},
		{"protocol version", with(func(h *protocol.Hello) { h.JoinToken, h.ProtocolVersion = joinSecret, protocol.AgentProtocolVersion+1 }), "invalid_argument"},
		{"invalid hello", with(func(h *protocol.Hello) { h.JoinToken, h.PortRange = joinSecret, protocol.PortRange{Lo: 9, Hi: 2} }), "invalid_argument"},
		{"status before hello", protocol.Status{Seq: 1}, "invalid_argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkRefused(t, e, tc.first, tc.code) })
	}
	// The node whose secret was guessed at is still whole.
	if n := e.node(w.NodeID); n.Revoked || n.Name != "host-a" {
		t.Fatalf("node after refused hellos: %+v", n)
	}
}

// Revoking a node ends its session (CloseNode, as the API calls it) and its
// secret no longer says hello.
func TestRevokedNodeRefused(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, w := e.register("host-a")
	e.c.MustPropose(state.CmdNodeRevoke, state.NameBody{Name: w.NodeID})
	e.gw().CloseNode(w.NodeID)
	if ce := a.closedBy(); ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "revoked") {
		t.Fatalf("revoked node's session ended with %v", ce)
	}
	checkRefused(t, e, rejoin("host-a", w, w.NodeSecret), protocol.CodeUnauthenticated)
}

// A follower answers a hello with not_leader and the leader's HTTP address,
// and closes; it registers nothing.
func TestFollowerRedirectsToLeader(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	leader := e.leader()
	for _, f := range e.c.Followers() {
		a := dialAgent(t, f.URL)
		a.send(protocol.MsgHello, testHello("host-a"))
		a.startReading()
		env := a.nextAny()
		if env.Type != protocol.MsgError {
			t.Fatalf("%s answered %s %s, want not_leader", f.ID, env.Type, env.Body)
		}
		eb := clustertest.Decode[protocol.ChannelError](t, env)
		var r protocol.Redirect
		if eb.Code != protocol.CodeNotLeader || jsonDecode(eb.Body, &r) != nil || r.Leader != leader.HTTPAddr {
			t.Fatalf("%s answered %+v (%s), want not_leader to %s", f.ID, eb, eb.Body, leader.HTTPAddr)
		}
		if ce := a.closedBy(); ce.Code != websocket.StatusTryAgainLater {
			t.Fatalf("%s ended the connection with %v, want try again later", f.ID, ce)
		}
	}
	if n := len(e.snap().Nodes()); n != 0 {
		t.Fatalf("%d nodes registered through followers", n)
	}
}

// A node's address, where the traffic gateways reach its replicas, is the
// one its hello gives, else the host its connection comes from; each hello
// sets it again. GET /v1/routes sends an instance's traffic there, to the
// port the agent reported. A hello whose address is no IP is refused.
func TestNodeAddress(t *testing.T) {
	e := newEnv(t, envConfig{})
	apiNode := func(id string) protocol.Node {
		t.Helper()
		var n protocol.Node
		if err := jsonDecode(httpGet(t, e.url()+"/v1/nodes/"+id), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	a, wa := e.register("host-a") // dials 127.0.0.1
	if got := e.node(wa.NodeID).Address; got != "127.0.0.1" {
		t.Fatalf("address of a node that connects from 127.0.0.1 and names none: %q", got)
	}
	if got := apiNode(wa.NodeID).Address; got != "127.0.0.1" {
		t.Fatalf("GET /v1/nodes/%s answers address %q", wa.NodeID, got)
	}

	hb := testHello("host-b")
	hb.Address = "10.1.2.3"
	b, wb := e.connect(e.url(), hb)
	if got := e.node(wb.NodeID).Address; got != "10.1.2.3" {
		t.Fatalf("address of a node whose hello says 10.1.2.3: %q", got)
	}

	// Each hello sets it again: without one, the connection's; another.
	b.ws.CloseNow()
	b, _ = e.connect(e.url(), rejoin("host-b", wb, wb.NodeSecret))
	if got := e.node(wb.NodeID).Address; got != "127.0.0.1" {
		t.Fatalf("address after a hello without one: %q, want the connection's", got)
	}
	b.ws.CloseNow()
	again := rejoin("host-b", wb, wb.NodeSecret)
	again.Address = "2001:db8::5"
	b, _ = e.connect(e.url(), again)
	if got := e.node(wb.NodeID).Address; got != "2001:db8::5" {
		t.Fatalf("address after a hello naming 2001:db8::5: %q", got)
	}

	// The routing table sends traffic to each node's address.
	inst := e.instance("acme", "crm")
	e.place(inst, wa.NodeID, "ra")
	e.place(inst, wb.NodeID, "rb")
	a.send(protocol.MsgStatus, protocol.Status{Seq: 1, Replicas: []protocol.ReplicaReport{{ID: "ra", State: protocol.ReplicaHealthy, Ports: map[string]int{"http": 20001}}}})
	b.send(protocol.MsgStatus, protocol.Status{Seq: 1, Replicas: []protocol.ReplicaReport{{ID: "rb", State: protocol.ReplicaHealthy, Ports: map[string]int{"http": 20002}}}})
	want := map[string]string{"ra": "127.0.0.1:20001", "rb": "[2001:db8::5]:20002"}
	testwait.Eventually(t, wait, "both replicas in GET /v1/routes", func() error {
		var rs protocol.Routes
		if err := jsonDecode(httpGet(t, e.url()+"/v1/routes"), &rs); err != nil {
			return err
		}
		got := map[string]string{}
		for _, rt := range rs.Routes {
			for _, be := range rt.Backends {
				got[be.Replica] = be.Addr
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("backends %v, want %v", got, want)
		}
		return nil
	})

	bad := testHello("host-c")
	bad.Address = "gw.example.com"
	checkRefused(t, e, bad, protocol.CodeInvalidArgument)
}

// httpGet answers the body of a GET that must answer 200.
func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s (%v)", url, resp.StatusCode, b, err)
	}
	return b
}
