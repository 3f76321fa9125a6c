package e2e

// Scenarios of the issue "Scheduler": placement across real agents, the
// replacement of a dead node's replicas, rolling updates that keep the
// instance healthy, rollback of a version that never gets healthy, scaling
// and the lifecycle verbs, drains, and replicas that wait for a node that
// fits. Each asserts what a user sees through the API, the CLI and the
// replicas' own ports and processes.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// An instance of 3 replicas on 3 nodes gets one replica on each, and each
// replica's process runs on the node the API names. The CLI's create waits
// until they are healthy and exits 0.
func TestSchedulerSpreadsReplicasAcrossNodes(t *testing.T) {
	f := startSchedFleet(t, 3)
	r := f.cli("instance", "create", "-f", f.instanceFile(schedDoc(f.name, 3), "v1"), "-timeout", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, "Instance acme/web version 1 is healthy: 3/3 replicas healthy") {
		t.Fatalf("instance create, want exit 0 once healthy: %s", r)
	}
	rs := f.waitSettled(3, 1, "after create", nil)
	for node, n := range nodesOf(rs) {
		if n != 1 || f.agentOf(node) == nil {
			t.Errorf("%d replicas on node %s, want one on each agent's node: %s", n, f.nodeName(node), f.describe(rs))
		}
	}
	for _, rep := range rs {
		info := mustInfo(t, rep.Ports["http"])
		a := f.agentOf(rep.Node)
		if info.Replica != rep.ID || a == nil || !slices.Contains(a.ReplicaPIDs(), info.PID) {
			t.Errorf("replica %s on %s: the process on port %d is replica %s, pid %d, not one of %s's",
				shortID(rep.ID), f.nodeName(rep.Node), rep.Ports["http"], shortID(info.Replica), info.PID, f.nodeName(rep.Node))
		}
	}
}

// A node that dies with its processes has its replicas replaced on the
// other nodes; when it comes back, the replica it ran is stopped there,
// never run beside its replacement.
func TestSchedulerReplacesReplicasOfDeadNode(t *testing.T) {
	f := startSchedFleet(t, 3)
	createInstance(t, f.s, f.tenant, schedDoc(f.name, 3))
	before := f.waitSettled(3, 1, "after create", func(rs []schedReplica) (bool, string) {
		return len(nodesOf(rs)) == 3, "want one replica on each node"
	})
	victim := f.agents[0]
	var lost schedReplica
	for _, r := range before {
		if r.Node == victim.NodeID() {
			lost = r
		}
	}

	start := time.Now()
	killHost(victim)
	after := f.waitSettled(3, 1, "replacement of the dead node's replica", func(rs []schedReplica) (bool, string) {
		return nodesOf(rs)[victim.NodeID()] == 0, "a replica is still on the dead node"
	})
	recordTiming(t, "node death to 3 healthy replicas", time.Since(start))
	t.Logf("heartbeat TTL %v; replicas after: %s", schedTTL, f.describe(after))
	if n := victim.Node(); n.Status != "down" {
		t.Errorf("dead node's status is %q, want down", n.Status)
	}
	rs, err := f.replicas()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == lost.ID && (r.Desired != "stop" || r.State != "lost") {
			t.Errorf("replica of the dead node: %s, want desired stop and state lost", f.describe([]schedReplica{r}))
		}
	}
	survivors := slices.DeleteFunc(slices.Clone(f.agents), func(a *Agent) bool { return a == victim })
	f.waitProcesses(idsOf(after), survivors...)

	// The node comes back: the replica it ran must not run again, not even
	// for a moment. Watch the processes of the instance on every node, and
	// the replicas the servers want, until the node has settled.
	var mostProcs int
	var worst string
	procs := watchEvery(5*time.Millisecond, func() string {
		m := replicaProcesses(f.agents...)
		if n := countProcs(m); n > mostProcs {
			mostProcs = n
			worst = fmt.Sprint(m)
		}
		return ""
	})
	wanted := f.watchReplicas(0, 3)
	victim.Restart()
	eventually(t, waitTimeout, "the dead node's replica stopped after the node came back", func() (bool, string) {
		rs, err := f.replicas()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range rs {
			if r.ID == lost.ID {
				return r.State == "stopped", f.describe(rs)
			}
		}
		return true, "gone from the list: " + f.describe(rs) // collected
	})
	final := f.waitSettled(3, 1, "after the node came back", nil)
	if !slices.Equal(idsOf(final), idsOf(after)) {
		t.Errorf("replicas changed when the node came back: %s, were %s", f.describe(final), f.describe(after))
	}
	f.waitProcesses(idsOf(final))
	procs.finish(t, "process watch")
	wanted.finish(t, "at most 3 replicas wanted while the node came back")
	if mostProcs > 3 {
		t.Errorf("up to %d processes of the instance ran while the node came back (%s), want at most 3", mostProcs, worst)
	}
	rs, err = f.replicas()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == lost.ID && r.Restarts != lost.Restarts {
			t.Errorf("the replaced replica was started again on its node: %s", f.describe([]schedReplica{r}))
		}
	}
}

