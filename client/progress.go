package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// Progress is an instance's progress towards running one version of its
// spec healthy: after a create, an update, a scale, a start or a restart;
// or, after a stop, towards running nothing.
type Progress struct {
	Instance *protocol.Instance
	Replicas []*protocol.Replica
	// Version is the instance version awaited.
	Version uint64
	// Counts of the replicas of Version the scheduler wants running.
	Desired int
	Placed  int // on a node
	Running int // the process runs (healthy or not)
	Healthy int
	// Live counts the placed replicas, of any version, whose process
	// has not ended: what still runs after a stop.
	Live int
	// Failed are the replicas of Version that failed; their Message says why.
	Failed []*protocol.Replica

	done      bool
	promotion bool
	err       *ProgressError
}

// ProgressError says why an instance cannot reach its version any more.
type ProgressError struct {
	Reason string
	// Failed are the replicas of the awaited version that failed.
	Failed []*protocol.Replica
}

func (e *ProgressError) Error() string { return e.Reason }

// Done reports whether every desired replica of Version is healthy and no
// deployment is running; when none is desired, whether none runs.
func (r *Progress) Done() bool { return r.done }

// AwaitingPromotion reports whether the deployment's canaries are healthy
// and it waits for someone to promote them (the spec does not promote
// automatically).
func (r *Progress) AwaitingPromotion() bool { return r.promotion }

// Err is why the instance cannot reach its version any more, or nil while it can.
func (r *Progress) Err() error {
	if r.err == nil {
		return nil
	}
	return r.err
}

// NewProgress judges the progress of instance in, with replicas reps,
// towards running version healthy.
func NewProgress(in *protocol.Instance, reps []*protocol.Replica, version uint64) *Progress {
	r := &Progress{Instance: in, Replicas: reps, Version: version, Desired: in.Replicas}
	if in.Stopped {
		r.Desired = 0
	}
	dep := in.Deployment
	if in.Status != nil && in.Status.Deployment != nil {
		dep = in.Status.Deployment
	}
	// Once the deployment of version succeeded, the replicas the scheduler
	// keeps run its spec, even those of an older version with the same
	// spec (after a rollback to it), which it did not replace.
	succeeded := in.Version == version && dep != nil && dep.ToVersion == version && dep.State == protocol.DeploymentSuccessful
	active := 0 // replicas of version that may still become healthy
	healthyCanaries := 0
	wanted := 0 // replicas of any version the scheduler still wants running
	for _, rep := range reps {
		if rep.Node != "" && !rep.Terminal() {
			r.Live++
		}
		if rep.Desired == protocol.DesiredRun && !rep.Terminal() {
			wanted++
		}
		// A restart replaces the replicas of earlier epochs, of the same
		// version.
		if rep.Version != version && !succeeded || rep.Desired != protocol.DesiredRun || rep.Epoch != in.RestartEpoch {
			continue
		}
		if rep.Node != "" {
			r.Placed++
		}
		switch rep.State {
		case protocol.ReplicaHealthy:
			r.Healthy++
			r.Running++
			if rep.Canary {
				healthyCanaries++
			}
		case protocol.ReplicaRunning, protocol.ReplicaUnhealthy:
			r.Running++
		case protocol.ReplicaFailed:
			r.Failed = append(r.Failed, rep)
		}
		if !rep.Terminal() {
			active++
		}
	}
	fail := func(format string, args ...any) *Progress {
		r.err = &ProgressError{Reason: fmt.Sprintf(format, args...), Failed: r.Failed}
		return r
	}
	for _, rep := range reps {
		if rep.Version == version && rep.Desired == protocol.DesiredRun && rep.Node == "" &&
			strings.HasPrefix(rep.Message, protocol.NoNodeLargeEnough) {
			return fail("replica %s cannot be placed: %s; it stays pending until a node large enough joins (or give it less)", rep.ID, rep.Message)
		}
	}
	if in.Version != version {
		// The rollback is a new version: the deployment read is the one
		// that failed and rolled back, or already the rollback's own.
		if dep != nil && (dep.Rollback || dep.ToVersion == version && dep.State == protocol.DeploymentRolledBack) {
			return fail("version %d was rolled back: instance %s is at version %d%s", version, in.ID, in.Version, suffix(dep.Message))
		}
		return fail("instance %s was changed to version %d while waiting for version %d", in.ID, in.Version, version)
	}
	if dep != nil && dep.ToVersion == version {
		switch dep.State {
		case protocol.DeploymentFailed, protocol.DeploymentRolledBack, protocol.DeploymentCancelled:
			return fail("deployment %s of version %d %s%s", dep.ID, version, strings.ReplaceAll(dep.State, "_", " "), suffix(dep.Message))
		}
	}
	if in.Status != nil && in.Status.State == protocol.InstanceFailed {
		return fail("instance %s failed: %d of %d replicas failed", in.ID, len(r.Failed), r.Desired)
	}
	if dep != nil && dep.State == protocol.DeploymentRunning {
		// The deployment decides, and its deadline bounds it; but canaries
		// waiting for a person to promote them would wait forever.
		r.promotion = dep.ToVersion == version && dep.Canaries > 0 && !dep.Promoted &&
			!in.Spec.Update.AutoPromote && healthyCanaries >= dep.Canaries
		return r
	}
	// Done once the scheduler wants no more than Desired (a scale down
	// or a restart has stopped the others), and, with none desired
	// (stopped, or scaled to 0), once none runs.
	if r.Healthy >= r.Desired && wanted <= r.Desired && (r.Desired > 0 || r.Live == 0) {
		r.done = true
		return r
	}
	if len(r.Failed) > 0 && active < r.Desired {
		return fail("%d of %d replicas of %s version %d failed", len(r.Failed), r.Desired, in.ID, version)
	}
	return r
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// maxBlock bounds one blocking query of WatchProgress.
const maxBlock = 30 * time.Second

// retryDelay is the pause before a watch retries after a transient error.
const retryDelay = 500 * time.Millisecond

// WatchProgress follows an instance with blocking queries until version is
// healthy or its canaries await promotion (nil), cannot become healthy (a
// *ProgressError), or ctx ends (its error). fn, when not nil, sees each state read. The last state read is
// returned in every case (nil if none was).
func (c *Client) WatchProgress(ctx context.Context, tenant, name string, version uint64, fn func(*Progress)) (*Progress, error) {
	var last *Progress
	var index uint64
	for {
		wait := maxBlock
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		in, m, err := c.Instance(ctx, tenant, name, &QueryOptions{Index: index, Wait: wait})
		var reps []*protocol.Replica
		if err == nil {
			reps, _, err = c.Replicas(ctx, tenant, name, nil)
		}
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			if !Retryable(err) {
				return last, err
			}
			if err := sleep(ctx, retryDelay); err != nil {
				return last, err
			}
			continue
		}
		// A smaller index means the state was restored or rebuilt: start over.
		index = m.Index
		if index == 0 {
			// No index to block on: poll.
			if err := sleep(ctx, retryDelay); err != nil {
				return last, err
			}
		}
		last = NewProgress(in, reps, version)
		if fn != nil {
			fn(last)
		}
		if last.Done() || last.AwaitingPromotion() {
			return last, nil
		}
		if err := last.Err(); err != nil {
			return last, err
		}
	}
}

// Retryable reports whether a request that failed with err may succeed if
// sent again: the server was unavailable (no leader yet, a leader change)
// or could not be reached.
func Retryable(err error) bool {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code == protocol.CodeUnavailable
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
