package e2e

// The performance harness of issue 12: every scenario against real server
// processes, with etcd's figures from the peer scripts in the same run
// when etcd is installed. It prints a table and one JSON line per figure:
//
//	go test ./internal/e2e -run '^$' -bench Perf -benchtime 1x -timeout 30m
//
// DROVER_BENCH_JSON=file appends the JSON lines to a file as well;
// DROVER_ETCD_PEER=dir names the peer scripts' folder (default
// ../shared/peers/etcd beside the repository). TestPerfSmoke runs every
// scenario at tiny sizes in the suite, so that the harness keeps working;
// it asserts nothing about time.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/agent/conn"
	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/protocol"
)

// perfSizes are the sizes of one run of the scenarios.
type perfSizes struct {
	writesC1, writesC64 int // creates at concurrency 1 and 64
	failovers           int // kill -9 trials
	agents, instances   int // placement: simulated hosts, instances of perReplicas
	perReplicas         int
	lost                int  // of the agents, vanishing at once
	starts              int  // creates with a real agent
	readInstances       int  // instances GET /v1/instances lists
	reads, wakes        int  // timed reads and blocking-query wakes
	peer                bool // run etcd's scripts beside, when installed
	// fleet: simulated hosts, instances of fleetReplicas, hosts vanishing
	// at once, and the idle window the leader's heartbeat cost is
	// measured over (perf_fleet_bench_test.go)
	fleetAgents, fleetInstances, fleetReplicas, fleetLost int
	fleetWindow                                           time.Duration
}

// perfFull are the sizes; perfSmoke the suite's.
var (
	perfFull = perfSizes{writesC1: 1000, writesC64: 20000, failovers: 10, agents: 1000, instances: 1000, perReplicas: 10,
		lost: 100, starts: 200, readInstances: 10000, reads: 200, wakes: 50, peer: true,
		fleetAgents: 10000, fleetInstances: 1000, fleetReplicas: 10, fleetLost: 1000, fleetWindow: 20 * time.Second}
	perfSmoke = perfSizes{writesC1: 20, writesC64: 200, failovers: 1, agents: 12, instances: 6, perReplicas: 2,
		lost: 2, starts: 3, readInstances: 50, reads: 5, wakes: 3,
		fleetAgents: 12, fleetInstances: 4, fleetReplicas: 2, fleetLost: 2, fleetWindow: time.Second}
)

