package e2e

// Checks of the harness itself, for what every scenario relies on.

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// A server given a port someone else holds is recognised as a collision,
// which StartCluster and Restart retry.
func TestHarnessDetectsTakenPort(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "server.log")
	p, err := newLauncher(t).start("taken", log, []string{"server", "-acl=false",
		"-data-dir", filepath.Join(dir, "data"),
		"-http-addr", taken.Addr().String(),
		"-raft-addr", "127.0.0.1:" + strconv.Itoa(ports[0])})
	if err != nil {
		t.Fatal(err)
	}
	if !p.waitExit(waitTimeout) {
		t.Fatalf("the server on a taken port still runs after %v", waitTimeout)
	}
	if err := exitError(p, log); !errors.Is(err, errPortTaken) {
		t.Fatalf("exit of a server on a taken port not seen as a collision: %v", err)
	}
}

// When a test ends, nothing it started runs on.
func TestHarnessCleanupEndsProcesses(t *testing.T) {
	var pid int
	t.Run("cluster", func(t *testing.T) {
		c := StartCluster(t, 1)
		createTenant(t, c.Server(0), "acme")
		pid = c.Server(0).proc.pid()
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d of the ended subtest: kill -0 says %v, want no such process", pid, err)
	}
}

// Servers in network namespaces form a cluster, and Refuse cuts one off:
// the two others elect a leader without it; AcceptAll heals.
func TestHarnessNetnsCut(t *testing.T) {
	c := StartCluster(t, 3, WithNetns())
	old := c.WaitForLeader()
	others := except(c.Servers(), old)
	for _, o := range others {
		cutBetween(old, o)
	}
	eventually(t, waitTimeout, "the servers cut from "+old.Name()+" to elect another leader", func() (bool, string) {
		var views []string
		for _, o := range others {
			st, err := o.status(true)
			if err != nil {
				return false, err.Error()
			}
			if st.Leader == "" || st.Leader == old.ID() {
				return false, fmt.Sprintf("%s names %s", o.Name(), c.nameOf(st.Leader))
			}
			views = append(views, st.Leader)
		}
		return views[0] == views[1], fmt.Sprint(views)
	})
	for _, s := range c.Servers() {
		s.Netns().AcceptAll()
	}
	createTenant(t, c.WaitForLeader(), "healed")
	awaitTenants(t, old, []string{"healed"})
}
