package scheduler

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Stopping and starting an instance (or suspending and resuming its
// tenant) while a deployment runs cancels the deployment; on start the
// new, unproven version is placed with no deployment at all: no healthy
// deadline, no rollback (before the fix a version that failed then never
// rolled back). The deployment starts again instead.
func TestAStopAndStartMidDeploymentKeepsItsRollback(t *testing.T) {
	h := newHarness(t)
	threeNodes(h)
	id := h.running("crm", 2, spec())
	h.update(id, spec(v2, func(s *protocol.Spec) { s.Update.AutoRollback = true }))
	h.settle()
	h.lifecycle(id, state.ActionStop)
	h.settle()
	h.lifecycle(id, state.ActionStart)
	h.settle()
	var bad []string
	for _, r := range h.live(id) {
		if r.Version == 2 && r.Node != "" {
			bad = append(bad, r.ID)
		}
	}
	if len(bad) == 0 {
		t.Fatalf("no replica of version 2 placed after start: %+v", h.live(id))
	}
	h.report(protocol.ReplicaFailed, bad...)
	h.settle()
	h.Advance(time.Hour)
	h.settle()
	in := h.instance(id)
	if in.Version == 2 {
		t.Fatalf("version 2 fails after a stop/start mid-deployment and is never rolled back: stable %d, deployment %s (to %d): %s; live %v",
			in.StableVersion, in.Deployment.State, in.Deployment.ToVersion, in.Deployment.Message, versions(h.live(id)))
	}
}
