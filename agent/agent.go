// Package agent wires a Drover agent together: its record on disk, the
// process driver, the connection to the servers, and one supervisor per
// replica that makes the node's processes match what the servers assign.
// An agent never stops instances by exiting: replicas keep running and the
// next agent re-adopts them.
package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/agent/conn"
	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/agent/flags"
	"github.com/drover-dev/drover/agent/metrics"
	"github.com/drover-dev/drover/agent/store"
	"github.com/drover-dev/drover/internal/buildinfo"
	"github.com/drover-dev/drover/protocol"
)

// Config configures an agent. Zero values take defaults.
type Config struct {
	Servers   []string
	JoinToken string
	DataDir   string
	Name      string // the hostname when empty
	Region    string
	Labels    map[string]string
	PortRange protocol.PortRange // 20000-32000 when zero
	// Address is where the gateways reach this host's replicas; empty:
	// the address the servers see the agent's connection come from.
	Address string
	TLS     *tls.Config
	Logger  hclog.Logger
	// CgroupParent names the cgroup holding the replicas' cgroups.
	CgroupParent string
	// MetricsAddr is where GET /metrics is served (agent/metrics); none
	// when empty.
	MetricsAddr string
	// FlagsAddr is the loopback address where replicas read their feature
	// flags over OFREP (DROVER_FLAGS_URL); none when empty (their flag
	// files are still written).
	FlagsAddr string
}

// Default port range handed out to replicas.
const (
	DefaultPortLo = 20000
	DefaultPortHi = 32000
)

// DefaultFlagsAddr is drover agent's -flags-addr: a fixed port, so that a
// replica an agent re-adopts after a restart reaches its flags at the
// address it was given.
const DefaultFlagsAddr = "127.0.0.1:4790"

// Agent runs one node's replicas.
type Agent struct {
	cfg    Config
	logger hclog.Logger
	store  *store.Store
	driver *driver.Driver
	client *conn.Client
	// metrics are the replicas' usage and restarts (agent/metrics).
	metrics *metrics.Metrics
	// sup is what every replica's supervisor is given of the agent.
	sup *supervisor
	// flags serves the replicas' feature flags on flagsLn.
	flags   *flags.Server
	flagsLn net.Listener

	// mu guards the in-memory maps only: no disk writes, port probes or
	// reports happen under it.
	mu       sync.Mutex
	replicas map[string]*replica
	// exiting is set by StopAll: assignments start nothing from then on.
	exiting bool
	gen     uint64
	wg      sync.WaitGroup
}

// New opens the agent's record and re-adopts the replicas an earlier agent
// left running. Run connects it.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("data-dir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.PortRange == (protocol.PortRange{}) {
		cfg.PortRange = protocol.PortRange{Lo: DefaultPortLo, Hi: DefaultPortHi}
	}
	if cfg.PortRange.Lo < 1 || cfg.PortRange.Hi > 65535 || cfg.PortRange.Lo > cfg.PortRange.Hi {
		return nil, fmt.Errorf("port-range: %d-%d is not a range within 1-65535", cfg.PortRange.Lo, cfg.PortRange.Hi)
	}
	a := &Agent{cfg: cfg, logger: cfg.Logger.Named("agent"), replicas: map[string]*replica{}}
	var err error
	if a.store, err = store.Open(filepath.Join(cfg.DataDir, "agent.db")); err != nil {
		return nil, err
	}
	if a.gen, err = a.store.Generation(); err != nil {
		a.store.Close()
		return nil, err
	}
	if a.driver, err = driver.New(driver.Config{Logger: cfg.Logger, CgroupParent: cfg.CgroupParent}); err != nil {
		a.store.Close()
		return nil, err
	}
	if caps := a.driver.Capabilities(); caps.Reason != "" {
		a.logger.Warn("resource limits cannot all be enforced on this host", "reason", caps.Reason)
	}
	a.client, err = conn.New(conn.Config{Servers: cfg.Servers, Hello: a.hello, Handler: handler{a}, TLS: cfg.TLS, Logger: cfg.Logger})
	if err != nil {
		a.store.Close()
		return nil, err
	}
	a.metrics = metrics.New(metrics.Config{Replicas: a.metricReplicas, Usage: a.driver.Usage, Connected: a.client.Connected, Logger: a.logger})
	a.sup = &supervisor{DataDir: cfg.DataDir, Procs: driverProcesses{a.driver}, Record: a.store.PutReplica,
		Report: func(r protocol.ReplicaReport) { a.client.Report([]protocol.ReplicaReport{r}, 0) }, Logger: a.logger,
		Restarted: func(r protocol.AssignedReplica) { a.metrics.Restarted(r.Tenant, r.Instance, r.Environment) }}
	a.flags = flags.New()
	if cfg.FlagsAddr != "" {
		if err := loopback(cfg.FlagsAddr); err != nil {
			a.store.Close()
			return nil, fmt.Errorf("flags-addr: %w", err)
		}
		// Last: nothing after it fails, so the listener never leaks.
		if a.flagsLn, err = net.Listen("tcp", cfg.FlagsAddr); err != nil {
			a.store.Close()
			return nil, fmt.Errorf("flags-addr: %w", err)
		}
		a.sup.FlagsURL = "http://" + a.flagsLn.Addr().String()
	}
	return a, nil
}

