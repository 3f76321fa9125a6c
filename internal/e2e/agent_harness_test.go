package e2e

// The harness's agents: StartAgent runs `drover agent` against a Cluster
// with a data dir, a name and a small port range of its own, and the test's
// cleanup ends the agent and every replica process it started (they run in
// sessions of their own, so killing the agent's group does not reach them).
// Helpers below create instances of the demo app and wait for their
// replicas, reading the API's documents as a user's program would.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/proctest"
)

// AgentOption changes how StartAgent starts an agent.
type AgentOption func(*agentConfig)

type agentConfig struct {
	name      string
	joinToken string
	region    string
	labels    []string // key=value
	servers   []string // URLs; every server of the cluster when empty
	extraArgs []string
	netns     *Netns
	logLevel  string
	noWait    bool
}

// WithJoinToken passes -join-token.
func WithJoinToken(token string) AgentOption {
	return func(c *agentConfig) { c.joinToken = token }
}

// WithRegion passes -region.
func WithRegion(region string) AgentOption {
	return func(c *agentConfig) { c.region = region }
}

// WithLabel passes -label key=value; repeatable.
func WithLabel(key, value string) AgentOption {
	return func(c *agentConfig) { c.labels = append(c.labels, key+"="+value) }
}

// WithAgentName names the agent (-name); "agentN" by default, unique in the
// test binary.
func WithAgentName(name string) AgentOption {
	return func(c *agentConfig) { c.name = name }
}

// WithAgentServers replaces the -servers list (every server's URL by
// default), for example with proxies in front of them.
func WithAgentServers(urls ...string) AgentOption {
	return func(c *agentConfig) { c.servers = append([]string(nil), urls...) }
}

// WithAgentArgs adds flags after the harness's own, so they win.
func WithAgentArgs(args ...string) AgentOption {
	return func(c *agentConfig) { c.extraArgs = append(c.extraArgs, args...) }
}

// InNetns runs the agent (and so its replicas) in network namespace ns.
// Its -servers must then be addresses reachable from there.
func InNetns(ns *Netns) AgentOption {
	return func(c *agentConfig) { c.netns = ns }
}

// AgentNoWait makes StartAgent return once the process runs, without
// waiting for its node to be ready (an agent the servers refuse).
func AgentNoWait() AgentOption {
	return func(c *agentConfig) { c.noWait = true }
}

// agentSeq numbers agents for their default names.
var agentSeq atomic.Int64

// Agent is one drover agent process started by a test. Its data dir, name
// and port range stay the same across restarts.
type Agent struct {
	t        testing.TB
	c        *Cluster
	cfg      agentConfig
	name     string
	dir      string // holds the data dir and the log
	dataDir  string
	logPath  string
	portLo   int
	portHi   int
	portArgs []string // -port-range and -flags-addr
	launch   *launcher

	mu     sync.Mutex
	proc   *process
	nodeID string
}

// agentPorts is the size of each agent's port range; the port after it is
// the agent's -flags-addr.
const agentPorts = 16

// reserveAgentPorts reserves an agent's ports and returns the first of its
// range and the flags that give them to it. They stay the agent's across
// restarts: its replicas keep their DROVER_FLAGS_URL.
func reserveAgentPorts() (int, []string, error) {
	lo, err := reservePortRange(agentPorts + 1)
	if err != nil {
		return 0, nil, err
	}
	return lo, []string{"-port-range", fmt.Sprintf("%d-%d", lo, lo+agentPorts-1),
		"-flags-addr", fmt.Sprintf("127.0.0.1:%d", lo+agentPorts)}, nil
}

// StartAgent starts `drover agent -servers <every server's URL> -data-dir
// <its own dir> -name ... -port-range <a free range of its own>` and, unless
// AgentNoWait, waits until its node is ready in GET /v1/nodes. When the test
// ends the agent is killed, then every process of its replicas.
func StartAgent(t testing.TB, c *Cluster, opts ...AgentOption) *Agent {
	t.Helper()
	cfg := agentConfig{logLevel: "debug"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.name == "" {
		cfg.name = fmt.Sprintf("agent%d", agentSeq.Add(1))
	}
	if len(cfg.servers) == 0 {
		for _, s := range c.Servers() {
			cfg.servers = append(cfg.servers, s.URL())
		}
	}
	lo, portArgs, err := reserveAgentPorts()
	if err != nil {
		t.Fatal(err)
	}
	// Made before the cleanups below register: cleanups run last-in first-
	// out, so the directory is removed after every process is gone.
	dir := t.TempDir()
	a := &Agent{
		t: t, c: c, cfg: cfg, name: cfg.name, dir: dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, cfg.name+".log"),
		portLo:  lo, portHi: lo + agentPorts - 1, portArgs: portArgs,
	}
	// Replicas are killed after the agent (the launcher's cleanup, which
	// runs first): a live agent would restart them.
	t.Cleanup(a.killReplicas)
	a.launch = newLauncher(t)
	a.start()
	if !cfg.noWait {
		a.WaitReady()
	}
	return a
}

