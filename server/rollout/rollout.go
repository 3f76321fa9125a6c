// Package rollout plans and moves fleet-wide upgrades of a product's
// instances to one release, in waves, within tenants' maintenance windows.
// Like the scheduler it is a pure function of a state snapshot and a time:
// New lays a rollout out (and is the dry run), Step moves it on. The
// Controller runs Step on the leader and commits what it decides as one
// Raft command per step, so that a new leader picks the rollout up from
// the state.
package rollout

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/catalog"
	"github.com/drover-dev/drover/server/state"
)

// EstimatedUpgrade is how long the calendar assumes one instance's upgrade
// takes, from its start to its deployment's end: the ETAs are a forecast,
// refreshed with every step.
const EstimatedUpgrade = 2 * time.Minute

// Staging and production are the environments staging_first pairs.
const (
	envStaging    = "staging"
	envProduction = "production"
)

// New lays out a rollout of req over the state at now: the instances it
// takes, their waves, those it skips and why, and the calendar. It checks
// what req names against the state (400 naming the field) and changes
// nothing: it is also the dry run.
func New(snap *state.Snapshot, req protocol.RolloutRequest, id string, now time.Time) (*protocol.Rollout, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	p := snap.Product(req.Product)
	if p == nil {
		return nil, protocol.FieldError("product", "unknown product %q", req.Product)
	}
	rel := snap.Release(req.Product, req.Release)
	if rel == nil {
		return nil, protocol.FieldError("release", "product %s has no release %q", req.Product, req.Release)
	}
	if rel.State != protocol.ReleaseAvailable {
		return nil, protocol.FieldError("release", "release %s is %s: roll out an available release", rel.Version, rel.State)
	}
	if err := checkTenants(snap, "selector", &req.Selector); err != nil {
		return nil, err
	}
	if req.Selector.Channel != "" {
		if _, ok := p.Channels[req.Selector.Channel]; !ok {
			return nil, protocol.FieldError("selector.channel", "product %s has no channel %q", p.Name, req.Selector.Channel)
		}
	}
	waves := req.Waves
	if len(waves) == 0 {
		waves = []protocol.Wave{{Name: "all"}}
	}
	for i := range waves {
		if err := checkTenants(snap, fmt.Sprintf("waves[%d].selector", i), &waves[i].Selector); err != nil {
			return nil, err
		}
	}
	r := &protocol.Rollout{ID: id, RolloutRequest: req, State: protocol.RolloutRunning, Approved: 1, CreatedAt: now, UpdatedAt: now}
	r.Waves = waves
	if !req.StartAt.IsZero() && req.StartAt.After(now) {
		r.State = protocol.RolloutScheduled
	} else {
		r.WaveStartedAt = now
	}
	took := make([]int, len(waves))
	for _, in := range snap.ProductInstances(req.Product) {
		t := snap.Tenant(in.Tenant)
		if t == nil || !matches(&req.Selector, in, t) {
			continue
		}
		wave := -1
		for i := range waves {
			sel := &waves[i].Selector
			if sel.IsZero() || !matches(sel, in, t) {
				continue
			}
			if wave >= 0 {
				return nil, protocol.FieldError(fmt.Sprintf("waves[%d].selector", i), "overlaps wave %s: both select %s", waves[wave].Name, in.ID)
			}
			wave = i
		}
		if wave < 0 {
			wave = slices.IndexFunc(waves, func(w protocol.Wave) bool { return w.Selector.IsZero() })
		}
		ri := protocol.RolloutInstance{ID: in.ID, Tenant: in.Tenant, Environment: in.Environment, Wave: max(wave, 0),
			From: in.Release, State: protocol.UpgradePending}
		switch {
		case wave < 0:
			ri.State, ri.Reason = protocol.UpgradeSkipped, "in no wave"
		case in.Pinned:
			ri.State, ri.Reason = protocol.UpgradeSkipped, "pinned"
		case in.Release == req.Release:
			ri.State, ri.Reason = protocol.UpgradeSkipped, "already on "+req.Release
		default:
			if ok, err := rel.Upgradable(in.Release); err != nil || !ok {
				ri.State, ri.Reason = protocol.UpgradeSkipped, "not in upgrade_from "+rel.UpgradeFrom
			}
		}
		if wave >= 0 {
			took[wave]++
		}
		r.Instances = append(r.Instances, ri)
	}
	if len(r.Instances) == 0 {
		return nil, protocol.FieldError("selector", "selects no instance of product %s", req.Product)
	}
	if len(r.Instances) > protocol.MaxRolloutInstances {
		return nil, protocol.FieldError("selector", "selects %d instances, over the limit of %d", len(r.Instances), protocol.MaxRolloutInstances)
	}
	for i, w := range waves {
		if !w.Selector.IsZero() && took[i] == 0 {
			return nil, protocol.FieldError(fmt.Sprintf("waves[%d].selector", i), "wave %s selects no instance", w.Name)
		}
	}
	sort.SliceStable(r.Instances, func(a, b int) bool { return r.Instances[a].Wave < r.Instances[b].Wave })
	c := &step{snap: snap, r: r, now: now, rel: rel}
	c.reasons()
	c.calendar()
	r.Recount()
	return r, nil
}

