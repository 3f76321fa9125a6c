package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// uncached keeps go test from answering this package from its cache
// after the program changed: the results depend on the drover binary,
// whose sources are not inputs of this package in go test's eyes. go test
// records the files a test stats inside the module and reuses a result
// only while they are unchanged: stat every source file of the module,
// once, from the first test that starts a process (go test records only
// what tests do, not what TestMain does before them).
var uncached = sync.OnceFunc(statSources)

func statSources() {
	root := filepath.Join("..", "..")
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir // .git, .ci
		}
		if name := d.Name(); strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" ||
			strings.HasPrefix(path, filepath.Join(root, "server", "console")) {
			_, _ = os.Stat(path)
		}
		return nil
	})
}