// Name is the agent's -name, the node's name.
func (a *Agent) Name() string { return a.name }

// DataDir is the agent's -data-dir.
func (a *Agent) DataDir() string { return a.dataDir }

// LogPath is the file the agent's output goes to (all its runs).
func (a *Agent) LogPath() string { return a.logPath }

// PortRange is the agent's -port-range.
func (a *Agent) PortRange() (lo, hi int) { return a.portLo, a.portHi }

// PID is the agent process's PID, 0 when none runs.
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proc == nil || a.proc.exited() {
		return 0
	}
	return a.proc.pid()
}

// Running reports whether the agent's process is alive.
func (a *Agent) Running() bool { return a.PID() != 0 }

func (a *Agent) args() []string {
	args := []string{"agent",
		"-servers", strings.Join(a.cfg.servers, ","),
		"-data-dir", a.dataDir,
		"-name", a.name,
		"-log-level", a.cfg.logLevel,
	}
	args = append(args, a.portArgs...)
	if a.cfg.joinToken != "" {
		args = append(args, "-join-token", a.cfg.joinToken)
	}
	if a.cfg.region != "" {
		args = append(args, "-region", a.cfg.region)
	}
	for _, l := range a.cfg.labels {
		args = append(args, "-label", l)
	}
	return append(args, a.cfg.extraArgs...)
}

// start launches the agent's process.
func (a *Agent) start() {
	a.t.Helper()
	argv := append([]string{binPath}, a.args()...)
	if a.cfg.netns != nil {
		argv = append(a.cfg.netns.ExecPrefix(), argv...)
	}
	p, err := a.launch.startArgv(a.name, a.logPath, argv)
	if err != nil {
		a.t.Fatalf("start agent %s: %v", a.name, err)
	}
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()
}

// Kill sends SIGKILL to the agent's process group: the agent alone, since
// each replica runs in a session of its own. The replicas keep running.
func (a *Agent) Kill() {
	a.t.Helper()
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p == nil || p.exited() {
		a.t.Fatalf("kill agent %s: not running", a.name)
	}
	if err := p.kill(); err != nil {
		a.t.Fatal(err)
	}
}

// Stop sends SIGTERM to the agent and waits for it to exit; it returns the
// exit code. The replicas keep running.
func (a *Agent) Stop() int {
	a.t.Helper()
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p == nil || p.exited() {
		a.t.Fatalf("stop agent %s: not running", a.name)
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		a.t.Fatalf("stop agent %s: %v", a.name, err)
	}
	if !p.waitExit(stopTimeout) {
		_ = p.kill()
		a.t.Fatalf("stop agent %s: still running %v after SIGTERM; killed it", a.name, stopTimeout)
	}
	return p.exitCode()
}

// Restart starts the agent again with the same data dir, name, port range
// and flags, killing it first if it runs, and waits (unless AgentNoWait)
// until its node is ready.
func (a *Agent) Restart() {
	a.t.Helper()
	if a.Running() {
		a.Kill()
	}
	a.start()
	if !a.cfg.noWait {
		a.WaitReady()
	}
}

// RestartNoWait starts the agent again like Restart, without waiting for
// its node (the servers may be down).
func (a *Agent) RestartNoWait() {
	a.t.Helper()
	if a.Running() {
		a.Kill()
	}
	a.start()
}

