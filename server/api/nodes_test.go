package api_test

import (
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/state"
)

// A node answers what its replicas reserve, and as free what placement
// has left, not the host's idle CPU and available memory.
func TestNodeAnswersReservedAndFree(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	e.addNode("n1", "10.0.0.1")
	must(t, 201, "POST", u+"/v1/tenants", map[string]any{"name": "acme"}, nil)
	doc := webDoc("web")
	doc["spec"].(map[string]any)["resources"] = map[string]any{"cpu_millis": 500, "memory_mb": 1024}
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", doc, nil)
	e.placeReplica("acme/web", "n1", "r1")
	e.placeReplica("acme/web", "n1", "r2")

	var nodes []protocol.Node
	must(t, 200, "GET", u+"/v1/nodes", nil, &nodes)
	if len(nodes) != 1 {
		t.Fatalf("%d nodes", len(nodes))
	}
	n := nodes[0]
	if n.Reserved == nil || n.Reserved.CPUMillis != 1000 || n.Reserved.MemoryMB != 2048 || n.Reserved.Ports != 4 {
		t.Errorf("reserved %+v, want 1000 mCPU, 2048 MB and 4 ports for two replicas", n.Reserved)
	}
	if n.Resources.FreeCPUMillis != 3000 || n.Resources.FreeMemoryMB != 6144 {
		t.Errorf("free %d mCPU, %d MB; want what placement has left, 3000 and 6144", n.Resources.FreeCPUMillis, n.Resources.FreeMemoryMB)
	}
	var one protocol.Node
	must(t, 200, "GET", u+"/v1/nodes/n1", nil, &one)
	if one.Resources.FreeCPUMillis != 3000 {
		t.Errorf("GET /v1/nodes/n1: free %d mCPU, want 3000", one.Resources.FreeCPUMillis)
	}
}

// GET /v1/status counts the live replicas, not those that ended for good.
func TestStatusCountsLiveReplicas(t *testing.T) {
	e := newTrafficEnv(t, server.Config{})
	u := e.url()
	e.addNode("n1", "10.0.0.1")
	must(t, 201, "POST", u+"/v1/tenants", map[string]any{"name": "acme"}, nil)
	must(t, 201, "POST", u+"/v1/tenants/acme/instances", webDoc("web"), nil)
	e.placeReplica("acme/web", "n1", "r1")
	e.placeReplica("acme/web", "n1", "r2")
	e.c.MustPropose(state.CmdPlanApply, state.Plan{Instance: "acme/web", Stop: []state.ReplicaStop{{ID: "r1", Message: "scale down"}}})
	e.report("n1", "r1", protocol.ReplicaStopped, nil)
	var st protocol.ClusterStatus
	must(t, 200, "GET", u+"/v1/status", nil, &st)
	if st.Counts.Replicas != 1 {
		t.Errorf("status counts %d replicas, want 1: r1 ended, r2 lives", st.Counts.Replicas)
	}
}

// A server started with no way to form or join a cluster says what to set
// when asked for its status, instead of "retry" forever.
func TestUnformedServerSaysWhatToSet(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Servers: 1, NoBootstrap: true})
	var body protocol.ErrorBody
	must(t, 503, "GET", c.Servers()[0].URL+"/v1/status", nil, &body)
	if body.Error == nil || !strings.Contains(body.Error.Message, "-bootstrap-expect") || !strings.Contains(body.Error.Message, "-join") {
		t.Errorf("status of a server in no cluster: %+v; want it to name -bootstrap-expect and -join", body.Error)
	}
}
