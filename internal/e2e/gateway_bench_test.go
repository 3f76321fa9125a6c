package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatewayBench is one instance of the demo app with one replica, reached
// directly on its port and through a gateway, to measure what the gateway
// adds: BenchmarkGateway for BENCHMARKS.md, TestGatewayBenchSmoke in the
// suite.
type gatewayBench struct {
	g       *Gateway
	direct  *http.Client
	port    int
	replica int    // its pid
	nginx   string // nginx's address, when it runs
}

func startGatewayBench(tb testing.TB) *gatewayBench {
	c := StartCluster(tb, 1)
	s := c.WaitForLeader()
	StartAgent(tb, c)
	doc := demoInstance("bench", 1)
	r, err := s.Client().Try(http.MethodPost, "/v1/tenants", map[string]string{"name": "acme"})
	if err != nil || (!r.OK() && r.Status != http.StatusConflict) {
		tb.Fatalf("create tenant: %v %v", r, err)
	}
	s.Client().JSON(http.MethodPost, "/v1/tenants/acme/instances", doc, nil)
	var port int
	eventually(tb, waitTimeout, "the bench replica is healthy", func() (bool, string) {
		rs, err := listReplicas(s, "acme", "bench")
		if err != nil || len(rs) != 1 || rs[0].State != "healthy" {
			return false, fmt.Sprint(rs, err)
		}
		port = rs[0].Ports["http"]
		return true, ""
	})
	g := StartGateway(tb, c)
	eventually(tb, waitTimeout, "the bench instance answers through the gateway", func() (bool, string) {
		code, _, body, err := g.Get("http://bench.acme.drover.localhost/healthz")
		return err == nil && code == http.StatusOK, fmt.Sprint(code, body, err)
	})
	return &gatewayBench{g: g, port: port, replica: mustInfo(tb, port).PID,
		direct: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

// Paths of the benchmark's requests.
const (
	pathDirect  = "direct"
	pathGateway = "gateway"
	pathNginx   = "nginx"
)

// startNginx runs nginx, when installed, as a reverse proxy to the bench
// replica with keep-alive connections to it: the peer that shows what
// this machine allows a proxy. It returns nginx's address and pid, or ""
// when nginx is not installed.
func (gb *gatewayBench) startNginx(tb testing.TB) (string, int) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return "", 0
	}
	ports, err := freePorts(1)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	conf := fmt.Sprintf(`daemon off; worker_processes auto; pid %[1]s/nginx.pid; error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fcgi; uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  upstream app { server 127.0.0.1:%[2]d; keepalive 256; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`, dir, gb.port, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	p, err := newLauncher(tb).startArgv("nginx", filepath.Join(dir, "nginx.log"),
		[]string{bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")})
	if err != nil {
		tb.Fatal(err)
	}
	eventually(tb, waitTimeout, "nginx answers", func() (bool, string) {
		resp, err := gb.direct.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error() + " " + tail(filepath.Join(dir, "error.log"), 300)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return addr, p.pid()
}

// run sends n GET /healthz with conc workers, directly, through the gateway
// or through nginx (at nginxAddr), and returns each request's latency,
// the time it all took and the failures.
func (gb *gatewayBench) run(path string, n, conc int) (lat []time.Duration, elapsed time.Duration, failed int64) {
	client, url := gb.direct, "http://127.0.0.1:"+strconv.Itoa(gb.port)+"/healthz"
	switch path {
	case pathGateway:
		client, url = gb.g.client, "http://bench.acme.drover.localhost/healthz"
	case pathNginx:
		url = "http://" + gb.nginx + "/healthz"
	}
	lat = make([]time.Duration, n)
	var next atomic.Int64
	var bad atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				resp, err := client.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat[i] = time.Since(t0)
				if err != nil || resp.StatusCode != http.StatusOK {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), bad.Load()
}

// BenchmarkGateway measures requests/s and latency of small requests to
// one demo app replica, directly, through the gateway and (when installed)
// through nginx, in one run, at concurrency 1 (latency added per request)
// and 64 (throughput), with the CPU each request costs the proxy and the
// app.
//
//	go test ./internal/e2e -run '^$' -bench Gateway -benchtime 20000x
func BenchmarkGateway(b *testing.B) {
	gb := startGatewayBench(b)
	paths := []string{pathDirect, pathGateway}
	nginxPID := 0
	if gb.nginx, nginxPID = gb.startNginx(b); gb.nginx != "" {
		paths = append(paths, pathNginx)
	}
	for _, conc := range []int{1, 64} {
		for _, path := range paths {
			b.Run(fmt.Sprintf("%s/c%d", path, conc), func(b *testing.B) {
				gb.run(path, min(b.N, 1000), conc) // warm the connections
				proxyPID := gb.g.proc.pid()
				if path == pathNginx {
					proxyPID = nginxPID // nginx's master; its workers are its children
				}
				gw, app := benchTreeCPUTicks(b, proxyPID), benchCPUTicks(b, gb.replica)
				lat, elapsed, failed := gb.run(path, b.N, conc)
				if failed > 0 {
					b.Fatalf("%d of %d requests failed", failed, b.N)
				}
				reportLatency(b, lat, elapsed, "req/s")
				// CPU per request of the gateway process and of the app,
				// in microseconds: what the machine's cores are spent on.
				perReq := func(ticks uint64) float64 { return float64(ticks) / benchClockTicks() * 1e6 / float64(b.N) }
				b.ReportMetric(perReq(benchTreeCPUTicks(b, proxyPID)-gw), "proxy-cpu-us/req")
				b.ReportMetric(perReq(benchCPUTicks(b, gb.replica)-app), "app-cpu-us/req")
			})
		}
	}
}

// TestGatewayBenchSmoke runs the benchmark's measurement briefly, so that
// the suite keeps it working: every request answers 200 both ways.
func TestGatewayBenchSmoke(t *testing.T) {
	gb := startGatewayBench(t)
	for _, path := range []string{pathDirect, pathGateway} {
		if _, _, failed := gb.run(path, 200, 8); failed > 0 {
			t.Errorf("%s: %d of 200 requests failed", path, failed)
		}
	}
}

// benchTreeCPUTicks is benchCPUTicks of a process and its children (nginx's
// workers).
func benchTreeCPUTicks(b *testing.B, pid int) uint64 {
	b.Helper()
	total := benchCPUTicks(b, pid)
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(raw)) {
		if child, err := strconv.Atoi(f); err == nil {
			total += benchCPUTicks(b, child)
		}
	}
	return total
}