// checkTenants refuses a selector naming tenants that do not exist.
func checkTenants(snap *state.Snapshot, field string, s *protocol.RolloutSelector) error {
	for i, name := range s.Tenants {
		if snap.Tenant(name) == nil {
			return protocol.FieldError(fmt.Sprintf("%s.tenants[%d]", field, i), "unknown tenant %q", name)
		}
	}
	return nil
}

// matches reports whether a selector takes an instance of tenant t.
func matches(s *protocol.RolloutSelector, in *protocol.Instance, t *protocol.Tenant) bool {
	if len(s.Tenants) > 0 && !slices.Contains(s.Tenants, in.Tenant) {
		return false
	}
	if len(s.Environments) > 0 && !slices.Contains(s.Environments, in.Environment) {
		return false
	}
	for k, v := range s.TenantLabels {
		if t.Labels[k] != v {
			return false
		}
	}
	return s.Channel == "" || in.Channel == s.Channel
}

// Step moves a rollout on from the state at now: it records how the
// upgrades in progress ended, opens the next wave when the last one is
// done and baked (and approved), and starts the upgrades that may start.
// It returns the rollout as it should be, the instance updates to commit
// with it, and whether anything but the forecast changed.
func Step(snap *state.Snapshot, cur *protocol.Rollout, now time.Time) (*protocol.Rollout, []state.InstanceUpdate, bool) {
	r := clone(cur)
	if !r.Active() {
		return r, nil, false
	}
	rel := snap.Release(r.Product, r.Release)
	c := &step{snap: snap, r: r, now: now, rel: rel}
	c.run()
	r.Recount()
	changed := !sameBut(cur, r)
	if changed {
		r.UpdatedAt = now
	}
	return r, c.upgrades, changed
}

// step is one move of a rollout.
type step struct {
	snap     *state.Snapshot
	r        *protocol.Rollout
	now      time.Time
	rel      *protocol.Release
	upgrades []state.InstanceUpdate
}

func (c *step) run() {
	r := c.r
	if r.WaveStartedAt.IsZero() && !r.StartAt.IsZero() && c.now.Before(r.StartAt) {
		// Not started yet, also after a pause and a resume before start_at.
		r.State = protocol.RolloutScheduled
		c.reasons()
		c.calendar()
		return
	}
	if r.State == protocol.RolloutScheduled {
		r.State, r.WaveStartedAt = protocol.RolloutRunning, c.now
	}
	c.observe()
	r.Recount()
	if f := r.Failures(); f-r.FailureBase >= r.MaxFailures {
		r.State = protocol.RolloutPaused
		r.Message = fmt.Sprintf("paused after %d failed upgrades (max_failures %d); resume or cancel", f-r.FailureBase, r.MaxFailures)
		c.calendar()
		return
	}
	switch {
	case c.rel == nil:
		r.State, r.Message = protocol.RolloutPaused, "release "+r.Release+" is gone"
		return
	case c.rel.State != protocol.ReleaseAvailable:
		r.State, r.Message = protocol.RolloutPaused, "release "+r.Release+" is "+c.rel.State+": no more upgrades to it"
		return
	}
	c.advanceWave()
	if r.State == protocol.RolloutRunning {
		c.start()
	}
	c.reasons()
	c.calendar()
}

// observe records how upgrades in progress ended and drops instances that
// went away.
func (c *step) observe() {
	for i := range c.r.Instances {
		ri := &c.r.Instances[i]
		if ri.Done() {
			continue
		}
		in := c.snap.Instance(ri.ID)
		if in == nil {
			c.finish(ri, protocol.UpgradeSkipped, "instance deleted")
			continue
		}
		if ri.State != protocol.UpgradeUpgrading {
			if in.Pinned {
				c.finish(ri, protocol.UpgradeSkipped, "pinned")
			}
			continue
		}
		d := in.Deployment
		t := c.snap.Tenant(in.Tenant)
		atRelease := in.Version >= ri.Version && in.Release == c.r.Release
		switch {
		case d != nil && d.ToVersion == ri.Version && d.State == protocol.DeploymentSuccessful:
			c.finish(ri, protocol.UpgradeSucceeded, "")
		case d != nil && d.ToVersion == ri.Version && d.State == protocol.DeploymentRolledBack:
			c.finish(ri, protocol.UpgradeRolledBack, "rolled back: "+d.Message)
		case d != nil && d.Rollback && d.ToVersion == ri.Version+1:
			// the rollback's own deployment already replaced the failed one
			c.finish(ri, protocol.UpgradeRolledBack, "rolled back")
		case in.Version > ri.Version && in.Release != c.r.Release:
			c.finish(ri, protocol.UpgradeFailed, "changed to release "+in.Release+" during its upgrade")
		case d != nil && d.ToVersion == ri.Version && (d.State == protocol.DeploymentFailed || d.State == protocol.DeploymentCancelled):
			c.finish(ri, protocol.UpgradeFailed, "deployment "+d.State+": "+d.Message)
		case atRelease && in.StableVersion >= ri.Version:
			// a later version at the release (the tenant's own change) or
			// one that needed no deployment is stable
			c.finish(ri, protocol.UpgradeSucceeded, "")
		case atRelease && state.WantedReplicas(in, t != nil && t.State == protocol.TenantSuspended) == 0:
			c.finish(ri, protocol.UpgradeSucceeded, "nothing running: starts on "+c.r.Release)
		}
	}
}