// perfFigure is one measured figure, with its target and etcd's figure
// from the same run where there is one.
type perfFigure struct {
	Scenario string   `json:"scenario"`
	Figure   string   `json:"figure"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	Target   string   `json:"target,omitempty"`
	Etcd     *float64 `json:"etcd,omitempty"`
}

// perfRun collects the figures of a run.
type perfRun struct {
	tb      testing.TB
	mu      sync.Mutex
	figures []perfFigure
}

func (p *perfRun) add(scenario, figure string, value float64, unit, target string, etcd *float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.figures = append(p.figures, perfFigure{Scenario: scenario, Figure: figure, Value: value, Unit: unit, Target: target, Etcd: etcd})
}

// print writes the table and the JSON lines to w.
func (p *perfRun) print(w io.Writer) {
	fmt.Fprintf(w, "\n%-10s %-34s %12s %-8s %-22s %s\n", "scenario", "figure", "drover", "unit", "target", "etcd (same run)")
	for _, f := range p.figures {
		etcd := ""
		if f.Etcd != nil {
			etcd = strconv.FormatFloat(*f.Etcd, 'f', 2, 64)
		}
		fmt.Fprintf(w, "%-10s %-34s %12.2f %-8s %-22s %s\n", f.Scenario, f.Figure, f.Value, f.Unit, f.Target, etcd)
	}
	fmt.Fprintln(w)
	var lines bytes.Buffer
	for _, f := range p.figures {
		b, _ := json.Marshal(f)
		lines.Write(b)
		lines.WriteByte('\n')
	}
	w.Write(lines.Bytes())
	if path := os.Getenv("DROVER_BENCH_JSON"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Write(lines.Bytes())
			f.Close()
		}
	}
}

// BenchmarkPerf runs every scenario once, at the sizes.
// DROVER_PERF_SCENARIO=name runs one; DROVER_PERF_PROFILE=dir saves a CPU
// profile of the leader over each scenario's main phase there.
func BenchmarkPerf(b *testing.B) {
	p := &perfRun{tb: b}
	defer p.print(os.Stdout)
	only := os.Getenv("DROVER_PERF_SCENARIO")
	for _, sc := range perfScenarios {
		if only != "" && only != sc.name {
			continue
		}
		b.Run(sc.name, func(b *testing.B) { sc.run(b, p, perfFull) })
	}
}

// profileLeader, with DROVER_PERF_PROFILE set, records a CPU profile of
// the server at url (started with -pprof) until the returned func is
// called, into that folder as name.pprof.
func profileLeader(tb testing.TB, url, name string) func() {
	return profileServer(tb, url, name, 60)
}

// profileServer is profileLeader for any server, over seconds.
func profileServer(tb testing.TB, url, name string, seconds int) func() {
	return saveInBackground(tb, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", url, seconds), name)
}

// traceServer, with DROVER_PERF_PROFILE and DROVER_PERF_TRACE set, saves
// an execution trace of seconds of the server at url as name.pprof (for
// go tool trace: where its goroutines waited, and for what); the function
// it returns waits for it.
func traceServer(tb testing.TB, url, name string, seconds int) func() {
	if os.Getenv("DROVER_PERF_TRACE") == "" {
		return func() {}
	}
	return saveInBackground(tb, fmt.Sprintf("%s/debug/pprof/trace?seconds=%d", url, seconds), name)
}

// saveInBackground saves what url answers as saveProfile does, from a
// goroutine; the function it returns waits for it.
func saveInBackground(tb testing.TB, url, name string) func() {
	if os.Getenv("DROVER_PERF_PROFILE") == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		saveProfile(tb, url, name)
	}()
	return func() { <-done }
}

// saveProfile, with DROVER_PERF_PROFILE set, saves the profile a server
// started with -pprof answers at url there as name.pprof.
func saveProfile(tb testing.TB, url, name string) {
	dir := os.Getenv("DROVER_PERF_PROFILE")
	if dir == "" {
		return
	}
	resp, err := http.Get(url)
	if err != nil {
		tb.Logf("profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// TestPerfSmoke runs every scenario at tiny sizes: the harness works, and
// every request it sends succeeds.
func TestPerfSmoke(t *testing.T) {
	p := &perfRun{tb: t}
	for _, sc := range perfScenarios {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, p, perfSmoke) })
	}
	var out bytes.Buffer
	p.print(&out)
	t.Log(out.String())
}

var perfScenarios = []struct {
	name string
	run  func(testing.TB, *perfRun, perfSizes)
}{
	{"writes", perfWrites},
	{"failover", perfFailover},
	{"placement", perfPlacement},
	{"fleet", perfFleet},
	{"start", perfStart},
	{"reads", perfReads},
}

// --- writes -----------------------------------------------------------------

// perfWrites creates instances (one Raft entry each, fsync'ed on a
// majority) on 3 servers, each worker on one server (2 of 3 go through a
// follower), at concurrency 1 and 64; then etcd's peer script the same.
func perfWrites(tb testing.TB, p *perfRun, sz perfSizes) {
	c := StartCluster(tb, 3, perfArgs("-pprof"))
	c.WaitForLeader()
	urls := serverURLs(c)
	createTenantAt(tb, urls[0], "bench")
	for _, w := range []struct{ conc, n int }{{1, sz.writesC1}, {64, sz.writesC64}} {
		var stops []func()
		for i, u := range urls {
			stops = append(stops, profileServer(tb, u, fmt.Sprintf("writes-c%d-%d", w.conc, i), 3))
		}
		cpu0 := clusterCPU(tb, c)
		lat, elapsed, failed := perfCreate(urls, "bench", fmt.Sprintf("w%d-", w.conc), w.conc, w.n, `"replicas":0`)
		cpu := clusterCPU(tb, c) - cpu0
		for _, stop := range stops {
			stop()
		}
		if failed > 0 {
			tb.Fatalf("c=%d: %d of %d creates failed", w.conc, failed, w.n)
		}
		rate := float64(w.n) / elapsed.Seconds()
		var etcd etcdFigures
		if sz.peer {
			etcd = etcdWrites(tb, w.conc, w.n)
		}
		target := ""
		if w.conc == 64 {
			target = ">= 1.0x etcd"
		}
		p.add("writes", fmt.Sprintf("c=%d writes/s", w.conc), rate, "1/s", target, etcd.get("writes_per_s"))
		p50Target := ""
		if w.conc == 1 {
			p50Target = "<= 2 ms"
		}
		p.add("writes", fmt.Sprintf("c=%d p50", w.conc), ms(pct(lat, 0.5)), "ms", p50Target, etcd.get("p50_ms"))
		p99Target := ""
		if w.conc == 64 {
			p99Target = "<= etcd's"
		}
		p.add("writes", fmt.Sprintf("c=%d p99", w.conc), ms(pct(lat, 0.99)), "ms", p99Target, etcd.get("p99_ms"))
		p.add("writes", fmt.Sprintf("c=%d server CPU per write", w.conc), 1000*cpu/float64(w.n), "ms", "", nil)
	}
}

// clusterCPU is the CPU time, in seconds, the cluster's server processes
// have used.
func clusterCPU(tb testing.TB, c *Cluster) float64 {
	var ticks uint64
	for _, s := range c.Servers() {
		ticks += benchCPUTicks(tb, s.running("cpu").pid())
	}
	return float64(ticks) / benchClockTicks()
}

// clusterMetric is the sum of a metric over the cluster's servers: a
// counter of what the leader does, summed, stays whole when leadership
// moves.
func clusterMetric(tb testing.TB, c *Cluster, name string) float64 {
	sum := 0.0
	for _, s := range c.Servers() {
		sum += benchMetricValue(tb, s.Client().WithTimeout(30*time.Second), name)
	}
	return sum
}

// ownCPU is the CPU time, in seconds, this process (the simulated hosts
// and the load generator) has used.
func ownCPU(tb testing.TB) float64 {
	return float64(benchCPUTicks(tb, os.Getpid())) / benchClockTicks()
}

// perfCreate creates n instances of tenant named prefix0..., with conc
// workers, worker i sending to urls[i%len]; extra is more JSON of the
// instance document. It returns each create's latency.
func perfCreate(urls []string, tenant, prefix string, conc, n int, extra string) ([]time.Duration, time.Duration, int64) {
	return perfCreateWith(urls, tenant, prefix, conc, n, extra, false)
}

// perfCreateWith is perfCreate; with retry, each create carries an
// Idempotency-Key and is sent again, for up to a minute, while the answer
// is 503 or none (a leader change), as a client that must not lose or
// double a create does.
func perfCreateWith(urls []string, tenant, prefix string, conc, n int, extra string, retry bool) ([]time.Duration, time.Duration, int64) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				body := fmt.Sprintf(`{"name":"%s%d",%s,"spec":{"command":["/bin/true"]}}`, prefix, i, extra)
				t0 := time.Now()
				var resp *http.Response
				var err error
				for try := 0; ; try++ {
					req, _ := http.NewRequest(http.MethodPost, urls[(w+try)%len(urls)]+"/v1/tenants/"+tenant+"/instances", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					if retry {
						req.Header.Set("Idempotency-Key", fmt.Sprintf("%s%d", prefix, i))
					}
					resp, err = client.Do(req)
					unavailable := err != nil || resp.StatusCode == http.StatusServiceUnavailable
					if !retry || !unavailable || time.Since(t0) > time.Minute {
						break
					}
					if resp != nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					time.Sleep(100 * time.Millisecond)
				}
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), failed.Load()
}

// --- failover ---------------------------------------------------------------

// perfFailover kills -9 the leader of 3 servers, sizes.failovers times,
// while one writer writes with a 500 ms timeout, retrying over the
// survivors, and measures from the kill to the first write issued after it
// that is accepted; then etcd's failover script the same.
func perfFailover(tb testing.TB, p *perfRun, sz perfSizes) {
	c := StartCluster(tb, 3, perfArgs())
	client := &http.Client{Timeout: 500 * time.Millisecond}
	var times []time.Duration
	for trial := range sz.failovers {
		old := c.WaitForLeader()
		var urls []string
		for _, s := range c.Servers() {
			if s != old {
				urls = append(urls, s.URL())
			}
		}
		idx := indexOf(c, old)
		killed := time.Now()
		c.Kill(idx)
		for n := 0; ; n++ {
			body := fmt.Sprintf(`{"name":"failover-%d-%d"}`, trial, n)
			resp, err := client.Post(urls[n%len(urls)]+"/v1/tenants", "application/json", strings.NewReader(body))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					break
				}
			}
			if time.Since(killed) > 30*time.Second {
				tb.Fatalf("trial %d: no write accepted within 30 s of the kill", trial)
			}
			time.Sleep(10 * time.Millisecond)
		}
		times = append(times, time.Since(killed))
		c.Restart(idx)
	}
	var etcd etcdFigures
	if sz.peer {
		etcd = etcdFailover(tb, sz.failovers)
	}
	p.add("failover", "kill -9 to next write p50", ms(pct(times, 0.5)), "ms", "<= 0.66x etcd", etcd.get("p50_ms"))
	p.add("failover", "kill -9 to next write max", ms(pct(times, 1)), "ms", "<= 1000 ms", etcd.get("max_ms"))
}

// --- placement and node loss --------------------------------------------------

// perfPlacement connects simulated hosts (real agent/conn sessions whose
// handler reports every assigned replica healthy at once, running
// nothing) to 3 servers, creates instances of several replicas each at
// concurrency 64, and measures until every replica is healthy. Then some
// hosts vanish without closing their connections, and it measures until
// every replica they held is healthy elsewhere.
func perfPlacement(tb testing.TB, p *perfRun, sz perfSizes) {
	benchRaiseNoFile(tb, uint64(4*sz.agents+1024))
	c := StartCluster(tb, 3, perfArgs("-pprof"))
	leader := c.WaitForLeader()
	urls := serverURLs(c)
	defer benchNice(tb, 5)()
	fleet := startSimFleet(tb, urls, sz.agents)
	api := leader.Client().WithTimeout(30 * time.Second).WithRetry(10 * time.Second)
	benchWaitNodes(tb, api, sz.agents, 5*time.Minute, &sync.Map{}, "all simulated nodes ready")
	createTenantAt(tb, urls[0], "place")

	stopProfile := profileLeader(tb, leader.URL(), "placement")
	defer stopProfile()
	sentBefore := clusterMetric(tb, c, "drover_agent_assigned_replicas_total")
	serverCPU, hostsCPU := clusterCPU(tb, c), ownCPU(tb)
	start := time.Now()
	_, _, failed := perfCreate(urls, "place", "p", 64, sz.instances, fmt.Sprintf(`"replicas":%d`, sz.perReplicas))
	if failed > 0 {
		tb.Fatalf("%d of %d creates failed", failed, sz.instances)
	}
	created := time.Since(start)
	// The hosts say when they have reported every replica; only then is
	// the API asked (listing every instance while they work would load the
	// machine the measurement runs on).
	eventually(tb, 5*time.Minute, "every replica reported healthy by its host", func() (bool, string) {
		n := 0
		for _, a := range fleet {
			n += a.reportedCount()
		}
		return n >= sz.instances*sz.perReplicas, fmt.Sprintf("%d replicas reported", n)
	})
	p.add("placement", "all replicas reported by their hosts after", time.Since(start).Seconds(), "s", "", nil)
	serverCPU, hostsCPU = clusterCPU(tb, c)-serverCPU, ownCPU(tb)-hostsCPU
	perfWaitHealthy(tb, api, "place", sz.instances, sz.perReplicas, nil, "every replica healthy")
	placed := time.Since(start)
	replicas := float64(sz.instances * sz.perReplicas)
	p.add("placement", fmt.Sprintf("%d replicas on %d hosts: all healthy", sz.instances*sz.perReplicas, sz.agents), placed.Seconds(), "s", "<= 2 s", nil)
	p.add("placement", "replicas placed and healthy per second", replicas/placed.Seconds(), "1/s", ">= 5000", nil)
	p.add("placement", "creates done after", created.Seconds(), "s", "", nil)
	p.add("placement", "servers' CPU per replica, until all reported", 1000*serverCPU/replicas, "ms", "", nil)
	p.add("placement", "hosts' and load's CPU per replica, until all reported", 1000*hostsCPU/replicas, "ms", "", nil)
	var assigns int64
	for _, a := range fleet {
		assigns += a.assigns.Load()
	}
	p.add("placement", "evaluations committed by the leader", benchMetricValue(tb, api, `drover_scheduler_evaluations_total{outcome="committed"}`), "", "", nil)
	p.add("placement", "assignments sent to the hosts", float64(assigns), "", "", nil)
	p.add("placement", "replicas in those assignments", clusterMetric(tb, c, "drover_agent_assigned_replicas_total")-sentBefore, "", "", nil)

	// The hosts that vanish: those holding replicas first, so that
	// something has to move.
	gone := map[string]bool{}
	for _, a := range fleet[:sz.lost] {
		gone[a.node()] = true
	}
	lost := time.Now()
	for _, a := range fleet[:sz.lost] {
		a.vanish()
	}
	perfWaitHealthy(tb, api, "place", sz.instances, sz.perReplicas, gone, "every replica healthy off the vanished hosts")
	p.add("nodeloss", fmt.Sprintf("%d of %d hosts vanish: replaced", sz.lost, sz.agents), time.Since(lost).Seconds(), "s", "<= 5 s", nil)
}

// perfArgs are the servers' flags in the performance scenarios, args
// added: the servers log at their default level, info, as users run them
// (the harness's usual debug level costs CPU for each plan and each agent
// session); DROVER_PERF_LOG_LEVEL=debug when their logs are wanted.
func perfArgs(args ...string) Option {
	level := cmp.Or(os.Getenv("DROVER_PERF_LOG_LEVEL"), "info")
	return WithServerArgs(append([]string{"-log-level", level}, args...)...)
}

// simAgent is a simulated host: a real agent/conn session whose handler
// reports each replica it is assigned healthy, and whose TCP connection
// can freeze (vanish) without closing.
type simAgent struct {
	benchAgent
	mu2      sync.Mutex
	reported map[string]bool
	conns    []*freezableConn
	frozen   atomic.Bool
	warnings *warnCounter // the fleet's, shared
}

// warnCounter counts the warnings of a simulated fleet's agents by what
// they say, numbers and addresses left out, so that a fleet in trouble
// says why (sessions ended by unanswered pings, refused dials, ...).
type warnCounter struct {
	mu    sync.Mutex
	count map[string]int
}

var warnNoise = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}|[0-9]+(\.[0-9]+)*(ms|s|µs)?`)

