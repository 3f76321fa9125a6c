package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/agent/flags"
	"github.com/drover-dev/drover/agent/health"
	"github.com/drover-dev/drover/agent/store"
	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/protocol"
	"github.com/hashicorp/go-hclog"
)

// maxRestartDelay caps the restart backoff.
const maxRestartDelay = time.Minute

// process is a running replica process, as the driver returns it.
type process interface {
	Handle() driver.Handle
	Done() <-chan struct{}
	Wait() driver.ExitResult
	Stop(ctx context.Context) error
}

// processes starts and recovers replica processes: the driver, or a fake
// in the supervisor's unit tests.
type processes interface {
	Start(driver.Task) (process, error)
	Recover(driver.Task, driver.Handle) (process, error)
	Capabilities() driver.Capabilities
}

// supervisor is what a replica's supervisor needs of its agent, in the way
// Nomad's TaskRunner takes a config and a state updater: where its files
// live, the processes, the record on disk, and where its reports go.
type supervisor struct {
	// DataDir holds replicas/ID/{work,logs}.
	DataDir string
	Procs   processes
	// Record keeps the replica's record for the next agent.
	Record func(store.Replica) error
	// Report sends a state change to the servers.
	Report func(protocol.ReplicaReport)
	// Restarted, when set, counts a restart (the agent's metrics).
	Restarted func(protocol.AssignedReplica)
	Logger    hclog.Logger
	// FlagsURL is where replicas read their flags (flags.PathPrefix
	// follows); none when empty.
	FlagsURL string
}

// replica supervises one assigned replica on this node: it starts (or
// re-adopts) the process, health-checks it, restarts it per its policy and
// reports every change.
type replica struct {
	sup *supervisor
	// spec is fixed for the replica's life but for its flags, plan and
	// release (updateFlags), which are read and written under mu.
	spec  protocol.AssignedReplica
	ports map[string]int
	// token is the replica's secret for reading its flags.
	token string
	// adopt is the process an earlier agent started, to recover instead of
	// starting a new one.
	adopt *driver.Handle

	mu        sync.Mutex
	state     string
	health    string
	message   string
	restarts  int
	startedAt time.Time
	exits     []time.Time // failures within the restart window
	proc      process

	// persistMu orders the record's writes: a snapshot taken later is
	// never overwritten by one taken earlier.
	persistMu sync.Mutex

	stopOnce sync.Once
	stopCh   chan struct{} // closed when the server no longer wants it
	// undrained skips the drain before the stop signal (StopAll), and
	// undrainCh, closed then, ends one in progress.
	undrained   atomic.Bool
	undrainOnce sync.Once
	undrainCh   chan struct{}
	done        chan struct{}

	// confirmed, for a replica recovered from the record, is closed once
	// the servers' assignment names it. Until then a recovered replica
	// whose process is gone is not started again: while no agent watched,
	// its node may have been marked down and the replica replaced
	// elsewhere, and it must never run twice. Nil for replicas the servers
	// assigned to this agent.
	confirmed   chan struct{}
	confirmOnce sync.Once
}

// errStopped means the servers stopped a replica before it started.
var errStopped = errors.New("stopped before it started")

func newReplica(sup *supervisor, spec protocol.AssignedReplica, ports map[string]int) *replica {
	return &replica{sup: sup, spec: spec, ports: ports, token: secret.New(), state: protocol.ReplicaPending,
		stopCh: make(chan struct{}), undrainCh: make(chan struct{}), done: make(chan struct{})}
}

// assigned returns the replica's assignment as last updated.
func (r *replica) assigned() protocol.AssignedReplica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spec
}

// updateFlags takes the flags (and plan and release) of a new assignment
// of the replica, and reports whether they changed.
func (r *replica) updateFlags(a protocol.AssignedReplica) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spec.Plan == a.Plan && r.spec.Release == a.Release && reflect.DeepEqual(r.spec.Flags, a.Flags) {
		return false
	}
	r.spec.Plan, r.spec.Release, r.spec.Flags = a.Plan, a.Release, a.Flags
	return true
}

// flagsFile is where the replica's flagd flag file is kept.
func (r *replica) flagsFile() string { return filepath.Join(r.dir(), "flags.json") }

// flagsEnv tells the process where its flags are: the flag file, and
// OFREP's address with the replica's token.
func (r *replica) flagsEnv(env map[string]string) {
	env["DROVER_FLAGS_FILE"] = r.flagsFile()
	if r.sup.FlagsURL != "" {
		env["DROVER_FLAGS_URL"] = r.sup.FlagsURL + flags.PathPrefix(r.spec.Tenant, r.spec.Instance)
		env["DROVER_FLAGS_TOKEN"] = r.token
	}
}

