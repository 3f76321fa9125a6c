package proxy

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// backend is one replica taking traffic.
type backend struct {
	replica string
	addr    string
	// outstanding counts requests in flight to it.
	outstanding atomic.Int64
	// ejectedUntil (unix nanoseconds) keeps it out of picks after a
	// connection failure or timeout (passive ejection).
	ejectedUntil atomic.Int64
}

func (b *backend) ejected(now time.Time) bool { return now.UnixNano() < b.ejectedUntil.Load() }

func (b *backend) eject(now time.Time, d time.Duration) { b.ejectedUntil.Store(now.Add(d).UnixNano()) }

// pick chooses a backend of rt that is not in tried: two random choices,
// the one with fewer requests in flight. Ejected backends are chosen only
// when every other has been tried or is ejected too, as Envoy's panic
// threshold does: a pool that is all ejected still gets traffic rather
// than none. nil when every backend has been tried.
func (rt *route) pick(now time.Time, tried []*backend) *backend {
	var live, ejected []*backend
	for _, b := range rt.backends {
		if contains(tried, b) {
			continue
		}
		if b.ejected(now) {
			ejected = append(ejected, b)
		} else {
			live = append(live, b)
		}
	}
	if len(live) == 0 {
		live = ejected
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	i := rand.IntN(len(live))
	j := rand.IntN(len(live) - 1)
	if j >= i {
		j++
	}
	a, b := live[i], live[j]
	if b.outstanding.Load() < a.outstanding.Load() {
		return b
	}
	return a
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}
