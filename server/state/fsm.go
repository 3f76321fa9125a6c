package state

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/drover-dev/drover/protocol"
)

// Retention limits the FSM enforces deterministically.
const (
	MaxEventsPerInstance   = 50
	MaxAuditRecords        = 100_000
	MaxVersionsKept        = 20
	MaxTerminalPerInstance = 5
)

// FSM applies Raft log entries to a Store. It implements raft.FSM.
type FSM struct {
	store  *Store
	logger hclog.Logger
	// onApply, set by OnApply, is called after each applied entry with
	// its command's type and index. Nothing in the server uses it (the
	// scheduler and the gateway wake on the store's watches); it lets
	// tests see the order in which entries were applied.
	onApply atomic.Pointer[func(CommandType, uint64)]
}

// NewFSM returns an FSM over store.
func NewFSM(store *Store, logger hclog.Logger) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &FSM{store: store, logger: logger.Named("fsm")}
}

// LogVersion returns the cluster's log version as of the entries applied
// here.
func (f *FSM) LogVersion() int { return f.store.Snapshot().LogVersion() }

// StoreDB returns an immutable copy-on-write view of the current database,
// for streaming backups.
func (f *FSM) StoreDB() *memdb.MemDB { return f.store.current().db.Snapshot() }

// Store returns the store the FSM writes.
func (f *FSM) Store() *Store { return f.store }

// OnApply sets a function called after every applied entry with its
// command's type and Raft index. It runs on Raft's apply goroutine and must
// not block.
func (f *FSM) OnApply(fn func(CommandType, uint64)) { f.onApply.Store(&fn) }

// Apply applies one log entry. It returns nil or the *protocol.Error that
// made the command change nothing.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the entries Raft committed together in one write
// transaction (raft.BatchingFSM), with the outcome of applying them one by
// one (Store.applyBatch). Each answer is nil or the *protocol.Error that
// made its command change nothing.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	entries := make([]Entry, 0, len(logs))
	at := make([]int, 0, len(logs)) // the log of each entry
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		cmd, err := DecodeCommand(l.Data)
		if err != nil {
			f.logger.Error("skipping undecodable log entry", "index", l.Index, "error", err)
			out[i] = protocol.Errorf(protocol.CodeInvalidArgument, "%v", err)
			continue
		}
		if _, known := CommandVersion(cmd.Type); !known {
			f.stop(&UnknownCommandError{Index: l.Index, Type: cmd.Type})
		}
		entries = append(entries, Entry{Index: l.Index, Cmd: cmd})
		at = append(at, i)
	}
	if len(entries) == 0 {
		return out
	}
	outcomes := f.store.applyBatch(entries)
	fn := f.onApply.Load()
	for k, e := range entries {
		err := outcomes[k].Err
		if err != nil && protocol.AsError(err).Code == protocol.CodeInternal {
			f.logger.Error("entry changed nothing", "index", e.Index, "type", e.Cmd.Type, "error", err)
		}
		if fn != nil {
			(*fn)(e.Cmd.Type, e.Index)
		}
		switch {
		case err != nil:
			out[at[k]] = err
		case outcomes[k].Value != nil:
			if r, ok := outcomes[k].Value.(Replayed); ok {
				out[at[k]] = r
			} else {
				out[at[k]] = Applied{Value: outcomes[k].Value}
			}
		}
	}
	return out
}

// Snapshot returns a point-in-time copy of the state for Raft to persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.current().db.Snapshot()}, nil
}

// Restore replaces the state with the one read from r.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	db, err := ReadSnapshot(r)
	if err != nil {
		return err
	}
	f.store.replace(db)
	return nil
}

type fsmSnapshot struct {
	snap *memdb.MemDB
}

// Persist writes the snapshot: a header line, then one JSON line per row.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.snap); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// snapshotHeader starts every snapshot stream.
type snapshotHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

const snapshotFormat = "drover-state"

