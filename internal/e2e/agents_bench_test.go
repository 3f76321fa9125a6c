package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/agent/conn"
	"github.com/drover-dev/drover/protocol"
)

// BenchmarkAgents connects K simulated agents to one real server and
// measures what a fleet costs the leader. Each agent is a real
// agent/conn.Client over a real WebSocket in this process, with a handler
// that only records what it is told (no processes run). Each K runs once,
// whatever b.N:
//
//	go test ./internal/e2e -run '^$' -bench Agents -benchtime 1x -timeout 30m
//
// It reports, for each K:
//   - register-s: from starting every agent at once to all K nodes ready in
//     GET /v1/nodes (a cold registration storm);
//   - cpu-%, rss-MB, raft-entries: over a steady window of agentsWindow with
//     nothing else going on, the server's CPU (utime+stime from /proc, in %
//     of one core), its resident memory at the end, and the Raft entries
//     applied (drover_raft_applied_index): heartbeats must cost none;
//   - restart: the server is stopped (SIGTERM) and started on the same data
//     dir; reconnect-s is from its exit to all K agents connected again
//     (the agents' welcome; reconnect-p99-s for 99% of them),
//     reconnect-cpu-s the new server's CPU time until then,
//     reconnect-raft-entries the entries applied from before the stop to
//     the end of the grace period, and down-nodes the nodes seen down in GET
//     /v1/nodes, polled from the restart until the leader's grace period
//     (TTL + grace) has passed: it must be 0.
func BenchmarkAgents(b *testing.B) {
	for _, k := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("agents=%d", k), func(b *testing.B) { benchAgents(b, k) })
	}
}

// agentsWindow is the steady window over which CPU and Raft entries are
// measured.
const agentsWindow = 20 * time.Second

// Gateway defaults the timing checks below are computed from
// (server/gateway: DefaultMinTTL, DefaultGrace, DefaultMaxHeartbeatsPerSecond).
const (
	benchMinTTL        = 3 * time.Second
	benchGrace         = 10 * time.Second
	benchMaxHeartbeats = 50
)

func benchTTL(n int) time.Duration {
	return max(benchMinTTL, time.Duration(n)*time.Second/benchMaxHeartbeats*3)
}

