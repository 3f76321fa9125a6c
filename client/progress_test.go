package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

func testInstance(version uint64, replicas int, dep *protocol.Deployment) *protocol.Instance {
	return &protocol.Instance{ID: "acme/crm", Tenant: "acme", Name: "crm", Replicas: replicas, Version: version, Deployment: dep}
}

func rep(id string, version uint64, node, state, msg string) *protocol.Replica {
	return &protocol.Replica{ID: id, Tenant: "acme", Instance: "crm", Version: version, Node: node,
		Desired: protocol.DesiredRun, State: state, Message: msg}
}

func TestNewRollout(t *testing.T) {
	running := &protocol.Deployment{ID: "d2", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentRunning}
	done := &protocol.Deployment{ID: "d2", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentSuccessful}
	failed := &protocol.Deployment{ID: "d2", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentFailed, Message: "no healthy replica within 2m"}
	old := rep("o1", 1, "n1", protocol.ReplicaHealthy, "")
	old.Desired = protocol.DesiredStop

	for _, tc := range []struct {
		name    string
		in      *protocol.Instance
		reps    []*protocol.Replica
		placed  int
		running int
		healthy int
		done    bool
		promo   bool
		err     string // in the reason; "" for none
	}{
		{name: "nothing placed yet", in: testInstance(2, 2, running),
			reps: []*protocol.Replica{rep("a", 2, "", protocol.ReplicaPending, "")}},
		{name: "placed and starting", in: testInstance(2, 2, running),
			reps:   []*protocol.Replica{rep("a", 2, "n1", protocol.ReplicaStarting, ""), rep("b", 2, "n2", protocol.ReplicaRunning, "")},
			placed: 2, running: 1},
		{name: "healthy but the deployment still runs", in: testInstance(2, 2, running),
			reps:   []*protocol.Replica{rep("a", 2, "n1", protocol.ReplicaHealthy, ""), rep("b", 2, "n2", protocol.ReplicaHealthy, "")},
			placed: 2, running: 2, healthy: 2},
		{name: "healthy and the deployment over", in: testInstance(2, 2, done),
			reps:   []*protocol.Replica{rep("a", 2, "n1", protocol.ReplicaHealthy, ""), rep("b", 2, "n2", protocol.ReplicaHealthy, ""), old},
			placed: 2, running: 2, healthy: 2, done: true},
		{name: "old version healthy does not count", in: testInstance(2, 1, nil),
			reps:   []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaHealthy, ""), rep("b", 2, "n2", protocol.ReplicaRunning, "")},
			placed: 1, running: 1},
		{name: "after a rollback, a kept replica of the same spec counts once the deployment succeeded",
			in:     testInstance(2, 1, &protocol.Deployment{ID: "d2", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentSuccessful}),
			reps:   []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaHealthy, "")},
			placed: 1, running: 1, healthy: 1, done: true},
		{name: "no deployment object, healthy", in: testInstance(1, 1, nil),
			reps:   []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaHealthy, "")},
			placed: 1, running: 1, healthy: 1, done: true},
		{name: "scaled to zero", in: testInstance(1, 0, nil), done: true},
		{name: "scaled down, before the scheduler stops the extra replica", in: testInstance(1, 1, nil),
			reps:   []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaHealthy, ""), rep("b", 1, "n2", protocol.ReplicaHealthy, "")},
			placed: 2, running: 2, healthy: 2},
		{name: "scaled to zero, a replica still stopping", in: testInstance(1, 0, nil),
			reps: []*protocol.Replica{func() *protocol.Replica {
				r := rep("a", 1, "n1", protocol.ReplicaStopping, "")
				r.Desired = protocol.DesiredStop
				return r
			}()}},
		{name: "stopped, none runs", in: func() *protocol.Instance {
			in := testInstance(1, 2, nil)
			in.Stopped = true
			return in
		}(), reps: []*protocol.Replica{func() *protocol.Replica {
			r := rep("a", 1, "n1", protocol.ReplicaStopped, "")
			r.Desired = protocol.DesiredStop
			return r
		}()}, done: true},
		{name: "restarted: the earlier epoch's healthy replica does not count", in: func() *protocol.Instance {
			in := testInstance(1, 1, nil)
			in.RestartEpoch = 7
			return in
		}(), reps: []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaHealthy, ""), func() *protocol.Replica {
			r := rep("b", 1, "n2", protocol.ReplicaRunning, "")
			r.Epoch = 7
			return r
		}()}, placed: 1, running: 1},
		{name: "deployment failed", in: testInstance(2, 1, failed),
			reps:   []*protocol.Replica{rep("a", 2, "n1", protocol.ReplicaUnhealthy, "health check: HTTP 500")},
			placed: 1, running: 1, err: "deployment d2 of version 2 failed: no healthy replica within 2m"},
		{name: "replica failed, nothing left to try", in: testInstance(1, 2, nil),
			reps:   []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaFailed, "exit code 1"), rep("b", 1, "n2", protocol.ReplicaHealthy, "")},
			placed: 2, running: 1, healthy: 1, err: "1 of 2 replicas of acme/crm version 1 failed"},
		{name: "replica failed while a replacement starts", in: testInstance(1, 1, nil),
			reps:   []*protocol.Replica{rep("a", 1, "n1", protocol.ReplicaFailed, "exit code 1"), rep("b", 1, "n2", protocol.ReplicaStarting, "")},
			placed: 2},
		{name: "rolled back, before the rollback's deployment starts", in: testInstance(3, 1, &protocol.Deployment{
			ID: "d2", FromVersion: 1, ToVersion: 2, State: protocol.DeploymentRolledBack, Message: "replica a not healthy within 10s"}),
			err: "version 2 was rolled back: instance acme/crm is at version 3: replica a not healthy within 10s"},
		{name: "superseded by another update", in: testInstance(3, 1, nil),
			err: "changed to version 3 while waiting for version 2"},
		{name: "canaries await promotion", in: func() *protocol.Instance {
			d := *running
			d.Canaries = 1
			return testInstance(2, 3, &d)
		}(),
			reps: func() []*protocol.Replica {
				c := rep("c", 2, "n1", protocol.ReplicaHealthy, "")
				c.Canary = true
				return []*protocol.Replica{c}
			}(),
			placed: 1, running: 1, healthy: 1, promo: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := uint64(2)
			if tc.in.Version == 1 {
				version = 1
			}
			r := NewProgress(tc.in, tc.reps, version)
			if r.Placed != tc.placed || r.Running != tc.running || r.Healthy != tc.healthy {
				t.Errorf("placed/running/healthy = %d/%d/%d, want %d/%d/%d", r.Placed, r.Running, r.Healthy, tc.placed, tc.running, tc.healthy)
			}
			if r.Done() != tc.done {
				t.Errorf("Done() = %v, want %v", r.Done(), tc.done)
			}
			if r.AwaitingPromotion() != tc.promo {
				t.Errorf("AwaitingPromotion() = %v, want %v", r.AwaitingPromotion(), tc.promo)
			}
			err := r.Err()
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Err() = %v, want none", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("Err() = %v, want %q", err, tc.err)
			}
		})
	}
}

