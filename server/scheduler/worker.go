package scheduler

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/internal/uid"
	"github.com/drover-dev/drover/server/state"
)

// WorkerConfig configures a Worker. Zero values take the defaults.
type WorkerConfig struct {
	Store *state.Store
	// Propose commits a plan through Raft (command state.CmdPlanApply) and
	// returns the index it was committed at.
	Propose func(ctx context.Context, p *state.Plan) (uint64, error)
	Logger  hclog.Logger
	// Clock is the time plans are made at; time.Now by default.
	Clock func() time.Time
	// IDs makes ids of new replicas and deployments; uid.New by default.
	IDs func() string
	// ErrorBackoff is how long an evaluation whose plan could not be
	// committed waits before it is tried again; it doubles with each
	// failure in a row, up to a minute. One second by default.
	ErrorBackoff time.Duration
}

// Worker runs the scheduler on the leader. It reads the pending
// evaluations from the store, schedules them one at a time, so that plans
// never race, and commits each plan before it makes the next. It wakes when
// the evaluations change and when a plan's retry time comes. What it keeps
// in memory (retry times) a new leader does not need: the evaluations stay
// in the state until done, and a new worker evaluates them all at once.
type Worker struct {
	cfg    WorkerConfig
	logger hclog.Logger
	// deferred holds evaluations that wait for a time: until at, unless a
	// newer trigger (an index above index) arrives.
	deferred map[string]deferral
}

type deferral struct {
	index    uint64
	at       time.Time
	failures int
}

// NewWorker returns a worker; Run starts it.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.IDs == nil {
		cfg.IDs = uid.New
	}
	if cfg.ErrorBackoff <= 0 {
		cfg.ErrorBackoff = time.Second
	}
	return &Worker{cfg: cfg, logger: cfg.Logger.Named("scheduler"), deferred: map[string]deferral{}}
}

// Run schedules evaluations until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	w.logger.Debug("scheduler started")
	defer w.logger.Debug("scheduler stopped")
	for ctx.Err() == nil {
		seen := w.cfg.Store.Snapshot().Index(state.TableEvals)
		next := w.round(ctx)
		d := rescan
		if !next.IsZero() {
			d = min(d, next.Sub(w.cfg.Clock()))
		}
		if d <= 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, d)
		w.cfg.Store.Wait(wctx, seen, state.TableEvals)
		cancel()
	}
}

// round evaluates every pending evaluation that is due, and returns when
// the next deferred one is.
func (w *Worker) round(ctx context.Context) (next time.Time) {
	pending := map[string]bool{}
	for _, e := range w.cfg.Store.Snapshot().Evals() {
		if ctx.Err() != nil {
			return time.Time{}
		}
		pending[e.Instance] = true
		if d, ok := w.deferred[e.Instance]; ok && e.Index <= d.index && w.cfg.Clock().Before(d.at) {
			next = earliest(next, d.at)
			continue
		}
		if at := w.evaluate(ctx, e.Instance); !at.IsZero() {
			next = earliest(next, at)
		}
	}
	for id := range w.deferred {
		if !pending[id] {
			delete(w.deferred, id)
		}
	}
	return next
}

// evaluate schedules one instance on a fresh snapshot, so that it sees
// the plans committed before, and commits the plan. It returns when the
// instance wants to be evaluated again, or zero.
func (w *Worker) evaluate(ctx context.Context, instance string) time.Time {
	snap := w.cfg.Store.Snapshot()
	e := snap.Eval(instance)
	if e == nil {
		return time.Time{}
	}
	now := w.cfg.Clock()
	p := Schedule(snap, e, now, w.cfg.IDs)
	failures := w.deferred[instance].failures
	delete(w.deferred, instance)
	if p.Retry && empty(p) {
		// Nothing to write: the evaluation stays in the state, and waits
		// here for its time.
		return w.deferUntil(instance, e.Index, p.RetryAt, now, 0)
	}
	index, err := w.cfg.Propose(ctx, p)
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}
		}
		failures++
		delay := backoff.Exp(w.cfg.ErrorBackoff, time.Minute, failures)
		w.logger.Error("commit plan", "instance", instance, "error", err, "retry_in", delay)
		return w.deferUntil(instance, e.Index, now.Add(delay), now, failures)
	}
	if w.logger.IsDebug() {
		args := []any{"instance", instance, "index", index, "place", len(p.Place), "stop", len(p.Stop)}
		if p.Retry {
			args = append(args, "retry_at", p.RetryAt)
		}
		w.logger.Debug("plan committed", args...)
	}
	if p.Retry {
		return w.deferUntil(instance, index, p.RetryAt, now, 0)
	}
	return time.Time{}
}

// rescan bounds how long the worker sleeps without looking at the
// evaluations: a safety net for a state restored from a snapshot, whose
// index may be lower than the one the worker waits to pass.
const rescan = 30 * time.Second

// minRetry bounds how soon an evaluation is retried, so that a plan that
// asks for a retry in the past cannot spin.
const minRetry = 10 * time.Millisecond

func (w *Worker) deferUntil(instance string, index uint64, at, now time.Time, failures int) time.Time {
	at = later(at, now.Add(minRetry))
	w.deferred[instance] = deferral{index: index, at: at, failures: failures}
	return at
}

// empty reports whether a plan changes nothing but its evaluation.
func empty(p *state.Plan) bool {
	return len(p.Place) == 0 && len(p.Stop) == 0 && p.Deployment == nil && p.StableVersion == 0 &&
		p.Rollback == 0 && len(p.Events) == 0
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}
