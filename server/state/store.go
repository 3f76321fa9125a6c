// Package state is Drover's replicated state: the FSM that Raft drives, its
// go-memdb tables, snapshots and restore, and the read API the rest of the
// server uses. It is deterministic and does no I/O beyond the snapshot
// streams it is handed: every server applying the same log reaches the same
// state.
package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/drover-dev/drover/protocol"
)

// Store holds the state tables. Reads go through Snapshot; writes only
// through the FSM.
type Store struct {
	cur atomic.Pointer[storeDB]
	// nodes are the channels NodeWatch hands out, closed when a replica
	// placed on (or leaving) their node changes.
	nodesMu sync.Mutex
	nodes   map[string]chan struct{}
	// dispatch applies one command: (*writer).dispatch, which the package's
	// tests replace to make commands fail at will.
	dispatch func(*writer) error
}

// storeDB is one generation of the database; a restore replaces it and
// closes abandon so that blocking queries on the old one wake up.
type storeDB struct {
	db      *memdb.MemDB
	abandon chan struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("state schema: %v", err)) // the schema is a constant
	}
	s := &Store{dispatch: (*writer).dispatch, nodes: map[string]chan struct{}{}}
	s.cur.Store(&storeDB{db: db, abandon: make(chan struct{})})
	return s
}

func (s *Store) current() *storeDB { return s.cur.Load() }

func (s *Store) replace(db *memdb.MemDB) {
	old := s.cur.Swap(&storeDB{db: db, abandon: make(chan struct{})})
	close(old.abandon)
	s.notifyNodes(nil)
}

// Fork is a copy of the state that changes alone: the scheduler plays the
// plans it makes on one, so that each evaluation of a batch sees the plans
// before it, and commits them together afterwards. The plans are played in
// one write transaction, read as they go, that is never committed: a
// batch of plans copies the trees' nodes near their roots once, not once
// per plan. A fork writes no events (nothing that reads it looks at
// them); its state is otherwise the FSM's.
type Fork struct {
	t     *transaction
	index uint64
}

// Fork returns a copy of the current state (copy-on-write: cheap).
func (s *Store) Fork() *Fork {
	db := s.current().db.Snapshot()
	f := &Store{dispatch: s.dispatch, nodes: map[string]chan struct{}{}}
	f.cur.Store(&storeDB{db: db, abandon: make(chan struct{})})
	return &Fork{t: f.begin(db, true), index: f.Snapshot().Index()}
}

// Snapshot reads the fork as the plans played so far left it. It is good
// until the next Play.
func (f *Fork) Snapshot() *Snapshot { return &Snapshot{txn: f.t.txn} }

// PlayPlan applies a plan to the fork alone, at the next index, as the FSM
// would apply it. The fork applies copies (the FSM changes the plans it
// applies), so that p is proposed as the scheduler made it; a plan made
// here is not encoded and decoded again.
func (f *Fork) PlayPlan(now time.Time, p *Plan) error {
	f.index++
	made := p.clone()
	cmd := &Command{Type: CmdPlanApply, Time: now.UTC(), value: func() any { return made.clone() }}
	return f.t.add(Entry{Index: f.index, Cmd: cmd}).Err
}

// NodeWatch returns a channel closed at the next commit that changes a
// replica placed on the node (or placed there, or leaving it), or a
// restore. Take it before reading the state it guards: a change between
// the two then wakes the reader once more, and none is missed. Each
// agent's session waits on its own node this way, so that a change
// elsewhere in the fleet wakes no other session.
func (s *Store) NodeWatch(node string) <-chan struct{} {
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	ch := s.nodes[node]
	if ch == nil {
		ch = make(chan struct{})
		s.nodes[node] = ch
	}
	return ch
}

// notifyNodes wakes the watchers of the nodes changed (nil: of every node).
func (s *Store) notifyNodes(changed map[string]bool) {
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	for node, ch := range s.nodes {
		if changed == nil || changed[node] {
			close(ch)
			delete(s.nodes, node)
		}
	}
}

// Snapshot returns a consistent read-only view of the state.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{txn: s.current().db.Txn(false)}
}

