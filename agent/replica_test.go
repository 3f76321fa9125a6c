package agent

// Unit tests of the replica supervisor with fake processes, in a
// testing/synctest bubble: time is fake there, so a restart delay of
// seconds passes at once and is measured exactly. The real paths (real
// processes, a killed and restarted agent) are covered by internal/e2e's
// agent tests.

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/agent/store"
	"github.com/drover-dev/drover/protocol"
)

// fakeProc is a process that runs until the test ends it.
type fakeProc struct {
	handle driver.Handle
	done   chan struct{}
	once   sync.Once
	res    driver.ExitResult
	stops  atomic.Int32 // calls of Stop: the stop signal sent
}

func (p *fakeProc) Handle() driver.Handle   { return p.handle }
func (p *fakeProc) Done() <-chan struct{}   { return p.done }
func (p *fakeProc) Wait() driver.ExitResult { <-p.done; return p.res }
func (p *fakeProc) Stop(context.Context) error {
	p.stops.Add(1)
	p.exit(driver.ExitResult{Signal: "SIGTERM", ExitCode: -1})
	return nil
}

func (p *fakeProc) exit(res driver.ExitResult) {
	p.once.Do(func() { p.res = res; close(p.done) })
}

// fakeProcs records what the supervisor starts and recovers.
type fakeProcs struct {
	mu      sync.Mutex
	started []*fakeProc
	alive   map[int]*fakeProc // by PID: what Recover finds
}

func (f *fakeProcs) Start(driver.Task) (process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &fakeProc{handle: driver.Handle{PID: 1000 + len(f.started), StartTime: 1}, done: make(chan struct{})}
	f.started = append(f.started, p)
	return p, nil
}

func (f *fakeProcs) Recover(_ driver.Task, h driver.Handle) (process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.alive[h.PID]; p != nil {
		return p, nil
	}
	return nil, driver.ErrGone
}

func (f *fakeProcs) Capabilities() driver.Capabilities { return driver.Capabilities{} }

func (f *fakeProcs) starts() []*fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeProc(nil), f.started...)
}

// fakeAgent is the supervisor's view of an agent: records and reports kept
// in memory.
type fakeAgent struct {
	procs   *fakeProcs
	mu      sync.Mutex
	reports []protocol.ReplicaReport
	records []store.Replica
}

func newFakeAgent(t *testing.T) (*fakeAgent, *supervisor) {
	f := &fakeAgent{procs: &fakeProcs{alive: map[int]*fakeProc{}}}
	return f, &supervisor{
		DataDir: t.TempDir(), Procs: f.procs,
		Record: func(r store.Replica) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.records = append(f.records, r)
			return nil
		},
		Report: func(r protocol.ReplicaReport) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reports = append(f.reports, r)
		},
		Logger: hclog.NewNullLogger(),
	}
}

func (f *fakeAgent) last() protocol.ReplicaReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reports) == 0 {
		return protocol.ReplicaReport{}
	}
	return f.reports[len(f.reports)-1]
}

func testReplica(pol protocol.RestartPolicy) protocol.AssignedReplica {
	spec := protocol.Spec{Version: "1", Command: []string{"/bin/app"}, Restart: pol}.WithDefaults()
	spec.Restart = pol // exactly the policy under test
	return protocol.AssignedReplica{ID: "r1", Tenant: "acme", Instance: "crm", Version: 1, Spec: spec}
}

// supervise runs r until the test's end; it returns a stop that ends the
// agent's side and waits for run to return.
func supervise(t *testing.T, r *replica) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go r.run(ctx)
	return func() {
		cancel()
		<-r.done
	}
}