// stop asks the replica to stop; run then stops the process.
func (r *replica) stop() { r.stopOnce.Do(func() { close(r.stopCh) }) }

// stopUndrained is stop without the drain: for when no traffic can reach
// the replica any more.
func (r *replica) stopUndrained() {
	r.undrained.Store(true)
	r.undrainOnce.Do(func() { close(r.undrainCh) })
	r.stop()
}

// confirm records that the servers' assignment names the replica.
func (r *replica) confirm() {
	if r.confirmed != nil {
		r.confirmOnce.Do(func() { close(r.confirmed) })
	}
}

// awaitConfirmation waits until a recovered replica is confirmed, the
// servers stop it (errStopped), or ctx ends.
func (r *replica) awaitConfirmation(ctx context.Context) error {
	if r.confirmed == nil {
		return nil
	}
	select {
	case <-r.confirmed:
		return nil
	default:
	}
	r.set(protocol.ReplicaPending, "", "its process ended while no agent watched; waiting for the servers to confirm the replica")
	select {
	case <-r.confirmed:
		return nil
	case <-r.stopCh:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *replica) dir() string { return filepath.Join(r.sup.DataDir, "replicas", r.spec.ID) }

func (r *replica) task() driver.Task {
	env := environment(&r.spec, r.ports)
	r.flagsEnv(env)
	spec := r.spec.Spec
	t := driver.Task{
		ID: r.spec.ID, Argv: expand(spec.Command, variables(&r.spec, r.ports)), Env: envList(env),
		Dir: filepath.Join(r.dir(), "work"), LogDir: filepath.Join(r.dir(), "logs"),
		User: spec.User, StopSignal: signal(spec.Stop.Signal), StopTimeout: spec.Stop.Timeout.D(),
	}
	caps := r.sup.Procs.Capabilities()
	if caps.Memory {
		t.MemoryMB = spec.Resources.MemoryMB
	}
	if caps.CPU {
		t.CPUMillis = spec.Resources.CPUMillis
	}
	return t
}

// limitsNote says when the node cannot enforce what the spec asks for.
func (r *replica) limitsNote() string {
	caps := r.sup.Procs.Capabilities()
	res := r.spec.Spec.Resources
	if res.MemoryMB > 0 && !caps.Memory || res.CPUMillis > 0 && !caps.CPU {
		return "resource limits not enforced on this node: " + caps.Reason
	}
	return ""
}

func signal(name string) syscall.Signal {
	switch name {
	case "SIGINT":
		return syscall.SIGINT
	case "SIGQUIT":
		return syscall.SIGQUIT
	case "SIGHUP":
		return syscall.SIGHUP
	case "SIGUSR1":
		return syscall.SIGUSR1
	case "SIGUSR2":
		return syscall.SIGUSR2
	case "SIGKILL":
		return syscall.SIGKILL
	}
	return syscall.SIGTERM
}

// set changes the observed state and reports it.
func (r *replica) set(state, health, message string) {
	r.mu.Lock()
	r.state, r.health, r.message = state, health, message
	r.mu.Unlock()
	r.persist()
	r.sup.Report(r.report())
}

func (r *replica) report() protocol.ReplicaReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return protocol.ReplicaReport{ID: r.spec.ID, State: r.state, Health: r.health, Ports: r.ports,
		Restarts: r.restarts, StartedAt: r.startedAt, Message: protocol.Truncate(r.message, protocol.MaxMessageBytes)}
}

func (r *replica) persist() {
	r.persistMu.Lock()
	defer r.persistMu.Unlock()
	r.mu.Lock()
	spec, _ := json.Marshal(r.spec)
	rec := store.Replica{ID: r.spec.ID, Restarts: r.restarts, Ports: r.ports, Spec: spec, State: r.state,
		FlagsToken: r.token, UpdatedAt: time.Now()}
	if r.proc != nil {
		h := r.proc.Handle()
		rec.PID, rec.StartTime = h.PID, h.StartTime
	}
	r.mu.Unlock()
	if err := r.sup.Record(rec); err != nil {
		r.sup.Logger.Error("record replica", "replica", r.spec.ID, "error", err)
	}
}

