package state

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/go-memdb"

	"github.com/drover-dev/drover/protocol"
)

// writer is one command's write transaction.
type writer struct {
	txn   *memdb.Txn
	index uint64
	cmd   *Command
	// touched are the tables the entry changed: their rows of the index
	// table move to the entry's index at its end.
	touched []string
	// batch is what the entries of the transaction share.
	batch *batch
	// published counts the stream events the entry made (their Seq).
	published uint64
	// result is the object the command wrote last of those an API answer
	// shows (answerTables), and its table: what the FSM answers for it
	// (Applied).
	result      any
	resultTable string
	// replayed is the answer of an entry whose idempotency key an earlier
	// entry had (idempotency.go), and earlier that entry's record.
	replayed *Replayed
	earlier  *IdempotencyRecord
}

// answerTables are the tables whose rows API answers show: a command's
// answer is the row of these it wrote last.
var answerTables = map[string]bool{
	tableTenants: true, tableEnvironments: true, tablePlans: true, tableInstances: true, tableNodes: true,
	tableTokens: true, tableProducts: true, tableReleases: true, tableRollouts: true,
}

// Applied is the FSM's answer to a command that succeeded and wrote an
// object of answerTables: that object as the command left it. API handlers
// answer with it rather than reading the state again, when a later
// command may have changed or removed it.
type Applied struct{ Value any }

// Outcome is the result of applying one entry: the error that made it
// change nothing, or what it wrote.
type Outcome struct {
	Err   error
	Value any
	// unrecorded: the entry's audit and idempotency records could not
	// be written; it changed nothing but the index (transaction.add).
	unrecorded bool
	// earlier: the record of the entry's key that an earlier entry
	// wrote, which the entry leaves as it is (writer.earlier); kept for
	// finishing the entry again (transaction.redo).
	earlier *IdempotencyRecord
}

// Entry is one Raft log entry's command, at its index.
type Entry struct {
	Index uint64
	Cmd   *Command
}

// apply applies one command at Raft index.
func (s *Store) apply(index uint64, cmd *Command) error {
	return s.applyBatch([]Entry{{Index: index, Cmd: cmd}})[0].Err
}

// applyBatch applies entries in order, in one write transaction, with the
// outcome of applying them one by one: each entry that fails changes
// nothing but its audit record. Sharing the transaction is what makes a
// batch cheaper: memdb copies each tree node an entry changes once per
// transaction, and the nodes near the roots (the index table, counters,
// the newest audit records) are the same for every entry.
func (s *Store) applyBatch(entries []Entry) []Outcome {
	t := s.begin(s.current().db, false)
	for _, e := range entries {
		t.add(e)
	}
	t.commit()
	return t.out
}

// transaction is a write transaction that entries are applied to one at a
// time, each with the outcome of applying it alone.
type transaction struct {
	store   *Store
	db      *memdb.MemDB
	txn     *memdb.Txn
	b       *batch
	nodes   map[string]bool // nodes whose replicas changed, over restarts
	quiet   bool
	entries []Entry
	out     []Outcome
}

// begin starts a transaction on db. A quiet one writes no instance events
// and no stream events (a fork's: what reads it never looks at them).
func (s *Store) begin(db *memdb.MemDB, quiet bool) *transaction {
	t := &transaction{store: s, db: db, nodes: map[string]bool{}, quiet: quiet}
	t.restart()
	return t
}

func (t *transaction) restart() {
	t.txn = t.db.Txn(true)
	t.b = newBatch(t.nodes)
	t.b.quiet = t.quiet
	t.b.rows = newRows(t.db)
}

func (t *transaction) writer(e Entry) *writer {
	return &writer{txn: t.txn, index: e.Index, cmd: e.Cmd, batch: t.b}
}

