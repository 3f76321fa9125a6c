package driver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

var (
	// ErrGone means the process to recover is no longer running: there
	// is no such PID, or it now belongs to another process.
	ErrGone = errors.New("process is gone")
	// ErrExists means the driver already runs a task with that ID.
	ErrExists = errors.New("task is already running")
	// ErrLimitsUnsupported means the task asks for a resource limit this
	// host cannot enforce; the error wrapping it says why.
	ErrLimitsUnsupported = errors.New("resource limits unsupported")
	// ErrExitUnknown is the ExitResult.Err of a recovered process: its
	// parent was the previous agent, so nobody here learns its exit status.
	ErrExitUnknown = errors.New("exit status unknown: process was recovered after an agent restart")
)

// Config configures a Driver.
type Config struct {
	// Logger receives the driver's logs; none when nil.
	Logger hclog.Logger
	// CgroupRoot is where the cgroup filesystems are mounted;
	// /sys/fs/cgroup when empty.
	CgroupRoot string
	// CgroupParent names the cgroup, created under CgroupRoot (in each
	// hierarchy on v1), that holds one cgroup per task; "drover" when
	// empty.
	CgroupParent string
	// RotateInterval is how often the sizes of log files are checked;
	// 10s when zero.
	RotateInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup"
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "drover"
	}
	if c.RotateInterval <= 0 {
		c.RotateInterval = 10 * time.Second
	}
	return c
}

// Task describes a process to run.
type Task struct {
	// ID names the task, typically the replica ID. It names the task's
	// cgroup, so it must be a valid file name.
	ID string
	// Argv is the command and its arguments, run without a shell. A
	// command without a slash is looked up in the agent's PATH.
	Argv []string
	// Env is the complete environment of the process, as KEY=VALUE; the
	// agent's own environment is never passed on.
	Env []string
	// Dir is the working directory, created if missing; / when empty.
	Dir string
	// LogDir receives StdoutFile and StderrFile; created if missing.
	LogDir string
	// LogMaxBytes is the size beyond which a log file is rotated;
	// 10 MiB when zero.
	LogMaxBytes int64
	// User runs the process as this user name or numeric ID, with its
	// primary and supplementary groups; as the agent's user when empty.
	User string
	// StopSignal asks the process to stop; SIGTERM when zero.
	StopSignal syscall.Signal
	// StopTimeout is how long Stop waits after StopSignal before it
	// kills the process group; 10s when zero.
	StopTimeout time.Duration
	// MemoryMB limits memory (swap excluded) in MiB; 0 means no limit.
	MemoryMB int64
	// CPUMillis limits CPU time in thousandths of a CPU; 0 means no limit.
	CPUMillis int64
	// PidsMax limits the number of processes and threads; 0 means no limit.
	PidsMax int64
}

func (t Task) withDefaults() Task {
	if t.Dir == "" {
		t.Dir = "/"
	}
	if t.LogMaxBytes <= 0 {
		t.LogMaxBytes = 10 << 20
	}
	if t.StopSignal == 0 {
		t.StopSignal = syscall.SIGTERM
	}
	if t.StopTimeout <= 0 {
		t.StopTimeout = 10 * time.Second
	}
	if t.Env == nil {
		t.Env = []string{} // nil would mean the agent's environment
	}
	return t
}

func (t Task) validate() error {
	switch {
	case t.ID == "" || t.ID == "." || t.ID == ".." || strings.ContainsAny(t.ID, "/\x00"):
		return fmt.Errorf("invalid task id %q", t.ID)
	case len(t.Argv) == 0 || t.Argv[0] == "":
		return errors.New("empty command")
	case t.LogDir == "":
		return errors.New("no log directory")
	case t.MemoryMB < 0 || t.CPUMillis < 0 || t.PidsMax < 0:
		return errors.New("negative resource limit")
	}
	return nil
}