// Wait blocks until one of tables (every table when none is named) has an
// index above minIndex or ctx ends, and returns the highest index of those
// tables. It is the base of blocking
// queries.
func (s *Store) Wait(ctx context.Context, minIndex uint64, tables ...string) uint64 {
	if len(tables) == 0 {
		tables = Tables
	}
	for {
		cur := s.current()
		txn := cur.db.Txn(false)
		ws := memdb.NewWatchSet()
		ws.Add(cur.abandon)
		var max uint64
		for _, t := range tables {
			ch, raw, err := txn.FirstWatch(tableIndex, "id", t)
			if err != nil {
				panic(err)
			}
			ws.Add(ch)
			if raw != nil && raw.(*indexEntry).Value > max {
				max = raw.(*indexEntry).Value
			}
		}
		if max > minIndex || ctx.Err() != nil {
			return max
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return max
		}
	}
}

// Snapshot is a read transaction over the state. Objects it returns are
// shared with the store: callers must not change them.
type Snapshot struct {
	txn *memdb.Txn
}

func (s *Snapshot) first(table, index string, args ...any) any {
	raw, err := s.txn.First(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("state: %s.%s: %v", table, index, err)) // a programming error: the index exists
	}
	return raw
}

// one returns the row of table whose id is args, or nil.
func one[T any](s *Snapshot, table string, args ...any) *T {
	raw := s.first(table, "id", args...)
	if raw == nil {
		return nil
	}
	return raw.(*T)
}

func list[T any](s *Snapshot, table, index string, args ...any) []*T {
	it, err := s.txn.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("state: %s.%s: %v", table, index, err))
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out
}

// Index returns the highest Raft index of the given tables, or of the
// whole state when none are named.
func (s *Snapshot) Index(tables ...string) uint64 {
	if len(tables) == 0 {
		tables = Tables
	}
	var max uint64
	for _, t := range tables {
		if raw := s.first(tableIndex, "id", t); raw != nil && raw.(*indexEntry).Value > max {
			max = raw.(*indexEntry).Value
		}
	}
	return max
}

// Tenant returns a tenant, or nil.
func (s *Snapshot) Tenant(name string) *protocol.Tenant {
	return one[protocol.Tenant](s, tableTenants, name)
}

// Tenants returns every tenant by name.
func (s *Snapshot) Tenants() []*protocol.Tenant {
	return list[protocol.Tenant](s, tableTenants, "id")
}

// Environment returns an environment, or nil.
func (s *Snapshot) Environment(name string) *protocol.Environment {
	return one[protocol.Environment](s, tableEnvironments, name)
}

// Environments returns every environment.
func (s *Snapshot) Environments() []*protocol.Environment {
	return list[protocol.Environment](s, tableEnvironments, "id")
}

// Plan returns a plan, or nil.
func (s *Snapshot) Plan(name string) *protocol.Plan {
	return one[protocol.Plan](s, tablePlans, name)
}

// Plans returns every plan.
func (s *Snapshot) Plans() []*protocol.Plan {
	return list[protocol.Plan](s, tablePlans, "id")
}

// Instance returns an instance by id (tenant/name), or nil.
func (s *Snapshot) Instance(id string) *protocol.Instance {
	return one[protocol.Instance](s, tableInstances, id)
}

// InstanceFilter selects instances; empty fields match all.
type InstanceFilter struct {
	Tenant      string
	Environment string
	State       string
}