// A spec update rolls create-before-destroy: polled every 100 ms, the
// instance never has fewer healthy replicas than it wants, and it ends with
// every replica on the new version. The CLI's update waits for that.
func TestSchedulerRollingUpdateKeepsReplicasHealthy(t *testing.T) {
	f := startSchedFleet(t, 3)
	doc := schedDoc(f.name, 3)
	createInstance(t, f.s, f.tenant, doc)
	v1 := f.waitSettled(3, 1, "after create", nil)

	// max_parallel 1: one replica more than wanted at most.
	w := f.watchReplicas(3, 4)
	specOf(doc)["version"] = "2.0.0"
	setEnv(doc, "RELEASE", "2")
	r := f.cli("instance", "update", "acme/web", "-f", f.instanceFile(doc, "v2"), "-timeout", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, "Instance acme/web version 2 is healthy: 3/3 replicas healthy") {
		t.Errorf("instance update, want exit 0 once healthy: %s", r)
	}
	v2 := f.waitSettled(3, 2, "after the update", nil)
	w.finish(t, "3 healthy and at most 4 wanted replicas throughout the update")

	for _, id := range idsOf(v2) {
		if slices.Contains(idsOf(v1), id) {
			t.Errorf("replica %s of version 1 still runs: %s", shortID(id), f.describe(v2))
		}
	}
	in := f.mustInstance()
	if in.Version != 2 || in.Spec.Version != "2.0.0" || in.StableVersion != 2 || in.Deployment == nil || in.Deployment.State != "successful" {
		t.Errorf("instance after the update: version %d (spec %s), stable %d, deployment %+v", in.Version, in.Spec.Version, in.StableVersion, in.Deployment)
	}
	for _, rep := range v2 {
		if got := mustInfo(t, rep.Ports["http"]).Replica; got != rep.ID {
			t.Errorf("port %d of replica %s answers as %s", rep.Ports["http"], shortID(rep.ID), shortID(got))
		}
	}
	f.waitProcesses(idsOf(v2))
}

// An update to a version whose health check never passes fails at its
// healthy_deadline and rolls back; the old replicas serve throughout, and
// the CLI's update exits 1 saying why.
func TestSchedulerFailedUpdateRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 10 s healthy deadline")
	}
	f := startSchedFleet(t, 3)
	doc := schedDoc(f.name, 3)
	createInstance(t, f.s, f.tenant, doc)
	v1 := f.waitSettled(3, 1, "after create", nil)
	var ports []int
	for _, r := range v1 {
		ports = append(ports, r.Ports["http"])
	}

	serving := watchPorts(ports)
	healthy := f.watchReplicas(3, 4)
	specOf(doc)["version"] = "2.0.0-broken"
	setEnv(doc, "DEMO_FAIL_HEALTH", "1")
	specOf(doc)["update"].(map[string]any)["healthy_deadline"] = "10s"
	start := time.Now()
	r := f.cli("instance", "update", "acme/web", "-f", f.instanceFile(doc, "v2"), "-timeout", "1m")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: version 2 was rolled back") || !strings.Contains(r.stderr, "not healthy within 10s") {
		t.Errorf("instance update to a version never healthy: want exit 1 saying it was rolled back as not healthy within 10s: %s", r)
	}
	t.Logf("the CLI returned after %v:\n%s", time.Since(start).Round(time.Millisecond), r.stderr)

	// Version 3 has the spec of version 1: its replicas run on, untouched.
	final := f.waitSettled(3, 1, "after the rollback", func(rs []schedReplica) (bool, string) {
		return slices.Equal(idsOf(rs), idsOf(v1)), "want the replicas of version 1"
	})
	in := f.mustInstance()
	if in.Version != 3 || in.Spec.Version != "1.0.0" || in.Spec.Env["DEMO_FAIL_HEALTH"] != "" || in.StableVersion != 3 ||
		in.Deployment == nil || !in.Deployment.Rollback || in.Deployment.State != "successful" {
		t.Errorf("instance after the rollback: version %d with spec %s %v, stable %d, deployment %+v; want version 3, stable, with the spec of version 1 and a successful rollback",
			in.Version, in.Spec.Version, in.Spec.Env, in.StableVersion, in.Deployment)
	}
	evs, err := f.events()
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, e := range evs {
		if e.Type == "deployment" {
			said = append(said, e.Message)
		}
	}
	if all := strings.Join(said, "\n"); !strings.Contains(all, "not healthy within 10s") || !strings.Contains(all, "rolling back to version 1") {
		t.Errorf("deployment events do not tell the failure and the rollback:\n%s", all)
	}
	serving.finish(t, "the old replicas answering /healthz 200")
	healthy.finish(t, "3 healthy and at most 4 wanted replicas throughout")
	f.waitProcesses(idsOf(final))
}

