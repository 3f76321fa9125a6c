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

// nopFSM applies nothing: the floor measures Raft alone.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (nopFSM) Restore(io.ReadCloser) error         { return nil }

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
	dir := b.TempDir()
	var members []raft.Server
	var transports []*raft.NetworkTransport
	for i := range 3 {
		t, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { t.Close() })
		transports = append(transports, t)
		members = append(members, raft.Server{ID: raft.ServerID(strconv.Itoa(i)), Address: t.LocalAddr()})
	}
	var rafts []*raft.Raft
	for i := range 3 {
		store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, strconv.Itoa(i)+".db"),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err != nil {
			b.Fatal(err)
		}
		cache, err := raft.NewLogCache(512, store)
		if err != nil {
			b.Fatal(err)
		}
		c := raft.DefaultConfig()
		c.LocalID = members[i].ID
		c.LogOutput = io.Discard
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		c.BatchApplyCh = true
		r, err := raft.NewRaft(c, nopFSM{}, cache, store, raft.NewInmemSnapshotStore(), transports[i])
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			r.Shutdown().Error()
			store.Close()
		})
		if i == 0 {
			if err := r.BootstrapCluster(raft.Configuration{Servers: members}).Error(); err != nil {
				b.Fatal(err)
			}
		}
		rafts = append(rafts, r)
	}
	var leader *raft.Raft
	for start := time.Now(); leader == nil; {
		if time.Since(start) > 10*time.Second {
			b.Fatal("no leader within 10s")
		}
		time.Sleep(20 * time.Millisecond)
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
			}
		}
	}
	entry := make([]byte, 700)
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range conc {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
						t0 := time.Now()
						if err := leader.Apply(entry, 5*time.Second).Error(); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
