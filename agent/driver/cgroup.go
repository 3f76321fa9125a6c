package driver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupVersion is the cgroup layout the driver found and uses.
type CgroupVersion int

const (
	// CgroupNone means no usable cgroup hierarchy: processes run without limits.
	CgroupNone CgroupVersion = iota
	// CgroupV1 means one legacy hierarchy per controller, such as
	// /sys/fs/cgroup/memory, including hybrid hosts whose cgroup2 mount
	// holds none of the controllers the driver needs.
	CgroupV1
	// CgroupV2 means the unified hierarchy mounted at the cgroup root.
	CgroupV2
)

// String returns "none", "v1" or "v2".
func (v CgroupVersion) String() string {
	switch v {
	case CgroupV1:
		return "v1"
	case CgroupV2:
		return "v2"
	default:
		return "none"
	}
}

// The controllers the driver manages, in the order limits are reported.
var controllers = []string{"memory", "cpu", "pids"}

// cpuPeriod is the CFS period, in microseconds, that CPU quotas refer to.
const cpuPeriod = 100000

// limits are the resource limits of one task; zero means no limit.
type limits struct {
	memoryBytes int64
	cpuMillis   int64
	pids        int64
}

func (l limits) any() bool { return l.memoryBytes > 0 || l.cpuMillis > 0 || l.pids > 0 }

// controlFile is a value to write to a cgroup control file.
type controlFile struct {
	controller string
	name       string
	value      string
	optional   bool // skipped when the kernel does not provide the file
}

// limitFiles returns the control files that apply l in a cgroup of
// version v, in the order they must be written.
func limitFiles(v CgroupVersion, l limits) []controlFile {
	var fs []controlFile
	add := func(ctrl, name, value string, optional bool) {
		fs = append(fs, controlFile{ctrl, name, value, optional})
	}
	quota := strconv.FormatInt(max(l.cpuMillis*cpuPeriod/1000, 1000), 10)
	switch v {
	case CgroupV2:
		if l.memoryBytes > 0 {
			add("memory", "memory.max", strconv.FormatInt(l.memoryBytes, 10), false)
			// The limit is on memory, not on memory plus swap.
			add("memory", "memory.swap.max", "0", true)
			// An OOM kill takes the whole replica down rather than leaving
			// it running with a random process missing.
			add("memory", "memory.oom.group", "1", true)
		}
		if l.cpuMillis > 0 {
			add("cpu", "cpu.max", quota+" "+strconv.Itoa(cpuPeriod), false)
		}
		if l.pids > 0 {
			add("pids", "pids.max", strconv.FormatInt(l.pids, 10), false)
		}
	case CgroupV1:
		if l.memoryBytes > 0 {
			// memsw must not be below the memory limit, so it comes second.
			add("memory", "memory.limit_in_bytes", strconv.FormatInt(l.memoryBytes, 10), false)
			add("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(l.memoryBytes, 10), true)
		}
		if l.cpuMillis > 0 {
			add("cpu", "cpu.cfs_period_us", strconv.Itoa(cpuPeriod), false)
			add("cpu", "cpu.cfs_quota_us", quota, false)
		}
		if l.pids > 0 {
			add("pids", "pids.max", strconv.FormatInt(l.pids, 10), false)
		}
	}
	return fs
}

// cgroupFS is the cgroup hierarchy the driver places tasks in.
type cgroupFS struct {
	version CgroupVersion
	// parents holds, per hierarchy, the directory under which task
	// cgroups are created: by controller on v1, the single key "" on v2.
	parents map[string]string
}

// detectCgroups finds the cgroup layout under root and prepares the
// parent cgroup named parent in it. It returns nil when there is no
// cgroup to place tasks in, and in any case what can be limited.
func detectCgroups(root, parent string) (*cgroupFS, Capabilities) {
	caps := Capabilities{CgroupRoot: root}
	var reasons []string
	fs := &cgroupFS{parents: make(map[string]string)}

	if isFS(root, unix.CGROUP2_SUPER_MAGIC) {
		fs.version = CgroupV2
		dir := filepath.Join(root, parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			reasons = append(reasons, err.Error())
		} else {
			// Even without controllers a v2 cgroup keeps the task's
			// processes together, so it is used anyway.
			fs.parents[""] = dir
			var enabled []string
			enabled, reasons = enableControllers(root, dir)
			caps.Memory = slices.Contains(enabled, "memory")
			caps.CPU = slices.Contains(enabled, "cpu")
			caps.Pids = slices.Contains(enabled, "pids")
		}
	} else {
		fs.version = CgroupV1
		found := false
		for _, c := range controllers {
			h := filepath.Join(root, c)
			if !isFS(h, unix.CGROUP_SUPER_MAGIC) {
				reasons = append(reasons, fmt.Sprintf("%s: no cgroup v1 hierarchy at %s", c, h))
				continue
			}
			found = true
			dir := filepath.Join(h, parent)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				reasons = append(reasons, fmt.Sprintf("%s: %v", c, err))
				continue
			}
			fs.parents[c] = dir
		}
		if !found {
			reasons = []string{fmt.Sprintf("no cgroup filesystem with memory, cpu or pids controllers at %s", root)}
		} else if dir, ok := accountingHierarchy(root, parent); ok {
			fs.parents["cpuacct"] = dir
		}
		_, caps.Memory = fs.parents["memory"]
		_, caps.CPU = fs.parents["cpu"]
		_, caps.Pids = fs.parents["pids"]
	}
	caps.Reason = strings.Join(reasons, "; ")
	if len(fs.parents) == 0 {
		return nil, caps
	}
	caps.Cgroup = fs.version
	return fs, caps
}

