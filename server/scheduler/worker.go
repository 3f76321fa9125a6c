package scheduler

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/internal/uid"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// WorkerConfig configures a Worker. Zero values take the defaults.
type WorkerConfig struct {
	Store *state.Store
	// Propose commits a plan through Raft (command state.CmdPlanApply) and
	// returns the index it was committed at.
	Propose func(ctx context.Context, p *state.Plan) (uint64, error)
	// ProposeAll, when set, commits plans in order without waiting for
	// one before proposing the next (cluster.ProposeAll); without it,
	// Propose commits them one by one.
	ProposeAll func(ctx context.Context, ps []*state.Plan) []Committed
	Logger     hclog.Logger
	// Clock is the time plans are made at; time.Now by default.
	Clock func() time.Time
	// IDs makes ids of new replicas and deployments; uid.New by default.
	IDs func() string
	// ErrorBackoff is how long an evaluation whose plan could not be
	// committed waits before it is tried again; it doubles with each
	// failure in a row, up to a minute. One second by default.
	ErrorBackoff time.Duration
	// Observe, when set, is told what each batch came to (the server's
	// metrics).
	Observe func(Batch)
	// Gather is how long the worker waits, when evaluations arrive after
	// it was idle and after a batch smaller than the largest, for more to
	// come before it schedules: the plans of those that came together are
	// committed in one Raft round, where one round each would delay every
	// write queued behind them (a create, its plan, the next create, its
	// plan...). Under load, batches are full and nothing waits.
	// DefaultGather when zero; negative for none.
	Gather time.Duration
}

// DefaultGather is WorkerConfig.Gather's default: small beside the time
// to start a process, and a few Raft rounds long.
const DefaultGather = 10 * time.Millisecond

// Batch is what one batch of evaluations came to.
type Batch struct {
	Evaluated int // evaluations scheduled
	Committed int // plans committed
	Failed    int // plans that could not be committed, to be retried
	Placed    int // replicas placed by the committed plans
	Stopped   int // replicas stopped by the committed plans
	// Commit is how long the batch's plans took from proposal to commit.
	Commit time.Duration
}

// Committed is the outcome of one plan of ProposeAll.
type Committed struct {
	Index uint64
	Err   error
}

// maxBatch bounds the evaluations scheduled together before their plans
// are committed. Each batch is scheduled, then committed, then the next
// one scheduled: at 256 (was 64, hashicorp/raft's entries per append) a
// node's loss or a burst of creates takes a quarter of the rounds, and
// Raft still sends the plans in appends of 64, one after the other
// (placement of 10,000 replicas 9.3-10.3 -> 7.8 s, BENCHMARKS.md).
const maxBatch = 256

// Worker runs the scheduler on the leader. It reads the pending
// evaluations from the store and schedules them one at a time, so that
// plans never race: each on a fork of the state where the plans made
// before it in the same batch are played already, so that it sees them.
// Then it commits the batch's plans, in that order. It wakes when
// the evaluations change and when a plan's retry time comes. What it keeps
// in memory (retry times) a new leader does not need: the evaluations stay
// in the state until done, and a new worker evaluates them all at once.
type Worker struct {
	cfg    WorkerConfig
	logger hclog.Logger
	// deferred holds evaluations that wait for a time: until at, while
	// the instance's evaluation is the one deferred (of index index).
	deferred map[string]deferral
}

// deferral is an evaluation put off until at. Any other evaluation of the
// instance is due at once: a newer trigger, and also one that arrived
// while a plan was made, which the FSM keeps with its own index, below the
// plan's (a deferral after a commit holds the plan's index).
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
	if cfg.Gather == 0 {
		cfg.Gather = DefaultGather
	}
	if cfg.ProposeAll == nil {
		propose := cfg.Propose
		cfg.ProposeAll = func(ctx context.Context, ps []*state.Plan) []Committed {
			out := make([]Committed, len(ps))
			for i, p := range ps {
				out[i].Index, out[i].Err = propose(ctx, p)
			}
			return out
		}
	}
	return &Worker{cfg: cfg, logger: cfg.Logger.Named("scheduler"), deferred: map[string]deferral{}}
}

// Run schedules evaluations until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	w.logger.Debug("scheduler started")
	defer w.logger.Debug("scheduler stopped")
	for ctx.Err() == nil {
		seen := w.cfg.Store.Snapshot().Index(state.TableEvals)
		next, n := w.round(ctx)
		if n > 0 && n < maxBatch {
			w.gather(ctx) // a small batch: let the next one grow
		}
		d := rescan
		if !next.IsZero() {
			d = min(d, next.Sub(w.cfg.Clock()))
		}
		if d <= 0 || w.cfg.Store.Snapshot().Index(state.TableEvals) > seen {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, d)
		w.cfg.Store.Wait(wctx, seen, state.TableEvals)
		cancel()
		w.gather(ctx)
	}
}

