package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/clustertest"
	"github.com/drover-dev/drover/server/state"
)

func createTenant(c *clustertest.Cluster, name string) uint64 {
	return c.MustPropose(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: name}, Create: true})
}

// tenantsOn lists the tenants a server's state holds.
func tenantsOn(s *clustertest.Member) []string {
	var out []string
	for _, t := range s.Store.Snapshot().Tenants() {
		out = append(out, t.Name)
	}
	return out
}

func hasTenant(s *clustertest.Member, name string) bool {
	return s.Store.Snapshot().Tenant(name) != nil
}

func TestWritesReplicateToAll(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true})
	leader := c.Leader()
	if got := len(c.Followers()); got != 2 {
		t.Fatalf("followers: %d", got)
	}
	var last uint64
	for i := 0; i < 20; i++ {
		last = createTenant(c, fmt.Sprintf("t%02d", i))
	}
	// A refused command is committed too, and answers its error.
	idx, err := c.Propose(state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "t00"}, Create: true})
	if !errors.Is(err, protocol.ErrConflict) || idx <= last {
		t.Fatalf("duplicate tenant: index %d, %v", idx, err)
	}
	c.WaitForReplication()
	c.EnsureSame()
	for _, s := range c.Servers() {
		if got := len(tenantsOn(s)); got != 20 {
			t.Fatalf("%s holds %d tenants", s.ID, got)
		}
		if got := s.Store.Snapshot().Index(); got < idx {
			t.Fatalf("%s state index %d, want at least %d", s.ID, got, idx)
		}
	}
	// Only the leader takes writes.
	for _, f := range c.Followers() {
		if _, err := f.Cluster.Propose(context.Background(), state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "nope"}, Create: true}, nil); !errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("apply on follower %s: %v", f.ID, err)
		}
		if id, _ := f.Cluster.Leader(); id != leader.ID {
			t.Fatalf("%s knows leader %q, want %s", f.ID, id, leader.ID)
		}
		if f.Cluster.VerifyLeader() == nil {
			t.Fatalf("follower %s verified itself as leader", f.ID)
		}
	}
	if err := leader.Cluster.VerifyLeader(); err != nil {
		t.Fatalf("leader cannot verify: %v", err)
	}
}

func TestMembersAndSelf(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true, HTTPAddrs: []string{"h1:4700", "h2:4700", "h3:4700"}})
	leader := c.Leader()
	c.RecordServers()
	c.WaitForReplication()
	for _, s := range c.Servers() {
		members, err := s.Cluster.Members(s.Store.Snapshot())
		if err != nil {
			t.Fatal(err)
		}
		if len(members) != 3 {
			t.Fatalf("%s sees %d members", s.ID, len(members))
		}
		for _, m := range members {
			want := "follower"
			if m.ID == leader.ID {
				want = "leader"
			}
			if m.State != want || !m.Voter || m.HTTPAddr != "h"+strings.TrimPrefix(m.ID, "s")+":4700" || m.RaftAddr != m.ID+"-raft" {
				t.Fatalf("%s sees member %+v", s.ID, m)
			}
		}
		self := s.Cluster.Self()
		if self.ID != s.ID || self.Leader != leader.ID || !self.HasState || self.RaftAddr != s.Addr() || self.HTTPAddr != s.HTTPAddr {
			t.Fatalf("self of %s: %+v", s.ID, self)
		}
	}
}

