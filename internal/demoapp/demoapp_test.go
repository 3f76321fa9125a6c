package demoapp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
)

// mainEnv makes the test binary run Main with its arguments instead of the
// tests, so that the tests can start the demo app as a real process.
const mainEnv = "DEMOAPP_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

const waitTimeout = 10 * time.Second

// lines collects what the app prints, one entry per line.
type lines struct {
	mu      sync.Mutex
	buf     []string
	partial string
	changed chan struct{} // closed and replaced on every new line
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.partial + string(p)
	parts := strings.Split(s, "\n")
	l.partial = parts[len(parts)-1]
	if len(parts) > 1 {
		l.buf = append(l.buf, parts[:len(parts)-1]...)
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// wait returns the first line that starts with prefix, waiting for it.
func (l *lines) wait(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		l.mu.Lock()
		for _, s := range l.buf {
			if strings.HasPrefix(s, prefix) {
				l.mu.Unlock()
				return s
			}
		}
		changed, seen := l.changed, strings.Join(l.buf, "\n")
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no line starting with %q in output:\n%s", prefix, seen)
		}
	}
}

// running is a demo app running in this process.
type running struct {
	addr   string
	out    *lines
	cancel context.CancelFunc
	exit   chan int
}

// start runs the demo app in-process with args and env (instead of the real
// environment) and waits until it listens. It is stopped when the test ends.
func start(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	r := startNoWait(t, args, env)
	line := r.out.wait(t, "listening on ")
	r.addr = strings.TrimPrefix(line, "listening on ")
	return r
}

func startNoWait(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	cfg, err := parseConfig(append([]string{"-listen", "127.0.0.1:0"}, args...),
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{out: newLines(), cancel: cancel, exit: make(chan int, 1)}
	go func() { r.exit <- run(ctx, cfg, log.New(r.out, "", 0), 0) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.exit:
		case <-time.After(waitTimeout):
			t.Errorf("demo app did not stop")
		}
	})
	return r
}

// exitCode waits for run to return.
func (r *running) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.exit:
		r.exit <- code // for the cleanup
		return code
	case <-time.After(waitTimeout):
		t.Fatalf("demo app did not exit")
		return -1
	}
}

func request(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(body)
}

func wantStatus(t *testing.T, method, url string, want int) string {
	t.Helper()
	got, body := request(t, method, url)
	if got != want {
		t.Fatalf("%s %s = %d %q, want %d", method, url, got, body, want)
	}
	return body
}

func TestServesPageAndHealth(t *testing.T) {
	t.Setenv("DROVER_TENANT", "acme")
	t.Setenv("DROVER_INSTANCE", "crm")
	t.Setenv("DROVER_REPLICA", "r-123")
	t.Setenv("DROVER_VERSION", "1.4.2")
	r := start(t, nil, nil)
	base := "http://" + r.addr

	page := wantStatus(t, "GET", base+"/", http.StatusOK)
	host, _ := os.Hostname()
	for _, want := range []string{"acme", "crm", "r-123", "1.4.2", host} {
		if !strings.Contains(page, want) {
			t.Errorf("page does not name %q:\n%s", want, page)
		}
	}
	if body := wantStatus(t, "GET", base+"/healthz", http.StatusOK); body != "ok\n" {
		t.Errorf("GET /healthz body = %q, want %q", body, "ok\n")
	}
	wantStatus(t, "GET", base+"/nothing-here", http.StatusNotFound)

	var info Info
	if err := json.Unmarshal([]byte(wantStatus(t, "GET", base+"/info", http.StatusOK)), &info); err != nil {
		t.Fatalf("GET /info: %v", err)
	}
	if info.PID != os.Getpid() || info.Addr != r.addr || !info.Healthy || info.Tenant != "acme" {
		t.Errorf("GET /info = %+v", info)
	}
	r.out.wait(t, "GET /healthz 200 ")
}

func TestFailAndRecover(t *testing.T) {
	r := start(t, nil, nil)
	base := "http://" + r.addr

	wantStatus(t, "GET", base+"/healthz", http.StatusOK)
	wantStatus(t, "POST", base+"/fail", http.StatusOK)
	wantStatus(t, "GET", base+"/healthz", http.StatusInternalServerError)
	wantStatus(t, "GET", base+"/", http.StatusOK) // failing health still serves
	wantStatus(t, "POST", base+"/recover", http.StatusOK)
	wantStatus(t, "GET", base+"/healthz", http.StatusOK)
	wantStatus(t, "GET", base+"/fail", http.StatusMethodNotAllowed)
}

func TestFailHealthFromStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"-fail-health"}, nil},
		{"env", nil, map[string]string{"DEMO_FAIL_HEALTH": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, tc.args, tc.env)
			wantStatus(t, "GET", "http://"+r.addr+"/healthz", http.StatusInternalServerError)
			wantStatus(t, "POST", "http://"+r.addr+"/recover", http.StatusOK)
			wantStatus(t, "GET", "http://"+r.addr+"/healthz", http.StatusOK)
		})
	}
}

func TestStopsGracefully(t *testing.T) {
	r := start(t, nil, nil)
	r.cancel()
	if code := r.exitCode(t); code != ExitOK {
		t.Errorf("exit code = %d, want %d", code, ExitOK)
	}
	if _, err := net.Dial("tcp", r.addr); err == nil {
		t.Errorf("still listening on %s after stop", r.addr)
	}
}

func TestCrashOnRequest(t *testing.T) {
	r := start(t, nil, nil)
	wantStatus(t, "POST", "http://"+r.addr+"/crash", http.StatusOK)
	if code := r.exitCode(t); code != ExitCrash {
		t.Errorf("exit code = %d, want %d", code, ExitCrash)
	}
}

func TestCrashAfter(t *testing.T) {
	r := startNoWait(t, nil, map[string]string{"DEMO_CRASH_AFTER": "50ms"})
	if code := r.exitCode(t); code != ExitCrash {
		t.Errorf("exit code = %d, want %d", code, ExitCrash)
	}
	r.out.wait(t, "crashing after 50ms")
}

func TestStartDelay(t *testing.T) {
	r := startNoWait(t, []string{"-start-delay", "1h"}, nil)
	r.out.wait(t, "starting in 1h")
	r.cancel()
	if code := r.exitCode(t); code != ExitOK {
		t.Errorf("exit code = %d, want %d", code, ExitOK)
	}
	r.out.mu.Lock()
	defer r.out.mu.Unlock()
	for _, l := range r.out.buf {
		if strings.HasPrefix(l, "listening on") {
			t.Errorf("listened during the start delay: %q", l)
		}
	}
}

func TestTick(t *testing.T) {
	r := start(t, []string{"-tick", "5ms"}, nil)
	r.out.wait(t, "tick 3")
}

func TestHogMemory(t *testing.T) {
	r := start(t, []string{"-hog-memory", "8"}, nil)
	r.out.wait(t, "allocated and touched 8 MB")
	wantStatus(t, "GET", "http://"+r.addr+"/healthz", http.StatusOK)
}

