package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// cleanupTimeout bounds how long the driver waits for the rest of a
// task's processes to die after SIGKILL.
const cleanupTimeout = 10 * time.Second

// procPollInterval is how often a recovered process is looked for in
// /proc when there is no pidfd.
const procPollInterval = 500 * time.Millisecond

// ExitResult tells how a process ended.
type ExitResult struct {
	// ExitCode is the exit status, or -1 when a signal ended the process
	// or the status is unknown.
	ExitCode int
	// Signal names the signal that ended the process, such as "SIGKILL".
	Signal string
	// OOMKilled reports that the kernel's OOM killer killed a process of
	// the task, which usually means it reached its memory limit.
	OOMKilled bool
	// Err is set when the exit status could not be learned, for example
	// ErrExitUnknown for a recovered process.
	Err error
}

// String describes the result for people: "exit code 3", "killed by
// SIGTERM", "out of memory", ...
func (r ExitResult) String() string {
	switch {
	case r.OOMKilled:
		return "out of memory"
	case r.Err != nil:
		return r.Err.Error()
	case r.Signal != "":
		return "killed by " + r.Signal
	default:
		return fmt.Sprintf("exit code %d", r.ExitCode)
	}
}

// Process is a running task's process: one the driver started, or one
// it recovered. Its methods are safe for concurrent use.
type Process struct {
	d       *Driver
	task    Task
	handle  Handle
	adopted bool
	cg      *cgroup     // nil without cgroup
	proc    *os.Process // a child of this agent
	pidfd   *os.File    // a recovered process with pidfd support

	mu     sync.Mutex
	exited bool // the task has ended: its PID may soon name another process

	done   chan struct{}
	result ExitResult
}

// ID returns the task's ID.
func (p *Process) ID() string { return p.task.ID }

// Handle returns what identifies the process for Recover.
func (p *Process) Handle() Handle { return p.handle }

// Done returns a channel closed when the process has exited and the
// rest of its process group and cgroup are gone.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit, like Done, and returns how it
// ended.
func (p *Process) Wait() ExitResult {
	<-p.done
	return p.result
}

// Signal sends sig to the process, not to the rest of its group.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return os.ErrProcessDone
	}
	var err error
	switch {
	case p.proc != nil:
		err = p.proc.Signal(sig)
	case p.pidfd != nil:
		err = pidfdSignal(p.pidfd, sig)
	default:
		if st, serr := readProcStat(p.handle.PID); serr != nil || st.startTime != p.handle.StartTime {
			return os.ErrProcessDone
		}
		err = unix.Kill(p.handle.PID, sig)
	}
	if err != nil {
		return fmt.Errorf("signal %s: %w", p.task.ID, err)
	}
	return nil
}

// signalGroup sends sig to the process group unless the leader has
// exited, after which its ID could name another group.
func (p *Process) signalGroup(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		_ = unix.Kill(-p.handle.PID, sig)
	}
}

// Stop sends the task's stop signal to the process group and waits for
// the process to exit. After StopTimeout, or as soon as ctx is done, it
// kills the group with SIGKILL. It returns once no process of the group
// (or the task's cgroup) is left; an error means some survived SIGKILL.
func (p *Process) Stop(ctx context.Context) error {
	p.signalGroup(p.task.StopSignal)
	timer := time.NewTimer(p.task.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		p.d.log.Info("stop timeout, killing", "task", p.task.ID, "timeout", p.task.StopTimeout)
	case <-ctx.Done():
	}
	p.signalGroup(unix.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(2 * cleanupTimeout):
		return fmt.Errorf("stop %s: process %d survived SIGKILL", p.task.ID, p.handle.PID)
	}
}

