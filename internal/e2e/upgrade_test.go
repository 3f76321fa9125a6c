package e2e

// A rolling upgrade of Drover itself: three servers of the previous
// release replaced one at a time by this build while clients write.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/server/state"
)

// previousRelease is the commit the upgrade starts from: the last one
// before the Raft log had versions (state/version.go).
const previousRelease = "6091e86"

// buildPrevious builds drover at previousRelease from this repository's
// history, in a worktree of its own.
func buildPrevious(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: cannot build the previous release")
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", previousRelease+"^{commit}").CombinedOutput(); err != nil {
		t.Skipf("commit %s of the previous release is not in this checkout (a shallow clone?): %v %s", previousRelease, err, out)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", src, previousRelease).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add %s: %v\n%s", previousRelease, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", src).Run() })
	bin := filepath.Join(dir, "drover-"+previousRelease)
	build := exec.Command("go", "build", "-o", bin, "./cmd/drover")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release: %v\n%s", err, out)
	}
	return bin
}

// Servers of the previous release are upgraded one at a time, under a
// steady stream of writes through every server. The cluster keeps the old
// log version (and the old behaviour) until the last one runs this build,
// then raises it by itself; no acknowledged write is lost, and every
// server ends with the same state, hash for hash.
func TestRollingUpgrade(t *testing.T) {
	old := buildPrevious(t)
	// Small snapshots, so that the old servers persist states made by the
	// old build, which the new one then restores and carries on from: the
	// test would not see a difference in what the builds write otherwise,
	// every upgraded server replaying the whole log with the new build.
	c := StartCluster(t, 3, WithFastRaft(), WithBinary(old), WithServerArgs("-raft-snapshot-threshold", "100"))

	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%04d", w, i)
				// Retry through any server until the create is answered:
				// 409 after an attempt of unknown outcome means it was
				// applied.
				for tries := 0; tries < 100; tries++ {
					s := c.Servers()[rand.IntN(3)]
					r, err := s.Client().WithTimeout(3*time.Second).Try(http.MethodPost, "/v1/tenants", map[string]string{"name": name})
					if err == nil && (r.OK() || r.Status == http.StatusConflict) {
						mu.Lock()
						acked = append(acked, name)
						mu.Unlock()
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	logVersion := func(s *Server) int {
		st, err := s.status(true)
		if err != nil {
			return -1
		}
		return st.LogVersion
	}

	// Raft looks at the threshold every 30 s (cluster.DefaultSnapshotInterval).
	eventually(t, 2*time.Minute, "a snapshot of the old build on every server", func() (bool, string) {
		for _, s := range c.Servers() {
			if m, _ := filepath.Glob(filepath.Join(s.DataDir(), "raft", "snapshots", "*", "meta.json")); len(m) == 0 {
				return false, s.Name() + " has none"
			}
		}
		return true, ""
	})
	for i, s := range c.Servers() {
		time.Sleep(time.Second)
		s.Upgrade()
		c.WaitForLeader()
		if i < 2 {
			// A server of the old build remains: the log stays at version 1.
			time.Sleep(500 * time.Millisecond)
			if v := logVersion(s); v > 1 {
				t.Fatalf("after upgrading %d of 3 servers the log is at version %d; the others cannot read it", i+1, v)
			}
		}
	}
	eventually(t, waitTimeout, "every server at this build's log version", func() (bool, string) {
		for _, s := range c.Servers() {
			if v := logVersion(s); v != state.LogVersion {
				return false, fmt.Sprintf("%s at log version %d", s.Name(), v)
			}
		}
		return true, ""
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// What came with the new log version works: the event stream.
	leader := c.WaitForLeader()
	leader.Client().JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": "after-upgrade"}, nil)
	r := leader.Client().JSON(http.MethodGet, "/v1/events?topic=audit&follow=false", nil, nil)
	if !strings.Contains(string(r.Body), `"target":"after-upgrade"`) {
		t.Fatalf("the event stream after the upgrade has no record of the create:\n%.2000s", r.Body)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged during the upgrade", len(acked))
	}
	sameState(t, c)
	for _, s := range c.Servers() {
		var tenants []struct{ Name string }
		s.Client().JSON(http.MethodGet, "/v1/tenants?stale=true", nil, &tenants)
		have := map[string]bool{}
		for _, tn := range tenants {
			have[tn.Name] = true
		}
		for _, name := range acked {
			if !have[name] {
				t.Errorf("%s lost the acknowledged create of tenant %s", s.Name(), name)
			}
		}
	}
	t.Logf("%d writes acknowledged while 3 servers were upgraded", len(acked))
}

// sameState waits until every server is at the same index and checks that
// their states hash the same.
func sameState(t *testing.T, c *Cluster) {
	t.Helper()
	type hash struct {
		Index  uint64 `json:"index"`
		SHA256 string `json:"sha256"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		var hs []hash
		for _, s := range c.Servers() {
			var h hash
			s.Client().JSON(http.MethodGet, "/v1/operator/state-hash", nil, &h)
			hs = append(hs, h)
		}
		same := true
		for _, h := range hs[1:] {
			same = same && h.Index == hs[0].Index
		}
		if same {
			for i, h := range hs[1:] {
				if h.SHA256 != hs[0].SHA256 {
					t.Fatalf("at index %d, %s's state hashes %s and %s's %s", h.Index, c.Server(i+1).Name(), h.SHA256, c.Server(0).Name(), hs[0].SHA256)
				}
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("servers never reached the same index: %+v", hs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