func TestRestartPolicyDoublesTheDelayAndGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways,
			MaxAttempts: 3, Window: protocol.Duration(time.Hour), Delay: protocol.Duration(time.Second)}), nil)
		defer supervise(t, r)()
		synctest.Wait()
		for i := 1; i <= 4; i++ {
			starts := f.procs.starts()
			if len(starts) != i {
				t.Fatalf("after %d exits: %d starts, want %d", i-1, len(starts), i)
			}
			if got := f.last().State; got != protocol.ReplicaHealthy {
				t.Fatalf("start %d reported %s, want healthy (no health check)", i, got)
			}
			starts[i-1].exit(driver.ExitResult{ExitCode: 1})
			synctest.Wait() // the supervisor now waits for its delay, or gave up
			if i == 4 {
				break
			}
			if st := f.last(); st.State != protocol.ReplicaStarting || !strings.Contains(st.Message, "restarting in") {
				t.Fatalf("after exit %d: %+v, want starting with the delay", i, st)
			}
			time.Sleep(time.Minute) // longer than any delay: the restart happens in it
			synctest.Wait()
		}
		st := f.last()
		if st.State != protocol.ReplicaFailed || !strings.Contains(st.Message, "restart policy used up (4 exits") {
			t.Fatalf("after the 4th exit: %+v, want failed with the policy used up", st)
		}
		if st.Restarts != 3 {
			t.Fatalf("restarts %d, want 3", st.Restarts)
		}
	})
}

// The delay doubles with each exit in the window, from restart.delay.
func TestRestartDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: protocol.RestartOnFailure,
			Window: protocol.Duration(time.Hour), Delay: protocol.Duration(time.Second)}), nil)
		defer supervise(t, r)()
		synctest.Wait()
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
			exited := time.Now()
			f.procs.starts()[i].exit(driver.ExitResult{ExitCode: 2})
			// Poll in fake time: each step costs nothing real.
			for len(f.procs.starts()) == i+1 {
				time.Sleep(10 * time.Millisecond)
				synctest.Wait()
			}
			if got := time.Since(exited).Truncate(10 * time.Millisecond); got != want {
				t.Fatalf("restart %d after %s, want %s", i+1, got, want)
			}
		}
	})
}

func TestRestartPolicyNeverAndOnFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    string
		exit      driver.ExitResult
		restarted bool
		state     string
	}{
		{"never after success", protocol.RestartNever, driver.ExitResult{ExitCode: 0}, false, protocol.ReplicaStopped},
		{"never after failure", protocol.RestartNever, driver.ExitResult{ExitCode: 3}, false, protocol.ReplicaFailed},
		{"on-failure after success", protocol.RestartOnFailure, driver.ExitResult{ExitCode: 0}, false, protocol.ReplicaStopped},
		{"on-failure after failure", protocol.RestartOnFailure, driver.ExitResult{ExitCode: 3}, true, protocol.ReplicaHealthy},
		{"on-failure after out of memory", protocol.RestartOnFailure, driver.ExitResult{OOMKilled: true}, true, protocol.ReplicaHealthy},
		{"always after success", protocol.RestartAlways, driver.ExitResult{ExitCode: 0}, true, protocol.ReplicaHealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, sup := newFakeAgent(t)
				r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: tc.policy,
					Window: protocol.Duration(time.Hour), Delay: protocol.Duration(time.Second)}), nil)
				defer supervise(t, r)()
				synctest.Wait()
				f.procs.starts()[0].exit(tc.exit)
				time.Sleep(time.Minute)
				synctest.Wait()
				if got := len(f.procs.starts()) > 1; got != tc.restarted {
					t.Fatalf("restarted %v, want %v (%d starts)", got, tc.restarted, len(f.procs.starts()))
				}
				if st := f.last(); st.State != tc.state {
					t.Fatalf("state %s (%s), want %s", st.State, st.Message, tc.state)
				}
			})
		})
	}
}

// A replica recovered from the record whose process ended while no agent
// watched starts again only once the servers' assignment names it.
func TestRecoveredReplicaWaitsForTheServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways}), nil)
		r.confirmed = make(chan struct{})
		r.adopt = &driver.Handle{PID: 4242, StartTime: 7} // gone
		defer supervise(t, r)()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(f.procs.starts()); n != 0 {
			t.Fatalf("%d starts before the servers confirmed the replica", n)
		}
		if st := f.last(); st.State != protocol.ReplicaPending || !strings.Contains(st.Message, "waiting for the servers") {
			t.Fatalf("reported %+v, want pending, waiting for the servers", st)
		}
		r.confirm()
		synctest.Wait()
		if n := len(f.procs.starts()); n != 1 {
			t.Fatalf("%d starts after the confirmation, want 1", n)
		}
		if st := f.last(); st.Restarts != 1 {
			t.Fatalf("restarts %d: a process that ended unwatched counts as a restart", st.Restarts)
		}
	})
}

