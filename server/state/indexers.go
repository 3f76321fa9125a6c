package state

import (
	"encoding/binary"
	"fmt"

	"github.com/drover-dev/drover/protocol"
)

// stringField indexes a string field of the rows of type *T, read by a
// function. memdb's StringFieldIndex finds its field by reflection
// (FieldByName) for every index of every row written and of the row it
// replaces: a tenth of applying an instance create. The keys are the
// ones StringFieldIndex makes (the value and a NUL; an empty value is no
// key), so lookups and prefix lookups answer as they did.
type stringField[T any] func(*T) string

func (f stringField[T]) FromObject(obj any) (bool, []byte, error) {
	row, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index of %T: not a %T", obj, row)
	}
	v := f(row)
	if v == "" {
		return false, nil, nil
	}
	return true, append([]byte(v), 0), nil
}

func (f stringField[T]) FromArgs(args ...any) ([]byte, error) {
	b, err := f.PrefixFromArgs(args...)
	if err != nil {
		return nil, err
	}
	return append(b, 0), nil
}

// PrefixFromArgs is the key of a prefix lookup: the value without its NUL.
func (f stringField[T]) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("must provide only a single argument")
	}
	arg, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("argument must be a string: %#v", args[0])
	}
	return []byte(arg), nil
}

// uintField indexes an unsigned field of *T as memdb's UintFieldIndex does
// a uint64 (eight bytes, big-endian), read by a function.
type uintField[T any] func(*T) uint64

func (f uintField[T]) FromObject(obj any) (bool, []byte, error) {
	row, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index of %T: not a %T", obj, row)
	}
	return true, binary.BigEndian.AppendUint64(nil, f(row)), nil
}

func (f uintField[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("must provide only a single argument")
	}
	var v uint64
	switch a := args[0].(type) {
	case uint64:
		v = a
	case uint:
		v = uint64(a)
	case uint32:
		v = uint64(a)
	default:
		return nil, fmt.Errorf("arg is of type %T; want a uint", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, v), nil
}

// The uint fields the schema indexes.
var (
	versionNumber    = uintField[Version](func(r *Version) uint64 { return r.Version })
	eventID          = uintField[protocol.Event](func(r *protocol.Event) uint64 { return r.ID })
	feedIndex        = uintField[protocol.StreamEvent](func(r *protocol.StreamEvent) uint64 { return r.Index })
	feedSeq          = uintField[protocol.StreamEvent](func(r *protocol.StreamEvent) uint64 { return r.Seq })
	idempotencyIndex = uintField[IdempotencyRecord](func(r *IdempotencyRecord) uint64 { return r.Index })
)

// The string fields the schema indexes.
var (
	instanceID     = stringField[protocol.Instance](func(r *protocol.Instance) string { return r.ID })
	instanceTenant = stringField[protocol.Instance](func(r *protocol.Instance) string { return r.Tenant })
	replicaID      = stringField[protocol.Replica](func(r *protocol.Replica) string { return r.ID })
	replicaTenant  = stringField[protocol.Replica](func(r *protocol.Replica) string { return r.Tenant })
	replicaName    = stringField[protocol.Replica](func(r *protocol.Replica) string { return r.Instance })
	replicaNode    = stringField[protocol.Replica](func(r *protocol.Replica) string { return r.Node })
	versionOf      = stringField[Version](func(r *Version) string { return r.InstanceID })
	auditID        = stringField[protocol.AuditRecord](func(r *protocol.AuditRecord) string { return r.ID })
	auditTenant    = stringField[protocol.AuditRecord](func(r *protocol.AuditRecord) string { return r.Tenant })
	eventTenant    = stringField[protocol.Event](func(r *protocol.Event) string { return r.Tenant })
	eventInstance  = stringField[protocol.Event](func(r *protocol.Event) string { return r.Instance })
	evalInstance   = stringField[Eval](func(r *Eval) string { return r.Instance })
	metaKey        = stringField[Meta](func(r *Meta) string { return r.Key })
	indexTable     = stringField[indexEntry](func(r *indexEntry) string { return r.Table })
	usageNode      = stringField[NodeUsage](func(r *NodeUsage) string { return r.Node })
	nodeID         = stringField[protocol.Node](func(r *protocol.Node) string { return r.ID })
	idempotencyKey = stringField[IdempotencyRecord](func(r *IdempotencyRecord) string { return r.Key })
)
