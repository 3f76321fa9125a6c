package e2e

// The fault-injection suite of the issue "Reliability" (RELIABILITY.md):
// three servers, each in a network namespace of its own, and two agents
// running demo-app replicas, while a seeded schedule of faults (kill -9,
// SIGSTOP/SIGCONT, graceful restarts, partitions, an agent cut off past
// its TTL) runs against them and clients create, update, scale, delete
// and read instances through random servers. Then, healed: porcupine's
// verdict on each instance's history, every acknowledged write on every
// server before and after a full restart, the same state on every
// server, the untouched instances' replicas never stopped, and no
// instance with more healthy replicas than it wants.
//
//	go test ./internal/e2e -run TestChaos -v                      # short form, about 2 minutes
//	go test ./internal/e2e -run TestChaos -v -timeout 40m -chaos.duration=30m -chaos.report=chaos.json
//	go test ./internal/e2e -run TestChaos -v -chaos.seed=N        # replay a schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	chaosDuration = flag.Duration("chaos.duration", 0, "how long the chaos suite injects faults (default: the short form's 45s)")
	chaosSeed     = flag.Uint64("chaos.seed", 0, "seed of the chaos suite's fault schedule and workload (default: DROVER_CHAOS_SEED, else from the clock)")
	chaosReport   = flag.String("chaos.report", "", "also write the chaos suite's report (JSON) to this path")
)

// shortChaos is how long the short form injects faults.
const shortChaos = 45 * time.Second

// chaosSeedValue is -chaos.seed, else DROVER_CHAOS_SEED, else the clock.
func chaosSeedValue(t *testing.T) uint64 {
	if *chaosSeed != 0 {
		return *chaosSeed
	}
	if s := os.Getenv("DROVER_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DROVER_CHAOS_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// chaosReportDoc is the report the suite writes.
type chaosReportDoc struct {
	Seed       uint64            `json:"seed"`
	Started    time.Time         `json:"started"`
	FaultTime  string            `json:"fault_time"`
	Total      string            `json:"total_time"`
	Faults     []faultRecord     `json:"faults"`
	OpCounts   map[string]int    `json:"op_counts"` // kind/outcome -> n
	Checks     []checkRecord     `json:"checks"`
	Histories  []linearizability `json:"linearizability"`
	Violations []string          `json:"violations"`
	Ops        []chaosOp         `json:"ops,omitempty"`
}

// checkRecord is one check and what it found.
type checkRecord struct {
	Name   string   `json:"name"`
	Passed bool     `json:"passed"`
	Detail []string `json:"detail,omitempty"`
}

// faultRecord is one fault of the schedule, times since the workload began.
type faultRecord struct {
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Start  string `json:"start"`
	Healed string `json:"healed"`
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite runs for minutes")
	}
	seed := chaosSeedValue(t)
	t.Logf("chaos seed %d (replay with -chaos.seed=%d or DROVER_CHAOS_SEED=%d)", seed, seed, seed)
	faultTime := shortChaos
	if *chaosDuration > 0 {
		faultTime = *chaosDuration
	}
	began := time.Now()
	rnd := rand.New(rand.NewPCG(seed, 0xc4a05))
	report := &chaosReportDoc{Seed: seed, Started: began.UTC(), FaultTime: faultTime.String(), OpCounts: map[string]int{}}
	reportDir, err := os.MkdirTemp("", fmt.Sprintf("drover-chaos-%d-", seed))
	if err != nil {
		t.Fatal(err)
	}
	// Written last, whatever happened: the report of a failed run matters most.
	defer writeChaosReport(t, report, reportDir)

	c := StartCluster(t, 3, WithNetns())
	// The steady agent runs the canaries, which the workload never
	// touches; the other reaches the servers through proxies that cut it
	// off, and runs the workload's instances.
	steady := StartAgent(t, c, WithLabel("pool", "steady"))
	var proxies []*Proxy
	var urls []string
	for _, s := range c.Servers() {
		p := StartProxy(t, s.Addr())
		proxies = append(proxies, p)
		urls = append(urls, p.URL())
	}
	work := StartAgent(t, c, WithLabel("pool", "work"), WithAgentServers(urls...))
	createTenant(t, c.Server(0), chaosTenant)
	canaries := startCanaries(t, c, steady, 2)

	w := newWorkload(c, 4, func(key string, replicas int, mark string) map[string]any {
		return chaosDoc(key, replicas, mark, "work")
	})
	stop := w.run(4, rnd)
	n := &nemesis{t: t, c: c, rnd: rnd, proxies: proxies, agent: work, start: w.start}
	n.run(faultTime)
	stop()
	report.Faults = n.faults
	t.Logf("%d faults in %v; %d operations", len(n.faults), faultTime, len(w.history()))

	// Healed: the final state, read linearizably, closes every history.
	final := finalRead(t, c, w, "after healing")
	checkServersHold(t, c, report, final, "after healing")
	// A full stop of every server at once (kill -9), and a start.
	for _, s := range c.Servers() {
		s.Kill()
	}
	for _, s := range c.Servers() {
		s.Restart()
	}
	c.WaitForLeader()
	afterRestart := finalRead(t, c, w, "after a full restart")
	checkServersHold(t, c, report, afterRestart, "after a full restart")
	checkSameState(t, c, report)
	checkCanaries(t, c, steady, canaries, report)
	checkNoSurplus(t, c, report)

	ops := w.history()
	for _, o := range ops {
		report.OpCounts[o.Kind+"/"+o.Outcome]++
	}
	report.Histories = checkLinearizable(ops, reportDir, 2*time.Minute)
	var illegal, undecided []string
	for _, h := range report.Histories {
		switch h.Result {
		case "Illegal":
			illegal = append(illegal, h.Key+": "+h.Detail+" (see "+h.Visual+")")
		case "Unknown":
			undecided = append(undecided, h.Key)
		}
	}
	report.addCheck(t, "linearizable histories", illegal)
	if len(undecided) > 0 {
		t.Errorf("the linearizability check timed out on %v", undecided)
	}
	report.addCheck(t, "no lost acknowledged write", lostWrites(ops, afterRestart))
	report.Ops = ops
	report.Total = time.Since(began).Round(time.Second).String()
	t.Logf("operations by kind/outcome: %v", report.OpCounts)
}

// addCheck records a check; what it found fails the test.
func (r *chaosReportDoc) addCheck(t *testing.T, name string, found []string) {
	t.Helper()
	r.Checks = append(r.Checks, checkRecord{Name: name, Passed: len(found) == 0, Detail: found})
	for _, f := range found {
		r.Violations = append(r.Violations, name+": "+f)
		t.Errorf("%s: %s", name, f)
	}
	if len(found) == 0 {
		t.Logf("check passed: %s", name)
	}
}

func writeChaosReport(t *testing.T, r *chaosReportDoc, dir string) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Errorf("chaos report: %v", err)
		return
	}
	paths := []string{filepath.Join(dir, "report.json")}
	if *chaosReport != "" {
		paths = append(paths, *chaosReport)
	}
	for _, p := range paths {
		if err := writeFileAll(p, b); err != nil {
			t.Errorf("chaos report: %v", err)
			continue
		}
		t.Logf("chaos report: %s", p)
	}
}