// Instances returns the instances that match f, by id.
func (s *Snapshot) Instances(f InstanceFilter) []*protocol.Instance {
	var all []*protocol.Instance
	if f.Tenant != "" {
		all = list[protocol.Instance](s, tableInstances, "tenant", f.Tenant)
	} else {
		all = list[protocol.Instance](s, tableInstances, "id")
	}
	var st *Statuses
	if f.State != "" {
		st = s.Statuses(f.Tenant)
	}
	out := all[:0:0]
	for _, in := range all {
		if f.Environment != "" && in.Environment != f.Environment {
			continue
		}
		if st != nil && st.Of(in).State != f.State {
			continue
		}
		out = append(out, in)
	}
	// Both indexes yield instances in id order (the tenant index orders a
	// tenant's by their id too): a list of 10,000 spent a tenth of its
	// time sorting what was sorted.
	byID := func(a, b *protocol.Instance) int { return strings.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(out, byID) {
		slices.SortFunc(out, byID)
	}
	return out
}

// Version returns the spec of an instance at a version, or nil.
func (s *Snapshot) Version(instanceID string, version uint64) *Version {
	return one[Version](s, tableVersions, instanceID, version)
}

// Versions returns the versions of an instance's spec the state keeps,
// oldest first.
func (s *Snapshot) Versions(instanceID string) []*Version {
	var out []*Version
	// A prefix scan of the versions' id would also match acme/crm2 for
	// acme/crm: keep the exact matches only.
	for _, v := range list[Version](s, tableVersions, "id_prefix", instanceID) {
		if v.InstanceID == instanceID {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Replica returns a replica, or nil.
func (s *Snapshot) Replica(id string) *protocol.Replica {
	return one[protocol.Replica](s, tableReplicas, id)
}

// Replicas returns an instance's replicas, oldest first.
func (s *Snapshot) Replicas(instanceID string) []*protocol.Replica {
	tenant, name, _ := strings.Cut(instanceID, "/")
	out := list[protocol.Replica](s, tableReplicas, "instance", tenant, name)
	sortReplicas(out)
	return out
}

// NodeReplicas returns the replicas placed on a node, oldest first.
func (s *Snapshot) NodeReplicas(nodeID string) []*protocol.Replica {
	out := list[protocol.Replica](s, tableReplicas, "node", nodeID)
	sortReplicas(out)
	return out
}

// WaitingReplicas returns the replicas that wait for a node to run on.
func (s *Snapshot) WaitingReplicas() []*protocol.Replica {
	return list[protocol.Replica](s, tableReplicas, "waiting", true)
}

// AllReplicas returns every replica.
func (s *Snapshot) AllReplicas() []*protocol.Replica {
	return list[protocol.Replica](s, tableReplicas, "id")
}

func sortReplicas(rs []*protocol.Replica) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].CreateIndex != rs[j].CreateIndex {
			return rs[i].CreateIndex < rs[j].CreateIndex
		}
		return rs[i].ID < rs[j].ID
	})
}

// NodeUsage returns what the replicas on a node reserve there.
func (s *Snapshot) NodeUsage(nodeID string) protocol.Reservation {
	return s.NodeUsageRow(nodeID).Reservation
}

// NodeUsageRow returns a node's usage row: what its replicas reserve and
// how many they are (zero for a node that holds nothing).
func (s *Snapshot) NodeUsageRow(nodeID string) NodeUsage {
	if raw := s.first(tableUsage, "id", nodeID); raw != nil {
		return *raw.(*NodeUsage)
	}
	return NodeUsage{Node: nodeID}
}

// NodeUsages returns the usage rows of every node that has one, in the
// order of the nodes' ids (that of Nodes): reading them in one pass costs
// a fraction of a lookup per node.
func (s *Snapshot) NodeUsages() []*NodeUsage {
	return list[NodeUsage](s, tableUsage, "id")
}

// NodeReplicaCount returns how many replicas hold a place on a node.
func (s *Snapshot) NodeReplicaCount(nodeID string) int {
	return s.NodeUsageRow(nodeID).Replicas
}

// Node returns a node, or nil.
func (s *Snapshot) Node(id string) *protocol.Node {
	return one[protocol.Node](s, tableNodes, id)
}

// Nodes returns every node by id.
func (s *Snapshot) Nodes() []*protocol.Node {
	return list[protocol.Node](s, tableNodes, "id")
}