func (w *warnCounter) Write(p []byte) (int, error) {
	line := string(p)
	if i := strings.Index(line, "]"); i >= 0 {
		line = line[i+1:]
	}
	line = strings.TrimSpace(warnNoise.ReplaceAllString(line, "N"))
	w.mu.Lock()
	w.count[line]++
	w.mu.Unlock()
	return len(p), nil
}

// String lists the most frequent warnings, most frequent first.
func (w *warnCounter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := slices.Collect(maps.Keys(w.count))
	slices.SortFunc(lines, func(a, b string) int { return w.count[b] - w.count[a] })
	var b strings.Builder
	for i, l := range lines {
		if i == 5 {
			break
		}
		fmt.Fprintf(&b, "\n  %d x %s", w.count[l], l)
	}
	return b.String()
}

func (a *simAgent) node() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodeID
}

// Assign reports every new replica of the set healthy.
func (a *simAgent) Assign(_ context.Context, as protocol.Assign) {
	a.assigns.Add(1)
	a.mu2.Lock()
	var reports []protocol.ReplicaReport
	now := time.Now().UTC()
	for _, r := range as.Replicas {
		if !a.reported[r.ID] {
			a.reported[r.ID] = true
			reports = append(reports, protocol.ReplicaReport{ID: r.ID, State: protocol.ReplicaHealthy, Health: protocol.HealthPassing, StartedAt: now})
		}
	}
	a.mu2.Unlock()
	if len(reports) > 0 {
		a.client.Report(reports, as.Generation)
	}
}

