// Package metrics serves a server's Prometheus metrics (GET /metrics) in
// the text exposition format, read from the state and the Raft member on
// each scrape.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"

	"github.com/drover-dev/drover/server/state"
)

// Source is what the metrics are read from.
type Source struct {
	Store        *state.Store
	IsLeader     func() bool
	AppliedIndex func() uint64
	Sessions     func() int   // connected agents (on the leader)
	Connects     func() int64 // agents' connection attempts since start
}

// Handler serves the metrics.
func Handler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		write(w, src)
	})
}

func write(w io.Writer, src Source) {
	snap := src.Store.Snapshot()
	metric := func(kind, name, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, kind, name, v)
	}
	gauge := func(name, help string, v any) { metric("gauge", name, help, v) }
	counter := func(name, help string, v any) { metric("counter", name, help, v) }
	labelled := func(name, help, label string, counts map[string]int) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s{%s=%q} %d\n", name, label, k, counts[k])
		}
	}
	leader := 0
	if src.IsLeader() {
		leader = 1
	}
	gauge("drover_raft_leader", "1 when this server is the Raft leader.", leader)
	gauge("drover_raft_applied_index", "Last Raft index applied to this server's state.", src.AppliedIndex())
	gauge("drover_state_index", "Highest index of the state's tables.", snap.Index())
	gauge("drover_tenants", "Tenants in the state.", len(snap.Tenants()))
	gauge("drover_instances", "Instances in the state.", len(snap.Instances(state.InstanceFilter{})))
	replicas := map[string]int{}
	for _, r := range snap.AllReplicas() {
		replicas[r.State]++
	}
	labelled("drover_replicas", "Replicas by reported state.", "state", replicas)
	nodes := map[string]int{}
	for _, n := range snap.Nodes() {
		nodes[n.Status]++
	}
	labelled("drover_nodes", "Nodes by status.", "status", nodes)
	gauge("drover_evaluations_pending", "Evaluations waiting for the scheduler.", len(snap.Evals()))
	if src.Sessions != nil {
		gauge("drover_agent_sessions", "Agents connected to this server.", src.Sessions())
	}
	if src.Connects != nil {
		counter("drover_agent_connects_total", "Agent connection attempts to this server since it started.", src.Connects())
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("go_goroutines", "Goroutines.", runtime.NumGoroutine())
	gauge("go_memstats_heap_alloc_bytes", "Heap bytes in use.", ms.HeapAlloc)
}