func TestLeaderPartition(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true})
	old := c.Leader()
	createTenant(c, "before")
	c.WaitForReplication()

	c.Partition(old)
	leader := c.WaitForNewLeader(old)
	createTenant(c, "during")

	// The old leader cannot commit: its write fails and is never seen.
	if _, err := old.Cluster.Propose(context.Background(), state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "lost"}, Create: true}, nil); err == nil {
		t.Fatal("the partitioned old leader committed a write")
	}
	if hasTenant(old, "during") || hasTenant(old, "lost") {
		t.Fatalf("the cut off server holds %v", tenantsOn(old))
	}
	if old.Cluster.IsLeader() {
		t.Fatal("the cut off leader did not step down")
	}

	c.Heal()
	c.WaitForReplication()
	c.EnsureSame()
	for _, s := range c.Servers() {
		if !hasTenant(s, "before") || !hasTenant(s, "during") || hasTenant(s, "lost") {
			t.Fatalf("%s after heal holds %v", s.ID, tenantsOn(s))
		}
	}
	if c.Leader() == old {
		t.Log("the old leader won again after the heal")
	}
	_ = leader
}

func TestNoQuorumNoWrites(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true})
	leader := c.Leader()
	followers := c.Followers()
	c.Partition(followers...)
	// Alone, the leader steps down within its lease, and no one leads.
	c.Eventually("the leader to step down", func() error {
		if leader.Cluster.IsLeader() {
			return errors.New("still leads")
		}
		return nil
	})
	if _, err := leader.Cluster.Propose(context.Background(), state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "x"}, Create: true}, nil); err == nil {
		t.Fatal("a server without quorum committed")
	}
	c.Heal()
	createTenant(c, "after")
	c.WaitForReplication()
	c.EnsureSame()
}

func TestAddAndRemoveServers(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true})
	createTenant(c, "acme")
	s4 := c.AddServer()
	if has, _ := s4.Cluster.HasState(); has {
		t.Fatal("a new server has state")
	}
	leader := c.Leader()
	if err := c.Followers()[0].Cluster.AddVoter(s4.ID, s4.Addr()); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("AddVoter on a follower: %v", err)
	}
	if err := leader.Cluster.AddVoter(s4.ID, s4.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := leader.Cluster.AddVoter(s4.ID, s4.Addr()); err != nil {
		t.Fatalf("adding a voter again: %v", err)
	}
	createTenant(c, "globex")
	c.WaitForReplication()
	c.EnsureSame()
	if !hasTenant(s4, "acme") || !hasTenant(s4, "globex") {
		t.Fatalf("new server holds %v", tenantsOn(s4))
	}
	members, _ := leader.Cluster.Members(leader.Store.Snapshot())
	if len(members) != 4 {
		t.Fatalf("members: %+v", members)
	}

	// Remove a follower: the others go on without it.
	var gone *clustertest.Member
	for _, f := range c.Followers() {
		if f != s4 {
			gone = f
			break
		}
	}
	if err := leader.Cluster.RemoveServer(gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := leader.Cluster.RemoveServer(gone.ID); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("removing an unknown peer: %v", err)
	}
	c.Eventually("the removed server to leave the configuration", func() error {
		for _, s := range c.Servers() {
			if s == gone {
				continue
			}
			ms, err := s.Cluster.Members(s.Store.Snapshot())
			if err != nil {
				return err
			}
			if len(ms) != 3 {
				return fmt.Errorf("%s sees %d members", s.ID, len(ms))
			}
		}
		return nil
	})
	c.Stop(gone)
	createTenant(c, "after")
	rest := []*clustertest.Member{}
	for _, s := range c.Servers() {
		if s != gone {
			rest = append(rest, s)
		}
	}
	c.WaitForReplication(rest...)
	c.EnsureSame(rest...)
	if hasTenant(gone, "after") {
		t.Fatal("a removed server got a later write")
	}
}

