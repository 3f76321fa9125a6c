package state

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-memdb"

	"github.com/drover-dev/drover/protocol"
)

// The indexers without reflection make the keys memdb's StringFieldIndex
// and UintFieldIndex (of a uint64) make of the same field, for rows, lookups and prefix lookups, an empty
// field included (no key).
func TestFieldIndexesKeyAsMemdb(t *testing.T) {
	type prefixIndexer interface {
		memdb.SingleIndexer
		FromArgs(args ...any) ([]byte, error)
		PrefixFromArgs(args ...any) ([]byte, error)
	}
	cases := []struct {
		ours  prefixIndexer
		field string
		row   any
		empty any
	}{
		{instanceID, "ID", &protocol.Instance{ID: "t/a"}, &protocol.Instance{}},
		{instanceTenant, "Tenant", &protocol.Instance{Tenant: "t"}, &protocol.Instance{}},
		{replicaID, "ID", &protocol.Replica{ID: "r1"}, &protocol.Replica{}},
		{replicaTenant, "Tenant", &protocol.Replica{Tenant: "t"}, &protocol.Replica{}},
		{replicaName, "Instance", &protocol.Replica{Instance: "a"}, &protocol.Replica{}},
		{replicaNode, "Node", &protocol.Replica{Node: "n1"}, &protocol.Replica{}},
		{versionOf, "InstanceID", &Version{InstanceID: "t/a"}, &Version{}},
		{auditID, "ID", &protocol.AuditRecord{ID: "0001-000000"}, &protocol.AuditRecord{}},
		{auditTenant, "Tenant", &protocol.AuditRecord{Tenant: "t"}, &protocol.AuditRecord{}},
		{eventTenant, "Tenant", &protocol.Event{Tenant: "t"}, &protocol.Event{}},
		{eventInstance, "Instance", &protocol.Event{Instance: "a"}, &protocol.Event{}},
		{evalInstance, "Instance", &Eval{Instance: "t/a"}, &Eval{}},
		{metaKey, "Key", &Meta{Key: "k"}, &Meta{}},
		{indexTable, "Table", &indexEntry{Table: "nodes"}, &indexEntry{}},
		{usageNode, "Node", &NodeUsage{Node: "n1"}, &NodeUsage{}},
		{nodeID, "ID", &protocol.Node{ID: "n1"}, &protocol.Node{}},
		{idempotencyKey, "Key", &IdempotencyRecord{Key: "k"}, &IdempotencyRecord{}},
	}
	for _, c := range cases {
		ref := &memdb.StringFieldIndex{Field: c.field}
		for _, row := range []any{c.row, c.empty} {
			ok1, k1, err1 := c.ours.FromObject(row)
			ok2, k2, err2 := ref.FromObject(row)
			if ok1 != ok2 || !bytes.Equal(k1, k2) || (err1 == nil) != (err2 == nil) {
				t.Fatalf("%s of %#v: ours %v %q %v, memdb's %v %q %v", c.field, row, ok1, k1, err1, ok2, k2, err2)
			}
		}
		for _, args := range [][]any{{"x/y"}, {""}, {}, {"a", "b"}, {3}} {
			k1, err1 := c.ours.FromArgs(args...)
			k2, err2 := ref.FromArgs(args...)
			p1, perr1 := c.ours.PrefixFromArgs(args...)
			p2, perr2 := ref.PrefixFromArgs(args...)
			if !bytes.Equal(k1, k2) || (err1 == nil) != (err2 == nil) || !bytes.Equal(p1, p2) || (perr1 == nil) != (perr2 == nil) {
				t.Fatalf("%s of args %v: ours %q %v / %q %v, memdb's %q %v / %q %v", c.field, args, k1, err1, p1, perr1, k2, err2, p2, perr2)
			}
		}
	}
	uints := []struct {
		ours  memdb.Indexer
		field string
		row   any
	}{
		{versionNumber, "Version", &Version{Version: 3}},
		{eventID, "ID", &protocol.Event{ID: 1 << 40}},
		{feedIndex, "Index", &protocol.StreamEvent{Index: 77}},
		{feedSeq, "Seq", &protocol.StreamEvent{Seq: 2}},
		{idempotencyIndex, "Index", &IdempotencyRecord{Index: 9}},
	}
	for _, c := range uints {
		ref := &memdb.UintFieldIndex{Field: c.field}
		ok1, k1, err1 := c.ours.(memdb.SingleIndexer).FromObject(c.row)
		ok2, k2, err2 := ref.FromObject(c.row)
		if ok1 != ok2 || !bytes.Equal(k1, k2) || err1 != nil || err2 != nil {
			t.Fatalf("%s of %#v: ours %v %x %v, memdb's %v %x %v", c.field, c.row, ok1, k1, err1, ok2, k2, err2)
		}
		for _, args := range [][]any{{uint64(5)}, {uint64(1 << 50)}, {}, {uint64(1), uint64(2)}, {"x"}, {-1}} {
			k1, err1 := c.ours.FromArgs(args...)
			k2, err2 := ref.FromArgs(args...)
			if !bytes.Equal(k1, k2) || (err1 == nil) != (err2 == nil) {
				t.Fatalf("%s of args %v: ours %x %v, memdb's %x %v", c.field, args, k1, err1, k2, err2)
			}
		}
	}
	if _, _, err := replicaID.FromObject(&protocol.Node{ID: "n1"}); err == nil {
		t.Fatal("a replica index took a node")
	}
}