func (a *simAgent) reportedCount() int {
	a.mu2.Lock()
	defer a.mu2.Unlock()
	return len(a.reported)
}

// vanish freezes the agent's connections: nothing more is read or
// written, and nothing is closed, as when a host loses power.
func (a *simAgent) vanish() {
	a.frozen.Store(true)
	a.mu2.Lock()
	defer a.mu2.Unlock()
	for _, c := range a.conns {
		c.freeze()
	}
}

func (a *simAgent) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if a.frozen.Load() {
		<-ctx.Done() // a vanished host dials nothing
		return nil, ctx.Err()
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	fc := &freezableConn{Conn: c, thaw: make(chan struct{})}
	a.mu2.Lock()
	a.conns = append(a.conns, fc)
	a.mu2.Unlock()
	return fc, nil
}

// freezableConn is a connection that can stop moving bytes without closing.
type freezableConn struct {
	net.Conn
	frozen atomic.Bool
	thaw   chan struct{} // closed by Close
	once   sync.Once
}

func (c *freezableConn) freeze() { c.frozen.Store(true) }

func (c *freezableConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.frozen.Load() {
		<-c.thaw // what arrives is never seen
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *freezableConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil // lost on the way
	}
	return c.Conn.Write(p)
}

func (c *freezableConn) Close() error {
	c.once.Do(func() { close(c.thaw) })
	if c.frozen.Load() {
		return nil // the peer never learns
	}
	return c.Conn.Close()
}

