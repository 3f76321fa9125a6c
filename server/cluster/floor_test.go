package cluster_test

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// countFSM only counts what it applies: the floor measures Raft alone.
type countFSM struct{ n atomic.Int64 }

func (f *countFSM) Apply(*raft.Log) any                 { f.n.Add(1); return nil }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (f *countFSM) Restore(io.ReadCloser) error         { return nil }

// BenchmarkRaftFloor measures what hashicorp/raft on raft-boltdb does on
// this machine with nothing of Drover around it: three members in this
// process over TCP, each log in its own bbolt file fsync'ed as the
// servers' are (the same options and timings), entries of 700 bytes (an
// instance create's size) applied to an FSM that does nothing, at
// concurrency 1 and 64 on the leader. It is the floor under the writes
// scenario's figures (BENCHMARKS.md): what the API, the forwarding, the
// state machine and the three processes add is the rest.
//
//	go test ./server/cluster -run '^$' -bench RaftFloor -benchtime 4000x
func BenchmarkRaftFloor(b *testing.B) {
	leader, _ := startFloor(b)
	entry := make([]byte, 700)
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			b.ResetTimer()
			lat := applyFloor(b, leader, entry, conc, b.N)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// The floor's smoke form, so that the benchmark keeps working: entries
// applied on its leader at concurrency 4 reach every member's FSM.
func TestRaftFloorSmoke(t *testing.T) {
	leader, fsms := startFloor(t)
	applyFloor(t, leader, make([]byte, 700), 4, 40)
	deadline := time.Now().Add(10 * time.Second)
	for i, f := range fsms {
		for f.n.Load() < 40 {
			if time.Now().After(deadline) {
				t.Fatalf("member %d applied %d of 40 entries", i, f.n.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// applyFloor applies n entries on leader from conc goroutines and returns
// each one's latency.
func applyFloor(tb testing.TB, leader *raft.Raft, entry []byte, conc, n int) []time.Duration {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				t0 := time.Now()
				if err := leader.Apply(entry, 5*time.Second).Error(); err != nil {
					tb.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return lat
}

// startFloor starts the floor's three members and returns the leader and
// the members' FSMs.
func startFloor(tb testing.TB) (*raft.Raft, []*countFSM) {
	dir := tb.TempDir()
	var members []raft.Server
	var transports []*raft.NetworkTransport
	for i := range 3 {
		t, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { t.Close() })
		transports = append(transports, t)
		members = append(members, raft.Server{ID: raft.ServerID(strconv.Itoa(i)), Address: t.LocalAddr()})
	}
	var rafts []*raft.Raft
	var fsms []*countFSM
	for i := range 3 {
		store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, strconv.Itoa(i)+".db"),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err != nil {
			tb.Fatal(err)
		}
		cache, err := raft.NewLogCache(512, store)
		if err != nil {
			tb.Fatal(err)
		}
		c := raft.DefaultConfig()
		c.LocalID = members[i].ID
		c.LogOutput = io.Discard
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		c.BatchApplyCh = true
		fsm := &countFSM{}
		fsms = append(fsms, fsm)
		r, err := raft.NewRaft(c, fsm, cache, store, raft.NewInmemSnapshotStore(), transports[i])
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			r.Shutdown().Error()
			store.Close()
		})
		if i == 0 {
			if err := r.BootstrapCluster(raft.Configuration{Servers: members}).Error(); err != nil {
				tb.Fatal(err)
			}
		}
		rafts = append(rafts, r)
	}
	var leader *raft.Raft
	for start := time.Now(); leader == nil; {
		if time.Since(start) > 10*time.Second {
			tb.Fatal("no leader within 10s")
		}
		time.Sleep(20 * time.Millisecond)
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
			}
		}
	}
	return leader, fsms
}
