// Package proctest holds what tests need to see of processes without going
// through the code under test.
package proctest

import (
	"fmt"
	"os"
	"strings"
)

// Alive reports whether pid is a live process: it exists and is not a
// zombie. It reads /proc on its own.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if state, ok := strings.CutPrefix(line, "State:"); ok {
			state = strings.TrimSpace(state)
			return !strings.HasPrefix(state, "Z") && !strings.HasPrefix(state, "X")
		}
	}
	return false
}
