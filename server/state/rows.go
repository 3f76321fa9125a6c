package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// rows are the rows a batch wrote, by table and id, and a read of the
// state as it was before the batch: a row read by id comes from one or the
// other, not from the batch's write transaction. A read of a table the
// transaction changed makes memdb forget which of that table's tree nodes
// the transaction already copied (its readableIndex clones the index's
// radix transaction, which drops the writable-node cache), and the
// table's next write copies them again: reading a row and then writing
// it, as the FSM does for replicas, usage, instances and evaluations,
// copied the top of the tree at every row.
type rows struct {
	db      *memdb.MemDB
	base    *memdb.Txn                // the state before the batch, once read
	written map[string]map[string]any // table -> id key -> row (nil: deleted)
	// lostTables were changed by other means than one row by id
	// (deleteAll): their rows are read from the transaction.
	lostTables map[string]bool
}

// newRows returns the rows of a batch on db, which commits nothing while
// the batch lasts: a read transaction begun at any time in it reads the
// state before it.
func newRows(db *memdb.MemDB) *rows {
	return &rows{db: db, written: map[string]map[string]any{}, lostTables: map[string]bool{}}
}

// idIndexers are the id indexer of each table.
var idIndexers = func() map[string]memdb.Indexer {
	m := map[string]memdb.Indexer{}
	for name, t := range schema().Tables {
		m[name] = t.Indexes["id"].Indexer
	}
	return m
}()

// appendOnly are the tables the FSM appends to and reads by id only
// through the transaction: their rows are not kept (their reads by id,
// if any, go to the transaction).
var appendOnly = map[string]bool{tableFeed: true, tableAudit: true, tableEvents: true}

// put records row (nil: deleted) under the id of v.
func (r *rows) put(table string, v, row any) {
	if appendOnly[table] {
		r.lost(table)
		return
	}
	ok, key, err := idIndexers[table].(memdb.SingleIndexer).FromObject(v)
	if err != nil || !ok {
		r.lost(table) // memdb took it: read the table from the transaction
		return
	}
	m := r.written[table]
	if m == nil {
		m = map[string]any{}
		r.written[table] = m
	}
	m[string(key)] = row
}

// lost makes the table's rows read from the transaction for the rest of
// the batch.
func (r *rows) lost(table string) { r.lostTables[table] = true }

// first returns the row of table whose id is args, nil for none, as txn
// would.
func (r *rows) first(txn *memdb.Txn, table string, args ...any) (any, error) {
	row, err := r.read(txn, table, args...)
	if err == nil && rowMismatch != nil {
		want, err := txn.First(table, "id", args...)
		if err != nil || want != row {
			rowMismatch(fmt.Sprintf("state: %s %v read %v from the batch's rows, %v (%v) from its transaction", table, args, row, want, err))
			return want, err
		}
	}
	return row, err
}

func (r *rows) read(txn *memdb.Txn, table string, args ...any) (any, error) {
	if !r.lostTables[table] {
		if key, err := idIndexers[table].FromArgs(args...); err == nil {
			if row, ok := r.written[table][string(key)]; ok {
				return row, nil
			}
			if r.base == nil {
				r.base = r.db.Txn(false)
			}
			return r.base.First(table, "id", args...)
		}
	}
	return txn.First(table, "id", args...)
}

// rowMismatch, when set (by the package's tests), makes every read of rows
// check itself against the transaction; a read that differs is reported
// to it and answered from the transaction. It is not a panic: that would
// become the entry's internal error (writer.safely), the same on every
// side of a comparison, and pass unseen.
var rowMismatch func(string)

// oldest is the first row of a table in the order of one of its indexes
// (nil: none), as the batch's entries leave it, read from the transaction
// once per batch and after each drop: a read after each row written made
// memdb copy the table's tree nodes again at each (see rows). The tables
// kept this way (audit and idempotency records) only get rows that come
// after the others, and lose their oldest.
type oldest[T any] struct {
	row  *T
	read bool
}

// get returns the first row of table by index.
func (o *oldest[T]) get(txn *memdb.Txn, table, index string) *T {
	if !o.read {
		raw, err := txn.First(table, index)
		if err != nil {
			abort("read %s: %v", table, err)
		}
		o.row, _ = raw.(*T)
		o.read = true
	}
	return o.row
}

// added records a row written, which comes first when less says so.
func (o *oldest[T]) added(row *T, less func(a, b *T) bool) {
	if o.read && (o.row == nil || less(row, o.row)) {
		o.row = row
	}
}

// dropped records that the first row was deleted.
func (o *oldest[T]) dropped() { o.read = false }
