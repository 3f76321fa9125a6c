package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
)

// waitTimeout is the generous deadline of the harness's own waits (a
// leader, a server answering): far above what they take, so that a slow CI
// machine does not fail a test that is right.
const waitTimeout = 30 * time.Second

// holds turns a condition that says whether it holds and what it saw into
// one for testwait, whose error is the state seen.
func holds(cond func() (bool, string)) func() error {
	return func() error {
		if ok, state := cond(); !ok {
			if state == "" {
				state = "not yet"
			}
			return errors.New(state)
		}
		return nil
	}
}

// waitUntil checks cond until it holds or timeout passes (testwait.Until).
// It returns whether cond held and the state cond described last.
func waitUntil(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	var state string
	err := testwait.Until(timeout, holds(func() (bool, string) {
		var ok bool
		ok, state = cond()
		return ok, state
	}))
	return err == nil, state
}

// eventually fails the test unless cond holds within timeout
// (testwait.Eventually). what says what is awaited; cond returns whether it
// holds and the state it saw, which the failure reports. Call it from the
// test's goroutine.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testwait.Eventually(t, timeout, what, holds(cond))
}

var timingsMu sync.Mutex

// recordTiming logs a measured duration and, when DROVER_E2E_TIMINGS names
// a file, appends it there as a JSON line. Tests never assert on these:
// they are for people and benchmarks to read.
func recordTiming(t testing.TB, name string, d time.Duration) {
	t.Helper()
	t.Logf("TIMING %s: %v", name, d.Round(time.Millisecond))
	path := os.Getenv("DROVER_E2E_TIMINGS")
	if path == "" {
		return
	}
	line, _ := json.Marshal(map[string]any{
		"test": t.Name(), "name": name, "seconds": d.Seconds(), "at": time.Now().UTC().Format(time.RFC3339),
	})
	timingsMu.Lock()
	defer timingsMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("DROVER_E2E_TIMINGS: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		t.Errorf("DROVER_E2E_TIMINGS: %v", err)
	}
}
