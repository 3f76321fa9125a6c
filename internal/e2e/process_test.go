package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is one drover process the harness started, in its own process
// group so that killing the group also ends whatever it started (an agent's
// replicas), with its output appended to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	// state is set before done is closed.
	state *os.ProcessState
}

// startProcess runs the command line argv (argv[0] included), appending
// its output to logPath.
func startProcess(name, logPath string, argv []string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	fmt.Fprintf(logf, "=== e2e %s: start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv()
	// Pdeathsig ends the process even when the test binary dies without
	// running its cleanups (a -timeout panic); the harness never locks or
	// ends OS threads, so the forking thread lives as long as the binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		fmt.Fprintf(logf, "=== e2e %s: %s\n", time.Now().Format(time.RFC3339Nano), p.state)
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the test's environment without DROVER_* variables, which
// would otherwise set flags of the daemons (internal/config).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DROVER_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to timeout for the process to end.
func (p *process) waitExit(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// signal sends sig to the process alone.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s (pid %d) has exited", p.name, p.pid())
	}
	return syscall.Kill(p.pid(), sig)
}

// kill sends SIGKILL to the whole process group and waits for the process
// to end. The group id is the process's pid (Setpgid).
func (p *process) kill() error {
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d of %s: %w", p.pid(), p.name, err)
	}
	if !p.waitExit(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, p.pid())
	}
	return nil
}

// exitCode is the process's exit code, -1 if a signal ended it. Only after
// it has exited.
func (p *process) exitCode() int {
	<-p.done
	return p.state.ExitCode()
}

// launcher starts the processes of one test and, in t.Cleanup, kills every
// one of them with its process group and prints their logs if the test
// failed (or always with DROVER_E2E_LOGS=1).
type launcher struct {
	t    testing.TB
	mu   sync.Mutex
	proc []*process
	logs []string // log files in the order first used
}

func newLauncher(t testing.TB) *launcher {
	uncached()
	l := &launcher{t: t}
	t.Cleanup(l.cleanup)
	return l
}

// start starts drover with args, logging to logPath; it is killed at the
// test's end.
func (l *launcher) start(name, logPath string, args []string) (*process, error) {
	return l.startArgv(name, logPath, append([]string{binPath}, args...))
}

// startArgv is start for any command line (argv[0] included), for a
// process wrapped in another (nsenter into a network namespace).
func (l *launcher) startArgv(name, logPath string, argv []string) (*process, error) {
	p, err := startProcess(name, logPath, argv)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.proc = append(l.proc, p)
	if !slices.Contains(l.logs, logPath) {
		l.logs = append(l.logs, logPath)
	}
	return p, nil
}

// killAll kills every process started so far.
func (l *launcher) killAll() {
	l.mu.Lock()
	procs := append([]*process(nil), l.proc...)
	l.mu.Unlock()
	for _, p := range procs {
		if err := p.kill(); err != nil {
			l.t.Errorf("cleanup: %v", err)
		}
	}
}

func (l *launcher) cleanup() {
	l.killAll()
	if dir := os.Getenv("DROVER_E2E_LOGDIR"); dir != "" {
		// Whole, for reading after the run (the dump below keeps a tail).
		l.mu.Lock()
		for _, path := range l.logs {
			if b, err := os.ReadFile(path); err == nil {
				_ = os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
			}
		}
		l.mu.Unlock()
	}
	if !l.t.Failed() && os.Getenv("DROVER_E2E_LOGS") != "1" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, path := range l.logs {
		l.t.Logf("==== %s ====\n%s", path, tail(path, maxLogDump))
	}
}

// maxLogDump bounds how much of each log a failed test prints.
const maxLogDump = 256 << 10

// tail returns the last n bytes of a file.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	prefix := ""
	if fi.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return err.Error()
		}
		prefix = fmt.Sprintf("[... first %d bytes left out ...]\n", fi.Size()-n)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err.Error()
	}
	return prefix + string(b)
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// free when it returns, not reserved: starters retry on a collision.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		// Held open until all are chosen, so that the n differ.
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// errPortTaken means a daemon could not listen on a port it was given:
// someone took it between freePorts and the daemon's start.
var errPortTaken = errors.New("port taken")

// exitError describes why a process ended during its start, from its log,
// wrapping errPortTaken when it could not bind.
func exitError(p *process, logPath string) error {
	out := tail(logPath, 2048)
	err := fmt.Errorf("%s exited during start (%s); end of %s:\n%s", p.name, p.state, filepath.Base(logPath), out)
	if strings.Contains(out, "address already in use") {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}