// gather waits Gather for more evaluations to arrive.
func (w *Worker) gather(ctx context.Context) {
	if w.cfg.Gather <= 0 {
		return
	}
	t := time.NewTimer(w.cfg.Gather)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// round evaluates every pending evaluation that is due, in batches, and
// returns when the next deferred one is, and how many it evaluated.
func (w *Worker) round(ctx context.Context) (next time.Time, evaluated int) {
	pending := map[string]bool{}
	var due []string
	for _, e := range w.cfg.Store.Snapshot().Evals() {
		pending[e.Instance] = true
		if d, ok := w.deferred[e.Instance]; ok && e.Index == d.index && w.cfg.Clock().Before(d.at) {
			next = earliest(next, d.at)
			continue
		}
		due = append(due, e.Instance)
	}
	evaluated = len(due)
	for len(due) > 0 && ctx.Err() == nil {
		n := min(len(due), maxBatch)
		if at := w.evaluate(ctx, due[:n]); !at.IsZero() {
			next = earliest(next, at)
		}
		due = due[n:]
	}
	for id := range w.deferred {
		if !pending[id] {
			delete(w.deferred, id)
		}
	}
	if ctx.Err() != nil {
		return time.Time{}, evaluated
	}
	return next, evaluated
}

// evaluate schedules a batch of instances on a fork of the current state,
// each seeing the plans of the ones before, and commits the plans in that
// order. It returns when one of them wants to be evaluated again, or zero.
func (w *Worker) evaluate(ctx context.Context, instances []string) (next time.Time) {
	began := time.Now()
	fork := w.cfg.Store.Fork()
	now := w.cfg.Clock()
	type made struct {
		instance string
		eval     uint64
		failures int
		plan     *state.Plan
	}
	var batch []made
	var nodes *nodeTable // read once per batch, then refreshed after each plan
	var stats Batch
	if w.cfg.Observe != nil {
		defer func() { w.cfg.Observe(stats) }()
	}
	for _, instance := range instances {
		snap := fork.Snapshot()
		e := snap.Eval(instance)
		if e == nil {
			continue
		}
		stats.Evaluated++
		if nodes == nil {
			nodes = newNodeTable(snap)
		}
		p := schedule(snap, e, now, w.cfg.IDs, nodes)
		failures := w.deferred[instance].failures
		delete(w.deferred, instance)
		if p.Retry && empty(p) {
			// Nothing to write: the evaluation stays in the state, and
			// waits here for its time.
			next = earliest(next, w.deferUntil(instance, e.Index, p.RetryAt, now, 0))
			continue
		}
		// The FSM answers the same when the plan is committed; what it
		// refuses changes nothing, here as there.
		_ = fork.PlayPlan(now, p)
		nodes.refresh(fork.Snapshot(), p)
		batch = append(batch, made{instance: instance, eval: e.Index, failures: failures, plan: p})
	}
	if len(batch) == 0 {
		return next
	}
	plans := make([]*state.Plan, len(batch))
	for i, m := range batch {
		plans[i] = m.plan
	}
	start := time.Now()
	committed := w.cfg.ProposeAll(ctx, plans)
	stats.Commit = time.Since(start)
	w.logger.Debug("batch scheduled and committed", "evaluations", stats.Evaluated, "plans", len(plans),
		"schedule", start.Sub(began), "commit", stats.Commit)
	for i, r := range committed {
		m := batch[i]
		if r.Err != nil {
			stats.Failed++
			if ctx.Err() != nil {
				return time.Time{}
			}
			failures := m.failures + 1
			delay := backoff.Exp(w.cfg.ErrorBackoff, time.Minute, failures)
			w.logger.Error("commit plan", "instance", m.instance, "error", r.Err, "retry_in", delay)
			next = earliest(next, w.deferUntil(m.instance, m.eval, now.Add(delay), now, failures))
			continue
		}
		stats.Committed++
		stats.Placed += len(m.plan.Place)
		stats.Stopped += len(m.plan.Stop)
		if w.logger.IsDebug() {
			args := []any{"instance", m.instance, "index", r.Index, "place", len(m.plan.Place), "stop", len(m.plan.Stop)}
			if m.plan.Retry {
				args = append(args, "retry_at", m.plan.RetryAt)
			}
			w.logger.Debug("plan committed", args...)
		}
		if m.plan.Retry && !w.turnedBack(m.plan) {
			next = earliest(next, w.deferUntil(m.instance, r.Index, m.plan.RetryAt, now, 0))
		}
	}
	return next
}

// turnedBack reports whether the FSM sent a placement of a committed plan
// back to wait: its node went down (or away) before the plan committed.
// The FSM then keeps the evaluation to place it again now; deferred to the
// plan's own retry time (a deployment's healthy deadline, minutes away),
// the replica would wait that long.
func (w *Worker) turnedBack(p *state.Plan) bool {
	snap := w.cfg.Store.Snapshot()
	for _, r := range p.Place {
		if r.Node == "" {
			continue
		}
		if c := snap.Replica(r.ID); c != nil && c.Node == "" && c.Desired == protocol.DesiredRun {
			return true
		}
	}
	return false
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
