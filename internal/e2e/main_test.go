package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binPath is the drover binary every test starts: built once by TestMain,
// or taken from DROVER_E2E_BIN (for example a -race build made by CI).
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if p := os.Getenv("DROVER_E2E_BIN"); p != "" {
		binPath = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "drover-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir for the binary: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "drover")
	// Without -race: the servers are the system under test, not the code
	// under the race detector, and a plain build is fast and cached.
	build := exec.Command("go", "build", "-o", binPath, "github.com/drover-dev/drover/cmd/drover")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build drover: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
