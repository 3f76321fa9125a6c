package state

// Replica reports: what agents observe of their replicas.

import (
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) replicaReports(c *ReplicaReports) error {
	touched := map[string]bool{}
	awaited := map[string]bool{} // instances awaited, as found this entry
	freed := false
	for _, nr := range c.Reports {
		if raw := w.first(tableNodes, nr.Node); raw != nil {
			n := *raw.(*protocol.Node)
			n.LastSeen = w.cmd.Time
			n.ModifyIndex = w.index
			w.insert(tableNodes, &n)
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
			if old.State == protocol.ReplicaFailed && rep.State == protocol.ReplicaStopped && w.since(2) {
				// The agent stopping a failed replica, as told: it stays a
				// failure, which the scheduler's backoff counts.
				r.State, r.Message = old.State, old.Message
			}
			if rep.Ports != nil {
				r.Ports = rep.Ports
			}
			if !rep.StartedAt.IsZero() {
				r.StartedAt = rep.StartedAt
			}
			switch {
			case r.State == protocol.ReplicaHealthy && old.State != protocol.ReplicaHealthy:
				r.HealthySince = w.cmd.Time
				if w.since(6) {
					r.WasHealthy = true
				}
			case r.State != protocol.ReplicaHealthy:
				r.HealthySince = time.Time{}
			}
			if sameObservation(old, &r) {
				continue
			}
			r.ModifyIndex = w.index
			w.insert(tableReplicas, &r)
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
				if in := w.first(tableInstances, id); in != nil && (r.Terminal() || !w.since(4) || w.awaited(in.(*protocol.Instance), awaited)) {
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

// awaited reports whether the scheduler waits for an instance's replicas
// to start or turn healthy: a deployment in progress, a version not yet
// stable, a replica it wants running that is still to be replaced (of an
// older version or restart epoch, on a draining node or outside the
// tenant's region: those stop once their replacements are healthy), or
// more or fewer replicas wanted running than the instance asks for.
// Otherwise a replica that starts or turns healthy changes nothing the
// scheduler decides, and is no reason to evaluate; one that ends always
// is. The reasons to replace are the scheduler's (sched.classify and
// sched.migration): one added there must be added here. seen keeps the
// answers of one entry: its reports change no replica's desired state.
func (w *writer) awaited(in *protocol.Instance, seen map[string]bool) bool {
	if v, ok := seen[in.ID]; ok {
		return v
	}
	v := in.Deployment != nil && in.Deployment.State == protocol.DeploymentRunning || in.StableVersion != in.Version
	if !v {
		snap := w.snap()
		tenant := snap.Tenant(in.Tenant)
		run := 0
		for _, r := range snap.Replicas(in.ID) {
			if r.Desired != protocol.DesiredRun {
				continue
			}
			run++
			if replaced(snap, tenant, in, r) {
				v = true
				break
			}
		}
		v = v || run != WantedReplicas(in, tenant != nil && tenant.State == protocol.TenantSuspended)
	}
	seen[in.ID] = v
	return v
}

// replaced reports whether the scheduler replaces a replica it wants
// running, create before destroy: one of another version or restart
// epoch than the instance's, or on a node that drains or lies outside the
// tenant's region.
func replaced(snap *Snapshot, tenant *protocol.Tenant, in *protocol.Instance, r *protocol.Replica) bool {
	if r.Version != in.Version || r.Epoch != in.RestartEpoch {
		return true
	}
	if r.Node == "" {
		return false
	}
	n := snap.Node(r.Node)
	if n == nil {
		return false
	}
	return n.Drain != nil || n.Status == protocol.NodeDraining || tenant != nil && tenant.Region != "" && n.Region != tenant.Region
}

// sameObservation reports whether two versions of a replica show the same
// agent observation, so that a repeated report writes nothing.
func sameObservation(a, b *protocol.Replica) bool {
	return a.State == b.State && a.Health == b.Health && a.Restarts == b.Restarts &&
		a.Message == b.Message && a.StartedAt.Equal(b.StartedAt) && maps.Equal(a.Ports, b.Ports)
}