// accountingHierarchy prepares the parent cgroup in v1's cpuacct
// hierarchy, which limits nothing but counts the CPU time of the agent's
// metrics, when it is a hierarchy of its own: mounted with cpu
// ("cpu,cpuacct"), the cpu cgroup counts it already.
func accountingHierarchy(root, parent string) (string, bool) {
	h := filepath.Join(root, "cpuacct")
	if !isFS(h, unix.CGROUP_SUPER_MAGIC) {
		return "", false
	}
	acct, err1 := filepath.EvalSymlinks(h)
	cpu, err2 := filepath.EvalSymlinks(filepath.Join(root, "cpu"))
	if err1 != nil || (err2 == nil && acct == cpu) {
		return "", false
	}
	dir := filepath.Join(h, parent)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false
	}
	return dir, true
}

// enableControllers enables the driver's controllers for the children
// of dir, a child of the v2 root. It returns those it enabled, and why
// the others are unusable.
func enableControllers(root, dir string) (enabled, reasons []string) {
	avail, err := readFields(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return nil, []string{err.Error()}
	}
	for _, c := range controllers {
		if !slices.Contains(avail, c) {
			reasons = append(reasons, fmt.Sprintf("%s: controller not available in %s", c, root))
			continue
		}
		var err error
		for _, d := range []string{root, dir} {
			if err = writeControl(filepath.Join(d, "cgroup.subtree_control"), "+"+c); err != nil {
				break
			}
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: enable controller: %v", c, err))
			continue
		}
		enabled = append(enabled, c)
	}
	return enabled, reasons
}

