package state

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/drover-dev/drover/protocol"
)

// writer is one command's write transaction.
type writer struct {
	txn   *memdb.Txn
	index uint64
	cmd   *Command
}

// apply runs cmd in one write transaction at Raft index. On error nothing
// changes but the audit record of the attempt, if any.
func (s *Store) apply(index uint64, cmd *Command) error {
	db := s.current().db
	w := &writer{txn: db.Txn(true), index: index, cmd: cmd}
	err := w.dispatchSafely()
	if err != nil {
		w.txn.Abort()
		w = &writer{txn: db.Txn(true), index: index, cmd: cmd}
	}
	if cmd.Audit != nil {
		rec := *cmd.Audit
		rec.Result = "ok"
		if err != nil {
			rec.Result = string(protocol.AsError(err).Code)
		}
		w.audit(rec, 0)
	}
	// Every entry moves the state's index, even one that changed nothing, so
	// that X-Drover-Index of a write is always readable afterwards.
	w.touch(tableMeta)
	w.txn.Commit()
	return err
}

// dispatchSafely runs dispatch and turns a panic into an internal error:
// an entry that trips a bug must not stop every server that applies it,
// again at each restart. Every server recovers the same way.
func (w *writer) dispatchSafely() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = protocol.Errorf(protocol.CodeInternal, "apply %s: panic: %v", w.cmd.Type, p)
		}
	}()
	return w.dispatch()
}

func decode[T any](w *writer) (*T, error) {
	var v T
	if err := json.Unmarshal(w.cmd.Body, &v); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalidArgument, "decode %s: %v", w.cmd.Type, err)
	}
	return &v, nil
}

func run[T any](w *writer, fn func(*writer, *T) error) error {
	v, err := decode[T](w)
	if err != nil {
		return err
	}
	return fn(w, v)
}

func (w *writer) dispatch() error {
	switch w.cmd.Type {
	case CmdTenantUpsert:
		return run(w, (*writer).tenantUpsert)
	case CmdTenantDelete:
		return run(w, (*writer).tenantDelete)
	case CmdEnvironmentUpsert:
		return run(w, func(w *writer, c *EnvironmentUpsert) error {
			e := c.Environment
			e.ModifyIndex = w.index
			return w.insert(tableEnvironments, &e)
		})
	case CmdPlanUpsert:
		return run(w, func(w *writer, c *PlanUpsert) error {
			p := c.Plan
			p.ModifyIndex = w.index
			return w.insert(tablePlans, &p)
		})
	case CmdInstanceCreate:
		return run(w, (*writer).instanceCreate)
	case CmdInstanceUpdate:
		return run(w, (*writer).instanceUpdate)
	case CmdInstanceScale:
		return run(w, (*writer).instanceScale)
	case CmdInstanceLifecycle:
		return run(w, (*writer).instanceLifecycle)
	case CmdInstanceDelete:
		return run(w, (*writer).instanceDelete)
	case CmdNodeRegister:
		return run(w, (*writer).nodeRegister)
	case CmdNodeStatus:
		return run(w, (*writer).nodeStatus)
	case CmdNodeDrain:
		return run(w, (*writer).nodeDrain)
	case CmdNodeEligibility:
		return run(w, (*writer).nodeEligibility)
	case CmdNodeRevoke:
		return run(w, (*writer).nodeRevoke)
	case CmdReplicaReports:
		return run(w, (*writer).replicaReports)
	case CmdPlanApply:
		return run(w, (*writer).planApply)
	case CmdDeploymentPromote:
		return run(w, (*writer).deploymentPromote)
	case CmdTokenCreate:
		return run(w, func(w *writer, c *TokenCreate) error { return w.tokenCreate(c.Token, c.SecretHash) })
	case CmdTokenDelete:
		return run(w, (*writer).tokenDelete)
	case CmdACLBootstrap:
		return run(w, (*writer).aclBootstrap)
	case CmdAudit:
		return run(w, func(w *writer, c *AuditAppend) error {
			// Sequence 0 is the envelope's own record (see apply).
			for i, r := range c.Records {
				w.audit(r, i+1)
			}
			return nil
		})
	case CmdAuditRetention:
		return run(w, (*writer).auditRetention)
	case CmdStateRestored:
		return run(w, func(w *writer, c *AuditAppend) error {
			w.touch(Tables...)
			for i, r := range c.Records {
				w.audit(r, i+1)
			}
			return nil
		})
	case CmdServerUpsert:
		return run(w, func(w *writer, c *ServerUpsert) error {
			m := c.Member
			m.State = ""
			return w.insert(tableServers, &m)
		})
	case CmdServerRemove:
		return run(w, func(w *writer, c *NameBody) error {
			if raw := w.first(tableServers, c.Name); raw != nil {
				return w.delete(tableServers, raw)
			}
			return nil
		})
	}
	return protocol.Errorf(protocol.CodeInvalidArgument, "unknown command %q", w.cmd.Type)
}

