package state

import (
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/drover-dev/drover/protocol"
)

// Table names. Each write also records its Raft index under the table's
// name in the index table, so that blocking queries can wait on one table.
const (
	tableTenants      = "tenants"
	tableEnvironments = "environments"
	tablePlans        = "plans"
	tableInstances    = "instances"
	tableVersions     = "versions"
	tableReplicas     = "replicas"
	tableNodes        = "nodes"
	tableTokens       = "tokens"
	tableCredentials  = "credentials"
	tableAudit        = "audit"
	tableEvents       = "events"
	tableEvals        = "evals"
	tableServers      = "servers"
	tableMeta         = "meta"
	tableIndex        = "index"
	tableUsage        = "usage"
	tableProducts     = "products"
	tableReleases     = "releases"
	tableRollouts     = "rollouts"
	tableFeed         = "feed"
	tableIdempotency  = "idempotency"
	tableFlags        = "flags"
	tableOverrides    = "flag_overrides"
)

// Tables lists the tables a snapshot holds, in restore order.
var Tables = []string{
	tableTenants, tableEnvironments, tablePlans, tableInstances, tableVersions,
	tableReplicas, tableNodes, tableTokens, tableCredentials, tableAudit,
	tableEvents, tableEvals, tableServers, tableMeta, tableIndex, tableUsage,
	tableProducts, tableReleases, tableRollouts, tableFeed, tableIdempotency, tableFlags, tableOverrides,
}

// Exported table names for blocking queries.
const (
	TableTenants   = tableTenants
	TableInstances = tableInstances
	TableReplicas  = tableReplicas
	TableNodes     = tableNodes
	TableEvents    = tableEvents
	TableAudit     = tableAudit
	TableTokens    = tableTokens
	TableEvals     = tableEvals
	TableServers   = tableServers
	TableProducts  = tableProducts
	TableReleases  = tableReleases
	TableRollouts  = tableRollouts
	TableFeed      = tableFeed
	TableFlags     = tableFlags
	TableOverrides = tableOverrides
)

func stringIndex(name, field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Unique: name == "id", Indexer: &memdb.StringFieldIndex{Field: field}}
}

// fieldIndex is an index of one field read without reflection
// (indexers.go): the tables every write or placement touches.
func fieldIndex(name string, ix memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Unique: name == "id", Indexer: ix}
}

// instanceOf indexes rows by their instance (tenant, name).
func instanceOf(tenant, name memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "instance", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{tenant, name}}}
}

func schema() *memdb.DBSchema {
	table := func(name string, indexes ...*memdb.IndexSchema) *memdb.TableSchema {
		t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{}}
		for _, ix := range indexes {
			t.Indexes[ix.Name] = ix
		}
		return t
	}
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range []*memdb.TableSchema{
		table(tableTenants, stringIndex("id", "Name")),
		table(tableEnvironments, stringIndex("id", "Name")),
		table(tablePlans, stringIndex("id", "Name")),
		table(tableInstances, fieldIndex("id", instanceID), fieldIndex("tenant", instanceTenant),
			&memdb.IndexSchema{Name: "domain", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Domains"}}),
		table(tableVersions, &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			versionOf, versionNumber,
		}}}),
		table(tableReplicas, fieldIndex("id", replicaID), instanceOf(replicaTenant, replicaName),
			&memdb.IndexSchema{Name: "node", AllowMissing: true, Indexer: replicaNode},
			// The replicas waiting for a node: what capacity that appears
			// (a node up, a replica stopped) is looked at for, without a
			// scan of every replica at each such entry (evalWaiting).
			&memdb.IndexSchema{Name: "waiting", Indexer: &memdb.ConditionalIndex{Conditional: func(obj any) (bool, error) {
				r := obj.(*protocol.Replica)
				return r.Node == "" && r.Desired == protocol.DesiredRun, nil
			}}}),
		table(tableNodes, fieldIndex("id", nodeID)),
		table(tableTokens, stringIndex("id", "ID")),
		table(tableCredentials, stringIndex("id", "Hash"),
			&memdb.IndexSchema{Name: "owner", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Kind"}, &memdb.StringFieldIndex{Field: "Owner"},
			}}}),
		table(tableAudit, fieldIndex("id", auditID),
			&memdb.IndexSchema{Name: "tenant", AllowMissing: true, Indexer: auditTenant}),
		table(tableEvents, fieldIndex("id", eventID),
			instanceOf(eventTenant, eventInstance)),
		table(tableEvals, fieldIndex("id", evalInstance)),
		table(tableServers, stringIndex("id", "ID")),
		table(tableMeta, fieldIndex("id", metaKey)),
		table(tableIndex, fieldIndex("id", indexTable)),
		table(tableUsage, fieldIndex("id", usageNode)),
		table(tableProducts, stringIndex("id", "Name")),
		table(tableRollouts, stringIndex("id", "ID")),
		table(tableIdempotency, fieldIndex("id", idempotencyKey),
			fieldIndex("index", idempotencyIndex)),
		table(tableFeed, &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			feedIndex, feedSeq,
		}}}),
		table(tableReleases, &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Product"}, &memdb.StringFieldIndex{Field: "Version"},
		}}}),
		table(tableFlags, &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Product"}, &memdb.StringFieldIndex{Field: "Key"},
		}}}, stringIndex("key", "Key")),
		table(tableOverrides, &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Scope"}, &memdb.StringFieldIndex{Field: "Target"}, &memdb.StringFieldIndex{Field: "Key"},
		}}}, stringIndex("key", "Key")),
	} {
		s.Tables[t.Name] = t
	}
	return s
}

// Version is a stored spec of an instance at one version, kept for rollback
// and for agents running replicas of older versions during a deployment.
//
// CreatedAt and ProductRef are recorded since log version 3; versions made
// before lack them (and encode as they did, so that servers of both builds
// hold the same state).
type Version struct {
	InstanceID string
	Version    uint64
	Spec       protocol.Spec
	CreatedAt  time.Time            `json:",omitzero"`
	ProductRef *protocol.ProductRef `json:",omitempty"`
}

// Credential maps the hash of a secret to its owner: a token or a node.
type Credential struct {
	Hash  string
	Kind  string // "token" or "node"
	Owner string
}

// Credential kinds.
const (
	CredentialToken = "token"
	CredentialNode  = "node"
)

// Eval is a unit of scheduler work: reconcile this instance. One per
// instance: a new trigger raises Index, so work is never lost or repeated.
type Eval struct {
	Instance    string // tenant/name
	TriggeredBy string
	Index       uint64
}

// Meta is a key/value row of cluster-wide settings (the ACL bootstrap flag,
// the agent join token's hash, counters).
type Meta struct {
	Key   string
	Value string
	N     uint64
}

// NodeUsage is what the replicas placed on a node reserve there, kept by the
// FSM with every change of a replica, so that the scheduler reads one row
// per node instead of every replica of the cluster.
type NodeUsage struct {
	Node string
	protocol.Reservation
	// Replicas counts the replicas that hold a place on the node, whatever
	// they reserve: the scheduler spreads replicas that reserve nothing.
	Replicas int
}

type indexEntry struct {
	Table string
	Value uint64
}