// startSimFleet connects n simulated hosts to the servers; they stop at the
// test's end.
func startSimFleet(tb testing.TB, urls []string, n int) []*simAgent {
	return startSimFleetAt(tb, urls, n, 0)
}

// startSimFleetAt is startSimFleet with the hosts starting perSecond a
// second, as a fleet of hosts that boot over a while; 0 starts them all
// at once.
func startSimFleetAt(tb testing.TB, urls []string, n, perSecond int) []*simAgent {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	fleet := make([]*simAgent, n)
	warnings := &warnCounter{count: map[string]int{}}
	logger := hclog.New(&hclog.LoggerOptions{Output: warnings, Level: hclog.Warn})
	for i := range fleet {
		a := &simAgent{benchAgent: benchAgent{name: fmt.Sprintf("sim-%05d", i), zone: fmt.Sprintf("z%d", i%3)}, reported: map[string]bool{}, warnings: warnings}
		cl, err := conn.New(conn.Config{Servers: urls, Hello: a.hello, Handler: a, Dial: a.dial, Logger: logger})
		if err != nil {
			tb.Fatal(err)
		}
		a.client = cl
		fleet[i] = a
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		for i, a := range fleet {
			if perSecond > 0 {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))); d > 0 && !backoff.Sleep(ctx, d) {
					return
				}
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = a.client.Run(ctx) }()
		}
	}()
	return fleet
}

