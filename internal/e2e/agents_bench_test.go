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
	"github.com/drover-dev/drover/internal/testwait"
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
//   - cpu-%, rss-MB, raft-entries: over a steady window (benchAgentsWindow)
//     with nothing else going on, the server's CPU (utime+stime from /proc,
//     in % of one core), its resident memory at the end, and the Raft
//     entries applied (drover_raft_applied_index): heartbeats must cost none;
//   - restart: the server is stopped (SIGTERM) and started on the same data
//     dir; reconnect-s is from its exit to all K agents connected again
//     (the agents' welcome; reconnect-p99-s for 99% of them),
//     reconnect-cpu-s the new server's CPU time until then,
//     reconnect-raft-entries the entries applied from before the stop to
//     the end of the grace period (TTL + grace), GET /v1/nodes polled
//     throughout;
//   - a second restart, once every agent holds the heartbeat interval a
//     leader that knows the whole fleet gives: reconnect2-s and
//     reconnect2-p50-s, from the server's exit to all and half of the
//     agents connected again;
//   - down-nodes: nodes seen down in GET /v1/nodes after registration, after
//     the steady windows and across the restarts, and down-marks: the times
//     the server's log says it marked a node down; every agent stays
//     connected (but for the restarts, within the grace period), so both
//     must be 0;
//   - agent-pings/s: the pings the agents send, from the heartbeat intervals
//     their welcomes gave them (the design bounds heartbeats to 5,000/s);
//   - cpu2-%, raft-entries2, agent-pings2/s: the steady window again after
//     the first restart, when every agent holds the interval of a leader
//     that knew the whole fleet.
//
// DROVER_BENCH_LOGS=dir keeps the server's and the agents' logs there.
func BenchmarkAgents(b *testing.B) {
	for _, k := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("agents=%d", k), func(b *testing.B) { runAgentsBench(b, k) })
	}
}

// benchAgentsWindow is the steady window over which CPU and Raft entries are
// measured.
const benchAgentsWindow = 20 * time.Second

// Gateway defaults the timing checks below are computed from
// (server/gateway: DefaultMinTTL, DefaultGrace, DefaultMaxHeartbeatsPerSecond).
const (
	benchMinTTL        = 3 * time.Second
	benchGrace         = 10 * time.Second
	benchMaxHeartbeats = 5000
)

func benchTTL(n int) time.Duration {
	return max(benchMinTTL, time.Duration(n)*time.Second/benchMaxHeartbeats*3)
}