// NodeID waits until the agent's node is registered (GET /v1/nodes lists a
// node of its name) and returns its id.
func (a *Agent) NodeID() string {
	a.t.Helper()
	a.mu.Lock()
	id := a.nodeID
	a.mu.Unlock()
	if id != "" {
		return id
	}
	var n apiNode
	eventually(a.t, waitTimeout, "node "+a.name+" registered in GET /v1/nodes", func() (bool, string) {
		found, state := a.findNode()
		if found == nil {
			return false, state
		}
		n = *found
		return true, ""
	})
	a.mu.Lock()
	a.nodeID = n.ID
	a.mu.Unlock()
	return n.ID
}

// findNode looks the agent's node up by name through the leader (any
// server forwards); it returns nil and what it saw when there is none.
func (a *Agent) findNode() (*apiNode, string) {
	nodes, err := listNodes(a.c)
	if err != nil {
		return nil, err.Error()
	}
	var names []string
	for i := range nodes {
		if nodes[i].Name == a.name {
			return &nodes[i], ""
		}
		names = append(names, nodes[i].Name+"="+nodes[i].Status)
	}
	return nil, fmt.Sprintf("nodes %v; end of %s:\n%s", names, filepath.Base(a.logPath), tail(a.logPath, 1024))
}

// Node returns the agent's node as GET /v1/nodes/{id} answers, or fails
// the test.
func (a *Agent) Node() apiNode {
	a.t.Helper()
	n, err := a.node()
	if err != nil {
		a.t.Fatal(err)
	}
	return n
}

func (a *Agent) node() (apiNode, error) {
	var n apiNode
	s := a.c.anyUp()
	if s == nil {
		return n, errors.New("no server running")
	}
	r, err := s.Client().WithTimeout(5*time.Second).Try(http.MethodGet, "/v1/nodes/"+a.NodeID(), nil)
	if err != nil {
		return n, err
	}
	if !r.OK() {
		return n, errors.New(r.String())
	}
	return n, r.Decode(&n)
}

// WaitReady waits until the agent's node is ready and returns it.
func (a *Agent) WaitReady() apiNode {
	a.t.Helper()
	return a.waitNode("node "+a.name+" ready", func(n *apiNode) bool { return n.Status == "ready" })
}

// waitNode waits until the agent's node satisfies ok and returns it.
func (a *Agent) waitNode(what string, ok func(*apiNode) bool) apiNode {
	a.t.Helper()
	var last apiNode
	eventually(a.t, waitTimeout, what, func() (bool, string) {
		n, state := a.findNode()
		if n == nil {
			return false, state
		}
		last = *n
		a.mu.Lock()
		a.nodeID = n.ID
		a.mu.Unlock()
		return ok(n), fmt.Sprintf("status %s, last_seen %s", n.Status, n.LastSeen.Format(time.RFC3339Nano))
	})
	return last
}

// LogContains reports whether the agent's log has a line holding every one
// of parts.
func (a *Agent) LogContains(parts ...string) bool { return logHasLine(a.logPath, parts...) }

// CountLog counts the lines of the agent's log holding every one of parts.
func (a *Agent) CountLog(parts ...string) int { return countLogLines(a.logPath, parts...) }

// logHasLine reports whether the file at path has a line holding every one
// of parts.
func logHasLine(path string, parts ...string) bool { return countLogLines(path, parts...) > 0 }

