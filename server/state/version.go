package state

// The version of the Raft log: which command types a server knows, and
// which the cluster may use. A rolling upgrade of Drover runs servers of
// two versions side by side; an entry that an older server cannot apply,
// or applies otherwise, would make their states differ. So:
//
//   - every command type names the log version that introduced it
//     (commandVersions), and a server that meets a type it does not know
//     stops (FSM.ApplyBatch) instead of skipping the entry;
//   - the state holds the cluster's log version (metaLogVersion; 1 when
//     absent, as in clusters older than the versioning), raised by one
//     entry, CmdLogVersion, which the leader proposes once every voter runs
//     a build of that version (server.upgradeLoop);
//   - the leader proposes no command newer than the state's log version
//     (cluster.Cluster.ProposeValue), and what the FSM does differently
//     since a version (the event stream, say) it does only from that
//     version's entry on, on every server alike.

import (
	"fmt"

	"github.com/drover-dev/drover/protocol"
)

// LogVersion is the newest log version this build knows. Version 2 brought
// the event stream and the flag commands; version 3 records when each
// instance version was made, and its product reference (Version); since
// version 4 a replica that starts or turns healthy makes an evaluation only
// when the scheduler waits for it (writer.awaited), and the creation of an
// instance of no replicas makes none; since version 5 an idempotency
// key's record stays its first entry's (recordKey), and the count of
// records is made true again when the version is set (recountKeys); since
// version 6 a rollback restores the product reference of the version it
// rolls back to, a plan keeps a promotion made while it was on its way,
// and replicas record when they were placed and whether they were ever
// healthy (PlacedAt, WasHealthy).
const LogVersion = 6

// CmdLogVersion raises the cluster's log version.
const CmdLogVersion CommandType = "log.version"

// LogVersionSet is CmdLogVersion's body.
type LogVersionSet struct {
	Version int `json:"version"`
}

const metaLogVersion = "log_version"

// commandVersions is the log version that introduced each command type.
var commandVersions = map[CommandType]int{
	CmdTenantUpsert: 1, CmdTenantDelete: 1, CmdEnvironmentUpsert: 1, CmdPlanUpsert: 1,
	CmdInstanceCreate: 1, CmdInstanceUpdate: 1, CmdInstanceScale: 1, CmdInstanceLifecycle: 1, CmdInstanceDelete: 1,
	CmdNodeRegister: 1, CmdNodeStatus: 1, CmdNodeDrain: 1, CmdNodeEligibility: 1, CmdNodeRevoke: 1,
	CmdReplicaReports: 1, CmdPlanApply: 1, CmdDeploymentPromote: 1,
	CmdTokenCreate: 1, CmdTokenDelete: 1, CmdACLBootstrap: 1, CmdAudit: 1, CmdAuditRetention: 1,
	CmdStateRestored: 1, CmdServerUpsert: 1, CmdServerRemove: 1,
	CmdProductUpsert: 1, CmdProductDelete: 1, CmdReleasePublish: 1, CmdReleaseUpdate: 1, CmdChannelSet: 1,
	CmdRolloutCreate: 1, CmdRolloutStep: 1, CmdRolloutControl: 1,
	CmdLogVersion: 2, CmdFlagDefine: 2, CmdFlagDelete: 2, CmdFlagOverride: 2,
}

// CommandVersion returns the log version that introduced a command type,
// and whether this build knows the type at all.
func CommandVersion(t CommandType) (int, bool) {
	v, ok := commandVersions[t]
	return v, ok
}

// LogVersion returns the cluster's log version.
func (s *Snapshot) LogVersion() int {
	if m := s.Meta(metaLogVersion); m != nil {
		return int(m.N)
	}
	return 1
}

// since reports whether the cluster's log version, as of the entry being
// applied, is v or newer: what the FSM does since version v it does only
// then.
func (w *writer) since(v int) bool { return w.snap().LogVersion() >= v }

func (w *writer) logVersionSet(c *LogVersionSet) error {
	if c.Version < 1 || c.Version > LogVersion {
		// The leader proposes only versions every voter knows: this build
		// must not apply an entry it was never meant to see.
		return protocol.Errorf(protocol.CodeInvalidArgument, "log version %d is not one this build (log version %d) knows", c.Version, LogVersion)
	}
	old := w.snap().LogVersion()
	if c.Version <= old {
		return nil // never lowered
	}
	w.insert(tableMeta, &Meta{Key: metaLogVersion, N: uint64(c.Version)})
	if old < 5 && c.Version >= 5 {
		w.recountKeys()
	}
	return nil
}

// UnknownCommandError is what a server that meets a command type it does
// not know stops with.
type UnknownCommandError struct {
	Index uint64
	Type  CommandType
}

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("Raft entry %d is a command of type %q, which this build of Drover (log version %d) does not know: "+
		"a newer server wrote it. Upgrade this server to the leader's version; it stops rather than skip the entry, "+
		"which would make its state differ from the others'", e.Index, e.Type, LogVersion)
}