// --- helpers ---

func (w *writer) touch(tables ...string) {
	for _, t := range tables {
		if err := w.txn.Insert(tableIndex, &indexEntry{Table: t, Value: w.index}); err != nil {
			panic(err)
		}
	}
}

func (w *writer) insert(table string, v any) error {
	if table == tableReplicas {
		w.account(v.(*protocol.Replica))
	}
	if err := w.txn.Insert(table, v); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "insert into %s: %v", table, err)
	}
	w.touch(table)
	return nil
}

func (w *writer) delete(table string, v any) error {
	if r, ok := v.(*protocol.Replica); ok && r.Holds() {
		w.use(r.Node, r.Reserved, -1)
	}
	if err := w.txn.Delete(table, v); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "delete from %s: %v", table, err)
	}
	w.touch(table)
	return nil
}

// account keeps the usage table true as replica r is written: it takes
// back what the row it replaces held and adds what r holds. A new replica
// reserves what its version's spec asks for.
func (w *writer) account(r *protocol.Replica) {
	var old *protocol.Replica
	if raw := w.first(tableReplicas, r.ID); raw != nil {
		old = raw.(*protocol.Replica)
	}
	if r.Reserved == (protocol.Reservation{}) {
		if old != nil {
			r.Reserved = old.Reserved
		} else if v := w.snap().Version(protocol.InstanceID(r.Tenant, r.Instance), r.Version); v != nil {
			r.Reserved = protocol.Reservation{CPUMillis: v.Spec.Resources.CPUMillis, MemoryMB: v.Spec.Resources.MemoryMB, Ports: len(v.Spec.Ports)}
		}
	}
	if old != nil && old.Holds() {
		w.use(old.Node, old.Reserved, -1)
	}
	if r.Holds() {
		w.use(r.Node, r.Reserved, 1)
	}
}

// use adds (sign 1) or takes back (-1) a reservation on a node.
func (w *writer) use(node string, res protocol.Reservation, sign int64) {
	if res == (protocol.Reservation{}) {
		return
	}
	u := &NodeUsage{Node: node}
	if raw := w.first(tableUsage, node); raw != nil {
		*u = *raw.(*NodeUsage)
	}
	u.CPUMillis += sign * res.CPUMillis
	u.MemoryMB += sign * res.MemoryMB
	u.Ports += int(sign) * res.Ports
	var err error
	if u.Reservation == (protocol.Reservation{}) {
		if raw := w.first(tableUsage, node); raw != nil {
			err = w.txn.Delete(tableUsage, raw)
		}
	} else {
		err = w.txn.Insert(tableUsage, u)
	}
	if err != nil {
		panic(fmt.Sprintf("state: usage of %s: %v", node, err))
	}
	w.touch(tableUsage)
}

func (w *writer) first(table string, args ...any) any {
	raw, err := w.txn.First(table, "id", args...)
	if err != nil {
		panic(fmt.Sprintf("state: %s: %v", table, err))
	}
	return raw
}

func (w *writer) snap() *Snapshot { return &Snapshot{txn: w.txn} }

// meta returns a counter that grows by one with each call: deterministic
// ids for rows the FSM creates itself.
func (w *writer) next(key string) uint64 {
	m := &Meta{Key: key}
	if raw := w.first(tableMeta, key); raw != nil {
		*m = *raw.(*Meta)
	}
	m.N++
	if err := w.insert(tableMeta, m); err != nil {
		panic(err)
	}
	return m.N
}

func (w *writer) instance(tenant, name string) (*protocol.Instance, error) {
	raw := w.first(tableInstances, protocol.InstanceID(tenant, name))
	if raw == nil {
		return nil, protocol.NotFound("instance", protocol.InstanceID(tenant, name))
	}
	c := *raw.(*protocol.Instance)
	return &c, nil
}

func (w *writer) putInstance(in *protocol.Instance) error {
	in.ModifyIndex = w.index
	in.UpdatedAt = w.cmd.Time
	in.Status = nil
	return w.insert(tableInstances, in)
}

