package e2e

// Helpers of the scheduler scenarios (scheduler_test.go): a fleet of one
// server with a short heartbeat TTL and a few agents, the instance and
// replica documents with the fields those scenarios read, watchers that
// poll the API (or the replicas' own ports) in the background and remember
// the worst they saw, and the processes of an instance found in /proc.
// They build on the agent harness (StartAgent, demoInstance, ...).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/proctest"
)

// schedTTL is the servers' -heartbeat-ttl in these scenarios: a killed
// node is noticed within it.
const schedTTL = 2 * time.Second

// schedFleet is one server and its agents, running one instance of the
// demo app under test.
type schedFleet struct {
	t      *testing.T
	c      *Cluster
	s      *Server
	agents []*Agent
	tenant string
	name   string
}

// startSchedFleet starts a one-server cluster with a short heartbeat TTL
// and n agents, each ready, creates the tenant and names the instance the
// test will run.
func startSchedFleet(t *testing.T, n int) *schedFleet {
	t.Helper()
	c := StartCluster(t, 1, WithServerArgs("-heartbeat-ttl", schedTTL.String()))
	f := &schedFleet{t: t, c: c, s: c.WaitForLeader(), tenant: "acme", name: "web"}
	createTenant(t, f.s, f.tenant)
	for range n {
		f.agents = append(f.agents, StartAgent(t, c))
	}
	return f
}

// schedDoc is the demo app's instance document with the short timings of
// these scenarios: replicas count as settled after 1 s healthy.
func schedDoc(name string, replicas int) map[string]any {
	doc := demoInstance(name, replicas)
	specOf(doc)["update"] = map[string]any{
		"max_parallel": 1, "min_healthy_time": "1s", "healthy_deadline": "30s", "auto_rollback": true,
	}
	return doc
}

// path is the API path of the instance, with suffix appended.
func (f *schedFleet) path(suffix string) string { return instancePath(f.tenant, f.name) + suffix }

// agentOf returns the agent whose node has id node, or nil.
func (f *schedFleet) agentOf(node string) *Agent {
	for _, a := range f.agents {
		if a.NodeID() == node {
			return a
		}
	}
	return nil
}

// nodeName names a node id by its agent's name, for messages.
func (f *schedFleet) nodeName(node string) string {
	if a := f.agentOf(node); a != nil {
		return a.Name()
	}
	if node == "" {
		return "no node"
	}
	return shortID(node)
}

// schedReplica is a replica of GET .../replicas with what the scheduler
// wants of it.
type schedReplica struct {
	apiReplica
	Desired string `json:"desired"`
}

// wanted reports whether the servers want the replica to run and it has
// not ended: it counts towards the instance's replicas.
func (r schedReplica) wanted() bool {
	switch r.State {
	case "stopped", "failed", "lost":
		return false
	}
	return r.Desired == "run"
}

func (r schedReplica) healthy() bool { return r.wanted() && r.State == "healthy" }

// schedInstance is an instance document with its status and deployment.
type schedInstance struct {
	ID            string `json:"id"`
	Replicas      int    `json:"replicas"`
	Stopped       bool   `json:"stopped"`
	Version       uint64 `json:"version"`
	StableVersion uint64 `json:"stable_version"`
	Spec          struct {
		Version string            `json:"version"`
		Env     map[string]string `json:"env"`
	} `json:"spec"`
	Deployment *schedDeployment `json:"deployment"`
	Status     struct {
		State    string `json:"state"`
		Replicas struct {
			Desired int `json:"desired"`
			Healthy int `json:"healthy"`
		} `json:"replicas"`
	} `json:"status"`
}

type schedDeployment struct {
	ID          string `json:"id"`
	FromVersion uint64 `json:"from_version"`
	ToVersion   uint64 `json:"to_version"`
	State       string `json:"state"`
	Message     string `json:"message"`
	Rollback    bool   `json:"rollback"`
}

type schedEvent struct {
	Type    string `json:"type"`
	Replica string `json:"replica"`
	Message string `json:"message"`
}

// get decodes GET path (through the server) into out; it never fails the
// test, for polls and goroutines.
func (f *schedFleet) get(path string, out any) error {
	r, err := f.s.Client().WithTimeout(5*time.Second).Try(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("%s", r)
	}
	return r.Decode(out)
}

func (f *schedFleet) replicas() ([]schedReplica, error) {
	var rs []schedReplica
	return rs, f.get(f.path("/replicas"), &rs)
}

func (f *schedFleet) instance() (schedInstance, error) {
	var in schedInstance
	return in, f.get(f.path(""), &in)
}

func (f *schedFleet) events() ([]schedEvent, error) {
	var evs []schedEvent
	return evs, f.get(f.path("/events"), &evs)
}

// mustInstance is instance for the test's goroutine.
func (f *schedFleet) mustInstance() schedInstance {
	f.t.Helper()
	in, err := f.instance()
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

// describe puts replicas on one line with their node's and version, for
// messages.
func (f *schedFleet) describe(rs []schedReplica) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s %s/%s v%d on %s %s", shortID(r.ID), r.Desired, r.State, r.Version, f.nodeName(r.Node), strconv.Quote(r.Message)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func wantedOf(rs []schedReplica) []schedReplica {
	var out []schedReplica
	for _, r := range rs {
		if r.wanted() {
			out = append(out, r)
		}
	}
	return out
}

func countHealthy(rs []schedReplica) int {
	n := 0
	for _, r := range rs {
		if r.healthy() {
			n++
		}
	}
	return n
}