// A recovered replica the servers stop instead is never started.
func TestRecoveredReplicaStoppedIsNeverStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways}), nil)
		r.confirmed = make(chan struct{})
		r.adopt = &driver.Handle{PID: 4242, StartTime: 7}
		defer supervise(t, r)()
		synctest.Wait()
		r.stop()
		synctest.Wait()
		if n := len(f.procs.starts()); n != 0 {
			t.Fatalf("%d starts of a replica the servers stopped", n)
		}
		if st := f.last(); st.State != protocol.ReplicaStopped {
			t.Fatalf("state %s, want stopped", st.State)
		}
	})
}

// A recorded process still alive is adopted: not started again, no restart
// counted, and stopping it stops that process.
func TestReadoption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		live := &fakeProc{handle: driver.Handle{PID: 77, StartTime: 3}, done: make(chan struct{})}
		f.procs.alive[77] = live
		r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways}), nil)
		r.confirmed = make(chan struct{})
		r.restarts = 2
		r.adopt = &live.handle
		defer supervise(t, r)()
		synctest.Wait()
		if n := len(f.procs.starts()); n != 0 {
			t.Fatalf("%d starts: a live process must be adopted", n)
		}
		st := f.last()
		if st.State != protocol.ReplicaHealthy || st.Restarts != 2 {
			t.Fatalf("adopted replica reported %+v, want healthy with its 2 restarts", st)
		}
		r.stop()
		synctest.Wait()
		select {
		case <-live.done:
		default:
			t.Fatal("stopping the replica left the adopted process running")
		}
		if got := f.last().State; got != protocol.ReplicaStopped {
			t.Fatalf("state %s after stop, want stopped", got)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if rec := f.records[len(f.records)-1]; rec.ID != "r1" || rec.State != protocol.ReplicaStopped {
			t.Fatalf("last record %+v", rec)
		}
	})
}

// reportsSince returns the state and message of every report from the
// n-th on, as "state: message".
func (f *fakeAgent) reportsSince(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reports[n:] {
		out = append(out, r.State+": "+r.Message)
	}
	return out
}

func (f *fakeAgent) reportCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reports)
}

// drained is a replica with a port and the given stop.drain (the default,
// 5s, when nil).
func drained(drain *protocol.Duration) protocol.AssignedReplica {
	a := testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways})
	a.Spec.Ports = []string{"http"}
	if drain != nil {
		a.Spec.Stop.Drain = drain
	}
	return a
}

var webPorts = map[string]int{"http": 20001}

// A healthy replica with ports that the servers stop keeps running for its
// stop.drain, reported stopping ("draining for 5s"), and is signalled
// exactly when the drain ends.
func TestStopDrainsAHealthyReplica(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drain *protocol.Duration
		want  time.Duration
	}{
		{"default", nil, 5 * time.Second},
		{"spec", ptr(protocol.Duration(30 * time.Second)), 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, sup := newFakeAgent(t)
				r := newReplica(sup, drained(tc.drain), webPorts)
				defer supervise(t, r)()
				synctest.Wait()
				if st := f.last(); st.State != protocol.ReplicaHealthy {
					t.Fatalf("before the stop: %+v, want healthy", st)
				}
				p := f.procs.starts()[0]
				before := f.reportCount()

				r.stop()
				synctest.Wait()
				msg := "draining for " + tc.want.String()
				if got := f.reportsSince(before); !reflect.DeepEqual(got, []string{"stopping: " + msg}) {
					t.Fatalf("reports after the stop: %q, want stopping: %s", got, msg)
				}
				time.Sleep(tc.want - time.Millisecond)
				synctest.Wait()
				if n := p.stops.Load(); n != 0 {
					t.Fatalf("the process was signalled %s into a drain of %s", tc.want-time.Millisecond, tc.want)
				}
				if st := f.last(); st.State != protocol.ReplicaStopping || st.Message != msg || st.Ports["http"] != 20001 {
					t.Fatalf("during the drain: %+v", st)
				}
				time.Sleep(time.Millisecond)
				synctest.Wait()
				if n := p.stops.Load(); n != 1 {
					t.Fatalf("the process was signalled %d times when the drain ended, want 1", n)
				}
				want := []string{"stopping: " + msg, "stopping: stopping", "stopped: stopped"}
				if got := f.reportsSince(before); !reflect.DeepEqual(got, want) {
					t.Fatalf("reports after the stop: %q, want %q", got, want)
				}
				if n := len(f.procs.starts()); n != 1 {
					t.Fatalf("%d starts: a drained replica was started again", n)
				}
				f.mu.Lock()
				rec := f.records[len(f.records)-1]
				f.mu.Unlock()
				if rec.State != protocol.ReplicaStopped {
					t.Fatalf("last record %+v, want stopped", rec)
				}
			})
		})
	}
}