func benchAgents(b *testing.B, k int) {
	raiseNoFile(b, uint64(4*k+1024))
	c := StartCluster(b, 1, WithServerArgs("-acl=false", "-log-level", "info"))
	s := c.WaitForLeader()
	api := s.Client().WithTimeout(30 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() }) // before the cluster's cleanup: LIFO
	// DROVER_BENCH_LOGS=dir keeps the server's log and the agents' (debug
	// level) there, for a look at what a run did.
	logDir := os.Getenv("DROVER_BENCH_LOGS")
	var agentLog io.Writer = io.Discard
	if logDir != "" {
		f, err := os.Create(filepath.Join(logDir, fmt.Sprintf("agents-%d.log", k)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		agentLog = f
		defer func() {
			if raw, err := os.ReadFile(s.LogPath()); err == nil {
				_ = os.WriteFile(filepath.Join(logDir, fmt.Sprintf("server-%d.log", k)), raw, 0o644)
			}
		}()
	}
	fleet := make([]*simAgent, k)
	for i := range fleet {
		a := &simAgent{name: fmt.Sprintf("bench-agent-%04d", i)}
		logger := hclog.New(&hclog.LoggerOptions{Name: a.name, Output: agentLog, Level: hclog.Debug})
		cl, err := conn.New(conn.Config{Servers: []string{s.URL()}, Hello: a.hello, Handler: a, Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		a.client = cl
		fleet[i] = a
	}

	// 1. Registration storm: every agent starts at once.
	start := time.Now()
	for _, a := range fleet {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.client.Run(ctx) }()
	}
	var everDown sync.Map
	waitNodes(b, api, k, 5*time.Minute, &everDown, "all nodes ready after registration")
	registered := time.Since(start)
	eventually(b, time.Minute, "every agent connected", func() (bool, string) {
		n := connected(fleet)
		return n == k, fmt.Sprintf("%d of %d connected", n, k)
	})
	connectedAll := time.Since(start)
	b.Logf("K=%d: all nodes ready after %v, all agents connected after %v", k, registered.Round(time.Millisecond), connectedAll.Round(time.Millisecond))
	ivs := intervals(fleet)
	pingRate := 0.0
	for _, iv := range ivs {
		pingRate += 1 / iv.Seconds()
	}
	b.Logf("K=%d: heartbeat intervals the agents were given: min %v, median %v, max %v (TTL for %d nodes: %v): the agents ping %.0f times/s",
		k, ivs[0], ivs[len(ivs)/2], ivs[len(ivs)-1], k, benchTTL(k), pingRate)

	// 2. Steady window: the agents only heartbeat.
	time.Sleep(2 * time.Second) // let the last welcomes and assigns go out
	pid := s.running("cpu").pid()
	welcomes0 := welcomes(fleet)
	idx0 := appliedIndex(b, api)
	cpu0, t0 := cpuTicks(b, pid), time.Now()
	time.Sleep(agentsWindow)
	cpu1, t1 := cpuTicks(b, pid), time.Now()
	idx1 := appliedIndex(b, api)
	rss := rssKB(b, s)
	cpuPct := 100 * float64(cpu1-cpu0) / clockTicks() / t1.Sub(t0).Seconds()
	steadyEntries := idx1 - idx0
	steadyReconnects := welcomes(fleet) - welcomes0
	if st := pollNodes(api, &everDown); st["ready"] != k {
		b.Logf("K=%d: nodes after the steady window: %s", k, st)
	}
	downBeforeRestart := count(&everDown)
	b.Logf("K=%d: steady %v: server CPU %.2f%% of a core, RSS %.1f MB, %d Raft entries, %d agent reconnections",
		k, t1.Sub(t0).Round(time.Millisecond), cpuPct, float64(rss)/1024, steadyEntries, steadyReconnects)

	// 3. Restart the server on the same data dir; agents reconnect.
	before := welcomeCounts(fleet)
	stopAt := time.Now()
	if code := s.Stop(); code != 0 {
		b.Logf("server exited with %d on SIGTERM", code)
	}
	downAt := time.Now()
	s.Restart()
	servingAt := time.Now()
	newPID := s.running("cpu").pid()
	var stormTicks uint64
	var allBack time.Duration
	var back []time.Duration // each agent's time from the server's exit to its welcome
	grace := benchTTL(k) + benchGrace
	deadline := servingAt.Add(grace + 5*time.Second)
	var downSeen sync.Map
	var lastNodes string
	for {
		if allBack == 0 {
			if n := reconnected(fleet, before); n == k {
				allBack = time.Since(downAt)
				back = reconnectTimes(fleet, downAt)
				stormTicks = cpuTicks(b, newPID)
			}
		}
		st := pollNodes(api, &downSeen)
		lastNodes = st.String()
		if time.Now().After(deadline) && allBack != 0 {
			break
		}
		if time.Since(downAt) > 5*time.Minute {
			b.Fatalf("K=%d: %d of %d agents reconnected 5 minutes after the restart; nodes: %s", k, reconnected(fleet, before), k, lastNodes)
		}
		time.Sleep(250 * time.Millisecond)
	}
	endIdx := appliedIndex(b, api)
	waitNodes(b, api, k, time.Minute, &downSeen, "all nodes ready after the restart")
	downAfterRestart := 0 // nodes that were not down before the restart
	downSeen.Range(func(id, _ any) bool {
		if _, before := everDown.Load(id); !before {
			downAfterRestart++
		}
		return true
	})
	sessions := metricValue(b, api, "drover_agent_sessions")
	slices.Sort(back)
	ivs = intervals(fleet)
	b.Logf("K=%d: heartbeat intervals after the restart: min %v, median %v, max %v", k, ivs[0], ivs[len(ivs)/2], ivs[len(ivs)-1])
	b.Logf("K=%d: stop took %v, start to serving %v, all %d agents back %v after the exit (p50 %v, p99 %v); server CPU from its start to all agents back %.2f s; %d Raft entries from before the stop to the end of the grace (%v), %d agent welcomes; %d nodes seen down; %d sessions; nodes at the end: %s",
		k, downAt.Sub(stopAt).Round(time.Millisecond), servingAt.Sub(downAt).Round(time.Millisecond), k, allBack.Round(time.Millisecond),
		back[len(back)/2].Round(time.Millisecond), back[len(back)*99/100].Round(time.Millisecond),
		float64(stormTicks)/clockTicks(), endIdx-idx1, grace, welcomes(fleet)-sum(before), downAfterRestart, int(sessions), lastNodes)
	if downBeforeRestart > 0 {
		b.Errorf("K=%d: %d nodes were marked down during registration or the steady window", k, downBeforeRestart)
	}
	if downAfterRestart > 0 {
		b.Errorf("K=%d: %d nodes were marked down across the server's restart", k, downAfterRestart)
	}

	b.ReportMetric(registered.Seconds(), "register-s")
	b.ReportMetric(cpuPct, "cpu-%")
	b.ReportMetric(float64(rss)/1024, "rss-MB")
	b.ReportMetric(float64(steadyEntries), "raft-entries")
	b.ReportMetric(allBack.Seconds(), "reconnect-s")
	b.ReportMetric(back[len(back)*99/100].Seconds(), "reconnect-p99-s")
	b.ReportMetric(float64(endIdx-idx1), "reconnect-raft-entries")
	b.ReportMetric(float64(stormTicks)/clockTicks(), "reconnect-cpu-s")
	b.ReportMetric(float64(downBeforeRestart+downAfterRestart), "down-nodes")
	b.ReportMetric(pingRate, "agent-pings/s")
	b.ReportMetric(0, "ns/op")
}

// simAgent is one simulated agent: a real conn.Client whose handler keeps
// the node's identity, as the agent's store would, and counts the rest.
type simAgent struct {
	name   string
	client *conn.Client

	mu       sync.Mutex
	nodeID   string
	secret   string
	interval time.Duration
	welcomes int
	lastAt   time.Time // last welcome
	assigns  atomic.Int64
}

func (a *simAgent) hello() protocol.Hello {
	a.mu.Lock()
	defer a.mu.Unlock()
	return protocol.Hello{
		ProtocolVersion: protocol.AgentProtocolVersion, NodeID: a.nodeID, NodeSecret: a.secret,
		Name: a.name, Version: "bench", Region: "bench",
		Labels:    map[string]string{"zone": "z" + strconv.Itoa(len(a.name)%3)},
		Resources: protocol.NodeResources{CPUMillis: 2000, MemoryMB: 2048, DiskMB: 10240, FreeCPUMillis: 2000, FreeMemoryMB: 2048, FreeDiskMB: 10240},
		Facts:     protocol.NodeFacts{Hostname: a.name, OS: "linux", Arch: "amd64", CPUCores: 2},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 20099},
	}
}

func (a *simAgent) Welcome(w protocol.Welcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.NodeSecret != "" {
		a.nodeID, a.secret = w.NodeID, w.NodeSecret
	}
	a.interval = w.HeartbeatInterval.D()
	a.welcomes++
	a.lastAt = time.Now()
}

func (a *simAgent) Assign(protocol.Assign) { a.assigns.Add(1) }

func (a *simAgent) Logs(context.Context, protocol.LogRequest, func(protocol.LogData) error) {}

func connected(fleet []*simAgent) int {
	n := 0
	for _, a := range fleet {
		if a.client.Connected() {
			n++
		}
	}
	return n
}

func welcomes(fleet []*simAgent) int {
	n := 0
	for _, a := range fleet {
		a.mu.Lock()
		n += a.welcomes
		a.mu.Unlock()
	}
	return n
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func welcomeCounts(fleet []*simAgent) []int {
	out := make([]int, len(fleet))
	for i, a := range fleet {
		a.mu.Lock()
		out[i] = a.welcomes
		a.mu.Unlock()
	}
	return out
}

// reconnected counts the agents welcomed again since before and connected.
func reconnected(fleet []*simAgent, before []int) int {
	n := 0
	for i, a := range fleet {
		a.mu.Lock()
		ok := a.welcomes > before[i]
		a.mu.Unlock()
		if ok && a.client.Connected() {
			n++
		}
	}
	return n
}

func reconnectTimes(fleet []*simAgent, since time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(fleet))
	for _, a := range fleet {
		a.mu.Lock()
		out = append(out, a.lastAt.Sub(since))
		a.mu.Unlock()
	}
	return out
}

func intervals(fleet []*simAgent) []time.Duration {
	out := make([]time.Duration, 0, len(fleet))
	for _, a := range fleet {
		a.mu.Lock()
		out = append(out, a.interval)
		a.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// nodeCounts is GET /v1/nodes summed up by status.
type nodeCounts map[string]int

func (n nodeCounts) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(parts, " ")
}

// pollNodes reads GET /v1/nodes once, records the nodes seen down, and
// returns the count by status (empty on an error, "error" set).
func pollNodes(api *Client, down *sync.Map) nodeCounts {
	out := nodeCounts{}
	r, err := api.Try(http.MethodGet, "/v1/nodes", nil)
	if err != nil || !r.OK() {
		out["error"] = 1
		return out
	}
	var nodes []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := r.Decode(&nodes); err != nil {
		out["error"] = 1
		return out
	}
	for _, n := range nodes {
		out[n.Status]++
		if n.Status == "down" {
			down.Store(n.ID, true)
		}
	}
	return out
}

// waitNodes polls GET /v1/nodes until k nodes are ready.
func waitNodes(b *testing.B, api *Client, k int, timeout time.Duration, down *sync.Map, what string) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := pollNodes(api, down)
		if st["ready"] == k {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s; nodes: %s", timeout, what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func count(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// metricValue reads one unlabelled gauge of GET /metrics.
func metricValue(b *testing.B, api *Client, name string) float64 {
	b.Helper()
	var r *Response
	var err error
	ok, _ := waitUntil(waitTimeout, func() (bool, string) {
		r, err = api.Try(http.MethodGet, "/metrics", nil)
		return err == nil && r.OK(), ""
	})
	if !ok {
		b.Fatalf("GET /metrics: %v %v", err, r)
	}
	sc := bufio.NewScanner(strings.NewReader(string(r.Body)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				b.Fatalf("metric %s: %v", name, err)
			}
			return v
		}
	}
	b.Fatalf("GET /metrics has no %s", name)
	return 0
}

func appliedIndex(b *testing.B, api *Client) uint64 {
	b.Helper()
	return uint64(metricValue(b, api, "drover_raft_applied_index"))
}

// cpuTicks is a process's utime+stime (all its threads) in clock ticks,
// from /proc/PID/stat.
func cpuTicks(b *testing.B, pid int) uint64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("read cpu time: %v", err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parse /proc/%d/stat: %q", pid, s)
	}
	return utime + stime
}

var clockTicksOnce = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && n > 0 {
			return n
		}
	}
	return 100 // USER_HZ on every Linux build that matters
})

func clockTicks() float64 { return clockTicksOnce() }

// raiseNoFile raises the soft limit on open files to at least want (up to
// the hard limit): the agents' sockets are in this process, and the server,
// which inherits the limit, holds as many.
func raiseNoFile(b *testing.B, want uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("setrlimit: %v", err)
	}
	if lim.Cur < want {
		b.Logf("open files limited to %d (hard limit), %d wanted", lim.Cur, want)
	}
}