func (c *step) finish(ri *protocol.RolloutInstance, st, reason string) {
	ri.State, ri.Reason, ri.FinishedAt, ri.ETA = st, reason, c.now, time.Time{}
}

// advanceWave ends the rollout after its last wave, or opens the next wave
// once the current one is done, baked and, with manual approval, approved.
func (c *step) advanceWave() {
	r := c.r
	for {
		if !c.waveDone(r.Wave) {
			r.State, r.Message = protocol.RolloutRunning, ""
			return
		}
		if r.WaveEndedAt.IsZero() {
			r.WaveEndedAt = c.now
		}
		if r.Wave == len(r.Waves)-1 {
			r.State = protocol.RolloutSucceeded
			r.Recount()
			if f := r.Failures(); f > 0 {
				r.State, r.Message = protocol.RolloutFailed, protocol.Count(f, "instance")+" failed to upgrade"
			}
			return
		}
		bake := r.Waves[r.Wave].Bake.D()
		if !c.waveUpgraded(r.Wave) {
			bake = 0 // nothing of the wave changed: nothing to bake
		}
		if c.now.Before(r.WaveEndedAt.Add(bake)) {
			r.State = protocol.RolloutWaiting
			r.Message = fmt.Sprintf("wave %s baking until %s", r.Waves[r.Wave].Name, r.WaveEndedAt.Add(bake).Format(time.RFC3339))
			return
		}
		if r.Approval == protocol.ApprovalManual && r.Approved <= r.Wave+1 {
			r.State = protocol.RolloutWaiting
			r.Message = fmt.Sprintf("wave %s waits for approval (drover rollout approve %s)", r.Waves[r.Wave+1].Name, r.ID)
			return
		}
		r.Wave++
		r.WaveStartedAt, r.WaveEndedAt = c.now, time.Time{}
	}
}

func (c *step) waveDone(w int) bool {
	for i := range c.r.Instances {
		if ri := &c.r.Instances[i]; ri.Wave == w && !ri.Done() {
			return false
		}
	}
	return true
}

// waveUpgraded reports whether any instance of wave w was upgraded.
func (c *step) waveUpgraded(w int) bool {
	for i := range c.r.Instances {
		if ri := &c.r.Instances[i]; ri.Wave == w && ri.Version != 0 {
			return true
		}
	}
	return false
}

// start begins the upgrades of the current wave that may begin now, up to
// max_concurrent at once.
func (c *step) start() {
	r := c.r
	slots := r.MaxConcurrent
	for i := range r.Instances {
		if r.Instances[i].State == protocol.UpgradeUpgrading {
			slots--
		}
	}
	for i := range r.Instances {
		ri := &r.Instances[i]
		if ri.Wave != r.Wave || (ri.State != protocol.UpgradePending && ri.State != protocol.UpgradeWaiting) {
			continue
		}
		if why, _ := c.blocked(ri); why != "" {
			continue
		}
		if slots <= 0 {
			return
		}
		in := c.snap.Instance(ri.ID)
		up, err := upgrade(c.snap, in, r.Release)
		if err != nil {
			c.finish(ri, protocol.UpgradeFailed, err.Error())
			continue
		}
		c.upgrades = append(c.upgrades, up)
		ri.State, ri.Reason, ri.ETA = protocol.UpgradeUpgrading, "", time.Time{}
		ri.Version, ri.StartedAt = in.Version+1, c.now
		slots--
	}
}

