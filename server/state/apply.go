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
	err := w.dispatch()
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
	case CmdTokenCreate:
		return run(w, func(w *writer, c *TokenCreate) error { return w.tokenCreate(c.Token, c.SecretHash) })
	case CmdTokenDelete:
		return run(w, (*writer).tokenDelete)
	case CmdACLBootstrap:
		return run(w, (*writer).aclBootstrap)
	case CmdAudit:
		return run(w, func(w *writer, c *AuditAppend) error {
			for i, r := range c.Records {
				w.audit(r, i)
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
	if err := w.txn.Insert(table, v); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "insert into %s: %v", table, err)
	}
	w.touch(table)
	return nil
}

func (w *writer) delete(table string, v any) error {
	if err := w.txn.Delete(table, v); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "delete from %s: %v", table, err)
	}
	w.touch(table)
	return nil
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
	r.ID = fmt.Sprintf("%016d-%04d", w.index, seq)
	r.Index = w.index
	if r.Time.IsZero() {
		r.Time = w.cmd.Time
	}
	if err := w.insert(tableAudit, &r); err != nil {
		panic(err)
	}
	if n := w.next("audit_count"); n > MaxAuditRecords {
		it, err := w.txn.Get(tableAudit, "id")
		if err != nil {
			panic(err)
		}
		if raw := it.Next(); raw != nil {
			_ = w.delete(tableAudit, raw)
			m := *w.first(tableMeta, "audit_count").(*Meta)
			m.N--
			_ = w.insert(tableMeta, &m)
		}
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
	in.Spec = c.Spec
	in.Plan = c.Plan
	if c.Environment != "" {
		in.Environment = c.Environment
	}
	if c.Replicas != nil {
		in.Replicas = *c.Replicas
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
	w.event(protocol.Event{Tenant: in.Tenant, Instance: in.Name, Type: "scaled", Message: fmt.Sprintf("replicas %d -> %d", in.Replicas, c.Replicas)})
	in.Replicas = c.Replicas
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
		in.Stopped = false
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
	for _, table := range []string{tableVersions, tableEvents} {
		if _, err := w.txn.DeleteAll(table, map[string]string{tableVersions: "id_prefix", tableEvents: "instance"}[table], deleteArgs(table, in)...); err != nil {
			return protocol.Errorf(protocol.CodeInternal, "delete %s of %s: %v", table, in.ID, err)
		}
		w.touch(table)
	}
	if raw := w.first(tableEvals, in.ID); raw != nil {
		_ = w.delete(tableEvals, raw)
	}
	for _, r := range w.snap().Replicas(in.ID) {
		w.stopReplica(r, "instance deleted")
	}
	w.gcReplicas(in.ID)
	return nil
}

func deleteArgs(table string, in *protocol.Instance) []any {
	if table == tableVersions {
		return []any{in.ID}
	}
	return []any{in.Tenant, in.Name}
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
	if old == nil || old.Status == protocol.NodeDown {
		w.evalWaiting()
	}
	return nil
}

// evalWaiting asks the scheduler to look at every instance that has a
// replica waiting for a node: capacity may have appeared.
func (w *writer) evalWaiting() {
	seen := map[string]bool{}
	for _, r := range w.snap().AllReplicas() {
		id := protocol.InstanceID(r.Tenant, r.Instance)
		if r.Node == "" && r.Desired == protocol.DesiredRun && !seen[id] {
			seen[id] = true
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
			w.evalWaiting()
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
		w.evalWaiting()
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
	for _, r := range p.Place {
		c := *r
		c.CreateIndex, c.ModifyIndex, c.CreatedAt = w.index, w.index, w.cmd.Time
		if c.Desired == "" {
			c.Desired = protocol.DesiredRun
		}
		if c.State == "" {
			c.State = protocol.ReplicaPending
		}
		if err := w.insert(tableReplicas, &c); err != nil {
			return err
		}
	}
	for _, s := range p.Stop {
		if raw := w.first(tableReplicas, s.ID); raw != nil {
			w.stopReplica(raw.(*protocol.Replica), s.Message)
		}
	}
	for _, e := range p.Events {
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
	t.Secret = ""
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