// add applies one more entry and returns its outcome.
//
// A command that fails usually does so before it writes; one that fails
// after writing (rare: a refused write, or a check after a change) cannot
// be undone within the transaction, so the transaction is started over
// without it: the entries before it are applied again in a new one, which
// gives the same result, since applying is deterministic.
func (t *transaction) add(e Entry) Outcome {
	w := t.writer(e)
	var o Outcome
	o.Err = w.safely(func() error { return w.apply(t.store.dispatch) })
	if o.Err != nil && len(w.touched) > 0 {
		t.redo()
		earlier := w.earlier
		w = t.writer(e)
		w.earlier = earlier
	}
	if o.Err == nil {
		o.Value = w.answer()
	}
	if err := w.safely(func() error { w.finish(o.Err); return nil }); err != nil {
		// The entry's audit or idempotency record could not be written
		// (a bug, as in safely): the entry keeps nothing, not even those,
		// rather than stop every server that applies it.
		t.redo()
		o = Outcome{Err: err, unrecorded: true}
		t.writer(e).close()
	}
	o.earlier = w.earlier
	t.entries = append(t.entries, e)
	t.out = append(t.out, o)
	return o
}

// redo starts the transaction over with the entries added before the one
// being added, each with its outcome.
func (t *transaction) redo() {
	t.txn.Abort()
	t.restart()
	for j, prev := range t.entries {
		r := t.writer(prev)
		r.earlier = t.out[j].earlier
		if t.out[j].Err == nil {
			r.again(t.store.dispatch)
			t.out[j].Value = r.answer()
		}
		if t.out[j].unrecorded {
			r.close()
		} else {
			r.finish(t.out[j].Err)
		}
	}
}

// commit writes the rows the batch kept, makes the transaction the state,
// and wakes the watchers of the nodes whose replicas changed.
func (t *transaction) commit() {
	t.b.flush(t.txn)
	t.txn.Commit()
	t.store.notifyNodes(t.nodes)
}

// batch is what the entries of one transaction share. The rows that
// nearly every entry rewrites, the index table's row of each table it
// changed and the counters of the meta table, are kept here and written
// once, when the batch ends: the transaction commits the same state as if
// each entry had written them, for a fraction of the tree updates. Nothing
// reads them from the transaction before it commits but through the
// batch (meta, setMeta).
type batch struct {
	nodes   map[string]bool   // nodes whose replicas changed (NodeWatch)
	indexes map[string]uint64 // table -> index of the last entry that changed it
	meta    map[string]*Meta  // meta rows written through setMeta
	// events are the instances that got events: each keeps its newest
	// MaxEventsPerInstance, pruned once at the end of the batch rather
	// than at every event (a plan of ten placements writes ten).
	events map[string]bool
	// quiet: no instance or stream events (Store.begin).
	quiet bool
	// feedDrops is how many of the stream's oldest events the batch drops
	// when it ends (publish).
	feedDrops int
	// oldestAudit and oldestKey are the oldest audit record and
	// idempotency record, read once per batch and after each one dropped
	// (pruneAudit, recordKey).
	oldestAudit oldest[protocol.AuditRecord]
	oldestKey   oldest[IdempotencyRecord]
	// rows are the rows the batch wrote, read by id without reading the
	// transaction (writer.first).
	rows *rows
}

func newBatch(nodes map[string]bool) *batch {
	return &batch{nodes: nodes, indexes: map[string]uint64{}, meta: map[string]*Meta{}, events: map[string]bool{}}
}

// flush writes the rows the batch kept, and prunes the events it added.
// Pruning here leaves the events that pruning after each one would: the
// newest of each instance.
func (b *batch) flush(txn *memdb.Txn) {
	if b.feedDrops > 0 {
		dropFeed(txn, b, b.feedDrops)
	}
	snap := &Snapshot{txn: txn}
	for _, id := range slices.Sorted(maps.Keys(b.events)) {
		evs := snap.Events(id)
		for i := 0; i < len(evs)-MaxEventsPerInstance; i++ {
			if err := txn.Delete(tableEvents, evs[i]); err != nil {
				panic(err)
			}
		}
	}
	for t, idx := range b.indexes {
		if err := txn.Insert(tableIndex, &indexEntry{Table: t, Value: idx}); err != nil {
			panic(err) // the schema is a constant
		}
	}
	for _, m := range b.meta {
		if err := txn.Insert(tableMeta, m); err != nil {
			panic(err)
		}
	}
}

// apply applies the entry's command with dispatch, or answers the outcome
// of the earlier entry of its idempotency key.
func (w *writer) apply(dispatch func(*writer) error) error {
	if rec := w.idempotent(); rec != nil {
		w.earlier = rec
		return w.replay(rec)
	}
	return dispatch(w)
}

