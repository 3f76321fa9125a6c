package rollout

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/server/state"
)

// Tick is how often the controller looks at the active rollouts when
// nothing in the state wakes it: windows open, bakes end, start_at comes.
const Tick = time.Second

// Config configures a Controller.
type Config struct {
	Store *state.Store
	// Propose commits a step (command state.CmdRolloutStep).
	Propose func(ctx context.Context, s *state.RolloutStep) error
	Clock   func() time.Time
	Logger  hclog.Logger
}

// Controller moves the active rollouts on, on the leader: whenever the
// instances, tenants or rollouts change, and every Tick. What it decides
// is in the state as soon as it is committed, so a new leader's
// controller carries on where the last one stopped.
type Controller struct {
	cfg    Config
	logger hclog.Logger
}

// NewController returns a controller; Run starts it.
func NewController(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Controller{cfg: cfg, logger: cfg.Logger.Named("rollout")}
}

// Run moves rollouts until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	tables := []string{state.TableRollouts, state.TableInstances, state.TableTenants, state.TableReleases}
	for ctx.Err() == nil {
		seen := c.cfg.Store.Snapshot().Index(tables...)
		c.round(ctx)
		wctx, cancel := context.WithTimeout(ctx, Tick)
		c.cfg.Store.Wait(wctx, seen, tables...)
		cancel()
	}
}

// round steps every active rollout once, each on a fresh snapshot so that
// it sees the upgrades the previous one started.
func (c *Controller) round(ctx context.Context) {
	for _, r := range c.cfg.Store.Snapshot().Rollouts() {
		if ctx.Err() != nil || !r.Active() {
			continue
		}
		snap := c.cfg.Store.Snapshot()
		cur := snap.Rollout(r.ID)
		if cur == nil || !cur.Active() {
			continue
		}
		next, ups, changed := Step(snap, cur, c.cfg.Clock())
		if !changed {
			continue
		}
		if err := c.cfg.Propose(ctx, &state.RolloutStep{Base: cur.ModifyIndex, Rollout: *next, Upgrades: ups}); err != nil {
			if ctx.Err() == nil {
				c.logger.Warn("rollout step not committed; trying again", "rollout", cur.ID, "error", err)
			}
			continue
		}
		if len(ups) > 0 || next.State != cur.State {
			c.logger.Info("rollout step", "rollout", cur.ID, "state", next.State, "wave", next.Waves[next.Wave].Name,
				"upgrades", len(ups), "succeeded", next.Counts.Succeeded, "total", next.Counts.Total)
		}
	}
}