// perfPoll is how often the scenarios list instances or nodes while they
// time something: a list of 1,000 instances and their 10,000 replicas, or
// of 10,000 nodes, costs the leader milliseconds of CPU, which at
// testwait's 10 ms would take a quarter of a core or more from the work
// being timed; the figures are up to perfPoll late.
const perfPoll = 50 * time.Millisecond

// perfEventually is eventually, polling every perfPoll.
func perfEventually(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	perfEventuallyEvery(tb, timeout, perfPoll, what, cond)
}

// perfEventuallyEvery is eventually, polling every poll.
func perfEventuallyEvery(tb testing.TB, timeout, poll time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	eventually(tb, timeout, what, func() (bool, string) {
		ok, state := cond()
		if !ok {
			time.Sleep(poll - testwait.Poll)
		}
		return ok, state
	})
}

// perfWaitHealthy waits until the tenant's n instances are running with
// per healthy replicas each, none on a node of avoid.
func perfWaitHealthy(tb testing.TB, api *Client, tenant string, n, per int, avoid map[string]bool, what string) {
	tb.Helper()
	stuck := stuckTeller{began: time.Now()}
	perfEventually(tb, 5*time.Minute, what, func() (bool, string) {
		defer stuck.tell(tb, api, tenant, per, what)
		var ins []perfInstance
		r, err := api.Try(http.MethodGet, "/v1/tenants/"+tenant+"/instances", nil)
		if err != nil || !r.OK() || r.Decode(&ins) != nil {
			return false, fmt.Sprint(err, r)
		}
		ready := 0
		for _, in := range ins {
			if in.ready(per) {
				ready++
			}
		}
		if ready < n {
			return false, fmt.Sprintf("%d of %d instances have %d healthy replicas", ready, n, per)
		}
		if len(avoid) > 0 {
			down, err := nodesDown(api, avoid)
			if err != "" {
				return false, err
			}
			if down < len(avoid) {
				return false, fmt.Sprintf("%d of %d nodes down yet", down, len(avoid))
			}
		}
		return true, ""
	})
}

// perfInstance is what the waits read of an instance in a list.
type perfInstance struct {
	Name   string `json:"name"`
	Status struct {
		Replicas struct{ Desired, Healthy int }
	} `json:"status"`
}