// superviseChild waits for a process this driver started.
func (p *Process) superviseChild() {
	pid := p.handle.PID
	// Wait without reaping: until the leader is reaped its PID, which is
	// also the ID of its group, cannot be reused, so the rest of the
	// group can safely be killed.
	var info unix.Siginfo
	err := ignoringEINTR(func() error {
		return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
	})
	if err != nil {
		p.d.log.Error("wait", "task", p.task.ID, "pid", pid, "error", err)
	}
	p.killRest()
	var res ExitResult
	state, err := p.proc.Wait()
	if err != nil {
		res = ExitResult{ExitCode: -1, Err: err}
	} else {
		res.ExitCode = state.ExitCode()
		if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = unix.SignalName(ws.Signal())
		}
	}
	p.finish(res)
}

// superviseAdopted waits for a recovered process.
func (p *Process) superviseAdopted() {
	if p.pidfd == nil || waitPidfd(p.pidfd) != nil {
		pollProc(p.handle)
	}
	p.killRest()
	p.finish(ExitResult{ExitCode: -1, Err: ErrExitUnknown})
}

// killRest kills what is left of the task after its leader exited: the
// rest of its process group, and processes that left the group but not
// the cgroup. It waits for them to be gone.
func (p *Process) killRest() {
	killGroup(p.d.log, p.task.ID, p.handle.PID, p.cg)
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
}

// killGroup kills process group pgid and what is in cg (nil: none) and
// waits, up to cleanupTimeout, for them to be gone.
func killGroup(log hclog.Logger, task string, pgid int, cg *cgroup) {
	deadline := time.Now().Add(cleanupTimeout)
	for {
		_ = unix.Kill(-pgid, unix.SIGKILL)
		left := groupAlive(pgid)
		if cg != nil && cg.kill() {
			left = true
		}
		if !left {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("processes survive SIGKILL", "task", task, "pgid", pgid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish records the result, removes the cgroup and closes Done.
func (p *Process) finish(res ExitResult) {
	if p.cg != nil {
		res.OOMKilled = p.cg.oomKilled(res.Signal == "SIGKILL" || p.adopted)
		if err := p.cg.remove(); err != nil {
			p.d.log.Warn("cgroup not removed", "task", p.task.ID, "error", err)
		}
	}
	if p.pidfd != nil {
		p.pidfd.Close()
	}
	p.d.forget(p)
	p.d.log.Info("exited", "task", p.task.ID, "pid", p.handle.PID, "result", res.String())
	p.result = res
	close(p.done)
}

// rotateLogs rotates the task's log files while the process runs.
func (p *Process) rotateLogs() {
	t := time.NewTicker(p.d.cfg.RotateInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		for _, name := range []string{StdoutFile, StderrFile} {
			path := filepath.Join(p.task.LogDir, name)
			if ok, err := rotate(path, p.task.LogMaxBytes); err != nil {
				p.d.log.Warn("log rotation failed", "task", p.task.ID, "error", err)
			} else if ok {
				p.d.log.Debug("log rotated", "task", p.task.ID, "file", path)
			}
		}
	}
}

// openPidfd opens a non-blocking pidfd for pid, as an *os.File in the
// runtime's poller so that waiting for it holds no thread.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.EINVAL) { // before Linux 5.10
		if fd, err = unix.PidfdOpen(pid, 0); err == nil {
			err = unix.SetNonblock(fd, true)
		}
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// waitPidfd waits until the process of the pidfd f exits. A pidfd
// becomes readable then.
func waitPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	})
}

// pidfdSignal sends sig to the process of the pidfd f.
func pidfdSignal(f *os.File, sig syscall.Signal) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		err = unix.PidfdSendSignal(int(fd), sig, nil, 0)
	})
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return errors.Join(cerr, err)
}

// pollProc waits, by looking at /proc, until the process h is gone.
func pollProc(h Handle) {
	t := time.NewTicker(procPollInterval)
	defer t.Stop()
	for {
		st, err := readProcStat(h.PID)
		if err != nil || st.startTime != h.StartTime || st.zombie() {
			return
		}
		<-t.C
	}
}