// A replica that cannot be in a gateway's pool, one that is not healthy or
// has no ports, or whose drain is 0s, is signalled at once.
func TestStopWithoutDrain(t *testing.T) {
	notHealthy := drained(nil)
	// A check whose grace outlasts the test: the replica stays running.
	notHealthy.Spec.Health = &protocol.HealthCheck{Type: protocol.HealthTCP, Port: "http",
		Interval: protocol.Duration(time.Second), Timeout: protocol.Duration(time.Second), Grace: protocol.Duration(time.Hour)}
	for _, tc := range []struct {
		name  string
		spec  protocol.AssignedReplica
		ports map[string]int
		state string // before the stop
	}{
		{"not healthy", notHealthy, webPorts, protocol.ReplicaRunning},
		{"no ports", testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways}), nil, protocol.ReplicaHealthy},
		{"drain 0s", drained(ptr(protocol.Duration(0))), webPorts, protocol.ReplicaHealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, sup := newFakeAgent(t)
				r := newReplica(sup, tc.spec, tc.ports)
				defer supervise(t, r)()
				synctest.Wait()
				if st := f.last(); st.State != tc.state {
					t.Fatalf("before the stop: %+v, want %s", st, tc.state)
				}
				p := f.procs.starts()[0]
				before := f.reportCount()
				stopped := time.Now()
				r.stop()
				synctest.Wait()
				if n := p.stops.Load(); n != 1 || time.Since(stopped) != 0 {
					t.Fatalf("signalled %d times after %s, want once at once", n, time.Since(stopped))
				}
				want := []string{"stopping: stopping", "stopped: stopped"}
				if got := f.reportsSince(before); !reflect.DeepEqual(got, want) {
					t.Fatalf("reports after the stop: %q, want %q", got, want)
				}
			})
		})
	}
}

// A process that exits during its drain ends the drain: the replica is
// reported stopped then, not at the drain's end, and is not started again.
func TestDrainEndsWhenTheProcessExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, drained(nil), webPorts)
		defer supervise(t, r)()
		synctest.Wait()
		p := f.procs.starts()[0]
		before := f.reportCount()
		r.stop()
		synctest.Wait()
		time.Sleep(time.Second)
		p.exit(driver.ExitResult{ExitCode: 0})
		synctest.Wait()
		want := []string{"stopping: draining for 5s", "stopping: stopping", "stopped: stopped"}
		if got := f.reportsSince(before); !reflect.DeepEqual(got, want) {
			t.Fatalf("reports after the process exited 1s into its drain: %q, want %q", got, want)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(f.procs.starts()); n != 1 {
			t.Fatalf("%d starts: a replica that exited during its drain was started again", n)
		}
		if st := f.last(); st.State != protocol.ReplicaStopped {
			t.Fatalf("a minute later: %+v, want stopped", st)
		}
	})
}

