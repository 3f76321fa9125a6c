package scheduler

import (
	"fmt"

	"github.com/drover-dev/drover/protocol"
)

// Deployments, in the spirit of Nomad's:
//
//   - A deployment starts when the instance has a new version and live
//     replicas run another spec, and for the instance's first version. New
//     replicas are placed max_parallel at a time beside the old ones; an old
//     one stops only when a new one has been healthy for min_healthy_time
//     (create before destroy).
//   - With canaries, that many new replicas are placed first, beside all the
//     old ones; once they are healthy for min_healthy_time the deployment is
//     promoted, automatically with auto_promote, else by
//     POST .../deployment/promote. Until then, replicas that are missing
//     are replaced with the old version.
//   - It fails when a replica of the new version fails, or is not healthy
//     within healthy_deadline of its placement. With auto_rollback it rolls
//     back to the instance's stable version (as a new version, which then
//     rolls out like any other, without canaries); a rollback that fails
//     does not roll back again. Without, the roll stops where it is.
//   - It succeeds, and the version becomes the instance's stable one, when
//     every wanted replica runs the new spec and is healthy.
//
// A restart and a drain roll the same way but are no deployment: they
// replace replicas at the same version, and cannot fail or roll back.

// running reports whether the instance has a deployment in progress.
func (s *sched) running() bool {
	return s.dep != nil && s.dep.State == protocol.DeploymentRunning
}

// deployment starts, fails or rolls back the instance's deployment, and
// returns how replicas of other versions are to be treated.
func (s *sched) deployment(alive []*protocol.Replica, want int) mode {
	in := s.in
	// A deployment cancelled by a stop (or a suspension) starts again
	// when replicas are wanted again.
	if s.dep == nil || s.dep.ToVersion != in.Version || s.dep.State == protocol.DeploymentCancelled {
		var from uint64
		for _, r := range alive {
			if !s.current(r) {
				from = max(from, r.Version)
			}
		}
		prev := s.dep
		if s.running() {
			s.setDeployment(protocol.DeploymentCancelled, fmt.Sprintf("superseded by version %d", in.Version))
		}
		// The instance's first version is a deployment too (from version
		// 0), so that its healthy_deadline holds; later, a version no live
		// replica runs another spec of needs none.
		first := prev == nil && in.StableVersion == 0
		// A spec that never was stable is deployed, with its deadline and
		// rollback, even when no live replica runs another one.
		st := in.StableVersion
		unproven := st != 0 && st != in.Version && s.spec(in.ID, st) != nil && !s.current(&protocol.Replica{Version: st})
		if from == 0 && !first && !unproven {
			return modeRolling
		}
		if st := in.StableVersion; st != 0 && st != in.Version && s.spec(in.ID, st) != nil {
			from = st
		}
		d := &protocol.Deployment{
			ID: s.ids(), FromVersion: from, ToVersion: in.Version, State: protocol.DeploymentRunning,
			Canaries:  min(in.Spec.Update.Canaries, want),
			Rollback:  prev != nil && prev.State == protocol.DeploymentRolledBack && prev.ToVersion+1 == in.Version,
			StartedAt: s.now, UpdatedAt: s.now,
		}
		if d.Rollback || from == 0 {
			d.Canaries = 0
		}
		s.dep, s.depDirty = d, true
		what := "deployment"
		if d.Rollback {
			what = "rollback"
		}
		msg := fmt.Sprintf("%s %s started: %s", what, d.ID, span(d))
		if d.Canaries > 0 {
			msg += fmt.Sprintf(", %d %s first", d.Canaries, plural(d.Canaries, "canary", "canaries"))
		}
		s.event(EventDeployment, "", "", msg)
	}
	d := s.dep
	if d.State != protocol.DeploymentRunning {
		if d.State == protocol.DeploymentFailed {
			return modeHolding
		}
		return modeRolling
	}
	if why := s.failure(alive); why != "" {
		st := in.StableVersion
		if in.Spec.Update.AutoRollback && !d.Rollback && st != 0 && st != in.Version && s.snap.Version(in.ID, st) != nil {
			s.plan.Rollback = st
			s.setDeployment(protocol.DeploymentRolledBack, fmt.Sprintf("%s; rolling back to version %d", why, st))
			return modeRolling
		}
		s.setDeployment(protocol.DeploymentFailed, why)
		return modeHolding
	}
	if d.Canaries > 0 && !d.Promoted {
		return modeCanary
	}
	return modeRolling
}