func runAgentsBench(b *testing.B, k int) {
	benchRaiseNoFile(b, uint64(4*k+1024))
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
	fleet := make([]*benchAgent, k)
	for i := range fleet {
		a := &benchAgent{name: fmt.Sprintf("bench-agent-%04d", i), zone: fmt.Sprintf("z%d", i%3)}
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
	benchWaitNodes(b, api, k, 5*time.Minute, &everDown, "all nodes ready after registration")
	registered := time.Since(start)
	eventually(b, time.Minute, "every agent connected", func() (bool, string) {
		n := benchConnected(fleet)
		return n == k, fmt.Sprintf("%d of %d connected", n, k)
	})
	connectedAll := time.Since(start)
	b.Logf("K=%d: all nodes ready after %v, all agents connected after %v", k, registered.Round(time.Millisecond), connectedAll.Round(time.Millisecond))

	// 2. Steady window: the agents only heartbeat.
	time.Sleep(2 * time.Second) // let the last welcomes and assigns go out
	w1 := benchSteadyWindow(b, s, api, fleet)
	if st := benchPollNodes(api, &everDown); st["ready"] != k {
		b.Logf("K=%d: nodes after the steady window: %s", k, st)
	}
	downBeforeRestart := benchCount(&everDown)

	// 3. Restart the server on the same data dir; agents reconnect. The
	// first restart waits out the leader's grace period (TTL + grace) and
	// checks no node is marked down; the agents then hold the heartbeat
	// interval of a leader that knew the whole fleet, and the second
	// restart measures how long they take to come back with it.
	r1 := benchRestartServer(b, s, api, fleet, benchTTL(k)+benchGrace+5*time.Second, &everDown)
	// The same window again, with the heartbeat intervals of a leader
	// that knew the whole fleet when the agents connected.
	w2 := benchSteadyWindow(b, s, api, fleet)
	var downW2 sync.Map
	if st := benchPollNodes(api, &downW2); st["ready"] != k {
		b.Logf("K=%d: nodes after the second steady window: %s", k, st)
	}
	r1.down += benchCount(&downW2)
	r2 := benchRestartServer(b, s, api, fleet, 5*time.Second, &everDown)
	// Nodes marked down while their agent was connected are a bug; they
	// are reported (down-nodes), not failed on, so that the numbers of the
	// run still come out.
	if downBeforeRestart > 0 {
		b.Logf("K=%d: BUG: %d nodes were marked down during registration or the steady window, their agents connected", k, downBeforeRestart)
	}
	if r1.down+r2.down > 0 {
		b.Logf("K=%d: BUG: %d nodes were marked down across the server's restarts and the second steady window", k, r1.down+r2.down)
	}
	b.ReportMetric(registered.Seconds(), "register-s")
	b.ReportMetric(w1.cpuPct, "cpu-%")
	b.ReportMetric(w1.rssMB, "rss-MB")
	b.ReportMetric(float64(w1.entries), "raft-entries")
	b.ReportMetric(w2.cpuPct, "cpu2-%")
	b.ReportMetric(float64(w2.entries), "raft-entries2")
	b.ReportMetric(w2.pingRate, "agent-pings2/s")
	b.ReportMetric(r1.all.Seconds(), "reconnect-s")
	b.ReportMetric(r1.p99.Seconds(), "reconnect-p99-s")
	b.ReportMetric(float64(r1.entries), "reconnect-raft-entries")
	b.ReportMetric(r1.cpu, "reconnect-cpu-s")
	b.ReportMetric(r2.all.Seconds(), "reconnect2-s")
	b.ReportMetric(r2.p50.Seconds(), "reconnect2-p50-s")
	b.ReportMetric(float64(downBeforeRestart+r1.down+r2.down), "down-nodes")
	// The polls above miss a node marked down and up again between them;
	// the server's log has every mark.
	downMarks := benchCountLines(b, s.LogPath(), "marking it down")
	if downMarks > 0 {
		b.Logf("K=%d: BUG: the server marked nodes down %d times, every agent connected (%s)", k, downMarks, s.LogPath())
	}
	b.ReportMetric(float64(downMarks), "down-marks")
	b.ReportMetric(w1.pingRate, "agent-pings/s")
	b.ReportMetric(0, "ns/op")
}

// benchWindowStats is what benchSteadyWindow measured.
type benchWindowStats struct {
	cpuPct   float64 // the server's CPU time, in % of one core
	rssMB    float64 // its resident memory at the end
	entries  uint64  // Raft entries applied
	pingRate float64 // pings the agents send per second, from their intervals
}

// benchSteadyWindow measures the server over benchAgentsWindow while the
// agents only heartbeat.
func benchSteadyWindow(b *testing.B, s *Server, api *Client, fleet []*benchAgent) benchWindowStats {
	b.Helper()
	k := len(fleet)
	ivs := benchIntervals(fleet)
	var w benchWindowStats
	for _, iv := range ivs {
		w.pingRate += 1 / iv.Seconds()
	}
	pid := s.running("cpu").pid()
	welcomes0 := benchWelcomes(fleet)
	idx0 := benchAppliedIndex(b, api)
	cpu0, t0 := benchCPUTicks(b, pid), time.Now()
	time.Sleep(benchAgentsWindow)
	cpu1, t1 := benchCPUTicks(b, pid), time.Now()
	w.entries = benchAppliedIndex(b, api) - idx0
	w.rssMB = float64(rssKB(b, s)) / 1024
	w.cpuPct = 100 * float64(cpu1-cpu0) / benchClockTicks() / t1.Sub(t0).Seconds()
	b.Logf("K=%d: steady %v: heartbeat intervals %v to %v (median %v; TTL for %d nodes: %v), the agents ping %.0f times/s; server CPU %.2f%% of a core, RSS %.1f MB, %d Raft entries, %d agent reconnections",
		k, t1.Sub(t0).Round(time.Millisecond), ivs[0], ivs[len(ivs)-1], ivs[len(ivs)/2], k, benchTTL(k), w.pingRate,
		w.cpuPct, w.rssMB, w.entries, benchWelcomes(fleet)-welcomes0)
	return w
}

// benchRestartStats is what benchRestartServer measured.
type benchRestartStats struct {
	all, p50, p99 time.Duration // from the server's exit to all, half, 99% of the agents welcomed again
	cpu           float64       // the new server's CPU seconds until all were back
	entries       uint64        // Raft entries applied from before the stop to the end of the watch
	down          int           // nodes seen down that were not down before
}

// benchRestartServer stops the server (SIGTERM), starts it on the same data
// dir, and polls GET /v1/nodes until every agent is connected again and
// watch has passed since the server served again.
func benchRestartServer(b *testing.B, s *Server, api *Client, fleet []*benchAgent, watch time.Duration, downBefore *sync.Map) benchRestartStats {
	b.Helper()
	k := len(fleet)
	idx0 := benchAppliedIndex(b, api)
	before := benchWelcomeCounts(fleet)
	stopAt := time.Now()
	if code := s.Stop(); code != 0 {
		b.Logf("server exited with %d on SIGTERM", code)
	}
	downAt := time.Now()
	s.Restart()
	servingAt := time.Now()
	pid := s.running("cpu").pid()
	var st benchRestartStats
	var back []time.Duration // each agent's time from the server's exit to its welcome
	var downSeen sync.Map
	var lastNodes string
	for {
		if st.all == 0 {
			if n := benchReconnected(fleet, before); n == k {
				st.all = time.Since(downAt)
				back = benchReconnectTimes(fleet, downAt)
				st.cpu = float64(benchCPUTicks(b, pid)) / benchClockTicks()
			}
		}
		lastNodes = benchPollNodes(api, &downSeen).String()
		if st.all != 0 && time.Since(servingAt) > watch {
			break
		}
		if time.Since(downAt) > 5*time.Minute {
			b.Fatalf("K=%d: %d of %d agents reconnected 5 minutes after the restart; nodes: %s", k, benchReconnected(fleet, before), k, lastNodes)
		}
		time.Sleep(250 * time.Millisecond)
	}
	st.entries = benchAppliedIndex(b, api) - idx0
	benchWaitNodes(b, api, k, time.Minute, &downSeen, "all nodes ready after the restart")
	downSeen.Range(func(id, _ any) bool {
		if _, ok := downBefore.Load(id); !ok {
			st.down++
		}
		return true
	})
	sessions := benchMetricValue(b, api, "drover_agent_sessions")
	slices.Sort(back)
	st.p50, st.p99 = back[len(back)/2], back[len(back)*99/100]
	ivs := benchIntervals(fleet)
	b.Logf("K=%d: restart: stop took %v, start to serving %v; all %d agents back %v after the exit (p50 %v, p99 %v, first %v); server CPU from its start to all agents back %.2f s; %d Raft entries until %v after serving, %d agent welcomes; %d nodes seen down; %d sessions; nodes at the end: %s; heartbeat intervals now %v to %v",
		k, downAt.Sub(stopAt).Round(time.Millisecond), servingAt.Sub(downAt).Round(time.Millisecond), k, st.all.Round(time.Millisecond),
		st.p50.Round(time.Millisecond), st.p99.Round(time.Millisecond), back[0].Round(time.Millisecond),
		st.cpu, st.entries, watch, benchWelcomes(fleet)-benchSum(before), st.down, int(sessions), lastNodes, ivs[0], ivs[len(ivs)-1])
	return st
}

// benchAgent is one simulated agent: a real conn.Client whose handler keeps
// the node's identity, as the agent's store would, and counts the rest.
type benchAgent struct {
	name   string
	zone   string
	client *conn.Client

	mu       sync.Mutex
	nodeID   string
	secret   string
	interval time.Duration
	welcomes int
	lastAt   time.Time // last welcome
	assigns  atomic.Int64
}

func (a *benchAgent) hello() protocol.Hello {
	a.mu.Lock()
	defer a.mu.Unlock()
	return protocol.Hello{
		ProtocolVersion: protocol.AgentProtocolVersion, NodeID: a.nodeID, NodeSecret: a.secret,
		Name: a.name, Version: "bench", Region: "bench",
		Labels:    map[string]string{"zone": a.zone},
		Resources: protocol.NodeResources{CPUMillis: 2000, MemoryMB: 2048, DiskMB: 10240, FreeCPUMillis: 2000, FreeMemoryMB: 2048, FreeDiskMB: 10240},
		Facts:     protocol.NodeFacts{Hostname: a.name, OS: "linux", Arch: "amd64", CPUCores: 2},
		PortRange: protocol.PortRange{Lo: 20000, Hi: 20099},
	}
}

func (a *benchAgent) Welcome(w protocol.Welcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.NodeSecret != "" {
		a.nodeID, a.secret = w.NodeID, w.NodeSecret
	}
	a.interval = w.HeartbeatInterval.D()
	a.welcomes++
	a.lastAt = time.Now()
}

func (a *benchAgent) Assign(context.Context, protocol.Assign) { a.assigns.Add(1) }

func (a *benchAgent) Logs(context.Context, protocol.LogRequest, func(protocol.LogData) error) {}

func benchConnected(fleet []*benchAgent) int {
	n := 0
	for _, a := range fleet {
		if a.client.Connected() {
			n++
		}
	}
	return n
}

func benchWelcomes(fleet []*benchAgent) int {
	n := 0
	for _, a := range fleet {
		a.mu.Lock()
		n += a.welcomes
		a.mu.Unlock()
	}
	return n
}

func benchSum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func benchWelcomeCounts(fleet []*benchAgent) []int {
	out := make([]int, len(fleet))
	for i, a := range fleet {
		a.mu.Lock()
		out[i] = a.welcomes
		a.mu.Unlock()
	}
	return out
}

// benchReconnected counts the agents welcomed again since before, and
// connected.
func benchReconnected(fleet []*benchAgent, before []int) int {
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

func benchReconnectTimes(fleet []*benchAgent, since time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(fleet))
	for _, a := range fleet {
		a.mu.Lock()
		out = append(out, a.lastAt.Sub(since))
		a.mu.Unlock()
	}
	return out
}

func benchIntervals(fleet []*benchAgent) []time.Duration {
	out := make([]time.Duration, 0, len(fleet))
	for _, a := range fleet {
		a.mu.Lock()
		out = append(out, a.interval)
		a.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// benchNodeCounts is GET /v1/nodes summed up by status.
type benchNodeCounts map[string]int

func (n benchNodeCounts) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(parts, " ")
}

// benchPollNodes reads GET /v1/nodes once, records the nodes seen down, and
// returns the count by status (empty on an error, "error" set).
func benchPollNodes(api *Client, down *sync.Map) benchNodeCounts {
	out := benchNodeCounts{}
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

// benchWaitNodes polls GET /v1/nodes until k nodes are ready.
func benchWaitNodes(b testing.TB, api *Client, k int, timeout time.Duration, down *sync.Map, what string) {
	b.Helper()
	testwait.Eventually(b, timeout, what, func() error {
		if st := benchPollNodes(api, down); st["ready"] != k {
			return fmt.Errorf("nodes: %s", st)
		}
		return nil
	})
}

func benchCount(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// benchCountLines counts the lines of a file that contain substr.
func benchCountLines(b *testing.B, path, substr string) int {
	b.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("read %s: %v", path, err)
	}
	return strings.Count(string(raw), substr)
}

// benchMetricValue reads one series of GET /metrics, named with its
// labels as the answer writes them.
func benchMetricValue(b testing.TB, api *Client, name string) float64 {
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

func benchAppliedIndex(b *testing.B, api *Client) uint64 {
	b.Helper()
	return uint64(benchMetricValue(b, api, "drover_raft_applied_index"))
}

// benchCPUTicks is a process's utime+stime (all its threads) in clock ticks,
// from /proc/PID/stat.
func benchCPUTicks(b testing.TB, pid int) uint64 {
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

var benchClockTicksOnce = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && n > 0 {
			return n
		}
	}
	return 100 // USER_HZ on every Linux build that matters
})

func benchClockTicks() float64 { return benchClockTicksOnce() }

// benchRaiseNoFile raises the soft limit on open files to at least want (up
// to the hard limit): the agents' sockets are in this process, and the
// server, which inherits the limit, holds as many.
func benchRaiseNoFile(b testing.TB, want uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		// Root may raise the hard limit too, as the packaged units do
		// (LimitNOFILE=65536); otherwise the soft one goes to the hard.
		raised := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("setrlimit: %v", err)
	}
	if lim.Cur < want {
		b.Logf("open files limited to %d (hard limit), %d wanted", lim.Cur, want)
	}
}

// benchNice runs this process at the given nice value until the returned
// func restores it; processes it starts meanwhile inherit it. The
// placement and fleet scenarios run their thousands of simulated hosts in
// this process, on the servers' 2 cores: at nice 5 they take the CPU the
// servers leave, as hosts of their own would take none of it. Linux's
// nice is per thread, so every thread is set; threads made later inherit
// it from the one that makes them.
func benchNice(tb testing.TB, nice int) (restore func()) {
	tb.Helper()
	set := func(v int) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			tb.Logf("nice: %v", err)
			return
		}
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, v)
			}
		}
	}
	set(nice)
	return func() { set(0) }
}