func (in perfInstance) ready(per int) bool {
	return in.Status.Replicas.Healthy == per && in.Status.Replicas.Desired == per
}

// stuckTeller says once, when a wait has taken 30 s, what the first of a
// tenant's instances short of its healthy replicas has and went through,
// for whoever reads the log.
type stuckTeller struct {
	began time.Time
	told  bool
}

func (s *stuckTeller) tell(tb testing.TB, api *Client, tenant string, per int, what string) {
	if s.told || time.Since(s.began) < 30*time.Second {
		return
	}
	s.told = true
	var ins []perfInstance
	if r, err := api.Try(http.MethodGet, "/v1/tenants/"+tenant+"/instances", nil); err != nil || !r.OK() || r.Decode(&ins) != nil {
		return
	}
	for _, in := range ins {
		if !in.ready(per) {
			base := "/v1/tenants/" + tenant + "/instances/" + in.Name
			for _, path := range []string{base, base + "/replicas", base + "/events"} {
				if r, err := api.Try(http.MethodGet, path, nil); err == nil {
					tb.Logf("%s after %s: GET %s: %s", what, time.Since(s.began).Round(time.Second), path, r.Body)
				}
			}
			return
		}
	}
}

// nodesDown counts the nodes of set marked down, or says why it could not.
func nodesDown(api *Client, set map[string]bool) (int, string) {
	r, err := api.Try(http.MethodGet, "/v1/nodes", nil)
	if err != nil || !r.OK() {
		return 0, fmt.Sprint(err, r)
	}
	var nodes []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := r.Decode(&nodes); err != nil {
		return 0, err.Error()
	}
	down := 0
	for _, nd := range nodes {
		if set[nd.ID] && nd.Status == "down" {
			down++
		}
	}
	return down, ""
}

// --- start latency --------------------------------------------------------------

// perfStart creates instances one at a time on a real agent and measures
// from the create to the replica's process started (its started_at, set
// by the agent as it starts the process).
func perfStart(tb testing.TB, p *perfRun, sz perfSizes) {
	c := StartCluster(tb, 1, perfArgs())
	s := c.WaitForLeader()
	StartAgent(tb, c)
	createTenantAt(tb, s.URL(), "start")
	api := s.Client()
	var lat []time.Duration
	for i := range sz.starts {
		name := fmt.Sprintf("s%d", i)
		doc := map[string]any{"name": name, "replicas": 1, "spec": map[string]any{"command": []string{"/bin/sleep", "3600"}}}
		t0 := time.Now()
		api.JSON(http.MethodPost, "/v1/tenants/start/instances", doc, nil)
		var started time.Time
		eventually(tb, waitTimeout, name+" started", func() (bool, string) {
			rs, err := listReplicas(s, "start", name)
			if err != nil || len(rs) != 1 || rs[0].StartedAt.IsZero() {
				return false, fmt.Sprint(rs, err)
			}
			started = rs[0].StartedAt
			return true, ""
		})
		lat = append(lat, started.Sub(t0))
		api.JSON(http.MethodDelete, "/v1/tenants/start/instances/"+name, nil, nil)
	}
	p.add("start", fmt.Sprintf("create to process started p50 (%d)", sz.starts), ms(pct(lat, 0.5)), "ms", "", nil)
	p.add("start", fmt.Sprintf("create to process started p99 (%d)", sz.starts), ms(pct(lat, 0.99)), "ms", "<= 100 ms", nil)
}

// --- reads ------------------------------------------------------------------