// Creating an instance whose health check never passes: the CLI's create
// gives up at the spec's healthy_deadline with exit 1, naming the reason.
func TestSchedulerCreateNeverHealthyFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 5 s healthy deadline")
	}
	f := startSchedFleet(t, 2)
	doc := schedDoc(f.name, 2)
	setEnv(doc, "DEMO_FAIL_HEALTH", "1")
	specOf(doc)["update"].(map[string]any)["healthy_deadline"] = "5s"
	r := f.cli("instance", "create", "-f", f.instanceFile(doc, "broken"), "-timeout", "30s")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, "not healthy within 5s") ||
		!strings.Contains(r.stderr, "500") || strings.Contains(r.stderr, "timed out") {
		t.Errorf("instance create of a version never healthy: want exit 1 at the healthy deadline, naming the failing check: %s", r)
	}
	t.Logf("drover instance create said:\n%s", r.stderr)
}

// Scaling, stop, start and restart each end with the replicas asked for,
// their processes, and the version; restart replaces every replica without
// the instance dropping below its healthy count.
func TestSchedulerScaleStopStartRestart(t *testing.T) {
	f := startSchedFleet(t, 3)
	createInstance(t, f.s, f.tenant, schedDoc(f.name, 3))
	f.waitSettled(3, 1, "after create", nil)

	spread := func(rs []schedReplica) (bool, string) {
		for _, n := range nodesOf(rs) {
			if n > (len(rs)+len(f.agents)-1)/len(f.agents) {
				return false, "replicas not spread across the nodes"
			}
		}
		return true, ""
	}
	var rs []schedReplica
	for _, n := range []int{5, 1, 0, 2} {
		if r := f.cli("instance", "scale", "acme/web", fmt.Sprint(n)); r.code != 0 {
			t.Fatalf("scale to %d: %s", n, r)
		}
		rs = f.waitSettled(n, 1, fmt.Sprintf("scaled to %d", n), spread)
		f.waitProcesses(idsOf(rs))
	}

	f.s.Client().JSON(http.MethodPost, f.path("/stop"), nil, nil)
	f.waitSettled(0, 0, "stopped", nil)
	f.waitProcesses(nil)
	if in := f.mustInstance(); in.Status.State != "stopped" || !in.Stopped || in.Replicas != 2 {
		t.Errorf("after stop: state %s, stopped %v, replicas %d", in.Status.State, in.Stopped, in.Replicas)
	}

	f.s.Client().JSON(http.MethodPost, f.path("/start"), nil, nil)
	started := f.waitSettled(2, 1, "started", spread)
	f.waitProcesses(idsOf(started))

	// A restart rolls like an update, create before destroy.
	w := f.watchReplicas(2, 3)
	f.s.Client().JSON(http.MethodPost, f.path("/restart"), nil, nil)
	restarted := f.waitSettled(2, 1, "restarted", func(rs []schedReplica) (bool, string) {
		for _, r := range rs {
			if slices.Contains(idsOf(started), r.ID) {
				return false, "a replica from before the restart still runs"
			}
		}
		return spread(rs)
	})
	w.finish(t, "2 healthy and at most 3 wanted replicas throughout the restart")
	f.waitProcesses(idsOf(restarted))
	if in := f.mustInstance(); in.Version != 1 || in.Status.State != "running" {
		t.Errorf("after restart: version %d, state %s; want version 1 running", in.Version, in.Status.State)
	}
}