// eval records that an instance needs the scheduler's attention.
func (w *writer) eval(instanceID, why string) {
	if err := w.insert(tableEvals, &Eval{Instance: instanceID, TriggeredBy: why, Index: w.index}); err != nil {
		panic(err)
	}
}

// event records an instance event, dropping the oldest past the limit.
func (w *writer) event(e protocol.Event) {
	e.ID = w.next("event_seq")
	if e.Time.IsZero() {
		e.Time = w.cmd.Time
	}
	if err := w.insert(tableEvents, &e); err != nil {
		panic(err)
	}
	evs := w.snap().Events(protocol.InstanceID(e.Tenant, e.Instance))
	for i := 0; i < len(evs)-MaxEventsPerInstance; i++ {
		_ = w.delete(tableEvents, evs[i])
	}
}

func (w *writer) audit(r protocol.AuditRecord, seq int) {
	// Ids sort in the order records were written: six digits hold every
	// record one command of at most MaxCommandBytes can carry.
	r.ID = fmt.Sprintf("%016d-%06d", w.index, seq)
	r.Index = w.index
	if r.Time.IsZero() {
		r.Time = w.cmd.Time
	}
	if err := w.insert(tableAudit, &r); err != nil {
		panic(err)
	}
	w.next(metaAuditCount)
	w.pruneAudit()
}

// pruneAudit drops the oldest audit records past the retention's count or
// age. The age is measured from the command's time, so every server drops
// the same records.
func (w *writer) pruneAudit() {
	ret := w.snap().AuditRetention()
	count := *w.first(tableMeta, metaAuditCount).(*Meta)
	cutoff := w.cmd.Time.Add(-ret.MaxAge)
	dropped := uint64(0)
	for count.N-dropped > 0 {
		raw, err := w.txn.First(tableAudit, "id")
		if err != nil {
			panic(err)
		}
		if raw == nil {
			break
		}
		overCount := count.N-dropped > uint64(ret.MaxRecords)
		tooOld := ret.MaxAge > 0 && raw.(*protocol.AuditRecord).Time.Before(cutoff)
		if !overCount && !tooOld {
			break
		}
		_ = w.delete(tableAudit, raw)
		dropped++
	}
	if dropped > 0 {
		count.N -= dropped
		_ = w.insert(tableMeta, &count)
	}
}

// --- tenants ---

func (w *writer) tenantUpsert(c *TenantUpsert) error {
	t := c.Tenant
	old := w.snap().Tenant(t.Name)
	switch {
	case c.Create && old != nil:
		return protocol.Errorf(protocol.CodeConflict, "tenant %q already exists", t.Name)
	case !c.Create && old == nil:
		return protocol.NotFound("tenant", t.Name)
	case old != nil:
		t.CreatedAt, t.CreateIndex = old.CreatedAt, old.CreateIndex
	default:
		t.CreatedAt, t.CreateIndex = w.cmd.Time, w.index
	}
	if t.State == "" {
		t.State = protocol.TenantActive
	}
	t.ModifyIndex = w.index
	if old != nil && old.State != t.State {
		for _, in := range w.snap().Instances(InstanceFilter{Tenant: t.Name}) {
			w.eval(in.ID, "tenant-"+t.State)
		}
	}
	return w.insert(tableTenants, &t)
}

func (w *writer) tenantDelete(c *NameBody) error {
	t := w.snap().Tenant(c.Name)
	if t == nil {
		return protocol.NotFound("tenant", c.Name)
	}
	if n := len(w.snap().Instances(InstanceFilter{Tenant: c.Name})); n > 0 {
		return protocol.Errorf(protocol.CodeConflict, "tenant %q still has %d instances; delete them first", c.Name, n)
	}
	// Its tokens go with it: a tenant created later with the same name
	// must not be reachable with them.
	for _, tok := range w.snap().Tokens() {
		if tok.Tenant == c.Name {
			if err := w.tokenDelete(&NameBody{Name: tok.ID}); err != nil {
				return err
			}
		}
	}
	return w.delete(tableTenants, t)
}

// --- instances ---