// run supervises the replica until the server stops it (the process is
// stopped) or the agent exits (the process keeps running).
func (r *replica) run(ctx context.Context) {
	defer close(r.done)
	for {
		proc, err := r.startOrAdopt(ctx)
		if errors.Is(err, errStopped) {
			r.set(protocol.ReplicaStopped, "", "stopped")
			return
		}
		if ctx.Err() != nil {
			return
		}
		var notAdopted *adoptError
		if errors.As(err, &notAdopted) {
			// Its process may still run: starting another could run the
			// replica twice. The servers replace it elsewhere.
			r.set(protocol.ReplicaFailed, "", err.Error())
			r.sup.Logger.Error("cannot re-adopt a replica's process; not starting another", "replica", r.spec.ID, "error", err)
			r.waitStop(ctx)
			return
		}
		var res driver.ExitResult
		if err != nil {
			res = driver.ExitResult{ExitCode: -1, Err: err}
		} else {
			var stopped bool
			res, stopped = r.supervise(ctx, proc)
			if stopped || ctx.Err() != nil {
				return
			}
		}
		if !r.restartAfter(ctx, res) {
			return
		}
	}
}

// startOrAdopt starts the process, or recovers the one an earlier agent
// left running. A recovered replica without a live process starts only
// once the servers confirm it.
func (r *replica) startOrAdopt(ctx context.Context) (process, error) {
	t := r.task()
	if r.adopt != nil {
		h := *r.adopt
		r.adopt = nil
		p, err := r.sup.Procs.Recover(t, h)
		if err == nil {
			r.sup.Logger.Info("re-adopted replica process", "replica", r.spec.ID, "pid", h.PID)
			r.mu.Lock()
			r.proc = p
			r.mu.Unlock()
			return p, nil
		}
		if !errors.Is(err, driver.ErrGone) {
			return nil, &adoptError{pid: h.PID, err: err}
		}
		if err := r.awaitConfirmation(ctx); err != nil {
			return nil, err
		}
		// It ended while no agent watched: start it again, as a restart.
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
	} else if err := r.awaitConfirmation(ctx); err != nil {
		return nil, err
	}
	r.set(protocol.ReplicaStarting, "", "")
	p, err := r.sup.Procs.Start(t)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.proc = p
	r.startedAt = time.Now().UTC()
	r.mu.Unlock()
	r.persist() // the handle first: an agent dying now re-adopts the process
	return p, nil
}

// adoptError is a failure to recover a process that may still be running.
type adoptError struct {
	pid int
	err error
}

func (e *adoptError) Error() string {
	return fmt.Sprintf("cannot re-adopt process %d: %v", e.pid, e.err)
}

func (e *adoptError) Unwrap() error { return e.err }

