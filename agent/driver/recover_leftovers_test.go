package driver

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/proctest"
)

// The leader of a task dies while no agent runs (the agent was
// restarting), and the rest of its process group lives on. The next
// agent's Recover, which says ErrGone, kills the group and empties the
// task's cgroup: they ran for ever, and with limits the task's next Start
// failed on the busy cgroup.
func TestRecoverOfAGoneLeaderKillsWhatItLeft(t *testing.T) {
	for _, tc := range []struct {
		name     string
		memoryMB int64
	}{{"no-limits", 0}, {"memory-limit", 256}} {
		t.Run(tc.name, func(t *testing.T) { testRecoverGoneLeaves(t, tc.memoryMB) })
	}
}

func testRecoverGoneLeaves(t *testing.T, memoryMB int64) {
	task := helperTask(t, "orphans", "trap")
	task.MemoryMB = memoryMB
	h := startInDyingAgent(t, task)
	var grandchild int
	eventually(t, 10*time.Second, "grandchild to start", func() bool {
		_, err := fmtSscan(readLog(t, task, StdoutFile), "ready %d", &grandchild)
		return err == nil
	})
	t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })
	// The leader dies while no agent watches (OOM kill, crash, ...).
	if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "leader gone", func() bool {
		st, err := readProcStat(h.PID)
		return err != nil || st.zombie()
	})

	d := newTestDriver(t)
	if _, err := d.Recover(task, h); !errors.Is(err, ErrGone) {
		t.Fatalf("Recover = %v, want ErrGone", err)
	}
	// What the agent does next: start the replica again.
	p, err := d.Start(task)
	if err != nil {
		t.Errorf("Start after the leader died unwatched: %v", err)
	} else {
		t.Cleanup(func() { syscall.Kill(-p.Handle().PID, syscall.SIGKILL); <-p.Done() })
	}
	time.Sleep(200 * time.Millisecond)
	if proctest.Alive(grandchild) {
		t.Errorf("process %d of the previous run still runs after Recover said ErrGone and the task was started again", grandchild)
	}
}
