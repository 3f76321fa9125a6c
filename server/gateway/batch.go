package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// batchWindow is how long the batcher gathers reports before one commit.
const batchWindow = 20 * time.Millisecond

// batcher gathers agents' replica reports into one Raft command, so that a
// fleet's status traffic costs a few log entries, not one per report.
type batcher struct {
	mu      sync.Mutex
	pending map[string]map[string]protocol.ReplicaReport // node -> replica -> latest report
	order   []string                                     // nodes in arrival order
	acks    []func()
}

// reset drops what an earlier term left: those reports' sessions are gone,
// and their agents resend to the new leader.
func (b *batcher) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending, b.order, b.acks = nil, nil, nil
}

// add queues reports of node; ack runs once they are committed. ack must
// not block: it runs on the batcher's goroutine.
func (b *batcher) add(node string, reports []protocol.ReplicaReport, ack func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]map[string]protocol.ReplicaReport{}
	}
	m := b.pending[node]
	if m == nil {
		m = map[string]protocol.ReplicaReport{}
		b.pending[node] = m
		b.order = append(b.order, node)
	}
	for _, r := range reports {
		m[r.ID] = r
	}
	if ack != nil {
		b.acks = append(b.acks, ack)
	}
}

func (b *batcher) take() (*state.ReplicaReports, []func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.order) == 0 {
		acks := b.acks
		b.acks = nil
		return nil, acks
	}
	out := &state.ReplicaReports{}
	for _, node := range b.order {
		nr := state.NodeReport{Node: node}
		for _, r := range b.pending[node] {
			nr.Replicas = append(nr.Replicas, r)
		}
		out.Reports = append(out.Reports, nr)
	}
	acks := b.acks
	b.pending, b.order, b.acks = nil, nil, nil
	return out, acks
}

// requeue puts back reports whose commit failed, unless newer ones came.
func (b *batcher) requeue(r *state.ReplicaReports, acks []func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]map[string]protocol.ReplicaReport{}
	}
	for _, nr := range r.Reports {
		m := b.pending[nr.Node]
		if m == nil {
			m = map[string]protocol.ReplicaReport{}
			b.pending[nr.Node] = m
			b.order = append(b.order, nr.Node)
		}
		for _, rep := range nr.Replicas {
			if _, newer := m[rep.ID]; !newer {
				m[rep.ID] = rep
			}
		}
	}
	b.acks = append(acks, b.acks...)
}

// run commits batches until ctx ends.
func (b *batcher) run(ctx context.Context, g *Gateway) {
	retry := backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(batchWindow):
		}
		reports, acks := b.take()
		if reports != nil {
			if _, err := g.cfg.Cluster.Propose(ctx, state.CmdReplicaReports, reports, nil); err != nil {
				b.requeue(reports, acks)
				d := retry.Next()
				g.logger.Warn("commit replica reports", "error", err, "retry_in", d)
				if !backoff.Sleep(ctx, d) {
					return
				}
				g.kick()
				continue
			}
			retry.Reset()
		}
		for _, ack := range acks {
			ack()
		}
	}
}