// supervise watches a running process and its health until it exits, the
// server stops it (stopped is true), or the agent exits.
func (r *replica) supervise(ctx context.Context, p process) (res driver.ExitResult, stopped bool) {
	mctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	note := r.limitsNote()
	hc := r.spec.Spec.Health
	if hc == nil || hc.Type == protocol.HealthNone {
		r.set(protocol.ReplicaHealthy, protocol.HealthPassing, note)
	} else {
		r.mu.Lock()
		adopted := r.state == protocol.ReplicaHealthy || r.state == protocol.ReplicaUnhealthy
		r.mu.Unlock()
		if !adopted {
			r.set(protocol.ReplicaRunning, protocol.HealthUnknown, note)
		}
		m := health.NewMonitor(r.checker(), health.Config{
			Interval: hc.Interval.D(), Timeout: hc.Timeout.D(), Grace: hc.Grace.D(),
			HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold,
		}, func(t health.Transition) {
			switch t.To {
			case health.Healthy:
				r.set(protocol.ReplicaHealthy, protocol.HealthPassing, note)
			case health.Unhealthy:
				msg := "health check failing"
				if t.Err != nil {
					msg = "health check: " + t.Err.Error()
				}
				r.set(protocol.ReplicaUnhealthy, protocol.HealthFailing, msg)
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Run(mctx)
		}()
	}
	select {
	case <-p.Done():
		return p.Wait(), false
	case <-r.stopCh:
		cancel()
		if !r.drain(ctx, p) {
			return driver.ExitResult{}, false
		}
		r.set(protocol.ReplicaStopping, "", "stopping")
		sctx, scancel := context.WithTimeout(context.Background(), r.spec.Spec.Stop.Timeout.D()+10*time.Second)
		err := p.Stop(sctx)
		scancel()
		msg := "stopped"
		if err != nil {
			msg = "stop: " + err.Error()
		}
		r.set(protocol.ReplicaStopped, "", msg)
		return driver.ExitResult{}, true
	case <-ctx.Done():
		return driver.ExitResult{}, false
	}
}

// drain keeps a replica that may be in gateways' pools serving for its
// stop.drain before it is signalled: the servers took it out of the
// routing table in the same change that stopped it, so the gateways stop
// sending it new requests while it finishes those in flight. Only a
// healthy replica with ports can be in a pool. It reports false when the
// agent is exiting (the process then keeps running, as always).
func (r *replica) drain(ctx context.Context, p process) bool {
	r.mu.Lock()
	healthy := r.state == protocol.ReplicaHealthy
	r.mu.Unlock()
	d := r.spec.Spec.Stop.Drain
	if !healthy || len(r.ports) == 0 || d == nil || *d <= 0 || r.undrained.Load() {
		return true
	}
	r.set(protocol.ReplicaStopping, "", fmt.Sprintf("draining for %s", d))
	t := time.NewTimer(d.D())
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.Done():
	case <-r.undrainCh:
	case <-ctx.Done():
		return false
	}
	return true
}

// restartAfter applies the restart policy to an exit. It reports whether
// to start the process again.
func (r *replica) restartAfter(ctx context.Context, res driver.ExitResult) bool {
	pol := r.spec.Spec.Restart
	msg := res.String()
	failed := res.OOMKilled || res.Err != nil || res.ExitCode != 0 || res.Signal != ""
	switch {
	case pol.Policy == protocol.RestartNever, pol.Policy == protocol.RestartOnFailure && !failed:
		state := protocol.ReplicaStopped
		if failed {
			state = protocol.ReplicaFailed
		}
		r.set(state, "", "exited: "+msg)
		r.sup.Logger.Info("replica ended; its restart policy does not restart it", "replica", r.spec.ID, "state", state, "policy", pol.Policy, "result", msg)
		r.waitStop(ctx)
		return false
	}
	now := time.Now()
	r.mu.Lock()
	keep := r.exits[:0]
	for _, t := range r.exits {
		if now.Sub(t) < pol.Window.D() {
			keep = append(keep, t)
		}
	}
	r.exits = append(keep, now)
	attempts := len(r.exits)
	r.mu.Unlock()
	if pol.MaxAttempts > 0 && attempts > pol.MaxAttempts {
		r.set(protocol.ReplicaFailed, "", fmt.Sprintf("restart policy used up (%d exits in %s); last: %s", attempts, pol.Window, msg))
		r.sup.Logger.Warn("replica failed: restart policy used up", "replica", r.spec.ID, "exits", attempts, "window", pol.Window, "result", msg)
		r.waitStop(ctx)
		return false
	}
	delay := backoff.Exp(pol.Delay.D(), maxRestartDelay, attempts)
	r.mu.Lock()
	r.restarts++
	r.proc = nil
	r.mu.Unlock()
	if r.sup.Restarted != nil {
		r.sup.Restarted(r.assigned())
	}
	r.set(protocol.ReplicaStarting, "", fmt.Sprintf("%s; restarting in %s", msg, delay))
	select {
	case <-ctx.Done():
		return false
	case <-r.stopCh:
		r.set(protocol.ReplicaStopped, "", "stopped")
		return false
	case <-time.After(delay):
		return true
	}
}

// waitStop keeps a replica that will not run again until the server stops
// it, so that its state stays reported.
func (r *replica) waitStop(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-r.stopCh:
		r.mu.Lock()
		state := r.state
		r.mu.Unlock()
		if state != protocol.ReplicaStopped {
			r.set(protocol.ReplicaStopped, "", "stopped")
		}
	}
}

// checker builds the replica's health check.
func (r *replica) checker() health.Checker {
	hc := r.spec.Spec.Health
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.ports[hc.Port]))
	switch hc.Type {
	case protocol.HealthHTTP:
		return health.HTTP{URL: "http://" + addr + hc.Path}
	case protocol.HealthTCP:
		return health.TCP{Addr: addr}
	default:
		env := environment(&r.spec, r.ports)
		check := health.Exec{Argv: expand(hc.Command, variables(&r.spec, r.ports)), Env: envList(env), Dir: filepath.Join(r.dir(), "work")}
		if u := r.spec.Spec.User; u != "" {
			// The check runs as the replica does, not as the agent (root).
			cred, err := driver.LookupCredential(u)
			if err != nil {
				return health.CheckFunc(func(context.Context) error { return fmt.Errorf("run check as %s: %w", u, err) })
			}
			check.Credential = cred
		}
		return check
	}
}
