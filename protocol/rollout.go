package protocol

import (
	"fmt"
	"time"
)

// Rollouts: phased, fleet-wide upgrades of a product's instances to one
// release (API.md, "Rollouts").

// Limits of rollouts.
const (
	MaxWaves             = 16
	MaxRolloutConcurrent = 1000
	MaxRolloutInstances  = 100_000
)

// Rollout states.
const (
	RolloutScheduled = "scheduled" // start_at has not come
	RolloutRunning   = "running"
	RolloutWaiting   = "waiting" // for a wave's bake time or its approval
	RolloutPaused    = "paused"
	RolloutSucceeded = "succeeded"
	RolloutFailed    = "failed" // ended with instances that failed to upgrade
	RolloutCancelled = "cancelled"
)

// States of an instance in a rollout.
const (
	UpgradePending    = "pending"
	UpgradeWaiting    = "waiting"
	UpgradeUpgrading  = "upgrading"
	UpgradeSucceeded  = "succeeded"
	UpgradeFailed     = "failed"
	UpgradeRolledBack = "rolled_back"
	UpgradeSkipped    = "skipped"
)

// Approval modes.
const (
	ApprovalAuto   = "auto"
	ApprovalManual = "manual"
)

// RolloutSelector picks instances of the product; empty fields match all.
type RolloutSelector struct {
	Tenants      []string          `json:"tenants,omitempty"`
	Environments []string          `json:"environments,omitempty"`
	TenantLabels map[string]string `json:"tenant_labels,omitempty"`
	Channel      string            `json:"channel,omitempty"`
}

// IsZero reports whether the selector matches everything.
func (s *RolloutSelector) IsZero() bool {
	return len(s.Tenants) == 0 && len(s.Environments) == 0 && len(s.TenantLabels) == 0 && s.Channel == ""
}

// Wave is one phase of a rollout. A wave without a selector takes every
// instance no earlier wave took.
type Wave struct {
	Name     string          `json:"name"`
	Selector RolloutSelector `json:"selector"`
	Bake     Duration        `json:"bake,omitempty"`
}

// RolloutRequest is the body of POST /v1/rollouts.
type RolloutRequest struct {
	Product            string          `json:"product"`
	Release            string          `json:"release"`
	Selector           RolloutSelector `json:"selector"`
	Waves              []Wave          `json:"waves,omitempty"`
	MaxConcurrent      int             `json:"max_concurrent,omitempty"`
	MaxFailures        int             `json:"max_failures,omitempty"`
	Approval           string          `json:"approval,omitempty"`
	StagingFirst       bool            `json:"staging_first,omitempty"`
	MaintenanceWindows bool            `json:"maintenance_windows,omitempty"`
	StartAt            time.Time       `json:"start_at,omitzero"`
}

// Rollout is a rollout and its calendar: every instance in it with its
// state, the reason it waits or was skipped, and when it is expected to
// move.
type Rollout struct {
	ID string `json:"id"`
	RolloutRequest
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// Wave is the index of the wave in progress.
	Wave int `json:"wave"`
	// Approved is how many waves may start (approval manual): the first
	// always may; approve opens one more.
	Approved int `json:"approved"`
	// FailureBase is the failures counted before the last resume:
	// max_failures counts those after it.
	FailureBase   int               `json:"failure_base,omitempty"`
	WaveStartedAt time.Time         `json:"wave_started_at,omitzero"`
	WaveEndedAt   time.Time         `json:"wave_ended_at,omitzero"`
	Counts        RolloutCounts     `json:"counts"`
	Instances     []RolloutInstance `json:"instances"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	CreateIndex   uint64            `json:"create_index"`
	ModifyIndex   uint64            `json:"modify_index"`
}

// RolloutCounts counts a rollout's instances by state.
type RolloutCounts struct {
	Total      int `json:"total"`
	Pending    int `json:"pending"`
	Waiting    int `json:"waiting"`
	Upgrading  int `json:"upgrading"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	RolledBack int `json:"rolled_back"`
	Skipped    int `json:"skipped"`
}