func (w *writer) putVersion(in *protocol.Instance) error {
	if err := w.insert(tableVersions, &Version{InstanceID: in.ID, Version: in.Version, Spec: in.Spec}); err != nil {
		return err
	}
	// Keep the newest versions, and the stable one and those replicas still run.
	keep := map[uint64]bool{in.StableVersion: true}
	for _, r := range w.snap().Replicas(in.ID) {
		keep[r.Version] = true
	}
	if in.Version > MaxVersionsKept {
		for v := uint64(1); v <= in.Version-MaxVersionsKept; v++ {
			if keep[v] {
				continue
			}
			if raw := w.first(tableVersions, in.ID, v); raw != nil {
				_ = w.delete(tableVersions, raw)
			}
		}
	}
	return nil
}

func (w *writer) instanceCreate(c *InstanceCreate) error {
	in := c.Instance
	t := w.snap().Tenant(in.Tenant)
	if t == nil {
		return protocol.NotFound("tenant", in.Tenant)
	}
	if t.State == protocol.TenantSuspended {
		return protocol.Errorf(protocol.CodeConflict, "tenant %q is suspended", in.Tenant)
	}
	in.ID = protocol.InstanceID(in.Tenant, in.Name)
	if w.first(tableInstances, in.ID) != nil {
		return protocol.Errorf(protocol.CodeConflict, "instance %q already exists", in.ID)
	}
	if err := w.checkQuota(t, nil, &in); err != nil {
		return err
	}
	in.Version = 1
	in.CreatedAt, in.CreateIndex = w.cmd.Time, w.index
	if err := w.putInstance(&in); err != nil {
		return err
	}
	if err := w.putVersion(&in); err != nil {
		return err
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "created", Message: fmt.Sprintf("created with %d replicas at version 1", in.Replicas)})
	w.eval(in.ID, "instance-create")
	return nil
}

func (w *writer) instanceUpdate(c *InstanceUpdate) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	if c.IfVersion != 0 && c.IfVersion != in.Version {
		return protocol.Errorf(protocol.CodeConflict, "instance %q is at version %d, not %d", in.ID, in.Version, c.IfVersion)
	}
	old := *in
	in.Spec = c.Spec
	in.Plan = c.Plan
	if c.Environment != "" {
		in.Environment = c.Environment
	}
	if c.Replicas != nil {
		in.Replicas = *c.Replicas
	}
	if err := w.quotaOf(&old, in); err != nil {
		return err
	}
	in.Version++
	if err := w.putInstance(in); err != nil {
		return err
	}
	if err := w.putVersion(in); err != nil {
		return err
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "updated", Message: fmt.Sprintf("spec changed: version %d", in.Version)})
	w.eval(in.ID, "instance-update")
	return nil
}

func (w *writer) instanceScale(c *InstanceScale) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	old := *in
	in.Replicas = c.Replicas
	if err := w.quotaOf(&old, in); err != nil {
		return err
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "scaled", Message: fmt.Sprintf("replicas %d -> %d", old.Replicas, c.Replicas)})
	if err := w.putInstance(in); err != nil {
		return err
	}
	w.eval(in.ID, "instance-scale")
	return nil
}

func (w *writer) instanceLifecycle(c *InstanceLifecycle) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	switch c.Action {
	case ActionStop:
		in.Stopped = true
	case ActionStart:
		if t := w.snap().Tenant(in.Tenant); t != nil && t.State == protocol.TenantSuspended {
			return protocol.Errorf(protocol.CodeConflict, "tenant %q is suspended: its instances cannot be started", in.Tenant)
		}
		old := *in
		in.Stopped = false
		if err := w.quotaOf(&old, in); err != nil {
			return err
		}
	case ActionRestart:
		if in.Stopped {
			return protocol.Errorf(protocol.CodeConflict, "instance %q is stopped; start it instead", in.ID)
		}
		in.RestartEpoch = w.index
	default:
		return protocol.FieldError("action", "%q is not stop, start or restart", c.Action)
	}
	if err := w.putInstance(in); err != nil {
		return err
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: c.Action, Message: c.Action + " requested"})
	w.eval(in.ID, "instance-"+c.Action)
	return nil
}

