package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestCLINodeOperatorAndPromoteVerbs covers the verbs whose success needs a
// real agent or a second server: node status, drain, eligibility, instance
// promote, instance logs and operator raft remove-peer.
func TestCLINodeOperatorAndPromoteVerbs(t *testing.T) {
	c := StartCluster(t, 3, WithFastRaft())
	s := c.WaitForLeader()
	a := StartAgent(t, c)
	node := a.NodeID()

	// node status: the node, its facts and replicas.
	var st struct {
		ID, Status string
		Facts      struct{ OS string }
	}
	cliJSON(t, s, &st, "node", "status", node, "-o", "json")
	if st.ID != node || st.Status != "ready" || st.Facts.OS != "linux" {
		t.Fatalf("node status = %+v", st)
	}
	// The host's load, from gopsutil, kept in the leader's memory.
	eventually(t, waitTimeout, "the node's load in node status", func() (bool, string) {
		var withLoad struct {
			Load *struct {
				MemoryUsedMB int64 `json:"memory_used_mb"`
			} `json:"load"`
		}
		r := runCLI(t, s, "node", "status", node, "-o", "json")
		if json.Unmarshal([]byte(r.stdout), &withLoad) != nil || withLoad.Load == nil {
			return false, r.stdout
		}
		return withLoad.Load.MemoryUsedMB > 0, r.stdout
	})

	// promote: a canary waits for it, then the rest roll.
	doc := demoInstance("web", 2)
	specOf(doc)["update"] = map[string]any{"max_parallel": 1, "min_healthy_time": "500ms", "healthy_deadline": "1m", "canaries": 1}
	createInstance(t, s, "acme", doc)
	waitHealthy(t, c, "acme", "web", 2)
	specOf(doc)["version"] = "2.0.0"
	s.Client().WithRetry(retryBudget).JSON("PUT", "/v1/tenants/acme/instances/web", doc, nil)
	waitReplicas(t, c, "acme", "web", 3, "running: 2 old and 1 healthy canary", func(r apiReplica) bool {
		return r.Version == 1 || r.State == "healthy"
	})
	out := cliOK(t, s, "instance", "promote", "acme/web")
	if !strings.Contains(out, "Promoted") {
		t.Fatalf("promote printed %q", out)
	}
	waitReplicas(t, c, "acme", "web", 2, "healthy at version 2", func(r apiReplica) bool {
		return r.Version == 2 && r.State == "healthy"
	})

	// logs: the demo app prints a line per request.
	if out := cliOK(t, s, "instance", "logs", "acme/web"); !strings.Contains(out, "GET /healthz") {
		t.Fatalf("instance logs printed %q", out)
	}

	// eligibility and drain.
	cliOK(t, s, "node", "eligibility", node, "off")
	var n struct {
		Eligible bool
		Status   string
	}
	cliJSON(t, s, &n, "node", "status", node, "-o", "json")
	if n.Eligible {
		t.Fatalf("node still eligible after eligibility off: %+v", n)
	}
	cliOK(t, s, "node", "eligibility", node, "on")
	cliOK(t, s, "node", "drain", node)
	cliJSON(t, s, &n, "node", "status", node, "-o", "json")
	if n.Status != "draining" {
		t.Fatalf("node status after drain = %q", n.Status)
	}
	cliOK(t, s, "node", "drain", node, "-disable")
	cliJSON(t, s, &n, "node", "status", node, "-o", "json")
	if n.Status != "ready" {
		t.Fatalf("node status after drain -disable = %q", n.Status)
	}

	// remove-peer: a dead follower leaves the Raft configuration.
	f := c.Followers()[0]
	id := f.ID()
	f.Kill()
	cliOK(t, s, "operator", "raft", "remove-peer", id)
	var peers struct {
		Servers []struct{ ID string } `json:"servers"`
	}
	cliJSON(t, s, &peers, "operator", "raft", "list-peers", "-o", "json")
	if len(peers.Servers) != 2 || strings.Contains(fmt.Sprint(peers.Servers), id) {
		t.Fatalf("after remove-peer %s: %+v", id, peers.Servers)
	}
}