// failure says why the running deployment fails, or "".
func (s *sched) failure(alive []*protocol.Replica) string {
	to := s.dep.ToVersion
	for _, r := range s.failed {
		if r.Version == to {
			return fmt.Sprintf("replica %s of version %d failed on node %s", r.ID, to, nodeName(s.snap.Node(r.Node), r.Node))
		}
	}
	hd := s.healthyDeadline()
	for _, r := range alive {
		if r.Version != to || r.State == protocol.ReplicaHealthy || r.WasHealthy {
			continue // healthy within its deadline once: it met it
		}
		start := r.CreatedAt
		if !r.PlacedAt.IsZero() {
			start = r.PlacedAt // the deadline runs from its placement
		}
		deadline := start.Add(hd)
		if !s.now.Before(deadline) {
			return fmt.Sprintf("replica %s of version %d not healthy within %s of its placement", r.ID, to, hd)
		}
		s.retryAt(deadline)
	}
	return ""
}

// promote promotes the deployment once its canaries have been healthy for
// min_healthy_time and auto_promote is set, and reports whether it did.
// Without auto_promote it says it waits for POST .../deployment/promote.
func (s *sched) promote(alive []*protocol.Replica) bool {
	d := s.dep
	var canaries []*protocol.Replica
	settled := 0
	for _, r := range alive {
		if why, _ := s.migration(r); why == "" && s.current(r) {
			canaries = append(canaries, r)
			if s.settled(r) {
				settled++
			}
		}
	}
	if settled < d.Canaries {
		s.retrySettling(canaries)
		s.note(fmt.Sprintf("%d of %d %s healthy", settled, d.Canaries, plural(d.Canaries, "canary", "canaries")))
		return false
	}
	if s.in.Spec.Update.AutoPromote {
		d.Promoted, d.UpdatedAt, s.depDirty = true, s.now, true
		s.note("canaries healthy: promoted automatically")
		s.event(EventDeployment, "", "", fmt.Sprintf("deployment %s promoted: %d %s healthy", d.ID, d.Canaries, plural(d.Canaries, "canary", "canaries")))
		return true
	}
	msg := fmt.Sprintf("%d %s healthy: waiting for promotion", d.Canaries, plural(d.Canaries, "canary", "canaries"))
	if d.Message != msg {
		s.note(msg)
		s.event(EventDeployment, "", "", fmt.Sprintf("deployment %s: %s", d.ID, msg))
	}
	return false
}

// progress ends the deployment when every wanted replica runs the current
// spec and is healthy, and records that version as the stable one;
// otherwise it updates the deployment's progress.
func (s *sched) progress(m mode, want int, good, old []*protocol.Replica) {
	if m == modeCanary {
		return
	}
	healthy, current := 0, 0
	for _, r := range good {
		if s.current(r) {
			current++
			if r.State == protocol.ReplicaHealthy {
				healthy++
			}
		}
	}
	if len(old) == 0 && len(good) == want && current == want && healthy == want {
		if s.in.StableVersion != s.in.Version {
			s.plan.StableVersion = s.in.Version
		}
		if s.running() {
			s.setDeployment(protocol.DeploymentSuccessful, fmt.Sprintf("%d of %d replicas healthy at version %d", healthy, want, s.in.Version))
		}
		return
	}
	if s.running() {
		s.note(fmt.Sprintf("%d of %d replicas healthy at version %d", healthy, want, s.in.Version))
	}
}

// fromVersion is the version replicas are placed at while canaries run:
// the one being replaced, while its spec is kept.
func (s *sched) fromVersion() uint64 {
	if v := s.dep.FromVersion; v != 0 && s.spec(s.in.ID, v) != nil {
		return v
	}
	return s.in.Version
}

// note sets the deployment's message, its progress in the instance status.
func (s *sched) note(msg string) {
	if s.dep.Message != msg {
		s.dep.Message, s.dep.UpdatedAt, s.depDirty = msg, s.now, true
	}
}

// setDeployment ends the deployment, or moves it to a new state, with an
// event that says why.
func (s *sched) setDeployment(st, why string) {
	d := s.dep
	d.State, d.Message, d.UpdatedAt = st, why, s.now
	s.depDirty = true
	word := map[string]string{
		protocol.DeploymentSuccessful: "succeeded",
		protocol.DeploymentFailed:     "failed",
		protocol.DeploymentRolledBack: "failed",
		protocol.DeploymentCancelled:  "cancelled",
	}[st]
	s.event(EventDeployment, "", "", fmt.Sprintf("deployment %s (%s) %s: %s", d.ID, span(d), word, why))
}

// span names the versions a deployment goes between: "version 1 -> 2",
// or "version 1" for an instance's first.
func span(d *protocol.Deployment) string {
	if d.FromVersion == 0 {
		return fmt.Sprintf("version %d", d.ToVersion)
	}
	return fmt.Sprintf("version %d -> %d", d.FromVersion, d.ToVersion)
}
