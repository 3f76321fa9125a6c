package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/hashicorp/go-hclog"
)

// The test binary doubles as the workload: run with helperEnv set, it
// acts as the child process named by its value instead of running tests.
const helperEnv = "DROVER_DRIVER_HELPER"

// noRaceExitDelay spares each helper the race detector's 1s sleep at exit.
const noRaceExitDelay = "GORACE=atexit_sleep_ms=0"

// testCgroupParent keeps the tests' cgroups apart from a real agent's.
var testCgroupParent = fmt.Sprintf("drover-test-%d", os.Getpid())

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		os.Exit(0)
	}
	code := m.Run()
	for _, dir := range []string{"", "unified", "memory", "cpu", "pids"} {
		os.Remove(filepath.Join("/sys/fs/cgroup", dir, testCgroupParent))
	}
	os.Exit(code)
}

func runHelper(mode string) {
	switch mode {
	case "echo": // report what the process got, then exit with $EXIT_CODE
		wd, _ := os.Getwd()
		fmt.Printf("foo=%s\nwd=%s\nenv=%d\n", os.Getenv("FOO"), wd, len(os.Environ()))
		fmt.Fprintln(os.Stderr, "to stderr")
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		os.Exit(code)
	case "ignore": // ignore SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("ready %d\n", os.Getpid())
		block()
	case "trap": // ignore SIGTERM, with a grandchild that does too
		signal.Ignore(syscall.SIGTERM)
		cmd := exec.Command(executable())
		cmd.Env = []string{helperEnv + "=ignore", noRaceExitDelay}
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		block()
	case "escape": // ignore SIGTERM, with a grandchild in a session of its own
		signal.Ignore(syscall.SIGTERM)
		cmd := exec.Command(executable())
		cmd.Env = []string{helperEnv + "=ignore", noRaceExitDelay}
		cmd.Stdout = os.Stdout
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		block()
	case "ticker": // write a numbered line every few milliseconds
		for i := 0; ; i++ {
			fmt.Printf("tick %d\n", i)
			time.Sleep(2 * time.Millisecond)
		}
	case "spin": // hold 32 MiB and burn CPU until killed
		b := make([]byte, 32<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("spinning")
		for n := 0; ; n++ {
			b[n%len(b)]++
		}
	case "hog": // use memory until killed
		var chunks [][]byte
		for range 1024 {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			chunks = append(chunks, b)
		}
		fmt.Println("allocated", len(chunks), "MiB")
	case "agent": // start the task in $TASK and exit, like an agent that dies
		var t Task
		if err := json.Unmarshal([]byte(os.Getenv("TASK")), &t); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		d, _ := New(Config{CgroupParent: os.Getenv("CGROUP_PARENT")})
		p, err := d.Start(t)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(p.Handle())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

func block() {
	for {
		time.Sleep(time.Hour)
	}
}

func executable() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

// helperTask returns a task running the test binary as helper mode.
func helperTask(t *testing.T, id, mode string, env ...string) Task {
	t.Helper()
	dir := t.TempDir()
	return Task{
		ID:          id,
		Argv:        []string{executable()},
		Env:         append([]string{helperEnv + "=" + mode, noRaceExitDelay}, env...),
		Dir:         filepath.Join(dir, "work"),
		LogDir:      filepath.Join(dir, "logs"),
		StopTimeout: 5 * time.Second,
	}
}

// newTestDriver returns a Driver whose cgroups are the tests' own and
// whose logs go to t.Log.
func newTestDriver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(Config{
		Logger:         testLogger(t),
		CgroupParent:   testCgroupParent,
		RotateInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// start starts task and makes sure its process group is gone when the
// test ends.
func start(t *testing.T, d *Driver, task Task) *Process {
	t.Helper()
	p, err := d.Start(task)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-p.Handle().PID, syscall.SIGKILL)
		<-p.Done()
	})
	return p
}

// wait returns the result of p, failing the test if it takes too long.
func wait(t *testing.T, p *Process) ExitResult {
	t.Helper()
	select {
	case <-p.Done():
		return p.Wait()
	case <-time.After(30 * time.Second):
		t.Fatalf("process %s did not exit", p.ID())
		return ExitResult{}
	}
}

// eventually polls cond until it holds, or fails the test with what was
// awaited.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, timeout, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// readLog returns the content of a log file of task.
func readLog(t *testing.T, task Task, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(task.LogDir, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// testLogger returns a logger writing to t.Log, so that only failing
// tests show logs.
func testLogger(t *testing.T) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Debug})
}

type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

// fmtSscan is fmt.Sscanf on the first line of s that matches format.
func fmtSscan(s, format string, args ...any) (int, error) {
	var err error
	for _, line := range strings.Split(s, "\n") {
		var n int
		if n, err = fmt.Sscanf(line, format, args...); err == nil {
			return n, nil
		}
	}
	return 0, err
}