func (w *writer) instanceDelete(c *InstanceRef) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	if err := w.delete(tableInstances, w.first(tableInstances, in.ID)); err != nil {
		return err
	}
	// A prefix scan of the versions' id would also match acme/crm2 for
	// acme/crm: delete the exact matches only.
	for _, v := range list[Version](w.snap(), tableVersions, "id_prefix", in.ID) {
		if v.InstanceID == in.ID {
			if err := w.delete(tableVersions, v); err != nil {
				return err
			}
		}
	}
	if _, err := w.txn.DeleteAll(tableEvents, "instance", in.Tenant, in.Name); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "delete events of %s: %v", in.ID, err)
	}
	w.touch(tableEvents)
	if raw := w.first(tableEvals, in.ID); raw != nil {
		_ = w.delete(tableEvals, raw)
	}
	for _, r := range w.snap().Replicas(in.ID) {
		w.stopReplica(r, "instance deleted")
	}
	w.gcReplicas(in.ID)
	w.evalWaiting("")
	return nil
}

// stopReplica sets a replica's desired state to stop. A replica that never
// reached a node is stopped at once.
func (w *writer) stopReplica(r *protocol.Replica, why string) {
	if r.Desired == protocol.DesiredStop && r.Terminal() {
		return
	}
	c := *r
	c.Desired = protocol.DesiredStop
	c.Message = why
	if c.Node == "" || c.State == protocol.ReplicaPending && c.Node == "" {
		c.State = protocol.ReplicaStopped
	}
	c.ModifyIndex = w.index
	_ = w.insert(tableReplicas, &c)
}

// gcReplicas drops terminal replicas that are no longer wanted: all of them
// once the instance is gone, else all but the newest few.
func (w *writer) gcReplicas(instanceID string) {
	exists := w.first(tableInstances, instanceID) != nil
	var done []*protocol.Replica
	for _, r := range w.snap().Replicas(instanceID) {
		if r.Desired == protocol.DesiredStop && r.Terminal() {
			done = append(done, r)
		}
	}
	keep := 0
	if exists {
		keep = MaxTerminalPerInstance
	}
	for i := 0; i < len(done)-keep; i++ {
		_ = w.delete(tableReplicas, done[i])
	}
}

// --- nodes ---

func (w *writer) nodeRegister(c *NodeRegister) error {
	n := c.Node
	old := w.snap().Node(n.ID)
	if old == nil {
		if c.SecretHash == "" {
			return protocol.Errorf(protocol.CodeInvalidArgument, "node %q registers without a secret", n.ID)
		}
		n.CreateIndex = w.index
		n.Eligible = true
		if err := w.insert(tableCredentials, &Credential{Hash: c.SecretHash, Kind: CredentialNode, Owner: n.ID}); err != nil {
			return err
		}
	} else {
		if old.Revoked {
			return protocol.Errorf(protocol.CodePermissionDenied, "node %q is revoked", n.ID)
		}
		n.CreateIndex, n.Eligible, n.Drain = old.CreateIndex, old.Eligible, old.Drain
	}
	n.Status = protocol.NodeReady
	if n.Drain != nil {
		n.Status = protocol.NodeDraining
	}
	n.LastSeen = w.cmd.Time
	n.ModifyIndex = w.index
	if err := w.insert(tableNodes, &n); err != nil {
		return err
	}
	if old == nil || old.Status == protocol.NodeDown || capacityChanged(old, &n) {
		w.evalWaiting("")
	}
	return nil
}

// capacityChanged reports whether a node's facts changed in a way that may
// let it take replicas it could not before.
func capacityChanged(old, n *protocol.Node) bool {
	return old.Resources.CPUMillis != n.Resources.CPUMillis || old.Resources.MemoryMB != n.Resources.MemoryMB ||
		old.PortRange != n.PortRange || old.Region != n.Region || !maps.Equal(old.Labels, n.Labels)
}

// evalWaiting asks the scheduler to look at every instance that has a
// replica waiting for a node: capacity may have appeared. skip names an
// instance to leave out (the one whose plan freed the capacity).
func (w *writer) evalWaiting(skip string) {
	seen := map[string]bool{skip: true}
	for _, r := range w.snap().AllReplicas() {
		id := protocol.InstanceID(r.Tenant, r.Instance)
		if r.Node == "" && r.Desired == protocol.DesiredRun && !seen[id] {
			seen[id] = true
			if e := w.first(tableEvals, id); e != nil && e.(*Eval).Index == w.index {
				continue // already evaluated for this entry
			}
			w.eval(id, "node-capacity")
		}
	}
}

// evalNode asks the scheduler to look at every instance with a replica on node.
func (w *writer) evalNode(node, why string) {
	seen := map[string]bool{}
	for _, r := range w.snap().NodeReplicas(node) {
		id := protocol.InstanceID(r.Tenant, r.Instance)
		if !seen[id] && w.first(tableInstances, id) != nil {
			seen[id] = true
			w.eval(id, why)
		}
	}
}

