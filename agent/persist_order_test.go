package agent

import (
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/agent/store"
	"github.com/drover-dev/drover/protocol"
)

// persist took its snapshot under r.mu but wrote it after
// unlocking, and it is called from two goroutines (the supervisor's, and
// assign's when flags change). A snapshot taken before the process started
// can then be written after the one holding its PID: the record on disk
// says "no process", and the next agent starts a second copy instead of
// re-adopting the running one. persistMu now orders the writes. The slow
// first write stands for a bbolt fsync that takes a few milliseconds.
func TestRecordsAreWrittenInOrder(t *testing.T) {
	f, sup := newFakeAgent(t)
	var mu sync.Mutex
	var disk store.Replica // what the store holds: the last write
	first := true
	sup.Record = func(rec store.Replica) error {
		mu.Lock()
		slow := first
		first = false
		mu.Unlock()
		if slow {
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		disk = rec
		mu.Unlock()
		return nil
	}
	spec := testReplica(protocol.RestartPolicy{Policy: protocol.RestartAlways})
	r := newReplica(sup, spec, nil)
	// assign: the flags of the replica changed; it records them.
	spec.Plan = "pro"
	r.updateFlags(spec)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.persist() }()
	time.Sleep(10 * time.Millisecond) // its snapshot is taken
	stop := supervise(t, r)
	defer stop()
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
	if len(f.procs.starts()) != 1 {
		t.Fatalf("%d processes started, want 1", len(f.procs.starts()))
	}
	mu.Lock()
	defer mu.Unlock()
	if disk.PID != f.procs.starts()[0].handle.PID {
		t.Errorf("record on disk has PID %d (state %q) while process %d runs: the next agent would not re-adopt it",
			disk.PID, disk.State, f.procs.starts()[0].handle.PID)
	}
}
