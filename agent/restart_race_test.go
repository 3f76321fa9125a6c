package agent

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/protocol"
)

// The supervisor read r.spec (the whole struct, including Plan,
// Release and Flags) without r.mu when it restarts a process (Restarted,
// task), while assign's updateFlags writes those fields under r.mu: a
// data race that -race reports (it now reads r.assigned()).
func TestARestartReadsTheSpecUnderItsLock(t *testing.T) {
	f, sup := newFakeAgent(t)
	sup.Restarted = func(protocol.AssignedReplica) {}
	r := newReplica(sup, testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways,
		Window: protocol.Duration(time.Millisecond), Delay: protocol.Duration(time.Microsecond)}), nil)
	stop := supervise(t, r)
	defer stop()
	var quit atomic.Bool
	go func() { // the connection's assign goroutine: a new plan arrives
		base := r.assigned()
		for i := 0; !quit.Load(); i++ {
			a := base
			a.Plan = "plan" + strconv.Itoa(i)
			r.updateFlags(a)
		}
	}()
	defer quit.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s := f.procs.starts(); len(s) > 0 {
			s[len(s)-1].exit(driver.ExitResult{ExitCode: 1})
		}
		time.Sleep(100 * time.Microsecond)
	}
}