// upgrade is the instance update that moves in to release: its spec
// resolved again from the product, its parameters and plan kept, and the
// channel it follows kept (the rollout is what moves a channel's
// instances).
func upgrade(snap *state.Snapshot, in *protocol.Instance, release string) (state.InstanceUpdate, error) {
	req := protocol.InstanceRequest{Name: in.Name, Product: in.Product, Release: release, Plan: in.Plan}
	ref, spec, err := catalog.Resolve(snap, &req, in)
	if err != nil {
		return state.InstanceUpdate{}, err
	}
	ref.Channel = in.Channel
	spec.User = in.Spec.User
	return state.InstanceUpdate{Tenant: in.Tenant, Name: in.Name, Spec: spec.WithDefaults(), Plan: in.Plan,
		Environment: in.Environment, ProductRef: ref}, nil
}

// blocked says why an instance may not start its upgrade now, and when it
// may (zero when unknown): its tenant's window is closed, or its tenant's
// staging instance does not yet run the release healthy.
func (c *step) blocked(ri *protocol.RolloutInstance) (string, time.Time) {
	r := c.r
	if r.MaintenanceWindows {
		if t := c.snap.Tenant(ri.Tenant); t != nil && t.MaintenanceWindow != nil {
			if open, next := t.MaintenanceWindow.Open(c.now); !open {
				return "outside window " + t.MaintenanceWindow.String(), next
			}
		}
	}
	if r.StagingFirst && ri.Environment == envProduction {
		for _, in := range c.snap.Instances(state.InstanceFilter{Tenant: ri.Tenant}) {
			if in.Product != r.Product || in.Environment != envStaging || in.Pinned {
				// A pinned staging instance stays where it is on purpose:
				// it holds no production instance back.
				continue
			}
			if in.Release != r.Release || !healthy(c.snap, in) {
				return "staging not yet healthy on " + r.Release, time.Time{}
			}
		}
	}
	return "", time.Time{}
}

// healthy reports whether an instance runs its current version fully
// healthy: its deployment is over and every replica wanted is healthy.
func healthy(snap *state.Snapshot, in *protocol.Instance) bool {
	st := snap.InstanceStatus(in)
	return st != nil && st.State == protocol.InstanceRunning && in.StableVersion == in.Version
}

// reasons says why each instance that has not started waits.
func (c *step) reasons() {
	r := c.r
	for i := range r.Instances {
		ri := &r.Instances[i]
		if ri.State != protocol.UpgradePending && ri.State != protocol.UpgradeWaiting {
			continue
		}
		why, _ := c.blocked(ri)
		switch {
		case why != "":
			ri.State, ri.Reason = protocol.UpgradeWaiting, why
		case r.State == protocol.RolloutScheduled:
			ri.State, ri.Reason = protocol.UpgradePending, "rollout starts at "+r.StartAt.UTC().Format(time.RFC3339)
		case ri.Wave > r.Wave:
			ri.State, ri.Reason = protocol.UpgradePending, "in wave "+r.Waves[ri.Wave].Name
		case r.State == protocol.RolloutPaused:
			ri.State, ri.Reason = protocol.UpgradePending, "rollout paused"
		default:
			ri.State, ri.Reason = protocol.UpgradePending, fmt.Sprintf("waiting for a slot (max_concurrent %d)", r.MaxConcurrent)
		}
	}
}

// calendar forecasts when each instance that has not started will start:
// waves in order, max_concurrent at a time, EstimatedUpgrade each, a
// wave's bake after it, and no earlier than its tenant's window opens.
func (c *step) calendar() {
	r := c.r
	t := c.now
	if r.State == protocol.RolloutScheduled {
		t = r.StartAt
	}
	busy := 0
	for i := range r.Instances {
		if r.Instances[i].State == protocol.UpgradeUpgrading {
			busy++
		}
	}
	for w := r.Wave; w < len(r.Waves); w++ {
		slot := busy
		end := t
		for i := range r.Instances {
			ri := &r.Instances[i]
			if ri.Wave != w || ri.Done() || ri.State == protocol.UpgradeUpgrading {
				continue
			}
			eta := t.Add(time.Duration(slot/r.MaxConcurrent) * EstimatedUpgrade)
			if _, next := c.blocked(ri); next.After(eta) {
				eta = next
			}
			ri.ETA = eta
			end = later(end, eta.Add(EstimatedUpgrade))
			slot++
		}
		busy = 0
		t = end.Add(r.Waves[w].Bake.D())
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func clone(r *protocol.Rollout) *protocol.Rollout {
	c := *r
	c.Instances = slices.Clone(r.Instances)
	c.Waves = slices.Clone(r.Waves)
	return &c
}

// sameBut reports whether two rollouts differ in nothing but the forecast
// (ETAs) and their update time: a step that changes only those is not
// committed.
func sameBut(a, b *protocol.Rollout) bool {
	strip := func(r *protocol.Rollout) []byte {
		c := clone(r)
		c.UpdatedAt = time.Time{}
		for i := range c.Instances {
			c.Instances[i].ETA = time.Time{}
		}
		j, _ := json.Marshal(c)
		return j
	}
	return string(strip(a)) == string(strip(b))
}