// fakeServer serves an instance and its replicas with blocking queries,
// as the API does: a read with ?index=N waits until the state passes N.
type fakeServer struct {
	mu      sync.Mutex
	index   uint64
	in      *protocol.Instance
	reps    []*protocol.Replica
	changed chan struct{}
	fail    int // answer this many reads with 503 first
	indexes []string
}

func newFakeServer() *fakeServer { return &fakeServer{changed: make(chan struct{})} }

func (f *fakeServer) set(in *protocol.Instance, reps ...*protocol.Replica) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.in, f.reps = in, reps
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tenants/acme/instances/crm", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f.mu.Lock()
		f.indexes = append(f.indexes, q.Get("index"))
		if f.fail > 0 {
			f.fail--
			f.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"no cluster leader known; retry"}}`))
			return
		}
		f.mu.Unlock()
		min, _ := strconv.ParseUint(q.Get("index"), 10, 64)
		wait, _ := time.ParseDuration(q.Get("wait"))
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			f.mu.Lock()
			idx, in, ch := f.index, f.in, f.changed
			f.mu.Unlock()
			if min == 0 || idx > min {
				w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
				_ = json.NewEncoder(w).Encode(in)
				return
			}
			select {
			case <-ch:
			case <-timer.C:
				min = 0
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("GET /v1/tenants/acme/instances/crm/replicas", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(f.reps)
	})
	return mux
}

// watch runs WatchProgress in a goroutine; each state it sees arrives on
// the returned channel, and its result on done.
type watchResult struct {
	r   *Progress
	err error
}

func watch(ctx context.Context, c *Client, version uint64) (<-chan *Progress, <-chan watchResult) {
	seen := make(chan *Progress, 16)
	done := make(chan watchResult, 1)
	go func() {
		r, err := c.WatchProgress(ctx, "acme", "crm", version, func(r *Progress) { seen <- r })
		done <- watchResult{r, err}
	}()
	return seen, done
}

func TestWatchRolloutFollowsToHealthy(t *testing.T) {
	f := newFakeServer()
	running := &protocol.Deployment{ID: "d1", ToVersion: 1, State: protocol.DeploymentRunning}
	f.set(testInstance(1, 2, running), rep("a", 1, "", protocol.ReplicaPending, ""), rep("b", 1, "", protocol.ReplicaPending, ""))
	c := newTestClient(t, f.handler(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen, done := watch(ctx, c, 1)

	if r := <-seen; r.Placed != 0 {
		t.Fatalf("first state placed %d, want 0", r.Placed)
	}
	f.set(testInstance(1, 2, running), rep("a", 1, "n1", protocol.ReplicaRunning, ""), rep("b", 1, "n2", protocol.ReplicaHealthy, ""))
	if r := <-seen; r.Placed != 2 || r.Running != 2 || r.Healthy != 1 || r.Done() {
		t.Fatalf("second state %d/%d/%d done %v", r.Placed, r.Running, r.Healthy, r.Done())
	}
	over := &protocol.Deployment{ID: "d1", ToVersion: 1, State: protocol.DeploymentSuccessful}
	f.set(testInstance(1, 2, over), rep("a", 1, "n1", protocol.ReplicaHealthy, ""), rep("b", 1, "n2", protocol.ReplicaHealthy, ""))
	res := <-done
	if res.err != nil || !res.r.Done() || res.r.Healthy != 2 {
		t.Fatalf("WatchProgress = %+v, %v; want done with 2 healthy", res.r, res.err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The first read answers at once; the next ones block on the index seen.
	if strings.Join(f.indexes, ",") != ",1,2" {
		t.Errorf("index of the reads = %q, want \",1,2\"", strings.Join(f.indexes, ","))
	}
}

func TestWatchRolloutFailure(t *testing.T) {
	f := newFakeServer()
	f.set(testInstance(1, 1, nil), rep("a", 1, "n1", protocol.ReplicaFailed, "exit code 3 after 5 restarts"))
	c := newTestClient(t, f.handler(), "")
	r, err := c.WatchProgress(context.Background(), "acme", "crm", 1, nil)
	var re *ProgressError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *ProgressError", err)
	}
	if len(re.Failed) != 1 || re.Failed[0].Message != "exit code 3 after 5 restarts" || r == nil {
		t.Errorf("failed replicas = %+v", re.Failed)
	}
}

func TestWatchRolloutTimeoutAndRetry(t *testing.T) {
	f := newFakeServer()
	f.fail = 1 // a leader election: retried
	f.set(testInstance(1, 1, nil), rep("a", 1, "n1", protocol.ReplicaStarting, ""))
	c := newTestClient(t, f.handler(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	r, err := c.WatchProgress(ctx, "acme", "crm", 1, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if r == nil || r.Placed != 1 || r.Done() {
		t.Errorf("last state = %+v, want the starting replica", r)
	}
}

func TestWatchRolloutNotFound(t *testing.T) {
	rec := &recorder{status: http.StatusNotFound, body: `{"error":{"code":"not_found","message":"instance \"acme/crm\" not found"}}`}
	c := newTestClient(t, rec, "")
	_, err := c.WatchProgress(context.Background(), "acme", "crm", 1, nil)
	if !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("err = %v, want not_found at once", err)
	}
}