// waitSettled waits until the instance runs exactly n replicas, every one
// healthy and of instance version version (any version when 0), and cond
// holds of them (when not nil); it returns them.
func (f *schedFleet) waitSettled(n int, version uint64, what string, cond func([]schedReplica) (bool, string)) []schedReplica {
	f.t.Helper()
	var out []schedReplica
	eventually(f.t, waitTimeout, fmt.Sprintf("%s: %d healthy replicas of version %d", what, n, version), func() (bool, string) {
		rs, err := f.replicas()
		if err != nil {
			return false, err.Error()
		}
		out = wantedOf(rs)
		desc := f.describe(rs)
		if len(out) != n || countHealthy(out) != n {
			return false, desc
		}
		for _, r := range out {
			if version != 0 && r.Version != version {
				return false, desc
			}
		}
		if cond != nil {
			ok, why := cond(out)
			return ok, why + "; " + desc
		}
		return true, desc
	})
	return out
}

// idsOf returns the replicas' ids, sorted.
func idsOf(rs []schedReplica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	sort.Strings(out)
	return out
}

// nodesOf counts the replicas on each node.
func nodesOf(rs []schedReplica) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r.Node]++
	}
	return m
}

// schedWatcher runs a check in the background every interval until it is
// finished, and remembers every time the check did not hold.
type schedWatcher struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	polls int
	bad   []string
}

// watchEvery starts calling check every interval; check returns "" when
// all is well, else what was wrong.
func watchEvery(interval time.Duration, check func() string) *schedWatcher {
	w := &schedWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			bad := check()
			w.mu.Lock()
			w.polls++
			if bad != "" {
				w.bad = append(w.bad, time.Now().Format("15:04:05.000")+" "+bad)
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the watcher and fails the test if the check ever failed;
// what says what was watched.
func (w *schedWatcher) finish(t *testing.T, what string) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bad) > 0 {
		shown := w.bad
		if len(shown) > 10 {
			shown = shown[:10]
		}
		t.Errorf("%s: broken in %d of %d polls; first ones:\n%s", what, len(w.bad), w.polls, strings.Join(shown, "\n"))
	} else {
		t.Logf("%s: held in all %d polls", what, w.polls)
	}
}

// watchReplicas polls the replicas every 100 ms and notes each time fewer
// than minHealthy of them are wanted and healthy, or more than maxWanted
// are wanted. A failed request counts too: the server stays up in these
// scenarios.
func (f *schedFleet) watchReplicas(minHealthy, maxWanted int) *schedWatcher {
	return watchEvery(100*time.Millisecond, func() string {
		rs, err := f.replicas()
		if err != nil {
			return err.Error()
		}
		if h, w := countHealthy(rs), len(wantedOf(rs)); h < minHealthy || w > maxWanted {
			return fmt.Sprintf("%d healthy, %d wanted: %s", h, w, f.describe(rs))
		}
		return ""
	})
}

// watchPorts gets /healthz on each port every 100 ms and notes each answer
// that is not 200.
func watchPorts(ports []int) *schedWatcher {
	return watchEvery(100*time.Millisecond, func() string {
		var bad []string
		for _, p := range ports {
			resp, err := demoClient.Get("http://127.0.0.1:" + strconv.Itoa(p) + "/healthz")
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				bad = append(bad, fmt.Sprintf("port %d: %s", p, resp.Status))
			}
		}
		return strings.Join(bad, "; ")
	})
}

// replicaProcesses returns the live processes of the replicas on the given
// agents, by replica id: those whose working directory is the replica's
// own (<data dir>/replicas/<id>/work, which children inherit).
func replicaProcesses(agents ...*Agent) map[string][]int {
	roots := map[string]bool{}
	for _, a := range agents {
		roots[filepath.Join(a.DataDir(), "replicas")] = true
	}
	out := map[string][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || filepath.Base(cwd) != "work" {
			continue
		}
		dir := filepath.Dir(cwd) // .../replicas/<id>
		if !roots[filepath.Dir(dir)] || !proctest.Alive(pid) {
			continue
		}
		out[filepath.Base(dir)] = append(out[filepath.Base(dir)], pid)
	}
	return out
}

// countProcs counts the processes of replicaProcesses' answer.
func countProcs(m map[string][]int) int {
	n := 0
	for _, pids := range m {
		n += len(pids)
	}
	return n
}

// waitProcesses waits until the agents run exactly the processes of the
// replicas with ids want, one each.
func (f *schedFleet) waitProcesses(want []string, agents ...*Agent) {
	f.t.Helper()
	if len(agents) == 0 {
		agents = f.agents
	}
	eventually(f.t, waitTimeout, fmt.Sprintf("one process for each of the replicas %v and no other", shortIDs(want)), func() (bool, string) {
		m := replicaProcesses(agents...)
		var got []string
		for id, pids := range m {
			for range pids {
				got = append(got, id)
			}
		}
		sort.Strings(got)
		return slices.Equal(got, want), fmt.Sprintf("processes %v", m)
	})
}

func shortIDs(ids []string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, shortID(id))
	}
	return out
}

// killHost kills an agent's host, as a power loss would: the agent with
// SIGKILL, then at once every process of its replicas.
func killHost(a *Agent) {
	a.Kill()
	a.killReplicas()
}

// instanceFile writes the instance document doc of tenant as a JSON file
// for `drover instance create|update -f`.
func (f *schedFleet) instanceFile(doc map[string]any, label string) string {
	f.t.Helper()
	m := map[string]any{"tenant": f.tenant}
	for k, v := range doc {
		m[k] = v
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	p := filepath.Join(f.t.TempDir(), label+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// cli runs the drover CLI against the fleet's server.
func (f *schedFleet) cli(args ...string) cliResult {
	f.t.Helper()
	return runCLI(f.t, f.s, args...)
}