// loopback checks that addr is host:port of a loopback IP: replicas'
// flags are for the processes of this host only.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address such as 127.0.0.1:4790: only this host's replicas read their flags", addr)
	}
	return nil
}

// driverProcesses gives replicas the driver's processes.
type driverProcesses struct{ d *driver.Driver }

func (p driverProcesses) Start(t driver.Task) (process, error) { return nilIfErr(p.d.Start(t)) }

func (p driverProcesses) Recover(t driver.Task, h driver.Handle) (process, error) {
	return nilIfErr(p.d.Recover(t, h))
}

func (p driverProcesses) Capabilities() driver.Capabilities { return p.d.Capabilities() }

// nilIfErr keeps a failed start's nil *Process from becoming a non-nil
// process interface.
func nilIfErr(p *driver.Process, err error) (process, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Run connects to the servers and supervises replicas until ctx ends. It
// leaves the replicas' processes running.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.recover(ctx); err != nil {
		return err
	}
	if a.cfg.MetricsAddr != "" {
		stop, err := a.serveMetrics(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.reportLoad(ctx)
	}()
	if a.flagsLn != nil {
		srv := &http.Server{Handler: a.flags, ReadHeaderTimeout: 10 * time.Second}
		a.wg.Add(2)
		go func() {
			defer a.wg.Done()
			if err := srv.Serve(a.flagsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("serving feature flags ended", "error", err)
			}
		}()
		go func() {
			defer a.wg.Done()
			<-ctx.Done()
			srv.Close()
		}()
		a.logger.Info("serving feature flags to replicas", "url", a.sup.FlagsURL)
	}
	err := a.client.Run(ctx)
	a.wg.Wait()
	if cerr := a.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// LoadInterval is how often the agent reports the host's load.
const LoadInterval = 10 * time.Second

// reportLoad sends the host's load with gopsutil every LoadInterval.
func (a *Agent) reportLoad(ctx context.Context) {
	t := time.NewTicker(LoadInterval)
	defer t.Stop()
	for {
		a.client.Metrics(loadMetrics(a.cfg.DataDir))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// recover restarts supervision of the replicas in the record.
func (a *Agent) recover(ctx context.Context) error {
	recs, err := a.store.ListReplicas()
	if err != nil {
		return err
	}
	var rs []*replica
	for _, rec := range recs {
		var spec protocol.AssignedReplica
		if err := json.Unmarshal(rec.Spec, &spec); err != nil || spec.ID == "" {
			a.logger.Warn("dropping unreadable replica record", "replica", rec.ID, "error", err)
			_ = a.store.DeleteReplica(rec.ID)
			continue
		}
		r := newReplica(a.sup, spec, rec.Ports)
		r.restarts, r.state = rec.Restarts, rec.State
		if rec.FlagsToken != "" {
			r.token = rec.FlagsToken // its process has it
		}
		r.confirmed = make(chan struct{})
		if rec.PID > 0 {
			r.adopt = &driver.Handle{PID: rec.PID, StartTime: rec.StartTime}
		}
		if rec.State == protocol.ReplicaStopped || rec.State == protocol.ReplicaFailed {
			// It ended for good before the agent restarted (its policy was
			// used up, or the servers stopped it): it is not started again.
			r.message = "ended before the agent restarted"
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		a.publishFlags(r) // as last recorded: no server may answer for a while
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range rs {
		a.replicas[r.spec.ID] = r
		if r.state == protocol.ReplicaStopped || r.state == protocol.ReplicaFailed {
			a.parkLocked(ctx, r)
		} else {
			a.startLocked(ctx, r)
		}
	}
	return nil
}

// parkLocked keeps a replica that will not run, reporting its state, until
// the servers stop it.
func (a *Agent) parkLocked(ctx context.Context, r *replica) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.waitStop(ctx)
		close(r.done)
		a.finished(r)
	}()
}

func (a *Agent) startLocked(ctx context.Context, r *replica) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.run(ctx)
		a.finished(r)
	}()
}

// finished forgets a replica the server stopped.
func (a *Agent) finished(r *replica) {
	select {
	case <-r.stopCh:
	default:
		return // the agent is exiting: keep the record for the next one
	}
	a.mu.Lock()
	if a.replicas[r.spec.ID] == r {
		delete(a.replicas, r.spec.ID)
		a.flags.Remove(r.spec.ID)
	}
	a.mu.Unlock()
	if err := a.store.DeleteReplica(r.spec.ID); err != nil {
		a.logger.Warn("forget replica", "replica", r.spec.ID, "error", err)
	}
}

// assign makes the node's replicas match the desired set. Replicas it
// starts run until ctx ends (the agent exits) or the servers stop them.
func (a *Agent) assign(ctx context.Context, as protocol.Assign) {
	if ctx.Err() != nil {
		return
	}
	// Decide under the lock; probe ports, write the record and report
	// outside it.
	a.mu.Lock()
	if a.exiting {
		a.mu.Unlock()
		return
	}
	if as.Generation < a.gen {
		a.mu.Unlock()
		a.logger.Warn("ignoring an assignment older than the one applied", "generation", as.Generation, "applied", a.gen)
		return
	}
	want := map[string]bool{}
	var added []protocol.AssignedReplica
	used := map[int]bool{}
	for _, r := range a.replicas {
		for _, p := range r.ports {
			used[p] = true
		}
	}
	var reflag []*replica
	for _, spec := range as.Replicas {
		want[spec.ID] = true
		if r, ok := a.replicas[spec.ID]; ok {
			r.confirm()
			if r.updateFlags(spec) {
				reflag = append(reflag, r)
			}
			continue
		}
		added = append(added, spec)
	}
	var gone []*replica
	for id, r := range a.replicas {
		if !want[id] {
			gone = append(gone, r)
		}
	}
	newGen := as.Generation != a.gen
	a.gen = as.Generation
	a.mu.Unlock()

	for _, r := range gone {
		a.logger.Info("stopping replica no longer assigned", "replica", r.spec.ID)
		r.stop()
	}
	for _, r := range reflag {
		r.persist()
		a.publishFlags(r)
	}
	var start, failed []*replica
	for _, spec := range added {
		ports, err := a.allocatePorts(spec, used)
		r := newReplica(a.sup, spec, ports)
		if err != nil {
			r.state, r.message = protocol.ReplicaFailed, err.Error()
			r.persist()
			a.client.Report([]protocol.ReplicaReport{r.report()}, as.Generation)
			failed = append(failed, r)
			continue
		}
		a.logger.Info("starting replica", "replica", spec.ID, "instance", protocol.InstanceID(spec.Tenant, spec.Instance), "version", spec.Version)
		start = append(start, r)
	}
	for _, r := range start {
		a.publishFlags(r) // its flag file is there when it starts
	}
	a.mu.Lock()
	if a.exiting {
		a.mu.Unlock()
		return // StopAll began meanwhile: start nothing it would not stop
	}
	for _, r := range failed {
		a.replicas[r.spec.ID] = r
		a.parkLocked(ctx, r)
	}
	for _, r := range start {
		a.replicas[r.spec.ID] = r
		a.startLocked(ctx, r)
	}
	a.mu.Unlock()
	if newGen {
		if err := a.store.SetGeneration(as.Generation); err != nil {
			a.logger.Warn("record assignment generation", "error", err)
		}
	}
}

// allocatePorts gives each named port of a replica a free host port from
// the range, keeping ports the server already knows for it. used holds the
// ports taken, and gets the new ones. Only the assigning goroutine calls
// it, so no other replica takes a port between the probe and its start.
func (a *Agent) allocatePorts(spec protocol.AssignedReplica, used map[int]bool) (map[string]int, error) {
	ports := map[string]int{}
	next := a.cfg.PortRange.Lo
	for _, name := range spec.Spec.Ports {
		if p, ok := spec.Ports[name]; ok && !used[p] {
			ports[name], used[p] = p, true
			continue
		}
		for ; next <= a.cfg.PortRange.Hi; next++ {
			if !used[next] && portFree(next) {
				break
			}
		}
		if next > a.cfg.PortRange.Hi {
			return nil, fmt.Errorf("no free port in %d-%d for port %q", a.cfg.PortRange.Lo, a.cfg.PortRange.Hi, name)
		}
		ports[name], used[next] = next, true
		next++
	}
	return ports, nil
}

// portFree reports whether nothing listens on port.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// hello describes this node for a new connection.
func (a *Agent) hello() protocol.Hello {
	id, err := a.store.Identity()
	if err != nil {
		a.logger.Error("read node identity", "error", err)
	}
	facts, res := hostFacts(a.cfg.DataDir, a.driver.Capabilities())
	h := protocol.Hello{
		ProtocolVersion: protocol.AgentProtocolVersion, NodeID: id.NodeID, NodeSecret: id.Secret,
		Name: a.cfg.Name, Version: buildinfo.Version, Region: a.cfg.Region, Labels: a.cfg.Labels,
		Resources: res, Facts: facts, PortRange: a.cfg.PortRange, Address: a.cfg.Address,
	}
	if id.Secret == "" {
		h.JoinToken = a.cfg.JoinToken
	}
	a.mu.Lock()
	for _, r := range a.replicas {
		h.Replicas = append(h.Replicas, r.report())
	}
	a.mu.Unlock()
	return h
}

// handler adapts the agent to conn.Handler.
type handler struct{ a *Agent }

func (h handler) Welcome(w protocol.Welcome) {
	if w.NodeSecret == "" {
		return
	}
	if err := h.a.store.SetIdentity(store.Identity{NodeID: w.NodeID, Secret: w.NodeSecret}); err != nil {
		h.a.logger.Error("record node identity", "error", err)
		return
	}
	h.a.logger.Info("registered with the cluster", "node", w.NodeID)
}

func (h handler) Assign(ctx context.Context, as protocol.Assign) { h.a.assign(ctx, as) }

func (h handler) Logs(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error) {
	h.a.streamLogs(ctx, req, send)
}

// streamLogs sends a replica's output: the last lines of stdout and stderr,
// then, when following, what both files get until ctx ends or the
// replica's process is gone for good (the servers stopped it, or it failed
// for good). A replica that ended still has its files here: they are sent,
// without following.
func (a *Agent) streamLogs(ctx context.Context, req protocol.LogRequest, send func(protocol.LogData) error) {
	a.mu.Lock()
	r := a.replicas[req.Replica]
	a.mu.Unlock()
	var dir string
	var done <-chan struct{}
	if r != nil {
		dir, done = filepath.Join(r.dir(), "logs"), r.done
	} else if id := req.Replica; id != "" && filepath.Base(id) == id && id != "." && id != ".." {
		dir = filepath.Join(a.sup.DataDir, "replicas", id, "logs")
		if _, err := os.Stat(dir); err != nil {
			dir = ""
		}
	}
	if dir == "" {
		_ = send(protocol.LogData{Error: "replica " + req.Replica + " has no output on this node: it does not run here, and its files are gone", EOF: true})
		return
	}
	w := &chunkWriter{send: send}
	offsets := map[string]int64{}
	for _, f := range []string{driver.StdoutFile, driver.StderrFile} {
		lines, end, err := driver.Tail(filepath.Join(dir, f), req.Tail)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = send(protocol.LogData{Error: err.Error(), EOF: true})
			return
		}
		offsets[f] = end
		for _, l := range lines {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return
			}
		}
	}
	if req.Follow && r != nil {
		var wg sync.WaitGroup
		for _, f := range []string{driver.StdoutFile, driver.StderrFile} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = driver.Follow(ctx, filepath.Join(dir, f), offsets[f], w, done)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return // cancelled: the server ended the stream
		}
	}
	_ = send(protocol.LogData{EOF: true})
}