// chaosDoc is a demo-app instance on the agents of pool, with a marker.
func chaosDoc(name string, replicas int, mark, pool string) map[string]any {
	doc := demoInstance(name, replicas)
	setEnv(doc, "CHAOS_MARK", mark)
	spec := specOf(doc)
	spec["constraints"] = map[string]any{"labels": map[string]string{"pool": pool}}
	spec["health"].(map[string]any)["interval"] = "1s"
	return doc
}

// canary is an instance the workload never touches, and its replica.
type canary struct {
	name    string
	replica string
	pid     int
}

// startCanaries creates n one-replica instances on the steady agent and
// returns their replicas once healthy.
func startCanaries(t *testing.T, c *Cluster, a *Agent, n int) []canary {
	t.Helper()
	var out []canary
	for i := range n {
		name := fmt.Sprintf("canary-%d", i)
		c.Server(0).Client().WithRetry(retryBudget).JSON(http.MethodPost, "/v1/tenants/"+chaosTenant+"/instances",
			chaosDoc(name, 1, "canary", "steady"), nil)
		r := waitHealthy(t, c, chaosTenant, name, 1)[0]
		out = append(out, canary{name: name, replica: r.ID, pid: mustInfo(t, r.Ports["http"]).PID})
	}
	if pids := a.ReplicaPIDs(); len(pids) < n {
		t.Fatalf("the steady agent runs processes %v for %d canaries", pids, n)
	}
	return out
}