func (w *writer) node(id string) (*protocol.Node, error) {
	raw := w.first(tableNodes, id)
	if raw == nil {
		return nil, protocol.NotFound("node", id)
	}
	n := *raw.(*protocol.Node)
	n.ModifyIndex = w.index
	return &n, nil
}

func (w *writer) nodeStatus(c *NodeStatusUpdate) error {
	for _, u := range c.Nodes {
		n, err := w.node(u.ID)
		if err != nil {
			continue // removed meanwhile: nothing to mark
		}
		if !u.Seen.IsZero() {
			n.LastSeen = u.Seen
		}
		if !u.Up {
			if n.Status == protocol.NodeDown {
				continue
			}
			n.Status = protocol.NodeDown
			for _, r := range w.snap().NodeReplicas(n.ID) {
				if r.Terminal() {
					continue
				}
				lost := *r
				lost.State, lost.Health, lost.Message, lost.ModifyIndex = protocol.ReplicaLost, "", "node "+n.Name+" missed its heartbeat", w.index
				_ = w.insert(tableReplicas, &lost)
				w.event(protocol.Event{Tenant: r.Tenant, Instance: r.Instance, Type: "replica-lost", Replica: r.ID, Node: n.ID, Message: lost.Message})
			}
			_ = w.insert(tableNodes, n)
			w.evalNode(n.ID, "node-down")
			continue
		}
		wasDown := n.Status == protocol.NodeDown
		n.Status = protocol.NodeReady
		if n.Drain != nil {
			n.Status = protocol.NodeDraining
		}
		_ = w.insert(tableNodes, n)
		if wasDown {
			w.evalWaiting("")
			w.evalNode(n.ID, "node-up")
		}
	}
	return nil
}

func (w *writer) nodeDrain(c *NodeDrain) error {
	n, err := w.node(c.ID)
	if err != nil {
		return err
	}
	ended := n.Drain != nil && c.Drain == nil
	n.Drain = c.Drain
	if n.Status != protocol.NodeDown {
		n.Status = protocol.NodeReady
		if n.Drain != nil {
			n.Status = protocol.NodeDraining
		}
	}
	if err := w.insert(tableNodes, n); err != nil {
		return err
	}
	w.evalNode(n.ID, "node-drain")
	if ended && n.Status != protocol.NodeDown {
		w.evalWaiting("")
	}
	return nil
}

func (w *writer) nodeEligibility(c *NodeEligibility) error {
	n, err := w.node(c.ID)
	if err != nil {
		return err
	}
	n.Eligible = c.Eligible
	if err := w.insert(tableNodes, n); err != nil {
		return err
	}
	if c.Eligible {
		w.evalWaiting("")
	}
	return nil
}

func (w *writer) nodeRevoke(c *NameBody) error {
	n, err := w.node(c.Name)
	if err != nil {
		return err
	}
	n.Revoked = true
	n.Eligible = false
	if _, err := w.txn.DeleteAll(tableCredentials, "owner", CredentialNode, n.ID); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "revoke node %s: %v", n.ID, err)
	}
	w.touch(tableCredentials)
	return w.insert(tableNodes, n)
}

// --- replicas ---

func (w *writer) replicaReports(c *ReplicaReports) error {
	touched := map[string]bool{}
	freed := false
	for _, nr := range c.Reports {
		if raw := w.first(tableNodes, nr.Node); raw != nil {
			n := *raw.(*protocol.Node)
			n.LastSeen = w.cmd.Time
			n.ModifyIndex = w.index
			_ = w.insert(tableNodes, &n)
		}
		for _, rep := range nr.Replicas {
			raw := w.first(tableReplicas, rep.ID)
			if raw == nil {
				continue // forgotten replica: the agent stops it, since it is not assigned
			}
			old := raw.(*protocol.Replica)
			if old.Node != nr.Node {
				continue // only the node running a replica reports it
			}
			r := *old
			r.State, r.Health, r.Restarts, r.Message = rep.State, rep.Health, rep.Restarts, rep.Message
			if rep.Ports != nil {
				r.Ports = rep.Ports
			}
			if !rep.StartedAt.IsZero() {
				r.StartedAt = rep.StartedAt
			}
			switch {
			case r.State == protocol.ReplicaHealthy && old.State != protocol.ReplicaHealthy:
				r.HealthySince = w.cmd.Time
			case r.State != protocol.ReplicaHealthy:
				r.HealthySince = time.Time{}
			}
			if sameObservation(old, &r) {
				continue
			}
			r.ModifyIndex = w.index
			_ = w.insert(tableReplicas, &r)
			freed = freed || r.Desired == protocol.DesiredRun && r.Terminal() && !old.Terminal()
			id := protocol.InstanceID(r.Tenant, r.Instance)
			if old.State != r.State || old.Restarts != r.Restarts {
				msg := fmt.Sprintf("%s -> %s", old.State, r.State)
				if r.Message != "" {
					msg += ": " + r.Message
				}
				if r.Restarts > old.Restarts {
					msg += fmt.Sprintf(" (restart %d)", r.Restarts)
				}
				w.event(protocol.Event{Tenant: r.Tenant, Instance: r.Instance, Type: "replica-" + r.State, Replica: r.ID, Node: r.Node, Message: msg})
				if w.first(tableInstances, id) != nil {
					w.eval(id, "replica-"+r.State)
				}
			}
			touched[id] = true
		}
	}
	ids := make([]string, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		w.gcReplicas(id)
	}
	if freed {
		w.evalWaiting("")
	}
	return nil
}

