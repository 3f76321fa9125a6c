package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks measure what BENCHMARKS.md reports, against real server
// processes on real disks. They are not part of the test suite:
//
//	go test ./internal/e2e -run '^$' -bench . -benchtime 3000x
//
// Each reports writes/s and latency percentiles with b.ReportMetric.

// BenchmarkWrites measures committed writes (tenant creates, each one Raft
// entry with an fsync on a majority) at growing concurrency, sent to the
// leader or through a follower (one extra forwarding hop).
func BenchmarkWrites(b *testing.B) {
	c := StartCluster(b, 3)
	leader := c.WaitForLeader()
	follower := c.Followers()[0]
	var seq atomic.Int64
	for _, target := range []struct {
		name string
		s    *Server
	}{{"leader", leader}, {"follower", follower}} {
		for _, conc := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", target.name, conc), func(b *testing.B) {
				hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 30 * time.Second}
				lat := make([]time.Duration, b.N)
				var next atomic.Int64
				var failed atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := 0; w < conc; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							body := fmt.Sprintf(`{"name":"bench-%d"}`, seq.Add(1))
							t0 := time.Now()
							resp, err := hc.Post(target.s.URL()+"/v1/tenants", "application/json", bytes.NewBufferString(body))
							lat[i] = time.Since(t0)
							if err != nil || resp.StatusCode != http.StatusCreated {
								failed.Add(1)
							}
							if resp != nil {
								resp.Body.Close()
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if f := failed.Load(); f > 0 {
					b.Fatalf("%d of %d writes failed", f, b.N)
				}
				reportLatency(b, lat, elapsed, "writes/s")
			})
		}
	}
}

// BenchmarkFailover kills the leader with SIGKILL, restarts it, and reports
// the time from the kill to the first accepted write, with the default
// Raft timings.
func BenchmarkFailover(b *testing.B) {
	c := StartCluster(b, 3)
	var total, worst time.Duration
	for i := 0; i < b.N; i++ {
		old := c.WaitForLeader()
		idx := indexOf(c, old)
		start := time.Now()
		c.Kill(idx)
		for n := 0; ; n++ {
			ok := false
			for _, s := range c.Servers() {
				if s == old {
					continue
				}
				resp, err := http.Post(s.URL()+"/v1/tenants", "application/json",
					strings.NewReader(`{"name":"failover-`+strconv.Itoa(i)+`"}`))
				if err == nil {
					ok = resp.StatusCode == http.StatusCreated
					resp.Body.Close()
				}
				if ok {
					break
				}
			}
			if ok {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no write accepted within 30s of killing the leader")
			}
			time.Sleep(20 * time.Millisecond)
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
		c.Restart(idx)
		c.WaitForLeader()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
	b.ReportMetric(float64(worst.Milliseconds()), "max-ms")
}

// BenchmarkServerMemory creates b.N instances and reports the leader's
// resident memory after.
func BenchmarkServerMemory(b *testing.B) {
	c := StartCluster(b, 1)
	s := c.WaitForLeader()
	cl := s.Client()
	cl.JSON("POST", "/v1/tenants", map[string]any{"name": "mem"}, nil)
	before := rssKB(b, s)
	for i := 0; i < b.N; i++ {
		r := cl.JSON("POST", "/v1/tenants/mem/instances", map[string]any{
			"name": fmt.Sprintf("i-%d", i), "replicas": 0,
			"spec": map[string]any{"command": []string{"/bin/true"}, "env": map[string]string{"A": strings.Repeat("x", 64)}},
		}, nil)
		if !r.OK() {
			b.Fatalf("create instance: %s", r)
		}
	}
	after := rssKB(b, s)
	b.ReportMetric(float64(before)/1024, "MB-rss-before")
	b.ReportMetric(float64(after)/1024, "MB-rss-after")
	b.ReportMetric(float64(after-before)/float64(b.N), "KB/instance")
}

func indexOf(c *Cluster, s *Server) int {
	for i, x := range c.Servers() {
		if x == s {
			return i
		}
	}
	return -1
}

// rssKB reads a server's resident set size from /proc.
func rssKB(b testing.TB, s *Server) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.running("rss").pid()))
	if err != nil {
		b.Fatalf("read rss: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	b.Fatalf("no VmRSS for %s", s.Name())
	return 0
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration, unit string) {
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), unit)
	b.ReportMetric(ms(pct(lat, 0.5)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 0.99)), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
