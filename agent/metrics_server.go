package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/drover-dev/drover/agent/metrics"
)

// serveMetrics serves GET /metrics on MetricsAddr until stop is called.
func (a *Agent) serveMetrics(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("-metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("metrics server stopped", "error", err)
		}
	}()
	a.logger.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}

// MetricsHandler serves the agent's metrics (for tests in process).
func (a *Agent) MetricsHandler() http.Handler { return a.metrics.Handler() }

// metricReplicas lists the replicas for the metrics.
func (a *Agent) metricReplicas() []metrics.Replica {
	a.mu.Lock()
	rs := make([]*replica, 0, len(a.replicas))
	for _, r := range a.replicas {
		rs = append(rs, r)
	}
	a.mu.Unlock()
	out := make([]metrics.Replica, 0, len(rs))
	for _, r := range rs {
		r.mu.Lock()
		st := r.state
		r.mu.Unlock()
		out = append(out, metrics.Replica{ID: r.spec.ID, Tenant: r.spec.Tenant, Instance: r.spec.Instance,
			Environment: r.spec.Environment, State: st})
	}
	return out
}