// create makes a fresh cgroup for task id with limits l applied.
func (fs *cgroupFS) create(id string, l limits) (*cgroup, error) {
	cg := &cgroup{version: fs.version, dirs: make(map[string]string)}
	for key, parent := range fs.parents {
		dir := filepath.Join(parent, id)
		// A cgroup left behind by a crash would carry old counters. One
		// that still holds processes belongs to a run to Recover instead.
		if err := unix.Rmdir(dir); errors.Is(err, unix.EBUSY) {
			cg.remove()
			return nil, fmt.Errorf("cgroup %s still holds processes of an earlier run", dir)
		} else if err != nil && !errors.Is(err, unix.ENOENT) {
			cg.remove()
			return nil, fmt.Errorf("remove stale cgroup %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		cg.dirs[key] = dir
	}
	for _, f := range limitFiles(fs.version, l) {
		path := filepath.Join(cg.dir(f.controller), f.name)
		err := writeControl(path, f.value)
		if err != nil && !(f.optional && errors.Is(err, os.ErrNotExist)) {
			cg.remove()
			return nil, fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return cg, nil
}

// open returns the existing cgroup of task id, or nil if there is none.
func (fs *cgroupFS) open(id string) *cgroup {
	cg := &cgroup{version: fs.version, dirs: make(map[string]string)}
	for key, parent := range fs.parents {
		dir := filepath.Join(parent, id)
		if _, err := os.Stat(dir); err == nil {
			cg.dirs[key] = dir
		}
	}
	if len(cg.dirs) == 0 {
		return nil
	}
	return cg
}

// cgroup is the cgroup of one task: one directory on v2, one per
// controller hierarchy on v1.
type cgroup struct {
	version CgroupVersion
	dirs    map[string]string // by controller on v1; the single key "" on v2
}

// dir returns the directory of the hierarchy holding controller c.
func (cg *cgroup) dir(c string) string {
	if cg.version == CgroupV2 {
		return cg.dirs[""]
	}
	return cg.dirs[c]
}

// start starts a process as os.StartProcess does, in the cgroup.
// Moving it in after its start is not enough: a cgroup migration takes
// milliseconds, in which the process runs, allocates and forks outside.
func (cg *cgroup) start(path string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	if cg.version == CgroupV2 {
		// Linux 5.7 starts it in the cgroup with CLONE_INTO_CGROUP.
		dir := cg.dirs[""]
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		defer unix.Close(fd)
		sys := *attr.Sys
		sys.UseCgroupFD, sys.CgroupFD = true, fd
		a := *attr
		a.Sys = &sys
		p, err := os.StartProcess(path, argv, &a)
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.E2BIG) {
			return p, err
		}
	}
	p, err := startStopped(path, argv, attr, cg.addProc)
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOSYS) {
		return p, err
	}
	// ptrace is not permitted here: move the process in right after its
	// start, with what it forked meanwhile.
	if p, err = os.StartProcess(path, argv, attr); err != nil {
		return nil, err
	}
	if err := cg.addSession(p.Pid); err != nil {
		unix.Kill(-p.Pid, unix.SIGKILL)
		p.Wait()
		return nil, err
	}
	return p, nil
}

// startStopped starts a process that stops right after its exec, before
// it runs any instruction of the new program, calls place with its PID,
// and lets it run. The stop is the one ptrace(2) makes a tracee take
// after execve.
func startStopped(path string, argv []string, attr *os.ProcAttr, place func(pid int) error) (*os.Process, error) {
	// Only the thread that forked the tracee may trace it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sys := *attr.Sys
	sys.Ptrace = true
	a := *attr
	a.Sys = &sys
	p, err := os.StartProcess(path, argv, &a)
	if err != nil {
		return nil, err
	}
	var ws unix.WaitStatus
	err = ignoringEINTR(func() error {
		_, err := unix.Wait4(p.Pid, &ws, unix.WALL, nil)
		return err
	})
	if err == nil && !ws.Stopped() {
		// Killed before it ran: Wait4 reaped it.
		p.Release()
		return nil, fmt.Errorf("process ended as it started: %v", describeWait(ws))
	}
	if err == nil {
		err = place(p.Pid)
	}
	if derr := unix.PtraceDetach(p.Pid); err == nil {
		err = derr
	}
	if err != nil {
		unix.Kill(-p.Pid, unix.SIGKILL)
		p.Wait()
		return nil, err
	}
	return p, nil
}

// describeWait describes how a process ended.
func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit code %d", ws.ExitStatus())
}

// addSession moves the processes of session sid into the cgroup. The
// process started it just now, so it may already have forked children
// outside the cgroup: those are moved too, until no new one turns up.
// A child that left the session before it was moved stays out.
func (cg *cgroup) addSession(sid int) error {
	if err := cg.addProc(sid); err != nil {
		return err
	}
	moved := map[int]bool{sid: true}
	for {
		n := 0
		for _, pid := range sessionMembers(sid) {
			if moved[pid] {
				continue
			}
			// Gone meanwhile is fine; its children show up in the next round.
			if err := cg.addProc(pid); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			moved[pid] = true
			n++
		}
		if n == 0 {
			return nil
		}
	}
}

// addProc moves process pid, with all its threads, into the cgroup.
func (cg *cgroup) addProc(pid int) error {
	for _, d := range cg.dirs {
		if err := writeControl(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("place process in cgroup: %w", err)
		}
	}
	return nil
}

// procs returns the processes in the cgroup.
func (cg *cgroup) procs() []int {
	var pids []int
	for _, d := range cg.dirs {
		fields, _ := readFields(filepath.Join(d, "cgroup.procs"))
		for _, f := range fields {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// kill sends SIGKILL to every process in the cgroup, including those
// that left the task's process group, and reports whether any was left.
func (cg *cgroup) kill() bool {
	if cg.version == CgroupV2 {
		// cgroup.kill (Linux 5.14) kills atomically, even a process
		// that is forking; the loop below covers older kernels.
		_ = writeControl(filepath.Join(cg.dirs[""], "cgroup.kill"), "1")
	}
	pids := cg.procs()
	for _, pid := range pids {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	return len(pids) > 0
}

// oomKilled reports whether the kernel's OOM killer killed a process
// of the cgroup. sigkilled says whether the task ended by SIGKILL or in
// an unknown way; it is needed only on kernels that count no OOM kills.
func (cg *cgroup) oomKilled(sigkilled bool) bool {
	dir := cg.dir("memory")
	if dir == "" {
		return false
	}
	if cg.version == CgroupV2 {
		n, ok := readKeyed(filepath.Join(dir, "memory.events"), "oom_kill")
		return ok && n > 0
	}
	if n, ok := readKeyed(filepath.Join(dir, "memory.oom_control"), "oom_kill"); ok {
		return n > 0
	}
	// Before Linux 4.13 v1 counts no OOM kills; a SIGKILL after the
	// limit was hit is the best evidence left.
	b, err := os.ReadFile(filepath.Join(dir, "memory.failcnt"))
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && n > 0 && sigkilled
}

// remove deletes the cgroup's directories. The kernel refuses while
// processes remain, and on v1 briefly after they are gone, so it retries
// for a while.
func (cg *cgroup) remove() error {
	deadline := time.Now().Add(5 * time.Second)
	var errs []error
	for _, d := range cg.dirs {
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// isFS reports whether path is the root of a filesystem of type magic.
func isFS(path string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && int64(st.Type) == magic
}

// writeControl writes value to an existing cgroup control file.
func writeControl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readFields returns the whitespace-separated words of a file.
func readFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// readKeyed reads the value of key from a flat keyed file such as
// memory.events ("oom_kill 3" lines).
func readKeyed(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
