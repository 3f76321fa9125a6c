// Package testwait is how Drover's tests wait for something to happen: poll
// a condition until it holds or a deadline passes, and on failure say what
// was awaited and the last state seen. No test sleeps to wait.
package testwait

import (
	"testing"
	"time"
)

// Poll is how often Eventually checks its condition.
const Poll = 10 * time.Millisecond

// Eventually polls cond until it returns nil or timeout passes, and then
// fails t with what was awaited and cond's last error, which should
// describe the state it saw ("status down", "2 of 3 healthy"). Call it from
// the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Until(timeout, cond); err != nil {
		t.Fatalf("waited %s for %s; last seen: %v", timeout, what, err)
	}
}

// Until polls cond until it returns nil, and returns nil then, or cond's
// last error once timeout has passed. It is Eventually for goroutines that
// must not fail the test themselves.
func Until(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(Poll)
	}
}