func (t Task) limits() limits {
	return limits{memoryBytes: t.MemoryMB << 20, cpuMillis: t.CPUMillis, pids: t.PidsMax}
}

// Handle identifies a running process across agent restarts; the agent
// records it to Recover the process later.
type Handle struct {
	PID int `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat, the start time in clock
	// ticks after boot. It tells the process from a later one that
	// reuses its PID.
	StartTime uint64 `json:"start_time"`
}

// Capabilities says what the driver can enforce on this host.
type Capabilities struct {
	// Cgroup is the cgroup layout in use.
	Cgroup CgroupVersion
	// CgroupRoot is where the driver looked for cgroups.
	CgroupRoot string
	// Memory, CPU and Pids report which limits can be applied.
	Memory, CPU, Pids bool
	// Pidfd reports whether recovered processes are watched with a pidfd;
	// without one the driver polls /proc.
	Pidfd bool
	// Reason explains why a limit cannot be applied; empty when all can.
	Reason string
}

// String describes the capabilities for people, as in node facts.
func (c Capabilities) String() string {
	var lim []string
	for _, l := range []struct {
		ok   bool
		name string
	}{{c.Memory, "memory"}, {c.CPU, "cpu"}, {c.Pids, "pids"}} {
		if l.ok {
			lim = append(lim, l.name)
		}
	}
	s := "cgroup " + c.Cgroup.String()
	if len(lim) > 0 {
		s += " (" + strings.Join(lim, ", ") + ")"
	}
	if c.Reason != "" {
		s += ": " + c.Reason
	}
	return s
}

// unsupported returns why limits l cannot be enforced, or nil.
func (c Capabilities) unsupported(l limits) error {
	var missing []string
	if l.memoryBytes > 0 && !c.Memory {
		missing = append(missing, "memory")
	}
	if l.cpuMillis > 0 && !c.CPU {
		missing = append(missing, "cpu")
	}
	if l.pids > 0 && !c.Pids {
		missing = append(missing, "pids")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s limit on %s", ErrLimitsUnsupported, strings.Join(missing, " and "), c)
}

// Driver starts, stops and recovers the processes of tasks. Its methods
// are safe for concurrent use.
type Driver struct {
	cfg   Config
	log   hclog.Logger
	cg    *cgroupFS // nil without cgroups
	caps  Capabilities
	pidfd bool

	mu    sync.Mutex
	procs map[string]*Process // nil value: a task being started
}

// New returns a Driver after detecting what the host supports. It
// creates the parent cgroup when it can; that it cannot is not an
// error, but is reported by Capabilities.
func New(cfg Config) (*Driver, error) {
	cfg = cfg.withDefaults()
	if p := cfg.CgroupParent; filepath.IsAbs(p) || !filepath.IsLocal(p) {
		return nil, fmt.Errorf("cgroup parent %q: not a relative path below the cgroup root", p)
	}
	d := &Driver{
		cfg:   cfg,
		log:   cfg.Logger.Named("driver"),
		procs: make(map[string]*Process),
	}
	d.cg, d.caps = detectCgroups(cfg.CgroupRoot, cfg.CgroupParent)
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err == nil {
		unix.Close(fd)
		d.pidfd = true
	}
	d.caps.Pidfd = d.pidfd
	d.log.Info("detected host capabilities", "cgroup", d.caps.Cgroup, "memory", d.caps.Memory,
		"cpu", d.caps.CPU, "pids", d.caps.Pids, "pidfd", d.caps.Pidfd, "reason", d.caps.Reason)
	return d, nil
}

// Capabilities reports the cgroup layout found and the limits that can
// be applied.
func (d *Driver) Capabilities() Capabilities { return d.caps }

// reserve claims id for a task about to be started or recovered.
func (d *Driver) reserve(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.procs[id]; ok {
		return ErrExists
	}
	d.procs[id] = nil
	return nil
}

// register makes p the running process of its task, or releases the
// reservation when p is nil.
func (d *Driver) register(id string, p *Process) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p == nil {
		delete(d.procs, id)
		return
	}
	d.procs[id] = p
}

// forget drops p once it has exited.
func (d *Driver) forget(p *Process) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.procs[p.task.ID] == p {
		delete(d.procs, p.task.ID)
	}
}

// Start starts the process of task t. It fails with ErrExists if a
// process of t.ID is running, and with an error wrapping
// ErrLimitsUnsupported if t asks for limits the host cannot enforce.
func (d *Driver) Start(t Task) (*Process, error) {
	t = t.withDefaults()
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.ID, err)
	}
	if err := d.caps.unsupported(t.limits()); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.ID, err)
	}
	if err := d.reserve(t.ID); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.ID, err)
	}
	p, err := d.start(t)
	d.register(t.ID, p)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", t.ID, err)
	}
	// Not the arguments: they may hold secrets expanded from the environment.
	d.log.Info("started", "task", t.ID, "pid", p.handle.PID, "command", t.Argv[0])
	go p.superviseChild()
	go p.rotateLogs()
	return p, nil
}

func (d *Driver) start(t Task) (*Process, error) {
	cred, err := LookupCredential(t.User)
	if err != nil {
		return nil, err
	}
	path := t.Argv[0]
	if !strings.Contains(path, "/") {
		if path, err = exec.LookPath(path); err != nil {
			return nil, err
		}
	}
	if err := makeDir(t.Dir, cred); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(t.LogDir, 0o750); err != nil {
		return nil, err
	}
	var files []*os.File // stdin, stdout, stderr
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, open := range []func() (*os.File, error){
		func() (*os.File, error) { return os.Open(os.DevNull) },
		func() (*os.File, error) { return openLog(filepath.Join(t.LogDir, StdoutFile)) },
		func() (*os.File, error) { return openLog(filepath.Join(t.LogDir, StderrFile)) },
	} {
		f, err := open()
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}

	var cg *cgroup
	if d.cg != nil {
		cg, err = d.cg.create(t.ID, t.limits())
		if err != nil {
			if t.limits().any() {
				return nil, err
			}
			d.log.Warn("running without a cgroup", "task", t.ID, "error", err)
		}
	}
	attr := &os.ProcAttr{
		Dir:   t.Dir,
		Env:   t.Env,
		Files: files,
		// A session of its own: signals to the agent's process group or
		// a hangup of its terminal do not reach the task, and the task's
		// processes form one group to stop together.
		Sys: &syscall.SysProcAttr{Setsid: true, Credential: cred},
	}
	var proc *os.Process
	if cg != nil {
		proc, err = cg.start(path, t.Argv, attr)
	} else {
		proc, err = os.StartProcess(path, t.Argv, attr)
	}
	if err != nil {
		if cg != nil {
			cg.remove()
		}
		return nil, err
	}
	p := &Process{d: d, task: t, cg: cg, proc: proc, done: make(chan struct{})}
	p.handle.PID = proc.Pid
	// Not reaped yet, so /proc/PID is this process even if it has exited.
	st, err := readProcStat(proc.Pid)
	if err != nil {
		unix.Kill(-proc.Pid, unix.SIGKILL)
		proc.Wait()
		if cg != nil {
			cg.remove()
		}
		return nil, err
	}
	p.handle.StartTime = st.startTime
	return p, nil
}

// makeDir creates the working directory dir if it is missing, owned by
// the task's user.
func makeDir(dir string, cred *syscall.Credential) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(dir, int(cred.Uid), int(cred.Gid))
	}
	return nil
}

// Recover adopts the process h of task t, started by an earlier agent,
// after checking that h.PID still runs with h.StartTime; otherwise it
// fails with ErrGone. The agent is not the process's parent, so its exit
// status is unknown: the ExitResult will have ExitCode -1 and
// ErrExitUnknown. Recovering a process the driver already supervises
// returns the same Process; recovering another one with the same task ID
// fails with ErrExists.
func (d *Driver) Recover(t Task, h Handle) (*Process, error) {
	t = t.withDefaults()
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("recover %s: %w", t.ID, err)
	}
	d.mu.Lock()
	if p, ok := d.procs[t.ID]; ok {
		d.mu.Unlock()
		if p != nil && p.handle == h {
			return p, nil
		}
		return nil, fmt.Errorf("recover %s: %w", t.ID, ErrExists)
	}
	d.procs[t.ID] = nil
	d.mu.Unlock()

	p, err := d.recover(t, h)
	if errors.Is(err, ErrGone) {
		// The leader ended while no agent watched; what it left running
		// (its group, its cgroup) is still the task's and must go before
		// the task is started again.
		d.killLeftovers(t, h)
	}
	d.register(t.ID, p)
	if err != nil {
		return nil, fmt.Errorf("recover %s pid %d: %w", t.ID, h.PID, err)
	}
	d.log.Info("recovered", "task", t.ID, "pid", h.PID)
	go p.superviseAdopted()
	go p.rotateLogs()
	return p, nil
}

func (d *Driver) recover(t Task, h Handle) (*Process, error) {
	if h.PID <= 0 {
		return nil, ErrGone
	}
	p := &Process{d: d, task: t, handle: h, adopted: true, done: make(chan struct{})}
	if d.pidfd {
		// Open the pidfd before checking the start time, so that the
		// process checked is the one the pidfd refers to.
		f, err := openPidfd(h.PID)
		if errors.Is(err, unix.ESRCH) {
			return nil, ErrGone
		}
		if err != nil {
			return nil, err
		}
		p.pidfd = f
	}
	st, err := readProcStat(h.PID)
	if err != nil || st.startTime != h.StartTime || st.zombie() {
		if p.pidfd != nil {
			p.pidfd.Close()
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, ErrGone
	}
	if st.pgrp != h.PID {
		d.log.Warn("recovered process leads no process group; stopping it may leave others", "task", t.ID, "pid", h.PID, "pgrp", st.pgrp)
	}
	if d.cg != nil {
		p.cg = d.cg.open(t.ID)
	}
	return p, nil
}

// killLeftovers kills what is left of task t's earlier run whose leader h
// is gone: the rest of its process group and whatever is in the task's
// cgroup, which it removes. It does nothing when h.PID now names another
// live process.
func (d *Driver) killLeftovers(t Task, h Handle) {
	if h.PID <= 0 {
		return
	}
	// Only when h.PID is gone, or still the leader's zombie: a live
	// process with another start time may be a later run of the task (a
	// stale handle) or an unrelated process, whose group is not ours.
	st, err := readProcStat(h.PID)
	if !errors.Is(err, os.ErrNotExist) && (err != nil || st.startTime != h.StartTime) {
		return
	}
	var cg *cgroup
	if d.cg != nil {
		cg = d.cg.open(t.ID)
	}
	if groupAlive(h.PID) {
		d.log.Warn("killing processes left by a task whose leader exited while no agent watched", "task", t.ID, "pgid", h.PID)
	}
	killGroup(d.log, t.ID, h.PID, cg)
	if cg != nil {
		if err := cg.remove(); err != nil {
			d.log.Warn("cgroup of an earlier run not removed", "task", t.ID, "error", err)
		}
	}
}

// LookupCredential returns the credential of a user name or numeric
// ID: its UID, primary GID and supplementary groups. It returns nil
// when name is empty or is the agent's own user, so that the process
// runs as the agent does (setting groups would need privileges).
func LookupCredential(name string) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	var u *user.User
	var err error
	if _, nerr := strconv.Atoi(name); nerr == nil {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	if int(uid) == os.Geteuid() && int(gid) == os.Getegid() {
		return nil, nil
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", name, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err == nil && !slices.Contains(cred.Groups, uint32(n)) {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}