// RolloutInstance is one instance in a rollout.
type RolloutInstance struct {
	ID          string    `json:"id"` // tenant/name
	Tenant      string    `json:"tenant"`
	Environment string    `json:"environment"`
	Wave        int       `json:"wave"`
	From        string    `json:"from"` // the release it ran when the rollout began
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	ETA         time.Time `json:"eta,omitzero"`
	// Version is the instance version the upgrade made, whose deployment
	// decides how it ends.
	Version    uint64    `json:"version,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Done reports whether the instance will not move again in this rollout.
func (i *RolloutInstance) Done() bool {
	switch i.State {
	case UpgradeSucceeded, UpgradeFailed, UpgradeRolledBack, UpgradeSkipped:
		return true
	}
	return false
}

// Active reports whether a rollout may still move instances.
func (r *Rollout) Active() bool {
	switch r.State {
	case RolloutScheduled, RolloutRunning, RolloutWaiting:
		return true
	}
	return false
}

// Ended reports whether a rollout is over for good.
func (r *Rollout) Ended() bool {
	switch r.State {
	case RolloutSucceeded, RolloutFailed, RolloutCancelled:
		return true
	}
	return false
}

// Validate checks a selector's syntax.
func (s *RolloutSelector) Validate(field string) error {
	for i, t := range s.Tenants {
		if err := ValidateName(fmt.Sprintf("%s.tenants[%d]", field, i), t); err != nil {
			return err
		}
	}
	for i, e := range s.Environments {
		if err := ValidateName(fmt.Sprintf("%s.environments[%d]", field, i), e); err != nil {
			return err
		}
	}
	if err := ValidateLabels(field+".tenant_labels", s.TenantLabels); err != nil {
		return err
	}
	if s.Channel != "" {
		return ValidateName(field+".channel", s.Channel)
	}
	return nil
}

// Validate checks a rollout request's syntax and fills its defaults; what
// it names is checked against the state when it is planned.
func (r *RolloutRequest) Validate() error {
	if err := ValidateName("product", r.Product); err != nil {
		return err
	}
	if _, err := ParseVersion("release", r.Release); err != nil {
		return err
	}
	if err := r.Selector.Validate("selector"); err != nil {
		return err
	}
	if len(r.Waves) > MaxWaves {
		return FieldError("waves", "at most %d", MaxWaves)
	}
	names := map[string]bool{}
	for i := range r.Waves {
		w := &r.Waves[i]
		f := fmt.Sprintf("waves[%d]", i)
		if w.Name == "" {
			w.Name = fmt.Sprintf("wave-%d", i+1)
		}
		if err := ValidateName(f+".name", w.Name); err != nil {
			return err
		}
		if names[w.Name] {
			return FieldError(f+".name", "wave %q named twice", w.Name)
		}
		names[w.Name] = true
		if err := w.Selector.Validate(f + ".selector"); err != nil {
			return err
		}
		if err := validateDuration(f+".bake", w.Bake, 0); err != nil {
			return err
		}
	}
	if r.MaxConcurrent == 0 {
		r.MaxConcurrent = 1
	}
	if r.MaxConcurrent < 0 || r.MaxConcurrent > MaxRolloutConcurrent {
		return FieldError("max_concurrent", "must be between 1 and %d", MaxRolloutConcurrent)
	}
	if r.MaxFailures == 0 {
		r.MaxFailures = 1
	}
	if r.MaxFailures < 0 || r.MaxFailures > MaxRolloutInstances {
		return FieldError("max_failures", "must be between 1 and %d", MaxRolloutInstances)
	}
	switch r.Approval {
	case "":
		r.Approval = ApprovalAuto
	case ApprovalAuto, ApprovalManual:
	default:
		return FieldError("approval", "must be %q or %q", ApprovalAuto, ApprovalManual)
	}
	return nil
}

// Recount sets Counts from the instances' states.
func (r *Rollout) Recount() {
	c := RolloutCounts{Total: len(r.Instances)}
	for i := range r.Instances {
		switch r.Instances[i].State {
		case UpgradePending:
			c.Pending++
		case UpgradeWaiting:
			c.Waiting++
		case UpgradeUpgrading:
			c.Upgrading++
		case UpgradeSucceeded:
			c.Succeeded++
		case UpgradeFailed:
			c.Failed++
		case UpgradeRolledBack:
			c.RolledBack++
		case UpgradeSkipped:
			c.Skipped++
		}
	}
	r.Counts = c
}

// Failures counts the instances whose upgrade failed or rolled back.
func (r *Rollout) Failures() int { return r.Counts.Failed + r.Counts.RolledBack }