// An agent that exits during a drain leaves the process running, as it
// always does (the next agent re-adopts it).
func TestAgentExitDuringDrainLeavesTheProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, drained(nil), webPorts)
		exit := supervise(t, r)
		synctest.Wait()
		p := f.procs.starts()[0]
		r.stop()
		synctest.Wait()
		time.Sleep(time.Second)
		exit()
		if n := p.stops.Load(); n != 0 {
			t.Fatalf("the exiting agent signalled the process %d times", n)
		}
		select {
		case <-p.done:
			t.Fatal("the exiting agent ended the process")
		default:
		}
		p.exit(driver.ExitResult{}) // the test's end
	})
}

func ptr[T any](v T) *T { return &v }

// StopAll (drover dev's exit, whose gateway is gone) signals even a healthy
// replica with ports at once.
func TestStopUndrainedSkipsTheDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, drained(nil), webPorts)
		defer supervise(t, r)()
		synctest.Wait()
		p := f.procs.starts()[0]
		before := f.reportCount()
		r.stopUndrained()
		synctest.Wait()
		if n := p.stops.Load(); n != 1 {
			t.Fatalf("signalled %d times at once, want 1", n)
		}
		want := []string{"stopping: stopping", "stopped: stopped"}
		if got := f.reportsSince(before); !reflect.DeepEqual(got, want) {
			t.Fatalf("reports: %q, want %q", got, want)
		}
	})
}

// A replica already draining when StopAll comes (the servers stopped it
// just before drover dev exits) is signalled then, not at its drain's end:
// with a drain longer than StopAll's wait, drover dev would exit and leave
// the process running.
func TestStopUndrainedEndsADrainInProgress(t *testing.T) {

	synctest.Test(t, func(t *testing.T) {
		f, sup := newFakeAgent(t)
		r := newReplica(sup, drained(ptr(protocol.Duration(10*time.Minute))), webPorts)
		defer supervise(t, r)()
		synctest.Wait()
		p := f.procs.starts()[0]
		r.stop()
		synctest.Wait()
		time.Sleep(time.Second)
		r.stopUndrained()
		synctest.Wait()
		if n := p.stops.Load(); n != 1 {
			t.Fatalf("signalled %d times after StopAll, want 1 at once (state %+v)", n, f.last())
		}
	})
}

// A replica's process is told where its flags are, with a token of its
// own that the record keeps; a new assignment's flags replace the
// replica's, recorded, and an equal one changes nothing.
func TestReplicaFlagsEnvironmentAndUpdates(t *testing.T) {
	f, sup := newFakeAgent(t)
	sup.FlagsURL = "http://127.0.0.1:4790"
	a := protocol.AssignedReplica{ID: "r1", Tenant: "acme", Instance: "web", Spec: protocol.Spec{Command: []string{"/bin/app"}},
		Flags: []protocol.ResolvedFlag{{Key: "new-ui", Variant: "on", Value: []byte("true"), Source: "tenant"}}}
	r := newReplica(sup, a, nil)
	other := newReplica(sup, a, nil)
	env := map[string]string{}
	for _, kv := range r.task().Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env["DROVER_FLAGS_URL"] != "http://127.0.0.1:4790/instances/acme/web" || env["DROVER_FLAGS_TOKEN"] != r.token ||
		len(r.token) < 32 || r.token == other.token || env["DROVER_FLAGS_FILE"] != filepath.Join(sup.DataDir, "replicas", "r1", "flags.json") {
		t.Errorf("flag variables %v (token %q, another replica's %q)", env, r.token, other.token)
	}
	if r.updateFlags(a) {
		t.Error("the same flags count as a change")
	}
	a.Flags = []protocol.ResolvedFlag{{Key: "new-ui", Variant: "off", Value: []byte("false"), Source: "instance"}}
	if !r.updateFlags(a) || r.assigned().Flags[0].Variant != "off" {
		t.Fatalf("new flags not taken: %+v", r.assigned().Flags)
	}
	r.persist()
	rec := f.records[len(f.records)-1]
	var spec protocol.AssignedReplica
	if err := json.Unmarshal(rec.Spec, &spec); err != nil || rec.FlagsToken != r.token || len(spec.Flags) != 1 || spec.Flags[0].Variant != "off" {
		t.Errorf("record %+v flags %+v, %v: want the token and the new flags", rec, spec.Flags, err)
	}
}