// answer is what the FSM answers for an entry that succeeded: Replayed, or
// the object it wrote (nil for none).
func (w *writer) answer() any {
	if w.replayed != nil {
		return *w.replayed
	}
	return w.result
}

// again applies again a command that succeeded before in an aborted
// transaction; it succeeds again, applying being deterministic.
func (w *writer) again(dispatch func(*writer) error) {
	if err := w.safely(func() error { return w.apply(dispatch) }); err != nil {
		panic(fmt.Sprintf("state: entry %d (%s) failed when applied again: %v", w.index, w.cmd.Type, err))
	}
}

// finish ends an entry: its audit record with its outcome, and the index
// of every table it changed. Every entry moves the state's index, even one
// that changed nothing, so that X-Drover-Index of a write is always
// readable afterwards.
func (w *writer) finish(err error) {
	if w.cmd.Audit != nil {
		rec := *w.cmd.Audit
		rec.Result = "ok"
		if err != nil {
			rec.Result = string(protocol.AsError(err).Code)
		}
		w.audit(rec, 0)
	}
	w.recordKey(err)
	w.close()
}

// close moves the index of every table the entry changed, and the meta
// table's, to the entry's.
func (w *writer) close() {
	w.touch(tableMeta)
	for _, t := range w.touched {
		w.batch.indexes[t] = w.index
	}
}

// safely runs a command's change (dispatch) and turns a panic into an
// internal error:
// an entry that trips a bug must not stop every server that applies it,
// again at each restart. Every server recovers the same way.
// A write the store refuses (a row without its id, say) aborts the entry
// the same way, through abort, without being called a panic.
func (w *writer) safely(change func() error) (err error) {
	defer func() {
		switch p := recover().(type) {
		case nil:
		case aborted:
			err = protocol.Errorf(protocol.CodeInternal, "apply %s: %v", w.cmd.Type, p.err)
		default:
			err = protocol.Errorf(protocol.CodeInternal, "apply %s: panic: %v", w.cmd.Type, p)
		}
	}()
	return change()
}

// aborted is what abort panics with.
type aborted struct{ err error }

// abort ends the entry being applied: nothing of it is written. The
// helpers below call it when the store refuses a read or a write, so that
// no command carries on from a half-made change.
func abort(format string, args ...any) {
	panic(aborted{fmt.Errorf(format, args...)})
}

func decode[T any](w *writer) (*T, error) {
	if w.cmd.value != nil {
		if v, ok := w.cmd.value().(*T); ok {
			return v, nil
		}
	}
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
		return run(w, (*writer).environmentUpsert)
	case CmdPlanUpsert:
		return run(w, (*writer).planUpsert)
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
		return run(w, (*writer).auditAppend)
	case CmdAuditRetention:
		return run(w, (*writer).auditRetention)
	case CmdStateRestored:
		return run(w, (*writer).stateRestored)
	case CmdServerUpsert:
		return run(w, (*writer).serverUpsert)
	case CmdServerRemove:
		return run(w, (*writer).serverRemove)
	case CmdProductUpsert:
		return run(w, (*writer).productUpsert)
	case CmdProductDelete:
		return run(w, (*writer).productDelete)
	case CmdReleasePublish:
		return run(w, (*writer).releasePublish)
	case CmdReleaseUpdate:
		return run(w, (*writer).releaseUpdate)
	case CmdChannelSet:
		return run(w, (*writer).channelSet)
	case CmdRolloutCreate:
		return run(w, (*writer).rolloutCreate)
	case CmdRolloutStep:
		return run(w, (*writer).rolloutStep)
	case CmdRolloutControl:
		return run(w, (*writer).rolloutControl)
	case CmdLogVersion:
		return run(w, (*writer).logVersionSet)
	case CmdFlagDefine:
		return run(w, (*writer).flagDefine)
	case CmdFlagDelete:
		return run(w, (*writer).flagDelete)
	case CmdFlagOverride:
		return run(w, (*writer).flagOverride)
	}
	return protocol.Errorf(protocol.CodeInvalidArgument, "unknown command %q", w.cmd.Type)
}

// --- helpers ---

