package e2e

// The harness's traffic gateway and load generator: StartGateway runs
// `drover gateway` against a Cluster; startLoad sends requests through it
// at a steady rate, as users' traffic would, and counts every failure.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Gateway is one `drover gateway` process started by a test.
type Gateway struct {
	t       testing.TB
	proc    *process
	addr    string
	metrics string
	logPath string
	// client sends every request to the gateway, whatever the URL's host,
	// so that URLs can name instances as users' would.
	client *http.Client
}

// StartGateway starts `drover gateway` with every server of c, a listener
// and a metrics listener of its own and args, and waits until it has a
// routing table (it answers 404, not 503, for a host it does not know).
func StartGateway(t testing.TB, c *Cluster, args ...string) *Gateway {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	servers := serverURLs(c)
	g := &Gateway{t: t, addr: "127.0.0.1:" + strconv.Itoa(ports[0]), metrics: "127.0.0.1:" + strconv.Itoa(ports[1]),
		logPath: filepath.Join(t.TempDir(), "gateway.log")}
	argv := append([]string{"gateway", "-servers", strings.Join(servers, ","), "-listen", g.addr,
		"-metrics-addr", g.metrics, "-log-level", "debug"}, args...)
	if g.proc, err = newLauncher(t).start("gateway", g.logPath, argv); err != nil {
		t.Fatal(err)
	}
	dial := &net.Dialer{Timeout: 2 * time.Second}
	g.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial.DialContext(ctx, network, g.addr)
		},
		MaxIdleConnsPerHost: 256,
	}}
	eventually(t, waitTimeout, "the gateway has a routing table", func() (bool, string) {
		resp, err := g.Do(http.MethodGet, "http://no-such.instance.drover.localhost/", nil)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound, resp.Status + "; log: " + tail(g.logPath, 400)
	})
	return g
}

// Do sends a request through the gateway.
func (g *Gateway) Do(method, url string, body []byte, header ...string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return g.client.Do(req)
}

// Get is a GET through the gateway that reads the whole answer.
func (g *Gateway) Get(url string) (int, http.Header, string, error) {
	resp, err := g.Do(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// Metrics returns the gateway's /metrics text.
func (g *Gateway) Metrics() string {
	resp, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// load sends requests at a steady rate until finish and counts those that
// failed: no answer, or a status other than 200. It runs hey, Debian's
// packaged load generator, when it is installed (.ci/run installs it);
// otherwise a Go client in the test sends each request on its own
// goroutine (open loop: a slow answer does not slow the rate).
type load struct {
	hey *heyRun // when hey runs the load

	g      *Gateway
	method string
	url    string
	body   []byte
	header []string
	rate   int
	stop   chan struct{}
	wg     sync.WaitGroup
	start  time.Time

	mu      sync.Mutex
	sent    int
	failed  int
	samples []string
}

// loadResult is what a load run saw.
type loadResult struct {
	Tool         string // hey, or the test's own client
	Sent, Failed int
	Duration     time.Duration
	Samples      []string // the first failures
}

func (r loadResult) String() string {
	return fmt.Sprintf("%s: %d requests in %s (%.0f/s), %d failed %v", r.Tool, r.Sent, r.Duration.Round(time.Millisecond),
		float64(r.Sent)/r.Duration.Seconds(), r.Failed, r.Samples)
}

// loadRate is the steady rate of the gateway scenarios, above the 200
// requests/s the issue asks for.
const loadRate = 250

// startLoad starts sending method url (with body and header pairs) through
// g at rate requests a second.
func startLoad(g *Gateway, rate int, method, url string, body []byte, header ...string) *load {
	if path, err := exec.LookPath("hey"); err == nil {
		h, err := startHey(g, path, rate, method, url, body, header...)
		if err != nil {
			g.t.Fatal(err)
		}
		return &load{g: g, hey: h}
	}
	l := &load{g: g, rate: rate, method: method, url: url, body: body, header: header, stop: make(chan struct{}), start: time.Now()}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.wg.Add(1)
				l.mu.Lock()
				l.sent++
				l.mu.Unlock()
				go func() {
					defer l.wg.Done()
					l.one()
				}()
			}
		}
	}()
	return l
}

