package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover-dev/drover/internal/proctest"
)

func TestLimitFiles(t *testing.T) {
	l := limits{memoryBytes: 64 << 20, cpuMillis: 250, pids: 20}
	for _, tc := range []struct {
		name    string
		version CgroupVersion
		l       limits
		want    []string
	}{
		{"v2", CgroupV2, l, []string{
			"memory.max=67108864", "memory.swap.max=0", "memory.oom.group=1",
			"cpu.max=25000 100000", "pids.max=20",
		}},
		{"v1", CgroupV1, l, []string{
			"memory.limit_in_bytes=67108864", "memory.memsw.limit_in_bytes=67108864",
			"cpu.cfs_period_us=100000", "cpu.cfs_quota_us=25000", "pids.max=20",
		}},
		{"tiny cpu", CgroupV2, limits{cpuMillis: 1}, []string{"cpu.max=1000 100000"}},
		{"none", CgroupV1, limits{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range limitFiles(tc.version, tc.l) {
				got = append(got, f.name+"="+f.value)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("limitFiles = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (a) b (c)) S 1 4242 4241 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	st, err := parseProcStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStat{state: 'S', pgrp: 4242, session: 4241, startTime: 987654}); st != want {
		t.Errorf("parseProcStat = %+v, want %+v", st, want)
	}
	if _, err := parseProcStat([]byte("4242 (x) S 1")); err == nil {
		t.Error("parseProcStat accepted a short line")
	}
}

func TestNewRejectsCgroupParent(t *testing.T) {
	for _, parent := range []string{"/abs", "../up", "a/../../up"} {
		if _, err := New(Config{CgroupParent: parent}); err == nil {
			t.Errorf("New accepted cgroup parent %q", parent)
		}
	}
}

func TestLimitsUnsupported(t *testing.T) {
	d, err := New(Config{Logger: testLogger(t), CgroupRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	caps := d.Capabilities()
	if caps.Cgroup != CgroupNone || caps.Memory || caps.CPU || caps.Pids || caps.Reason == "" {
		t.Fatalf("capabilities without cgroups = %+v", caps)
	}
	task := helperTask(t, "unlimited", "echo")
	task.MemoryMB = 64
	_, err = d.Start(task)
	if !errors.Is(err, ErrLimitsUnsupported) {
		t.Fatalf("Start with a memory limit = %v, want ErrLimitsUnsupported", err)
	}
	if !strings.Contains(err.Error(), "memory") || !strings.Contains(err.Error(), caps.Reason) {
		t.Errorf("error %q does not say which limit and why", err)
	}
	task.MemoryMB = 0
	if res := wait(t, start(t, d, task)); res.ExitCode != 0 {
		t.Errorf("result without limits = %v", res)
	}
}

// cgroupDriver returns a driver that can apply all limits, or skips.
func cgroupDriver(t *testing.T) *Driver {
	t.Helper()
	d := newTestDriver(t)
	if c := d.Capabilities(); !c.Memory || !c.CPU || !c.Pids {
		t.Skipf("cgroup limits unavailable here: %s", c)
	}
	return d
}

func TestCgroupLimits(t *testing.T) {
	d := cgroupDriver(t)
	task := helperTask(t, "limited", "ticker")
	task.MemoryMB, task.CPUMillis, task.PidsMax = 64, 250, 20
	p := start(t, d, task)

	// The process is in the task's cgroup of every controller.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Handle().PID) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := "/" + testCgroupParent + "/" + task.ID
	for _, c := range controllers {
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && parts[2] == want &&
				(parts[0] == "0" || slices.Contains(strings.Split(parts[1], ","), c)) {
				found = true
			}
		}
		if !found {
			t.Errorf("process not in cgroup %s of %s:\n%s", want, c, b)
		}
	}
	for _, f := range limitFiles(d.caps.Cgroup, task.limits()) {
		path := filepath.Join(d.cg.open(task.ID).dir(f.controller), f.name)
		got, err := os.ReadFile(path)
		if f.optional && os.IsNotExist(err) {
			continue
		}
		if err != nil || strings.TrimSpace(string(got)) != f.value {
			t.Errorf("%s = %q, %v; want %q", path, got, err, f.value)
		}
	}

	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := p.Wait(); res.OOMKilled {
		t.Errorf("result = %+v, want no OOM kill", res)
	}
	for _, parent := range d.cg.parents {
		if _, err := os.Stat(filepath.Join(parent, task.ID)); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after exit: %v", filepath.Join(parent, task.ID), err)
		}
	}
}

func TestOOMKilled(t *testing.T) {
	d := cgroupDriver(t)
	task := helperTask(t, "hog", "hog")
	task.MemoryMB = 32
	res := wait(t, start(t, d, task))
	if !res.OOMKilled || res.Signal != "SIGKILL" {
		t.Fatalf("result = %+v (stdout %q), want OOM kill", res, readLog(t, task, StdoutFile))
	}
	if res.String() != "out of memory" {
		t.Errorf("result.String() = %q, want %q", res.String(), "out of memory")
	}
}

// TestCgroupHoldsEscapedProcesses checks, in each cgroup layout the host
// offers, that a task is placed in its cgroup and that a process which
// left the task's session still goes when the task stops.
func TestCgroupHoldsEscapedProcesses(t *testing.T) {
	roots := map[CgroupVersion]string{}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if isFS(root, unix.CGROUP2_SUPER_MAGIC) {
			roots[CgroupV2] = root
		} else if isFS(filepath.Join(root, "memory"), unix.CGROUP_SUPER_MAGIC) {
			roots[CgroupV1] = root
		}
	}
	for _, v := range []CgroupVersion{CgroupV1, CgroupV2} {
		t.Run(v.String(), func(t *testing.T) {
			root, ok := roots[v]
			if !ok {
				t.Skipf("no cgroup %s hierarchy here", v)
			}
			d, err := New(Config{Logger: testLogger(t), CgroupRoot: root, CgroupParent: testCgroupParent})
			if err != nil {
				t.Fatal(err)
			}
			if d.cg == nil {
				t.Skipf("cgroup %s at %s unusable: %s", v, root, d.Capabilities())
			}
			task := helperTask(t, "escape-"+v.String(), "escape")
			task.StopTimeout = 100 * time.Millisecond
			p := start(t, d, task)
			var grandchild int
			eventually(t, 10*time.Second, "grandchild to start", func() bool {
				_, err := fmtSscan(readLog(t, task, StdoutFile), "ready %d", &grandchild)
				return err == nil
			})
			t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })

			want := "/" + testCgroupParent + "/" + task.ID
			for _, pid := range []int{p.Handle().PID, grandchild} {
				b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), ":"+want+"\n") {
					t.Errorf("process %d not in cgroup %s:\n%s", pid, want, b)
				}
			}
			if err := p.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if proctest.Alive(grandchild) {
				t.Errorf("process %d, which left the task's session, outlived the task", grandchild)
			}
			for _, parent := range d.cg.parents {
				if _, err := os.Stat(filepath.Join(parent, task.ID)); !os.IsNotExist(err) {
					t.Errorf("cgroup %s left after exit: %v", filepath.Join(parent, task.ID), err)
				}
			}
		})
	}
}

