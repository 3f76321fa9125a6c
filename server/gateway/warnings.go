package gateway

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Limits of the per-agent warnings: each kind of warning is logged at most
// warnBurst times per warnWindow; the rest are counted and summed up in one
// line when the next window opens.
const (
	warnBurst  = 10
	warnWindow = 10 * time.Second
)

// warnings rate-limits the warnings the gateway logs about single agents
// (a refused hello, a bad message, a missed ping), so that a fleet of
// thousands of misconfigured agents cannot flood the servers' logs. A kind
// of warning is its message; messages are constants, so kinds are few.
type warnings struct {
	logger hclog.Logger
	clock  func() time.Time

	mu    sync.Mutex
	kinds map[string]*warnCount
}

type warnCount struct {
	start      time.Time
	logged     int
	suppressed int
}

func newWarnings(logger hclog.Logger, clock func() time.Time) *warnings {
	return &warnings{logger: logger, clock: clock, kinds: map[string]*warnCount{}}
}

// Warn logs msg with args unless its kind has been logged warnBurst times
// in the current window.
func (w *warnings) Warn(msg string, args ...any) {
	now := w.clock()
	w.mu.Lock()
	c := w.kinds[msg]
	if c == nil {
		c = &warnCount{start: now}
		w.kinds[msg] = c
	}
	suppressed := 0
	if now.Sub(c.start) >= warnWindow {
		suppressed = c.suppressed
		*c = warnCount{start: now}
	}
	log := c.logged < warnBurst
	if log {
		c.logged++
	} else {
		c.suppressed++
	}
	w.mu.Unlock()
	if suppressed > 0 {
		w.logger.Warn("repeated warnings suppressed", "warning", msg, "suppressed", suppressed, "window", warnWindow)
	}
	if log {
		w.logger.Warn(msg, args...)
	}
}