// NodeCount returns how many nodes the state holds, without listing them:
// the leader reads it four times a second to size the heartbeat TTL.
func (s *Snapshot) NodeCount() int {
	it, err := s.txn.Get(tableNodes, "id")
	if err != nil {
		panic(fmt.Sprintf("state: %s.id: %v", tableNodes, err))
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n
}

// Credential returns the owner of a secret's hash, or nil.
func (s *Snapshot) Credential(hash string) *Credential {
	return one[Credential](s, tableCredentials, hash)
}

// Token returns a token by id, or nil.
func (s *Snapshot) Token(id string) *protocol.Token {
	return one[protocol.Token](s, tableTokens, id)
}

// Tokens returns every token.
func (s *Snapshot) Tokens() []*protocol.Token {
	return list[protocol.Token](s, tableTokens, "id")
}

// Meta returns a meta row, or nil.
func (s *Snapshot) Meta(key string) *Meta {
	return one[Meta](s, tableMeta, key)
}

// Events returns an instance's events, oldest first.
func (s *Snapshot) Events(instanceID string) []*protocol.Event {
	tenant, name, _ := strings.Cut(instanceID, "/")
	out := list[protocol.Event](s, tableEvents, "instance", tenant, name)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Tenant string
	Since  int64 // unix nanoseconds; 0 for all
	Limit  int
}

// Audit returns audit records, oldest first.
func (s *Snapshot) Audit(f AuditFilter) []*protocol.AuditRecord {
	var all []*protocol.AuditRecord
	if f.Tenant != "" {
		all = list[protocol.AuditRecord](s, tableAudit, "tenant", f.Tenant)
	} else {
		all = list[protocol.AuditRecord](s, tableAudit, "id")
	}
	out := all[:0:0]
	for _, r := range all {
		if f.Since != 0 && r.Time.UnixNano() < f.Since {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out
}

// Evals returns the pending evaluations, oldest trigger first.
func (s *Snapshot) Evals() []*Eval {
	out := list[Eval](s, tableEvals, "id")
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// Eval returns an instance's pending evaluation, or nil.
func (s *Snapshot) Eval(instanceID string) *Eval {
	return one[Eval](s, tableEvals, instanceID)
}

// Servers returns the servers' recorded addresses.
func (s *Snapshot) Servers() []*protocol.Member {
	return list[protocol.Member](s, tableServers, "id")
}

// Server returns a server's recorded addresses, or nil.
func (s *Snapshot) Server(id string) *protocol.Member {
	return one[protocol.Member](s, tableServers, id)
}

// InstanceStatus derives an instance's status from its replicas.
func (s *Snapshot) InstanceStatus(in *protocol.Instance) *protocol.InstanceStatus {
	var c protocol.ReplicaCounts
	for _, r := range s.Replicas(in.ID) {
		countReplica(&c, r)
	}
	st := deriveStatus(in, s.tenantSuspended(in.Tenant), c)
	return &st
}

// Statuses derives the status of many instances, for lists: it reads the
// replicas in one scan (of one tenant's, or of all) and the tenants once,
// where InstanceStatus looks up both for every instance.
type Statuses struct {
	suspended map[string]bool
	counts    map[replicaOwner]protocol.ReplicaCounts
}

// replicaOwner is the instance a replica belongs to, as the replica names it.
type replicaOwner struct{ tenant, name string }

// Statuses returns the statuses of tenant's instances, or of every
// instance when tenant is "". Ask it of those only: it reads no other
// tenant's replicas.
func (s *Snapshot) Statuses(tenant string) *Statuses {
	st := &Statuses{suspended: map[string]bool{}, counts: map[replicaOwner]protocol.ReplicaCounts{}}
	var it memdb.ResultIterator
	var err error
	if tenant == "" {
		for _, t := range s.Tenants() {
			if t.State == protocol.TenantSuspended {
				st.suspended[t.Name] = true
			}
		}
		it, err = s.txn.Get(tableReplicas, "id")
	} else {
		if s.tenantSuspended(tenant) {
			st.suspended[tenant] = true
		}
		// The empty name ends the tenant's part of the key, so that the
		// prefix is acme's replicas only, not acme2's.
		it, err = s.txn.Get(tableReplicas, "instance_prefix", tenant, "")
	}
	if err != nil {
		panic(fmt.Sprintf("state: %s: %v", tableReplicas, err))
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*protocol.Replica)
		k := replicaOwner{r.Tenant, r.Instance}
		c := st.counts[k]
		countReplica(&c, r)
		st.counts[k] = c
	}
	return st
}

// Of returns an instance's status: a value, so that a list of thousands
// makes no garbage of them.
func (st *Statuses) Of(in *protocol.Instance) protocol.InstanceStatus {
	return deriveStatus(in, st.suspended[in.Tenant], st.counts[replicaOwner{in.Tenant, in.Name}])
}

func (s *Snapshot) tenantSuspended(name string) bool {
	t := s.Tenant(name)
	return t != nil && t.State == protocol.TenantSuspended
}

// countReplica counts a replica the scheduler wants running by its state.
func countReplica(c *protocol.ReplicaCounts, r *protocol.Replica) {
	if r.Desired != protocol.DesiredRun {
		return
	}
	switch r.State {
	case protocol.ReplicaPending, protocol.ReplicaStarting:
		c.Pending++
	case protocol.ReplicaRunning, protocol.ReplicaUnhealthy:
		c.Running++
	case protocol.ReplicaHealthy:
		c.Running++
		c.Healthy++
	case protocol.ReplicaFailed, protocol.ReplicaLost:
		c.Failed++
	}
}

// WantedReplicas is how many replicas of an instance the scheduler keeps
// running: none while it is stopped or its tenant suspended.
func WantedReplicas(in *protocol.Instance, suspended bool) int {
	if in.Stopped || suspended {
		return 0
	}
	return in.Replicas
}

// deriveStatus is an instance's status from its replicas' counts (Desired
// aside) and whether its tenant is suspended.
func deriveStatus(in *protocol.Instance, suspended bool, counts protocol.ReplicaCounts) protocol.InstanceStatus {
	st := protocol.InstanceStatus{Deployment: in.Deployment, Replicas: counts}
	// The scheduler runs nothing of a suspended tenant.
	stopped := in.Stopped || suspended
	desired := WantedReplicas(in, suspended)
	st.Replicas.Desired = desired
	switch {
	case stopped && st.Replicas.Running == 0:
		st.State = protocol.InstanceStopped
	case in.Deployment != nil && in.Deployment.State == protocol.DeploymentRunning:
		st.State = protocol.InstanceDeploying
	case desired > 0 && st.Replicas.Healthy >= desired:
		st.State = protocol.InstanceRunning
	case desired == 0:
		st.State = protocol.InstanceStopped
	case st.Replicas.Healthy == 0 && st.Replicas.Failed > 0 && st.Replicas.Pending == 0 && st.Replicas.Running == 0:
		st.State = protocol.InstanceFailed
	default:
		st.State = protocol.InstanceDegraded
	}
	return st
}

// Product returns a product, or nil.
func (s *Snapshot) Product(name string) *protocol.Product {
	return one[protocol.Product](s, tableProducts, name)
}

// Products returns every product by name.
func (s *Snapshot) Products() []*protocol.Product {
	return list[protocol.Product](s, tableProducts, "id")
}

// Release returns one release of a product, or nil.
func (s *Snapshot) Release(product, version string) *protocol.Release {
	return one[protocol.Release](s, tableReleases, product, version)
}

// Releases returns a product's releases, oldest version first.
func (s *Snapshot) Releases(product string) []*protocol.Release {
	// The empty version ends the prefix with the product's terminator:
	// crm's releases are not also crm2's.
	rs := list[protocol.Release](s, tableReleases, "id_prefix", product, "")
	sort.SliceStable(rs, func(i, j int) bool { return protocol.CompareVersions(rs[i].Version, rs[j].Version) < 0 })
	return rs
}

// ProductInstances returns the instances of a product.
func (s *Snapshot) ProductInstances(product string) []*protocol.Instance {
	var out []*protocol.Instance
	for _, in := range s.Instances(InstanceFilter{}) {
		if in.Product == product {
			out = append(out, in)
		}
	}
	return out
}

// Rollout returns a rollout, or nil.
func (s *Snapshot) Rollout(id string) *protocol.Rollout {
	return one[protocol.Rollout](s, tableRollouts, id)
}

// Rollouts returns every rollout, oldest first.
func (s *Snapshot) Rollouts() []*protocol.Rollout {
	rs := list[protocol.Rollout](s, tableRollouts, "id")
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].CreateIndex < rs[j].CreateIndex })
	return rs
}

// Hash returns the index of the current state and the SHA-256 of its
// snapshot bytes, both of one view of it: two servers at the same index
// must answer the same hash.
func (s *Store) Hash() (uint64, string, error) {
	db := s.current().db.Snapshot()
	idx := (&Snapshot{txn: db.Txn(false)}).Index()
	h := sha256.New()
	if err := WriteSnapshot(h, db); err != nil {
		return 0, "", err
	}
	return idx, hex.EncodeToString(h.Sum(nil)), nil
}