// finalRead reads every instance of the chaos tenant linearizably (retried
// until a server answers) and records it as a read of every key the
// workload used, closing their histories. It returns the state.
func finalRead(t *testing.T, c *Cluster, w *workload, when string) map[string]instState {
	t.Helper()
	var r *Response
	var op chaosOp
	eventually(t, waitTimeout, "a linearizable read of every instance "+when, func() (bool, string) {
		s := c.anyUp()
		if s == nil {
			return false, "no server up"
		}
		op = chaosOp{Client: -1, Kind: opRead, Server: s.Name(), Call: time.Since(w.start)}
		var err error
		r, err = s.Client().WithTimeout(5*time.Second).Try(http.MethodGet, "/v1/tenants/"+chaosTenant+"/instances", nil)
		op.Return = time.Since(w.start)
		if err != nil {
			return false, err.Error()
		}
		return r.OK(), r.String()
	})
	var ins []apiInstance
	if err := r.Decode(&ins); err != nil {
		t.Fatal(err)
	}
	final := map[string]instState{}
	for _, in := range ins {
		final[in.Name] = stateOf(in)
	}
	keys := map[string]bool{}
	for _, o := range w.history() {
		keys[o.Key] = true
	}
	var reads []chaosOp
	for k := range keys {
		o := op
		o.Key, o.Outcome, o.Status = k, outcomeOK, http.StatusOK
		st := final[k]
		o.Seen = &st
		reads = append(reads, o)
	}
	w.record(reads...)
	return final
}

// checkServersHold checks that every server's own state (a stale read
// once it has applied what the leader has) holds the final state: every
// acknowledged write is on every server.
func checkServersHold(t *testing.T, c *Cluster, report *chaosReportDoc, final map[string]instState, when string) {
	t.Helper()
	index := leaderIndex(t, c)
	var found []string
	for _, s := range c.Servers() {
		have, err := ownInstances(s, index)
		if err != nil {
			found = append(found, fmt.Sprintf("%s: %v", s.Name(), err))
			continue
		}
		for k, want := range final {
			if got := have[k]; got != want {
				found = append(found, fmt.Sprintf("%s holds %s as %s, the leader as %s", s.Name(), k, got, want))
			}
		}
		for k, got := range have {
			if _, ok := final[k]; !ok {
				found = append(found, fmt.Sprintf("%s holds %s as %s, the leader does not have it", s.Name(), k, got))
			}
		}
	}
	report.addCheck(t, "every server holds every acknowledged write "+when, found)
}

// leaderIndex is the X-Drover-Index of a linearizable read of the
// instances through the leader.
func leaderIndex(t *testing.T, c *Cluster) uint64 {
	t.Helper()
	r := c.WaitForLeader().Client().WithRetry(retryBudget).JSON(http.MethodGet, "/v1/tenants/"+chaosTenant+"/instances", nil, nil)
	return r.Index()
}

// ownInstances is a server's own view of the chaos tenant's instances
// once it has applied index (?stale=true&index=N).
func ownInstances(s *Server, index uint64) (map[string]instState, error) {
	ins, err := ownInstanceDocs(s, index)
	if err != nil {
		return nil, err
	}
	out := map[string]instState{}
	for _, raw := range ins {
		var in apiInstance
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, err
		}
		out[in.Name] = stateOf(in)
	}
	return out, nil
}

// ownInstanceDocs is ownInstances as the documents the server answered.
func ownInstanceDocs(s *Server, index uint64) ([]json.RawMessage, error) {
	path := fmt.Sprintf("/v1/tenants/%s/instances?stale=true&index=%d&wait=20s", chaosTenant, index)
	r, err := s.Client().WithTimeout(30*time.Second).WithRetry(retryBudget).Try(http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		return nil, fmt.Errorf("%s", r)
	}
	if r.Index() < index {
		return nil, fmt.Errorf("%s answered index %d, below the leader's %d", s.Name(), r.Index(), index)
	}
	var ins []json.RawMessage
	return ins, r.Decode(&ins)
}

// checkSameState compares a digest of each server's own instance
// documents without their status (replicas come and go with the agents):
// the same on every server once each has applied the leader's index.
func checkSameState(t *testing.T, c *Cluster, report *chaosReportDoc) {
	t.Helper()
	var digests []string
	var differ []string
	ok, state := waitUntil(waitTimeout, func() (bool, string) {
		index := leaderIndex(t, c)
		digests, differ = digests[:0], differ[:0]
		var first []json.RawMessage
		for i, s := range c.Servers() {
			ins, err := ownInstanceDocs(s, index)
			if err != nil {
				return false, err.Error()
			}
			digests = append(digests, s.Name()+"="+specDigest(ins))
			if i == 0 {
				first = ins
			} else if specDigest(ins) != specDigest(first) {
				differ = append(differ, docDiff(c.Server(0).Name(), first, s.Name(), ins)...)
			}
		}
		return len(differ) == 0, strings.Join(digests, " ")
	})
	var found []string
	if !ok {
		found = append(found, "state digests differ: "+state)
		found = append(found, differ...)
	}
	t.Logf("state digests: %s", state)
	report.addCheck(t, "equal state on every server", found)
}