func TestTCPOnly(t *testing.T) {
	r := start(t, []string{"-tcp-only"}, nil)
	c, err := net.DialTimeout("tcp", r.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "ok\n" {
		t.Fatalf("read = %q, %v; want %q", got, err, "ok\n")
	}
}

func TestAddrFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "addr")
	r := start(t, []string{"-addr-file", path}, nil)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != r.addr {
		t.Errorf("address file holds %q, want %q", got, r.addr)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "defaults", want: config{listen: "127.0.0.1:0"}},
		{name: "PORT", env: map[string]string{"PORT": "8123"}, want: config{listen: "127.0.0.1:8123"}},
		{
			name: "env",
			env: map[string]string{
				"DEMO_FAIL_HEALTH": "1", "DEMO_CRASH_AFTER": "2s", "DEMO_START_DELAY": "3s",
				"DEMO_IGNORE_SIGTERM": "true", "DEMO_SPAWN_CHILD": "1", "DEMO_HOG_MEMORY": "64",
				"DEMO_TICK": "1s", "DEMO_TCP_ONLY": "1", "DEMO_ADDR_FILE": "/tmp/a",
			},
			want: config{
				listen: "127.0.0.1:0", addrFile: "/tmp/a", failHealth: true, crashAfter: 2 * time.Second,
				startDelay: 3 * time.Second, ignoreSIGTERM: true, spawnChild: true, hogMemoryMB: 64,
				tick: time.Second, tcpOnly: true,
			},
		},
		{
			name: "flags win over env",
			args: []string{"-listen", "127.0.0.1:9000", "-fail-health=false", "-tick", "0"},
			env:  map[string]string{"PORT": "8123", "DEMO_FAIL_HEALTH": "1", "DEMO_TICK": "1s"},
			want: config{listen: "127.0.0.1:9000"},
		},
		{name: "bad env bool", env: map[string]string{"DEMO_FAIL_HEALTH": "maybe"}, wantErr: "DEMO_FAIL_HEALTH"},
		{name: "bad env duration", env: map[string]string{"DEMO_CRASH_AFTER": "soon"}, wantErr: "DEMO_CRASH_AFTER"},
		{name: "bad env number", env: map[string]string{"DEMO_HOG_MEMORY": "lots"}, wantErr: "DEMO_HOG_MEMORY"},
		{name: "negative", args: []string{"-hog-memory", "-1"}, wantErr: "negative"},
		{name: "unknown flag", args: []string{"-bogus"}, wantErr: "bogus"},
		{name: "extra argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("config = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

// process is the demo app started as a real process, in a process group of
// its own.
type process struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(os.Args[0], append([]string{"-listen", "127.0.0.1:0", "-addr-file", addrFile}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("demo app output:\n%s", b)
		}
	})
	p.addr = eventually(t, "address file "+addrFile, func() (string, bool) {
		b, err := os.ReadFile(addrFile)
		return strings.TrimSpace(string(b)), err == nil
	})
	return p
}

// wait returns the process's exit status.
func (p *process) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	case <-time.After(waitTimeout):
		t.Fatalf("process %d did not exit", p.cmd.Process.Pid)
		return 0
	}
}

// eventually polls cond until it reports true, and returns its value.
func eventually[T any](t *testing.T, what string, cond func() (T, bool)) T {
	t.Helper()
	var v T
	testwait.Eventually(t, waitTimeout, what, func() error {
		var ok bool
		if v, ok = cond(); !ok {
			return fmt.Errorf("%v", v)
		}
		return nil
	})
	return v
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestProcessStopsOnSIGTERM(t *testing.T) {
	p := startProcess(t)
	wantStatus(t, "GET", "http://"+p.addr+"/healthz", http.StatusOK)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := p.wait(t); !ws.Exited() || ws.ExitStatus() != ExitOK {
		t.Errorf("exit status after SIGTERM = %v, want exit code %d", ws, ExitOK)
	}
}

func TestProcessCrashExitCode(t *testing.T) {
	p := startProcess(t)
	wantStatus(t, "POST", "http://"+p.addr+"/crash", http.StatusOK)
	if ws := p.wait(t); !ws.Exited() || ws.ExitStatus() != ExitCrash {
		t.Errorf("exit status after POST /crash = %v, want exit code %d", ws, ExitCrash)
	}
}

func TestProcessIgnoresSIGTERM(t *testing.T) {
	p := startProcess(t, "-ignore-sigterm")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// An ignored signal is discarded when it is sent, so the process must
	// still answer now.
	wantStatus(t, "GET", "http://"+p.addr+"/healthz", http.StatusOK)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("exit status = %v, want killed by SIGKILL", ws)
	}
}

func TestProcessSpawnChild(t *testing.T) {
	p := startProcess(t, "-spawn-child")
	var info Info
	if err := json.Unmarshal([]byte(wantStatus(t, "GET", "http://"+p.addr+"/info", http.StatusOK)), &info); err != nil {
		t.Fatal(err)
	}
	if info.ChildPID == 0 || !alive(info.ChildPID) {
		t.Fatalf("no live child: %+v", info)
	}
	if pgid, err := syscall.Getpgid(info.ChildPID); err != nil || pgid != p.cmd.Process.Pid {
		t.Errorf("child process group = %d, %v; want the app's group %d", pgid, err, p.cmd.Process.Pid)
	}
	// Stopping only the leader leaves the child behind, on purpose.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
	if !alive(info.ChildPID) {
		t.Fatalf("child %d died with its parent; it should outlive it", info.ChildPID)
	}
	// Killing the group stops it.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	eventually(t, "child to die", func() (int, bool) { return info.ChildPID, !alive(info.ChildPID) })
}