func countLogLines(path string, parts ...string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// ReplicaPIDs returns the live processes of this agent's replicas: those
// whose working directory or standard output is in the agent's replica
// folder (children inherit both), and those in the cgroups of its replicas.
func (a *Agent) ReplicaPIDs() []int {
	root := filepath.Join(a.dataDir, "replicas") + "/"
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		for _, link := range []string{"cwd", "fd/1"} {
			target, err := os.Readlink(filepath.Join("/proc", e.Name(), link))
			if err == nil && strings.HasPrefix(target, root) {
				pids = append(pids, pid)
				break
			}
		}
	}
	for _, dir := range a.replicaCgroups() {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	var live []int
	for _, pid := range pids {
		if proctest.Alive(pid) {
			live = append(live, pid)
		}
	}
	sort.Ints(live)
	return live
}

// replicaIDs returns the ids of the replicas the agent has a folder for.
func (a *Agent) replicaIDs() []string {
	ents, _ := os.ReadDir(filepath.Join(a.dataDir, "replicas"))
	var ids []string
	for _, e := range ents {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// replicaCgroups returns the existing cgroup directories of the agent's
// replicas: drover/<replica> in the v2 hierarchy or in each v1 one.
func (a *Agent) replicaCgroups() []string {
	var dirs []string
	for _, id := range a.replicaIDs() {
		for _, h := range []string{"", "memory", "cpu", "pids"} {
			d := filepath.Join("/sys/fs/cgroup", h, "drover", id)
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// killReplicas kills every process of the agent's replicas and removes
// their cgroups; the agent must be dead already. It runs in the cleanup.
func (a *Agent) killReplicas() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := a.ReplicaPIDs()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			a.t.Errorf("cleanup of agent %s: replica processes %v survive SIGKILL", a.name, pids)
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range a.replicaCgroups() {
		// The kernel refuses while a dying process is still in it.
		for i := 0; i < 100; i++ {
			if err := syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Port ranges handed to agents: below the kernel's ephemeral ports
// (usually 32768 and up) and above 21000, leaving 20000-20999 to agents
// with the default range (drover dev).
const (
	agentPortsFrom = 21000
	agentPortsTo   = 32000
)

var (
	portRangesMu sync.Mutex
	portRanges   = map[int]bool{} // starts handed out in this test binary
)

// reservePortRange returns the first port of n consecutive ports that are
// free now and not given to another agent of this test binary.
func reservePortRange(n int) (int, error) {
	portRangesMu.Lock()
	defer portRangesMu.Unlock()
	slots := (agentPortsTo - agentPortsFrom) / n
	for range 200 {
		lo := agentPortsFrom + rand.IntN(slots)*n
		if portRanges[lo] {
			continue
		}
		free := true
		for p := lo; p < lo+n && free; p++ {
			ln, err := net.Listen("tcp", ":"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			portRanges[lo] = true
			return lo, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports in %d-%d", n, agentPortsFrom, agentPortsTo)
}

// anyUp returns a running, unpaused server, preferring the leader.
func (c *Cluster) anyUp() *Server {
	if l := c.Leader(); l != nil {
		return l
	}
	if up := c.up(); len(up) > 0 {
		return up[0]
	}
	return nil
}

// listNodes returns GET /v1/nodes through a running server.
func listNodes(c *Cluster) ([]apiNode, error) {
	s := c.anyUp()
	if s == nil {
		return nil, errors.New("no server running")
	}
	r, err := s.Client().WithTimeout(5*time.Second).Try(http.MethodGet, "/v1/nodes", nil)
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		return nil, errors.New(r.String())
	}
	var nodes []apiNode
	return nodes, r.Decode(&nodes)
}

// The node and replica documents of API.md, with the fields tests read.

type apiNode struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Region    string            `json:"region"`
	Labels    map[string]string `json:"labels"`
	Status    string            `json:"status"`
	Eligible  bool              `json:"eligible"`
	Resources struct {
		CPUMillis    int64 `json:"cpu_millis"`
		MemoryMB     int64 `json:"memory_mb"`
		DiskMB       int64 `json:"disk_mb"`
		FreeMemoryMB int64 `json:"free_memory_mb"`
	} `json:"resources"`
	Facts struct {
		Hostname     string `json:"hostname"`
		OS           string `json:"os"`
		Kernel       string `json:"kernel"`
		Arch         string `json:"arch"`
		CPUCores     int    `json:"cpu_cores"`
		AgentVersion string `json:"agent_version"`
		Cgroups      string `json:"cgroups"`
		Limits       bool   `json:"limits"`
		LimitsReason string `json:"limits_reason"`
	} `json:"facts"`
	LastSeen time.Time    `json:"last_seen"`
	Replicas []apiReplica `json:"replicas"` // GET /v1/nodes/{id} only
}

type apiReplica struct {
	ID        string         `json:"id"`
	Node      string         `json:"node"`
	State     string         `json:"state"`
	Health    string         `json:"health"`
	Version   uint64         `json:"version"`
	Ports     map[string]int `json:"ports"`
	Restarts  int            `json:"restarts"`
	StartedAt time.Time      `json:"started_at"`
	Message   string         `json:"message"`
}

func (r apiReplica) String() string {
	s := fmt.Sprintf("%s %s/%s restarts=%d ports=%v", shortID(r.ID), r.State, r.Health, r.Restarts, r.Ports)
	if r.Message != "" {
		s += fmt.Sprintf(" message=%q", r.Message)
	}
	return s
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// demoInstance is an instance document of the demo app bundled in drover,
// listening on its http port, with an http health check on short
// intervals. Tests change its "spec" (specOf) before creating it.
func demoInstance(name string, replicas int) map[string]any {
	return map[string]any{
		"name":        name,
		"environment": "staging",
		"replicas":    replicas,
		"spec": map[string]any{
			"version": "1.0.0",
			"command": []string{binPath, "demo-app", "-listen", "127.0.0.1:${PORT}"},
			"env":     map[string]string{},
			"ports":   []string{"http"},
			"health": map[string]any{
				"type": "http", "port": "http", "path": "/healthz",
				"interval": "200ms", "timeout": "1s",
				"healthy_threshold": 1, "unhealthy_threshold": 2,
			},
			"restart": map[string]any{"policy": "always", "delay": "200ms", "max_attempts": 10, "window": "1m"},
			"stop":    map[string]any{"timeout": "5s"},
		},
	}
}

// specOf returns the spec of an instance document.
func specOf(doc map[string]any) map[string]any { return doc["spec"].(map[string]any) }

// setEnv sets variables of an instance document's spec.
func setEnv(doc map[string]any, kv ...string) {
	env := specOf(doc)["env"].(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
}

// createInstance creates the instance doc of tenant (creating the tenant
// first unless it exists) through s.
func createInstance(t *testing.T, s *Server, tenant string, doc map[string]any) {
	t.Helper()
	r, err := s.Client().Try(http.MethodPost, "/v1/tenants", map[string]string{"name": tenant})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() && r.Status != http.StatusConflict {
		t.Fatalf("%s: want 201 or 409", r)
	}
	s.Client().JSON(http.MethodPost, "/v1/tenants/"+tenant+"/instances", doc, nil)
}

// instancePath is the API path of an instance.
func instancePath(tenant, name string) string {
	return "/v1/tenants/" + tenant + "/instances/" + name
}

// listReplicas returns GET .../replicas of an instance.
func listReplicas(s *Server, tenant, name string) ([]apiReplica, error) {
	r, err := s.Client().WithTimeout(5*time.Second).Try(http.MethodGet, instancePath(tenant, name)+"/replicas", nil)
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		return nil, errors.New(r.String())
	}
	var rs []apiReplica
	return rs, r.Decode(&rs)
}

// describeReplicas puts replicas on one line for messages.
func describeReplicas(rs []apiReplica) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.String())
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// waitReplicas waits until the instance's replicas that the servers still
// want (not stopped, failed or lost) are n, each satisfying ok, and
// returns them.
func waitReplicas(t *testing.T, c *Cluster, tenant, name string, n int, what string, ok func(apiReplica) bool) []apiReplica {
	t.Helper()
	var out []apiReplica
	eventually(t, waitTimeout, fmt.Sprintf("%d replicas of %s/%s %s", n, tenant, name, what), func() (bool, string) {
		s := c.anyUp()
		if s == nil {
			return false, "no server running"
		}
		rs, err := listReplicas(s, tenant, name)
		if err != nil {
			return false, err.Error()
		}
		out = out[:0]
		for _, r := range rs {
			if ok(r) {
				out = append(out, r)
			}
		}
		return len(out) == n, describeReplicas(rs)
	})
	return out
}

// waitHealthy waits until n replicas of the instance are healthy.
func waitHealthy(t *testing.T, c *Cluster, tenant, name string, n int) []apiReplica {
	t.Helper()
	return waitReplicas(t, c, tenant, name, n, "healthy", func(r apiReplica) bool {
		return r.State == "healthy" && r.Health == "healthy"
	})
}

// demoInfo is GET /info of the demo app.
type demoInfo struct {
	PID      int    `json:"pid"`
	ChildPID int    `json:"child_pid"`
	Addr     string `json:"addr"`
	Replica  string `json:"replica"`
}

var demoClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// getInfo asks the demo app listening on 127.0.0.1:port who it is.
func getInfo(port int) (demoInfo, error) {
	var info demoInfo
	resp, err := demoClient.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/info")
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("GET /info on port %d: %s", port, resp.Status)
	}
	return info, json.NewDecoder(resp.Body).Decode(&info)
}

// mustInfo is getInfo that fails the test.
func mustInfo(t testing.TB, port int) demoInfo {
	t.Helper()
	info, err := getInfo(port)
	if err != nil {
		t.Fatal(err)
	}
	return info
}