// sameObservation reports whether two versions of a replica show the same
// agent observation, so that a repeated report writes nothing.
func sameObservation(a, b *protocol.Replica) bool {
	return a.State == b.State && a.Health == b.Health && a.Restarts == b.Restarts &&
		a.Message == b.Message && a.StartedAt.Equal(b.StartedAt) && maps.Equal(a.Ports, b.Ports)
}

// --- plans ---

func (w *writer) planApply(p *Plan) error {
	in, err := w.instanceOrNil(p.Instance)
	if err != nil {
		return err
	}
	switch {
	case in == nil:
		// Deleted since the plan was made: nothing may start, and its
		// events went with it.
		p.Place, p.Events = nil, nil
	case p.Version != 0 && p.Version != in.Version:
		p.Deployment, p.Rollback = nil, 0
	}
	freed := false
	for _, r := range p.Place {
		c := *r
		c.CreateIndex, c.ModifyIndex, c.CreatedAt = w.index, w.index, w.cmd.Time
		if raw := w.first(tableReplicas, c.ID); raw != nil {
			// A replica that waited for a node is placed, or its reason
			// changes; any other is no longer the scheduler's to place.
			old := raw.(*protocol.Replica)
			if old.Node != "" || old.Desired != protocol.DesiredRun || old.Terminal() {
				continue
			}
			c.CreateIndex, c.CreatedAt = old.CreateIndex, old.CreatedAt
		}
		if c.Desired == "" {
			c.Desired = protocol.DesiredRun
		}
		if c.State == "" {
			c.State = protocol.ReplicaPending
		}
		if c.Node != "" {
			// The plan was made before this entry: its node may have gone
			// down, been drained or revoked since. Then the replica waits,
			// and the evaluation stays for the scheduler to place it again.
			if n := w.snap().Node(c.Node); n == nil || n.Status != protocol.NodeReady || !n.Eligible || n.Revoked {
				c.Message = "node " + c.Node + " became unavailable before the replica was placed; waiting for another"
				c.Node = ""
				p.Retry = true
			}
		}
		if err := w.insert(tableReplicas, &c); err != nil {
			return err
		}
	}
	for _, s := range p.Stop {
		if raw := w.first(tableReplicas, s.ID); raw != nil {
			r := raw.(*protocol.Replica)
			freed = freed || r.Node != "" && r.Desired == protocol.DesiredRun && !r.Terminal()
			w.stopReplica(r, s.Message)
		}
	}
	if freed {
		w.evalWaiting(p.Instance)
	}
	for i, e := range p.Events {
		if e.Tenant == "" || e.Instance == "" {
			return protocol.FieldError(fmt.Sprintf("events[%d]", i), "an event names its tenant and instance")
		}
		w.event(e)
	}
	if in != nil {
		changed := false
		if p.Deployment != nil {
			d := *p.Deployment
			in.Deployment, changed = &d, true
		}
		if p.StableVersion != 0 && p.StableVersion != in.StableVersion {
			in.StableVersion, changed = p.StableVersion, true
		}
		if p.Rollback != 0 {
			v := w.snap().Version(in.ID, p.Rollback)
			if v == nil {
				return protocol.Errorf(protocol.CodeConflict, "rollback of %s: version %d is gone", in.ID, p.Rollback)
			}
			in.Spec = v.Spec
			in.Version++
			changed = true
			if err := w.putVersion(in); err != nil {
				return err
			}
		}
		if changed {
			if err := w.putInstance(in); err != nil {
				return err
			}
		}
		w.gcReplicas(in.ID)
	}
	if raw := w.first(tableEvals, p.Instance); raw != nil {
		e := raw.(*Eval)
		switch {
		case e.Index > p.EvalIndex:
			// a newer trigger arrived while the plan was made: keep it
		case p.Retry || p.Rollback != 0:
			w.eval(p.Instance, e.TriggeredBy)
		default:
			_ = w.delete(tableEvals, e)
		}
	}
	return nil
}

