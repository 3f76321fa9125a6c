package driver

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/proctest"
)

func TestStartReportsOutputAndExit(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "echo", "echo", "FOO=bar", "EXIT_CODE=3")
	p := start(t, d, task)

	res := wait(t, p)
	if res.ExitCode != 3 || res.Signal != "" || res.OOMKilled || res.Err != nil {
		t.Errorf("result = %+v, want exit code 3", res)
	}
	if got, want := res.String(), "exit code 3"; got != want {
		t.Errorf("result.String() = %q, want %q", got, want)
	}
	// The environment is exactly the task's: none of the agent's.
	want := "foo=bar\nwd=" + task.Dir + "\nenv=4\n"
	if got := readLog(t, task, StdoutFile); got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got := readLog(t, task, StderrFile); got != "to stderr\n" {
		t.Errorf("stderr = %q, want %q", got, "to stderr\n")
	}
}

func TestStartErrors(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "dup", "ticker")
	p := start(t, d, task)
	if _, err := d.Start(task); !errors.Is(err, ErrExists) {
		t.Errorf("second Start = %v, want ErrExists", err)
	}

	bad := helperTask(t, "../x", "echo")
	if _, err := d.Start(bad); err == nil {
		t.Errorf("Start with id %q succeeded", bad.ID)
	}
	missing := helperTask(t, "missing", "echo")
	missing.Argv = []string{filepath.Join(t.TempDir(), "no-such-binary")}
	if _, err := d.Start(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start of a missing binary = %v, want not exist", err)
	}
	// A failed start releases the id.
	missing.Argv = []string{executable()}
	q := start(t, d, missing)
	wait(t, q)

	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Once stopped, the id can be started again.
	start(t, d, task)
}

func TestStopKillsGroupAfterTimeout(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "trap", "trap")
	task.StopTimeout = 300 * time.Millisecond
	p := start(t, d, task)
	pid := p.Handle().PID

	// The grandchild says it is ready once it ignores SIGTERM.
	var grandchild int
	eventually(t, 10*time.Second, "grandchild to start", func() bool {
		for _, line := range strings.Split(readLog(t, task, StdoutFile), "\n") {
			if _, err := fmtSscan(line, "ready %d", &grandchild); err == nil {
				return true
			}
		}
		return false
	})

	began := time.Now()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if waited := time.Since(began); waited < task.StopTimeout {
		t.Errorf("Stop returned after %s, before the stop timeout %s", waited, task.StopTimeout)
	}
	res := p.Wait()
	if res.Signal != "SIGKILL" || res.ExitCode != -1 {
		t.Errorf("result = %+v, want killed by SIGKILL", res)
	}
	for _, pid := range []int{pid, grandchild} {
		if proctest.Alive(pid) {
			t.Errorf("process %d still runs after Stop", pid)
		}
	}
	// Dead members may wait a moment for init to reap them; then the
	// group is gone for the kernel too.
	eventually(t, 30*time.Second, "process group to be gone", func() bool {
		return errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
	})
}

func TestStopWithSignal(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "ticker", "ticker")
	task.StopSignal = syscall.SIGINT
	p := start(t, d, task)
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := p.Wait(); res.Signal != "SIGINT" {
		t.Errorf("result = %+v, want killed by SIGINT", res)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want ErrProcessDone", err)
	}
}

func TestStopContextCutsTimeout(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "impatient", "ignore")
	task.StopTimeout = time.Hour
	p := start(t, d, task)
	eventually(t, 10*time.Second, "process to ignore SIGTERM", func() bool {
		return strings.HasPrefix(readLog(t, task, StdoutFile), "ready")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if res := p.Wait(); res.Signal != "SIGKILL" {
		t.Errorf("result = %+v, want killed by SIGKILL", res)
	}
}

// TestExitKillsRest checks that what a task leaves behind when its main
// process exits is killed with it.
func TestExitKillsRest(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "orphan", "trap")
	p := start(t, d, task)
	var grandchild int
	eventually(t, 10*time.Second, "grandchild to start", func() bool {
		_, err := fmtSscan(readLog(t, task, StdoutFile), "ready %d", &grandchild)
		return err == nil
	})
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if proctest.Alive(grandchild) {
		t.Errorf("grandchild %d outlived the task", grandchild)
	}
}

func TestRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	id, err := exec.LookPath("id")
	if err != nil {
		t.Skip("no id command:", err)
	}
	d := newTestDriver(t)
	task := helperTask(t, "nobody", "")
	task.Argv = []string{id, "-u"}
	task.Dir = "/" // the test's temporary directory is closed to nobody
	task.User = "nobody"
	p := start(t, d, task)
	if res := wait(t, p); res.ExitCode != 0 {
		t.Fatalf("result = %v; stderr: %s", res, readLog(t, task, StderrFile))
	}
	if got := strings.TrimSpace(readLog(t, task, StdoutFile)); got != u.Uid {
		t.Errorf("uid = %s, want %s", got, u.Uid)
	}
}

// TestRecoverAfterAgentDeath starts a task from a separate agent
// process that then exits, checks that the task lives on, and recovers
// it in a new driver.
func TestRecoverAfterAgentDeath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pidfd bool
	}{
		{"pidfd", true},
		{"proc", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := helperTask(t, "adopt-"+tc.name, "ticker")
			h := startInDyingAgent(t, task)

			// The agent is gone; the task still writes to its log.
			size := func() int64 {
				fi, err := os.Stat(filepath.Join(task.LogDir, StdoutFile))
				if err != nil {
					return 0
				}
				return fi.Size()
			}
			before := size()
			eventually(t, 10*time.Second, "output after the agent exited", func() bool { return size() > before })

			d := newTestDriver(t)
			if tc.pidfd && !d.pidfd {
				t.Skip("no pidfd on this kernel")
			}
			d.pidfd = tc.pidfd
			wrong := h
			wrong.StartTime++
			if _, err := d.Recover(task, wrong); !errors.Is(err, ErrGone) {
				t.Errorf("Recover with a wrong start time = %v, want ErrGone", err)
			}
			p, err := d.Recover(task, h)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := d.Recover(task, h); err != nil || again != p {
				t.Errorf("second Recover = %v, %v; want the same process", again, err)
			}
			if _, err := d.Start(task); !errors.Is(err, ErrExists) {
				t.Errorf("Start of a recovered task = %v, want ErrExists", err)
			}

			if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			res := wait(t, p)
			if res.ExitCode != -1 || !errors.Is(res.Err, ErrExitUnknown) {
				t.Errorf("result = %+v, want unknown exit", res)
			}
			if d.cg != nil {
				for _, dir := range d.cg.parents {
					if _, err := os.Stat(filepath.Join(dir, task.ID)); !os.IsNotExist(err) {
						t.Errorf("cgroup %s left behind: %v", filepath.Join(dir, task.ID), err)
					}
				}
			}
			if _, err := d.Recover(task, h); !errors.Is(err, ErrGone) {
				t.Errorf("Recover of an exited process = %v, want ErrGone", err)
			}
		})
	}
}

func TestRecoverStopsGroup(t *testing.T) {
	task := helperTask(t, "adopt-stop", "trap")
	task.StopTimeout = 200 * time.Millisecond
	h := startInDyingAgent(t, task)
	var grandchild int
	eventually(t, 10*time.Second, "grandchild to start", func() bool {
		_, err := fmtSscan(readLog(t, task, StdoutFile), "ready %d", &grandchild)
		return err == nil
	})
	d := newTestDriver(t)
	p, err := d.Recover(task, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(0); err != nil {
		t.Errorf("Signal(0) to a recovered process: %v", err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{h.PID, grandchild} {
		if proctest.Alive(pid) {
			t.Errorf("process %d still runs after Stop", pid)
		}
	}
}

func TestRecoverGone(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "gone", "echo")
	p := start(t, d, task)
	h := p.Handle()
	wait(t, p)
	if _, err := d.Recover(task, h); !errors.Is(err, ErrGone) {
		t.Errorf("Recover of an exited process = %v, want ErrGone", err)
	}
	if _, err := d.Recover(task, Handle{PID: 1 << 30, StartTime: 1}); !errors.Is(err, ErrGone) {
		t.Errorf("Recover of a PID that does not exist = %v, want ErrGone", err)
	}
}

// startInDyingAgent starts task from another process, as an earlier
// agent would, and returns its handle once that process has exited.
func startInDyingAgent(t *testing.T, task Task) Handle {
	t.Helper()
	b, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(executable())
	cmd.Env = []string{helperEnv + "=agent", noRaceExitDelay, "TASK=" + string(b), "CGROUP_PARENT=" + testCgroupParent}
	cmd.Stderr = &strings.Builder{}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agent: %v: %s", err, cmd.Stderr)
	}
	var h Handle
	if err := json.Unmarshal(out, &h); err != nil {
		t.Fatalf("agent output %q: %v", out, err)
	}
	t.Cleanup(func() { syscall.Kill(-h.PID, syscall.SIGKILL) })
	return h
}