// touch records that the entry changes tables; their rows of the index
// table move to its index when it ends (finish). A command that touched
// nothing has written nothing.
func (w *writer) touch(tables ...string) {
	for _, t := range tables {
		if !slices.Contains(w.touched, t) {
			w.touched = append(w.touched, t)
		}
	}
}

// insert writes a row; a row the store refuses aborts the whole entry, on
// every server alike, as a failed read in first does.
func (w *writer) insert(table string, v any) {
	if table == tableReplicas {
		w.account(v.(*protocol.Replica))
	}
	w.touch(table) // first: a write that fails half-way still counts
	w.put(table, v)
	if answerTables[table] {
		w.result, w.resultTable = v, table
	}
}

// deleteAll removes the rows of table an index matches; a failure aborts
// the entry as insert's does.
func (w *writer) deleteAll(table, index string, args ...any) {
	w.touch(table)
	w.batch.rows.lost(table)
	if _, err := w.txn.DeleteAll(table, index, args...); err != nil {
		abort("delete from %s: %v", table, err)
	}
}

// delete removes a row; a failure aborts the entry as insert's does.
func (w *writer) delete(table string, v any) {
	if r, ok := v.(*protocol.Replica); ok {
		w.nodeChanged(r.Node)
		if r.Holds() {
			w.use(r.Node, r.Reserved, -1)
		}
	}
	w.touch(table)
	w.remove(table, v)
}

// put inserts a row, and remove deletes one, in the transaction and in
// the batch's rows; a row the store refuses aborts the entry.
func (w *writer) put(table string, v any) {
	if err := w.txn.Insert(table, v); err != nil {
		abort("insert into %s: %v", table, err)
	}
	w.batch.rows.put(table, v, v)
}

func (w *writer) remove(table string, v any) {
	if err := w.txn.Delete(table, v); err != nil {
		abort("delete from %s: %v", table, err)
	}
	w.batch.rows.put(table, v, nil)
}

