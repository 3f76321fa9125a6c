package gateway

import "time"

// IsLeading reports whether g runs the leader's side (Lead).
func IsLeading(g *Gateway) bool { return g.isLeading() }

// ExpireDeadline makes the leader's heartbeat deadline of a node pass, as
// when its agent's pongs were held up for a TTL while its connection
// survived. (Nothing else produces that without racing the server's own
// ping timeout, which ends the session at about the same time.)
func ExpireDeadline(g *Gateway, node string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deadlines[node] = g.cfg.Clock().Add(-time.Millisecond)
}

// LogStall is how long a log chunk may wait for a slow HTTP reader.
const LogStall = logStall