func (w *writer) deploymentPromote(c *DeploymentPromote) error {
	in, err := w.instance(c.Tenant, c.Name)
	if err != nil {
		return err
	}
	d := in.Deployment
	switch {
	case d == nil || d.State != protocol.DeploymentRunning:
		return protocol.Errorf(protocol.CodeConflict, "instance %q has no deployment running", in.ID)
	case c.ID != "" && c.ID != d.ID:
		return protocol.Errorf(protocol.CodeConflict, "deployment %q is not the running deployment of %q (%s)", c.ID, in.ID, d.ID)
	case d.Canaries == 0:
		return protocol.Errorf(protocol.CodeConflict, "deployment %s of %q has no canaries to promote", d.ID, in.ID)
	case d.Promoted:
		return nil
	}
	p := *d
	p.Promoted, p.UpdatedAt = true, w.cmd.Time
	in.Deployment = &p
	if err := w.putInstance(in); err != nil {
		return err
	}
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "deployment", Message: fmt.Sprintf("deployment %s promoted", d.ID)})
	w.eval(in.ID, "deployment-promote")
	return nil
}

func (w *writer) instanceOrNil(id string) (*protocol.Instance, error) {
	raw := w.first(tableInstances, id)
	if raw == nil {
		return nil, nil
	}
	c := *raw.(*protocol.Instance)
	return &c, nil
}

// --- tokens ---

func (w *writer) tokenCreate(t protocol.Token, hash string) error {
	if w.first(tableTokens, t.ID) != nil {
		return protocol.Errorf(protocol.CodeConflict, "token %q exists", t.ID)
	}
	t.Secret, t.AgentJoinToken = "", ""
	t.CreatedAt, t.CreateIndex = w.cmd.Time, w.index
	if err := w.insert(tableCredentials, &Credential{Hash: hash, Kind: CredentialToken, Owner: t.ID}); err != nil {
		return err
	}
	return w.insert(tableTokens, &t)
}

func (w *writer) tokenDelete(c *NameBody) error {
	raw := w.first(tableTokens, c.Name)
	if raw == nil {
		return protocol.NotFound("token", c.Name)
	}
	// The last live management token stays, so that the cluster keeps an
	// administrator.
	if raw.(*protocol.Token).Role == protocol.RoleManagement {
		live := 0
		for _, t := range w.snap().Tokens() {
			if t.Role == protocol.RoleManagement && t.ID != c.Name && !t.Expired(w.cmd.Time) {
				live++
			}
		}
		if live == 0 {
			return protocol.Errorf(protocol.CodeConflict, "token %s is the last management token; create another before revoking it", c.Name)
		}
	}
	if _, err := w.txn.DeleteAll(tableCredentials, "owner", CredentialToken, c.Name); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "delete token %s: %v", c.Name, err)
	}
	w.touch(tableCredentials)
	return w.delete(tableTokens, raw)
}

// MetaACLBootstrapped is set once the first management token exists.
const (
	MetaACLBootstrapped = "acl_bootstrapped"
	MetaJoinTokenHash   = "join_token_hash"
)

func (w *writer) aclBootstrap(c *ACLBootstrap) error {
	if w.first(tableMeta, MetaACLBootstrapped) != nil {
		return protocol.Errorf(protocol.CodeConflict, "ACL already bootstrapped")
	}
	if err := w.insert(tableMeta, &Meta{Key: MetaACLBootstrapped, N: w.index}); err != nil {
		return err
	}
	if c.JoinTokenHash != "" {
		if err := w.insert(tableMeta, &Meta{Key: MetaJoinTokenHash, Value: c.JoinTokenHash}); err != nil {
			return err
		}
	}
	return w.tokenCreate(c.Token, c.SecretHash)
}
