// Package backoff computes how long to wait between retries: doubling from
// a minimum up to a maximum, with jitter for the retries that many clients
// make at once (agents redialling after a leader change). It is the one
// home of retry timing in Drover, in the spirit of tailscale's
// util/backoff.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exp returns the wait before retry n (1 for the first): base doubled n-1
// times, capped at ceiling, without overflow.
func Exp(base, ceiling time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := min(base, ceiling)
	for i := 1; i < n; i++ {
		if d > ceiling/2 {
			return ceiling
		}
		d *= 2
	}
	return d
}

// Backoff is the state of a run of failures: each Next doubles the wait
// from Min up to Max, and Reset starts again from Min after a success.
// The zero value is not useful; set Min and Max. It is not safe for
// concurrent use: each retrying loop owns its own.
type Backoff struct {
	Min, Max time.Duration
	// Jitter spreads each wait uniformly over [d/2, d], so that many
	// clients that failed together do not retry together.
	Jitter bool

	failures int
}

// Next records one more failure and returns how long to wait before the
// next attempt.
func (b *Backoff) Next() time.Duration {
	b.failures++
	d := Exp(b.Min, b.Max, b.failures)
	if b.Jitter && d > 1 {
		d = d/2 + rand.N(d/2+1)
	}
	return d
}

// Failures returns the failures since the last Reset.
func (b *Backoff) Failures() int { return b.failures }

// Reset forgets the failures: the next wait is Min again.
func (b *Backoff) Reset() { b.failures = 0 }

// Sleep waits for d or until ctx ends, and reports whether the whole wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