// perfReads lists many instances, and measures how soon a blocking query
// wakes after a write is answered.
func perfReads(tb testing.TB, p *perfRun, sz perfSizes) {
	c := StartCluster(tb, 1, perfArgs("-pprof"))
	s := c.WaitForLeader()
	url := s.URL()
	createTenantAt(tb, url, "read")
	if _, _, failed := perfCreate([]string{url}, "read", "r", 64, sz.readInstances, `"replicas":0`); failed > 0 {
		tb.Fatalf("%d creates failed", failed)
	}
	client := &http.Client{Timeout: time.Minute}
	var lat []time.Duration
	stop := profileServer(tb, url, "reads", 8)
	for range sz.reads {
		t0 := time.Now()
		resp, err := client.Get(url + "/v1/instances")
		if err != nil {
			tb.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n == 0 {
			tb.Fatalf("GET /v1/instances: %s", resp.Status)
		}
		lat = append(lat, time.Since(t0))
	}
	stop()
	p.add("reads", fmt.Sprintf("GET /v1/instances (%d) p99", sz.readInstances), ms(pct(lat, 0.99)), "ms", "<= 50 ms", nil)

	var wakes []time.Duration
	for i := range sz.wakes {
		idx := currentIndex(tb, client, url+"/v1/tenants/read")
		woke := make(chan time.Time, 1)
		go func() {
			resp, err := client.Get(fmt.Sprintf("%s/v1/tenants/read?index=%d&wait=30s", url, idx))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			woke <- time.Now()
		}()
		time.Sleep(20 * time.Millisecond) // the query is waiting
		resp, err := client.Do(mustRequest(tb, http.MethodPatch, url+"/v1/tenants/read", fmt.Sprintf(`{"labels":{"n":"%d"}}`, i)))
		if err != nil {
			tb.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		acked := time.Now()
		if resp.StatusCode != http.StatusOK {
			tb.Fatalf("PATCH tenant: %s", resp.Status)
		}
		wakes = append(wakes, max(0, (<-woke).Sub(acked)))
	}
	p.add("reads", "blocking query wakes after the write p50", ms(pct(wakes, 0.5)), "ms", "", nil)
	p.add("reads", "blocking query wakes after the write max", ms(pct(wakes, 1)), "ms", "<= 5 ms", nil)
}

func currentIndex(tb testing.TB, client *http.Client, url string) uint64 {
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	n, err := strconv.ParseUint(resp.Header.Get("X-Drover-Index"), 10, 64)
	if err != nil {
		tb.Fatalf("no X-Drover-Index on %s", url)
	}
	return n
}

func mustRequest(tb testing.TB, method, url, body string) *http.Request {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// --- etcd, the peer ---------------------------------------------------------

// etcdFigures are the JSON fields of one line of a peer script.
type etcdFigures map[string]float64

func (e etcdFigures) get(k string) *float64 {
	if v, ok := e[k]; ok {
		return &v
	}
	return nil
}

// etcdPeerDir is the folder of the peer scripts, or "" when etcd or the
// scripts are missing.
func etcdPeerDir() string {
	if _, err := exec.LookPath("etcd"); err != nil {
		return ""
	}
	dir := os.Getenv("DROVER_ETCD_PEER")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "peers", "etcd")
	}
	if _, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil {
		return ""
	}
	return dir
}

// etcdWrites runs the peer's Put benchmark at conc with n writes; nil
// figures without etcd.
func etcdWrites(tb testing.TB, conc, n int) etcdFigures {
	lines := runPeer(tb, "run.sh", "SETTINGS="+strconv.Itoa(conc)+":"+strconv.Itoa(n))
	for _, l := range lines {
		if l["concurrency"] == float64(conc) {
			return l
		}
	}
	return nil
}

// etcdFailover runs the peer's failover trials.
func etcdFailover(tb testing.TB, trials int) etcdFigures {
	for _, l := range runPeer(tb, "failover.sh", "TRIALS="+strconv.Itoa(trials)) {
		if _, ok := l["p50_ms"]; ok {
			return l
		}
	}
	return nil
}

func runPeer(tb testing.TB, script string, env ...string) []etcdFigures {
	dir := etcdPeerDir()
	if dir == "" {
		return nil
	}
	cmd := exec.Command("bash", filepath.Join(dir, script))
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Logf("etcd peer %s: %v\n%s", script, err, tail2(stderr.String(), 1500))
	}
	var lines []etcdFigures
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		raw := map[string]any{}
		if json.Unmarshal(sc.Bytes(), &raw) != nil {
			continue
		}
		f := etcdFigures{}
		for k, v := range raw {
			if x, ok := v.(float64); ok {
				f[k] = x
			}
		}
		lines = append(lines, f)
	}
	return lines
}

func tail2(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// --- helpers ----------------------------------------------------------------

func serverURLs(c *Cluster) []string {
	var urls []string
	for _, s := range c.Servers() {
		urls = append(urls, s.URL())
	}
	return urls
}

func createTenantAt(tb testing.TB, url, name string) {
	resp, err := http.Post(url+"/v1/tenants", "application/json", strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		tb.Fatalf("create tenant %s: %s", name, resp.Status)
	}
}

// pct is the p-th quantile (0..1) of ds, nearest rank.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