// Draining a node moves each of its replicas elsewhere, create before
// destroy: polled every 100 ms, the instance never has fewer healthy
// replicas than it wants.
func TestSchedulerDrainMovesReplicasOff(t *testing.T) {
	f := startSchedFleet(t, 3)
	createInstance(t, f.s, f.tenant, schedDoc(f.name, 3))
	f.waitSettled(3, 1, "after create", func(rs []schedReplica) (bool, string) {
		return len(nodesOf(rs)) == 3, "want one replica on each node"
	})
	drained := f.agents[0]

	w := f.watchReplicas(3, 4)
	f.s.Client().JSON(http.MethodPost, "/v1/nodes/"+drained.NodeID()+"/drain", map[string]any{"enable": true, "deadline": "1m"}, nil)
	rs := f.waitSettled(3, 1, "the drain", func(rs []schedReplica) (bool, string) {
		return nodesOf(rs)[drained.NodeID()] == 0, "a replica is still on the drained node"
	})
	f.waitProcesses(idsOf(rs))
	w.finish(t, "3 healthy and at most 4 wanted replicas throughout the drain")
	if n := drained.Node(); n.Status != "draining" {
		t.Errorf("drained node's status is %q, want draining", n.Status)
	}
	if pids := drained.ReplicaPIDs(); len(pids) != 0 {
		t.Errorf("processes %v still run on the drained node", pids)
	}
}

// A replica no node can take waits, pending, with the reason in its
// message and the events; it is placed once a node that fits joins.
func TestSchedulerPendingUntilANodeFits(t *testing.T) {
	f := startSchedFleet(t, 2)
	doc := schedDoc(f.name, 2)
	specOf(doc)["constraints"] = map[string]any{"labels": map[string]string{"tier": "gold"}}
	createInstance(t, f.s, f.tenant, doc)
	f.waitPending(2, "tier=gold")

	gold := StartAgent(t, f.c, WithLabel("tier", "gold"))
	f.agents = append(f.agents, gold)
	rs := f.waitSettled(2, 1, "placement on the gold node", func(rs []schedReplica) (bool, string) {
		return nodesOf(rs)[gold.NodeID()] == 2, "want both replicas on the gold node"
	})
	f.waitProcesses(idsOf(rs), gold)
}

// A replica that needs more memory, or more CPU, than any node has waits,
// pending, naming the resource and that no node is large enough.
func TestSchedulerPendingNamesTheResource(t *testing.T) {
	f := startSchedFleet(t, 2)
	for _, tc := range []struct {
		name      string
		resources map[string]any
		reason    string
	}{
		{"big-memory", map[string]any{"memory_mb": 4_000_000}, "no node is large enough: 2 nodes: 2 with less than 4000000 MB in all"},
		{"big-cpu", map[string]any{"cpu_millis": 1_000_000}, "no node is large enough: 2 nodes: 2 with less than 1000000 mCPU in all"},
	} {
		f.name = tc.name
		doc := schedDoc(tc.name, 1)
		specOf(doc)["resources"] = tc.resources
		createInstance(t, f.s, f.tenant, doc)
		f.waitPending(1, tc.reason)
	}
	// drover instance create says so at once, instead of waiting its
	// whole timeout, and leaves the replica pending.
	doc := schedDoc("too-big", 1)
	specOf(doc)["resources"] = map[string]any{"memory_mb": 4_000_000}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "too-big.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	cliFails(t, f.s, 1, "no node is large enough", "instance", "create", "-tenant", f.tenant, "-f", file, "-timeout", "2m")
	t.Logf("create of an instance no node can run ended after %s", time.Since(started).Round(time.Millisecond))
	f.name = "too-big"
	f.waitPending(1, "no node is large enough")
}

// waitPending waits until the instance has n replicas waiting for a node,
// each saying why with reason, and an event that says so too.
func (f *schedFleet) waitPending(n int, reason string) {
	f.t.Helper()
	eventually(f.t, waitTimeout, fmt.Sprintf("%d replicas pending with %q in their message and an event", n, reason), func() (bool, string) {
		rs, err := f.replicas()
		if err != nil {
			return false, err.Error()
		}
		evs, err := f.events()
		if err != nil {
			return false, err.Error()
		}
		pending := 0
		for _, r := range wantedOf(rs) {
			if r.State == "pending" && r.Node == "" && strings.Contains(r.Message, reason) {
				pending++
			}
		}
		told := false
		for _, e := range evs {
			told = told || e.Type == "replica-pending" && strings.Contains(e.Message, reason)
		}
		return pending == n && len(wantedOf(rs)) == n && told, fmt.Sprintf("replicas %s; events %+v", f.describe(rs), evs)
	})
}