// account keeps the usage table true as replica r is written: it takes
// back what the row it replaces held and adds what r holds. A new replica
// reserves what its version's spec asks for.
func (w *writer) account(r *protocol.Replica) {
	var old *protocol.Replica
	if raw := w.first(tableReplicas, r.ID); raw != nil {
		old = raw.(*protocol.Replica)
	}
	if assignedDiffers(old, r) {
		if old != nil {
			w.nodeChanged(old.Node)
		}
		w.nodeChanged(r.Node)
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

// assignedDiffers reports whether r, written over old (nil: new), changes
// what an agent is assigned (gateway.Desired): where it is placed, whether
// it should run, its version, its ports. A report of its state or health
// does not: at 10,000 hosts, waking every reporting host's session to find
// its set unchanged left thousands of goroutines runnable at once, and
// the leader's Raft goroutines waited behind them past the leader lease.
func assignedDiffers(old, r *protocol.Replica) bool {
	return old == nil || old.Node != r.Node || old.Desired != r.Desired || old.Version != r.Version ||
		!maps.Equal(old.Ports, r.Ports)
}

// nodeChanged records that a replica of node changes (NodeWatch).
func (w *writer) nodeChanged(node string) {
	if node != "" {
		w.batch.nodes[node] = true
	}
}

// use adds (sign 1) or takes back (-1) a replica's place and reservation
// on a node.
func (w *writer) use(node string, res protocol.Reservation, sign int64) {
	u := &NodeUsage{Node: node}
	if raw := w.first(tableUsage, node); raw != nil {
		*u = *raw.(*NodeUsage)
	}
	u.CPUMillis += sign * res.CPUMillis
	u.MemoryMB += sign * res.MemoryMB
	u.Ports += int(sign) * res.Ports
	u.Replicas = max(0, u.Replicas+int(sign))
	w.touch(tableUsage)
	if u.Reservation == (protocol.Reservation{}) && u.Replicas == 0 {
		if raw := w.first(tableUsage, node); raw != nil {
			w.remove(tableUsage, raw)
		}
	} else {
		w.put(tableUsage, u)
	}
}

// first reads a row by id: from the rows the batch wrote, else from the
// state before the batch (rows.first).
func (w *writer) first(table string, args ...any) any {
	raw, err := w.batch.rows.first(w.txn, table, args...)
	if err != nil {
		abort("read %s: %v", table, err)
	}
	return raw
}

func (w *writer) snap() *Snapshot { return &Snapshot{txn: w.txn} }

// next returns a counter that grows by one with each call: deterministic
// ids for rows the FSM creates itself.
func (w *writer) next(key string) uint64 {
	m := w.meta(key)
	m.N++
	w.setMeta(m)
	return m.N
}

// meta returns a copy of a counter row of the meta table (zero when there
// is none), as the batch left it.
func (w *writer) meta(key string) *Meta {
	if m, ok := w.batch.meta[key]; ok {
		c := *m
		return &c
	}
	m := &Meta{Key: key}
	if raw := w.first(tableMeta, key); raw != nil {
		*m = *raw.(*Meta)
	}
	return m
}

// setMeta writes a counter row of the meta table when the batch ends.
// Counters are read only through meta.
func (w *writer) setMeta(m *Meta) {
	w.touch(tableMeta)
	w.batch.meta[m.Key] = m
}

func (w *writer) instance(tenant, name string) (*protocol.Instance, error) {
	raw := w.first(tableInstances, protocol.InstanceID(tenant, name))
	if raw == nil {
		return nil, protocol.NotFound("instance", protocol.InstanceID(tenant, name))
	}
	c := *raw.(*protocol.Instance)
	return &c, nil
}

func (w *writer) putInstance(in *protocol.Instance) {
	in.ModifyIndex = w.index
	in.UpdatedAt = w.cmd.Time
	in.Status = nil
	w.insert(tableInstances, in)
}

// eval records that an instance needs the scheduler's attention.
func (w *writer) eval(instanceID, why string) {
	w.insert(tableEvals, &Eval{Instance: instanceID, TriggeredBy: why, Index: w.index})
}

// event records an instance event, dropping the oldest past the limit.
func (w *writer) event(e protocol.Event) {
	if w.batch.quiet {
		return
	}
	e.ID = w.next("event_seq")
	if e.Time.IsZero() {
		e.Time = w.cmd.Time
	}
	w.insert(tableEvents, &e)
	w.batch.events[protocol.InstanceID(e.Tenant, e.Instance)] = true
	topic := protocol.TopicInstance
	if e.Type == protocol.TopicDeployment || e.Type == protocol.TopicRollout {
		topic = e.Type
	}
	w.publish(protocol.StreamEvent{Topic: topic, Type: e.Type, Time: e.Time, Tenant: e.Tenant,
		Instance: e.Instance, Replica: e.Replica, Node: e.Node, Message: e.Message})
}

func (w *writer) audit(r protocol.AuditRecord, seq int) {
	// Ids sort in the order records were written: six digits hold every
	// record one command of at most MaxCommandBytes can carry.
	r.ID = fmt.Sprintf("%016d-%06d", w.index, seq)
	r.Index = w.index
	if r.Time.IsZero() {
		r.Time = w.cmd.Time
	}
	w.insert(tableAudit, &r)
	w.batch.oldestAudit.added(&r, func(a, b *protocol.AuditRecord) bool { return a.ID < b.ID })
	w.next(metaAuditCount)
	w.pruneAudit()
	w.publish(protocol.StreamEvent{Topic: protocol.TopicAudit, Type: r.Action, Time: r.Time, Tenant: r.Tenant, Audit: &r})
}

// pruneAudit drops the oldest audit records past the retention's count or
// age. The age is measured from the command's time, so every server drops
// the same records.
func (w *writer) pruneAudit() {
	ret := w.snap().AuditRetention()
	count := w.meta(metaAuditCount)
	cutoff := w.cmd.Time.Add(-ret.MaxAge)
	dropped := uint64(0)
	for count.N-dropped > 0 {
		oldest := w.batch.oldestAudit.get(w.txn, tableAudit, "id")
		if oldest == nil {
			break
		}
		overCount := count.N-dropped > uint64(ret.MaxRecords)
		tooOld := ret.MaxAge > 0 && oldest.Time.Before(cutoff)
		if !overCount && !tooOld {
			break
		}
		w.delete(tableAudit, oldest)
		w.batch.oldestAudit.dropped()
		dropped++
	}
	if dropped > 0 {
		count.N -= dropped
		w.setMeta(count)
	}
}