// specDigest hashes instance documents without their status, in id order.
func specDigest(ins []json.RawMessage) string {
	var docs []string
	for _, raw := range ins {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			docs = append(docs, string(raw))
			continue
		}
		delete(m, "status")
		b, _ := json.Marshal(m) // maps marshal with sorted keys
		docs = append(docs, string(b))
	}
	sort.Strings(docs)
	h := sha256.Sum256([]byte(strings.Join(docs, "\n")))
	return hex.EncodeToString(h[:8])
}

// docDiff names the fields, other than status, in which two servers'
// instance documents differ.
func docDiff(nameA string, a []json.RawMessage, nameB string, b []json.RawMessage) []string {
	byID := func(docs []json.RawMessage) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, raw := range docs {
			var m map[string]any
			if json.Unmarshal(raw, &m) == nil {
				delete(m, "status")
				out[fmt.Sprint(m["id"])] = m
			}
		}
		return out
	}
	da, db := byID(a), byID(b)
	var out []string
	for id, ma := range da {
		mb, ok := db[id]
		if !ok {
			out = append(out, fmt.Sprintf("%s has %s, %s does not", nameA, id, nameB))
			continue
		}
		for k, va := range ma {
			ja, _ := json.Marshal(va)
			jb, _ := json.Marshal(mb[k])
			if string(ja) != string(jb) {
				out = append(out, fmt.Sprintf("%s.%s: %s on %s, %s on %s", id, k, shorten(ja), nameA, shorten(jb), nameB))
			}
		}
	}
	for id := range db {
		if _, ok := da[id]; !ok {
			out = append(out, fmt.Sprintf("%s has %s, %s does not", nameB, id, nameA))
		}
	}
	sort.Strings(out)
	return out
}

// checkCanaries checks that each canary still runs its first replica, in
// the same process: no server fault stopped or replaced it.
func checkCanaries(t *testing.T, c *Cluster, a *Agent, canaries []canary, report *chaosReportDoc) {
	t.Helper()
	var found []string
	for _, cn := range canaries {
		rs := waitHealthy(t, c, chaosTenant, cn.name, 1)
		if rs[0].ID != cn.replica {
			found = append(found, fmt.Sprintf("%s runs replica %s, not its first, %s", cn.name, shortID(rs[0].ID), shortID(cn.replica)))
			continue
		}
		info, err := getInfo(rs[0].Ports["http"])
		switch {
		case err != nil:
			found = append(found, fmt.Sprintf("%s: %v", cn.name, err))
		case info.PID != cn.pid:
			found = append(found, fmt.Sprintf("%s's replica runs as pid %d, not %d: its process was restarted", cn.name, info.PID, cn.pid))
		case !slices.Contains(a.ReplicaPIDs(), cn.pid):
			found = append(found, fmt.Sprintf("%s's pid %d is not among the steady agent's processes %v", cn.name, cn.pid, a.ReplicaPIDs()))
		}
		if rs[0].Restarts != 0 {
			found = append(found, fmt.Sprintf("%s's replica restarted %d times", cn.name, rs[0].Restarts))
		}
	}
	report.addCheck(t, "no replica stopped by a server fault", found)
}

// checkNoSurplus waits until no instance has more healthy replicas than
// it wants (a deployment may briefly run one more).
func checkNoSurplus(t *testing.T, c *Cluster, report *chaosReportDoc) {
	t.Helper()
	ok, state := waitUntil(time.Minute, func() (bool, string) {
		s := c.anyUp()
		if s == nil {
			return false, "no server up"
		}
		r, err := s.Client().WithTimeout(5*time.Second).Try(http.MethodGet, "/v1/tenants/"+chaosTenant+"/instances", nil)
		if err != nil || !r.OK() {
			return false, fmt.Sprint(r, err)
		}
		var ins []apiInstance
		if err := r.Decode(&ins); err != nil {
			return false, err.Error()
		}
		var over []string
		for _, in := range ins {
			rs, err := listReplicas(s, chaosTenant, in.Name)
			if err != nil {
				return false, err.Error()
			}
			healthy := 0
			for _, x := range rs {
				if x.State == "healthy" {
					healthy++
				}
			}
			if healthy > in.Replicas {
				over = append(over, fmt.Sprintf("%s wants %d, has %d healthy: %s", in.Name, in.Replicas, healthy, describeReplicas(rs)))
			}
		}
		return len(over) == 0, strings.Join(over, "; ")
	})
	var found []string
	if !ok {
		found = append(found, state)
	}
	report.addCheck(t, "no instance with more healthy replicas than desired", found)
}