// chunkWriter sends what is written as log chunks, one writer at a time.
type chunkWriter struct {
	mu   sync.Mutex
	send func(protocol.LogData) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	const max = 64 << 10
	for off := 0; off < len(p); off += max {
		end := min(off+max, len(p))
		if err := w.send(protocol.LogData{Data: string(p[off:end])}); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// StopAll stops every replica's process and waits until they are gone. The
// dev mode uses it on exit; a real agent never does, so that replicas
// outlive it.
func (a *Agent) StopAll(ctx context.Context) {
	a.mu.Lock()
	// The servers see these replicas stop and may assign replacements;
	// none must start behind this exit.
	a.exiting = true
	rs := make([]*replica, 0, len(a.replicas))
	for _, r := range a.replicas {
		rs = append(rs, r)
	}
	a.mu.Unlock()
	for _, r := range rs {
		// Without the drain: this is drover dev's exit, whose gateway has
		// gone already.
		r.stopUndrained()
	}
	for _, r := range rs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return
		}
	}
}

// publishFlags serves a replica's flags as last assigned and writes its
// flag file.
func (a *Agent) publishFlags(r *replica) {
	spec := r.assigned()
	version := spec.Release
	if version == "" {
		version = spec.Spec.Version
	}
	if version == "" {
		version = strconv.FormatUint(spec.Version, 10)
	}
	err := a.flags.Set(flags.Replica{ID: spec.ID, Tenant: spec.Tenant, Instance: spec.Instance, Token: r.token,
		Metadata: map[string]string{"tenant": spec.Tenant, "environment": spec.Environment, "plan": spec.Plan,
			"instance": spec.Instance, "version": version},
		Flags: spec.Flags, File: r.flagsFile()})
	if err != nil {
		a.logger.Warn("publish feature flags", "replica", spec.ID, "error", err)
	}
}