type snapshotRow struct {
	Table string          `json:"t"`
	Value json.RawMessage `json:"v"`
}

// WriteSnapshot writes every row of db to w.
func WriteSnapshot(w io.Writer, db *memdb.MemDB) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: 1}); err != nil {
		return err
	}
	txn := db.Txn(false)
	for _, table := range Tables {
		it, err := txn.Get(table, "id")
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			v, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", table, err)
			}
			if err := enc.Encode(snapshotRow{Table: table, Value: v}); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// ReadSnapshot reads a snapshot written by WriteSnapshot into a new database.
func ReadSnapshot(r io.Reader) (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bufio.NewReader(r))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	if h.Format != snapshotFormat || h.Version != 1 {
		return nil, fmt.Errorf("read snapshot: not a Drover state snapshot (format %q version %d)", h.Format, h.Version)
	}
	txn := db.Txn(true)
	defer txn.Abort()
	for {
		var row snapshotRow
		if err := dec.Decode(&row); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		v, err := newRow(row.Table)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(row.Value, v); err != nil {
			return nil, fmt.Errorf("read snapshot row of %s: %w", row.Table, err)
		}
		if err := txn.Insert(row.Table, v); err != nil {
			return nil, fmt.Errorf("restore row of %s: %w", row.Table, err)
		}
	}
	txn.Commit()
	return db, nil
}

// KeepServers replaces the server records of db, a snapshot read for a
// restore, with servers: the addresses of the cluster it is restored into.
func KeepServers(db *memdb.MemDB, servers []*protocol.Member) error {
	txn := db.Txn(true)
	defer txn.Abort()
	if _, err := txn.DeleteAll(tableServers, "id"); err != nil {
		return fmt.Errorf("restore servers: %w", err)
	}
	for _, m := range servers {
		c := *m
		if err := txn.Insert(tableServers, &c); err != nil {
			return fmt.Errorf("restore servers: %w", err)
		}
	}
	txn.Commit()
	return nil
}

func newRow(table string) (any, error) {
	switch table {
	case tableTenants:
		return &protocol.Tenant{}, nil
	case tableEnvironments:
		return &protocol.Environment{}, nil
	case tablePlans:
		return &protocol.Plan{}, nil
	case tableInstances:
		return &protocol.Instance{}, nil
	case tableVersions:
		return &Version{}, nil
	case tableReplicas:
		return &protocol.Replica{}, nil
	case tableNodes:
		return &protocol.Node{}, nil
	case tableTokens:
		return &protocol.Token{}, nil
	case tableCredentials:
		return &Credential{}, nil
	case tableAudit:
		return &protocol.AuditRecord{}, nil
	case tableEvents:
		return &protocol.Event{}, nil
	case tableEvals:
		return &Eval{}, nil
	case tableServers:
		return &protocol.Member{}, nil
	case tableMeta:
		return &Meta{}, nil
	case tableIndex:
		return &indexEntry{}, nil
	case tableUsage:
		return &NodeUsage{}, nil
	case tableProducts:
		return &protocol.Product{}, nil
	case tableReleases:
		return &protocol.Release{}, nil
	case tableRollouts:
		return &protocol.Rollout{}, nil
	case tableFeed:
		return &protocol.StreamEvent{}, nil
	case tableIdempotency:
		return &IdempotencyRecord{}, nil
	case tableFlags:
		return &protocol.Flag{}, nil
	case tableOverrides:
		return &protocol.FlagOverride{}, nil
	}
	return nil, fmt.Errorf("read snapshot: unknown table %q", table)
}

// stop ends the server with err: one that cannot apply an entry of the log
// must not go on with a state that differs from the other servers'. Raft
// runs the FSM in its own goroutine, so the panic ends the process, with
// err as the first thing it prints (as Consul does with an unknown
// message type); the same happens at each restart until the server is
// upgraded.
func (f *FSM) stop(err error) {
	f.logger.Error("stopping: cannot apply the Raft log", "error", err)
	panic(err)
}