// TestAddSession covers the placement used where ptrace is not
// permitted: a process moved in after its start brings along the
// children it forked meanwhile.
func TestAddSession(t *testing.T) {
	d := cgroupDriver(t)
	task := helperTask(t, "session", "trap")
	if err := os.MkdirAll(task.LogDir, 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := openLog(filepath.Join(task.LogDir, StdoutFile))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p, err := os.StartProcess(task.Argv[0], task.Argv, &os.ProcAttr{
		Env:   task.Env,
		Files: []*os.File{nil, out, out},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		p.Wait()
	})
	var grandchild int
	eventually(t, 10*time.Second, "grandchild to start", func() bool {
		_, err := fmtSscan(readLog(t, task, StdoutFile), "ready %d", &grandchild)
		return err == nil
	})

	cg, err := d.cg.create(task.ID, limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.addSession(p.Pid); err != nil {
		t.Fatal(err)
	}
	if got := cg.procs(); !slices.Contains(got, p.Pid) || !slices.Contains(got, grandchild) || len(got) != 2 {
		t.Errorf("cgroup holds %v, want %d and %d", got, p.Pid, grandchild)
	}
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	p.Wait()
	eventually(t, 10*time.Second, "cgroup to empty", func() bool { return len(cg.procs()) == 0 })
	if err := cg.remove(); err != nil {
		t.Error(err)
	}
}