func TestSnapshotAndRestart(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true, SnapshotThreshold: 8})
	for i := 0; i < 30; i++ {
		createTenant(c, fmt.Sprintf("a%02d", i))
	}
	c.WaitForReplication()
	for _, s := range c.Servers() {
		if err := s.Cluster.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", s.ID, err)
		}
	}
	// Entries after the snapshot come from the log on restart.
	for i := 0; i < 5; i++ {
		createTenant(c, fmt.Sprintf("b%02d", i))
	}
	c.WaitForReplication()
	follower := c.Followers()[0]
	before := follower.StateBytes()
	c.Restart(follower)
	c.Eventually("the restarted follower to catch up", func() error {
		if got := follower.StateBytes(); !bytes.Equal(got, before) {
			return fmt.Errorf("holds %d tenants", len(tenantsOn(follower)))
		}
		return nil
	})
	c.EnsureSame()

	// A follower that was down while the leader compacted its log gets a
	// snapshot.
	late := c.Followers()[0]
	c.Stop(late)
	for i := 0; i < 30; i++ {
		createTenant(c, fmt.Sprintf("c%02d", i))
	}
	leader := c.Leader()
	if err := leader.Cluster.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	c.Restart(late)
	c.WaitForReplication()
	c.EnsureSame()
	if got := len(tenantsOn(late)); got != 65 {
		t.Fatalf("late server holds %d tenants, want 65", got)
	}

	// The leader restarts too: a new one is elected and nothing is lost.
	c.Restart(leader)
	c.Leader()
	createTenant(c, "after")
	c.WaitForReplication()
	c.EnsureSame()
	if got := len(tenantsOn(leader)); got != 66 {
		t.Fatalf("restarted leader holds %d tenants, want 66", got)
	}
}

func TestUserRestore(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true})
	createTenant(c, "acme")
	createTenant(c, "globex")
	var backup bytes.Buffer
	if err := c.Leader().Cluster.Snapshot(&backup); err != nil {
		t.Fatal(err)
	}
	c.MustPropose(state.CmdTenantDelete, state.NameBody{Name: "acme"})
	createTenant(c, "initech")
	c.WaitForReplication()

	// A follower cannot restore; a bad file changes nothing.
	if err := c.Followers()[0].Cluster.Restore(bytes.NewReader(backup.Bytes())); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("restore on a follower: %v", err)
	}
	if err := c.Leader().Cluster.Restore(strings.NewReader("not a snapshot")); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("restore of garbage: %v", err)
	}
	for _, s := range c.Servers() {
		if got := strings.Join(tenantsOn(s), ","); got != "globex,initech" {
			t.Fatalf("%s after a refused restore: %s", s.ID, got)
		}
	}

	if err := c.Leader().Cluster.Restore(bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame()
	for _, s := range c.Servers() {
		if got := strings.Join(tenantsOn(s), ","); got != "acme,globex" {
			t.Fatalf("%s after restore: %s", s.ID, got)
		}
	}
	// The cluster goes on from the restored state, and a restart keeps it.
	createTenant(c, "after")
	f := c.Followers()[0]
	c.Restart(f)
	c.WaitForReplication()
	c.EnsureSame()
	if got := strings.Join(tenantsOn(f), ","); got != "acme,after,globex" {
		t.Fatalf("restarted %s: %s", f.ID, got)
	}
}

func TestUnbootstrappedServerHasNoLeader(t *testing.T) {
	c := clustertest.New(t, clustertest.Config{Bare: true, Servers: 1, NoBootstrap: true})
	s := c.Servers()[0]
	if _, err := s.Cluster.Propose(context.Background(), state.CmdTenantUpsert, state.TenantUpsert{Tenant: protocol.Tenant{Name: "x"}, Create: true}, nil); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("apply without a cluster: %v", err)
	}
	if id, _ := s.Cluster.Leader(); id != "" || s.Cluster.IsLeader() {
		t.Fatalf("leader %q", id)
	}
	if has, _ := s.Cluster.HasState(); has {
		t.Fatal("has state")
	}
	// Bootstrapping twice is harmless.
	members := []protocol.Member{{ID: s.ID, RaftAddr: s.Addr()}}
	if err := s.Cluster.Bootstrap(members); err != nil {
		t.Fatal(err)
	}
	if err := s.Cluster.Bootstrap(members); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	c.Leader()
	createTenant(c, "acme")
}
