package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Status is the health of what a Monitor checks.
type Status int

const (
	// Unknown is the status until the thresholds are first reached.
	Unknown Status = iota
	// Healthy follows HealthyThreshold passing checks in a row.
	Healthy
	// Unhealthy follows UnhealthyThreshold failing checks in a row.
	Unhealthy
)

// String returns "unknown", "healthy" or "unhealthy".
func (s Status) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// Config says how often and how patiently a Monitor checks.
type Config struct {
	// Interval is the time between the starts of two checks; 10s when zero.
	Interval time.Duration
	// Timeout bounds one check; 2s when zero.
	Timeout time.Duration
	// Grace delays the first check, to let the process start up.
	Grace time.Duration
	// HealthyThreshold is how many checks in a row must pass to become
	// healthy; 1 when zero.
	HealthyThreshold int
	// UnhealthyThreshold is how many checks in a row must fail to become
	// unhealthy; 3 when zero.
	UnhealthyThreshold int
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Grace < 0 {
		c.Grace = 0
	}
	if c.HealthyThreshold <= 0 {
		c.HealthyThreshold = 1
	}
	if c.UnhealthyThreshold <= 0 {
		c.UnhealthyThreshold = 3
	}
	return c
}

// Transition is a change of status.
type Transition struct {
	From, To Status
	// Err is the error of the last check: why it is unhealthy, or nil.
	Err error
}

// Monitor runs a Checker on an interval and reports changes of status.
type Monitor struct {
	checker  Checker
	cfg      Config
	onChange func(Transition)

	// Owned by the goroutine of Run.
	passes, failures int

	mu     sync.Mutex
	status Status
	err    error
}

// NewMonitor returns a Monitor of c. It calls onChange, if not nil, on
// every change of status, from the goroutine of Run; onChange should
// return soon, as the next check waits for it.
func NewMonitor(c Checker, cfg Config, onChange func(Transition)) *Monitor {
	return &Monitor{checker: c, cfg: cfg.withDefaults(), onChange: onChange}
}

// Status returns the current status and the error of the last check.
func (m *Monitor) Status() (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status, m.err
}

// Run checks after the grace period and then on every interval, until
// ctx is done. A check still running then is abandoned and not counted.
func (m *Monitor) Run(ctx context.Context) {
	if m.cfg.Grace > 0 {
		t := time.NewTimer(m.cfg.Grace)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		err := m.check(ctx)
		if ctx.Err() != nil {
			return
		}
		m.record(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs the checker once, within the timeout.
func (m *Monitor) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	err := m.checker.Check(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", m.cfg.Timeout, err)
	}
	return err
}

// record counts the result of a check and reports a change of status.
func (m *Monitor) record(err error) {
	if err == nil {
		m.passes, m.failures = m.passes+1, 0
	} else {
		m.passes, m.failures = 0, m.failures+1
	}
	m.mu.Lock()
	from := m.status
	to := from
	switch {
	case err == nil && m.passes >= m.cfg.HealthyThreshold:
		to = Healthy
	case err != nil && m.failures >= m.cfg.UnhealthyThreshold:
		to = Unhealthy
	}
	m.status, m.err = to, err
	m.mu.Unlock()
	if to != from && m.onChange != nil {
		m.onChange(Transition{From: from, To: to, Err: err})
	}
}