func (l *load) one() {
	at := time.Now()
	resp, err := l.g.Do(l.method, l.url, l.body, l.header...)
	msg := ""
	if err != nil {
		msg = err.Error()
	} else {
		_, rerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusOK:
			msg = resp.Status
		case rerr != nil:
			msg = "reading the answer: " + rerr.Error()
		}
	}
	if msg == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.samples) < 10 {
		l.samples = append(l.samples, fmt.Sprintf("+%s: %s", at.Sub(l.start).Round(time.Millisecond), msg))
	}
}

// finish stops the load, waits for the answers in flight and returns the
// counts.
func (l *load) finish() loadResult {
	if l.hey != nil {
		return l.hey.finish(l.g.t)
	}
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadResult{Tool: "go client", Sent: l.sent, Failed: l.failed, Duration: time.Since(l.start), Samples: l.samples}
}

// checkRate fails the test when the generator did not keep up 200
// requests a second: the scenario would then not be the one asked for.
func checkRate(t testing.TB, r loadResult) {
	t.Helper()
	if rate := float64(r.Sent) / r.Duration.Seconds(); rate < 200 {
		t.Fatalf("the load generator sent %.0f requests/s, under 200: %s", rate, r)
	}
}

// heyRun is one run of hey against the gateway.
type heyRun struct {
	cmd      *exec.Cmd
	out      bytes.Buffer
	start    time.Time
	finished atomic.Bool // hey has exited and been waited for
}

// heyWorkerRate is the rate each hey worker keeps (-q): rate/heyWorkerRate
// workers (-c) make the rate asked for. A worker waits for each answer, so
// many slow workers keep the rate up while a few wait on a frozen host.
const heyWorkerRate = 5

// startHey runs hey for as long as finish lets it, at rate requests a
// second, sending method url (its host in the Host header) to the gateway.
func startHey(g *Gateway, path string, rate int, method, rawURL string, body []byte, header ...string) (*heyRun, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	host := u.Host
	u.Host = g.addr
	args := []string{"-z", "1h", "-c", strconv.Itoa(max(1, rate/heyWorkerRate)), "-q", strconv.Itoa(heyWorkerRate),
		"-t", "15", "-m", method, "-host", host}
	if body != nil {
		args = append(args, "-d", string(body), "-T", "application/octet-stream")
	}
	for i := 0; i+1 < len(header); i += 2 {
		args = append(args, "-H", header[i]+": "+header[i+1])
	}
	h := &heyRun{cmd: exec.Command(path, append(args, u.String())...), start: time.Now()}
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	// A test that ends before finish (a failure) must not leave hey
	// running its hour.
	g.t.Cleanup(func() {
		if !h.finished.Load() {
			h.cmd.Process.Kill()
		}
	})
	return h, nil
}

var (
	heyStatus = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\s+(\d+) responses`)
	heyError  = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\s+(.+)$`)
)

// finish stops hey (SIGINT, on which it prints its report) and reads the
// counts from its report.
func (h *heyRun) finish(t testing.TB) loadResult {
	t.Helper()
	if err := h.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case <-done:
		h.finished.Store(true)
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		t.Fatalf("hey did not stop on SIGINT")
	}
	r := loadResult{Tool: "hey", Duration: time.Since(h.start)}
	report := h.out.String()
	statuses, errorsAt := report, len(report)
	if i := strings.Index(report, "Error distribution:"); i >= 0 {
		statuses, errorsAt = report[:i], i
	}
	if !strings.Contains(report, "Status code distribution:") && errorsAt == len(report) {
		t.Fatalf("hey printed no report:\n%s", report)
	}
	for _, m := range heyStatus.FindAllStringSubmatch(statuses, -1) {
		n, _ := strconv.Atoi(m[2])
		r.Sent += n
		if m[1] != "200" {
			r.Failed += n
			r.Samples = append(r.Samples, fmt.Sprintf("%d answers %s", n, m[1]))
		}
	}
	for _, m := range heyError.FindAllStringSubmatch(report[errorsAt:], -1) {
		n, _ := strconv.Atoi(m[1])
		r.Sent += n
		r.Failed += n
		r.Samples = append(r.Samples, fmt.Sprintf("%d: %s", n, m[2]))
	}
	return r
}
