package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// script is a Checker that returns results in turn. Once they are used
// up it closes exhausted and blocks until its check is abandoned.
type script struct {
	results   []error
	next      atomic.Int32
	exhausted chan struct{}
}

func newScript(results ...error) *script {
	return &script{results: results, exhausted: make(chan struct{})}
}

func (s *script) Check(ctx context.Context) error {
	i := int(s.next.Add(1)) - 1
	if i < len(s.results) {
		return s.results[i]
	}
	if i == len(s.results) {
		close(s.exhausted)
	}
	<-ctx.Done()
	return ctx.Err()
}

// run runs m until the test ends and returns the transitions it reports.
func run(t *testing.T, c Checker, cfg Config) (*Monitor, <-chan Transition) {
	t.Helper()
	ch := make(chan Transition, 100)
	m := NewMonitor(c, cfg, func(tr Transition) { ch <- tr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return m, ch
}

func TestMonitorThresholds(t *testing.T) {
	fail := errors.New("connection refused")
	last := errors.New("last failure")
	for _, tc := range []struct {
		name    string
		cfg     Config
		results []error
		want    []string // "from>to:error"
		status  Status
	}{
		{
			name:    "defaults",
			results: []error{nil, fail, fail, nil, fail, fail, last, fail, nil},
			want:    []string{"unknown>healthy:", "healthy>unhealthy:last failure", "unhealthy>healthy:"},
			status:  Healthy,
		},
		{
			name:    "never healthy",
			results: []error{fail, fail, last},
			want:    []string{"unknown>unhealthy:last failure"},
			status:  Unhealthy,
		},
		{
			name:    "two passes to recover",
			cfg:     Config{HealthyThreshold: 2, UnhealthyThreshold: 1},
			results: []error{nil, fail, nil, fail, nil, nil, nil},
			want:    []string{"unknown>unhealthy:connection refused", "unhealthy>healthy:"},
			status:  Healthy,
		},
		{
			name:    "flapping below thresholds",
			cfg:     Config{HealthyThreshold: 2, UnhealthyThreshold: 2},
			results: []error{nil, fail, nil, fail, nil, fail},
			want:    nil,
			status:  Unknown,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Interval, cfg.Timeout = time.Millisecond, time.Minute
			s := newScript(tc.results...)
			m, ch := run(t, s, cfg)
			select {
			case <-s.exhausted:
			case <-time.After(10 * time.Second):
				t.Fatal("the monitor did not run all checks")
			}
			// Transitions are reported before the next check starts.
			var got []string
			for len(ch) > 0 {
				tr := <-ch
				msg := ""
				if tr.Err != nil {
					msg = tr.Err.Error()
				}
				got = append(got, fmt.Sprintf("%s>%s:%s", tr.From, tr.To, msg))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if st, _ := m.Status(); st != tc.status {
				t.Errorf("Status = %s, want %s", st, tc.status)
			}
		})
	}
}

func TestMonitorTimeout(t *testing.T) {
	s := newScript() // every check hangs
	_, ch := run(t, s, Config{Interval: time.Millisecond, Timeout: 20 * time.Millisecond, UnhealthyThreshold: 1})
	select {
	case tr := <-ch:
		if tr.To != Unhealthy || !errors.Is(tr.Err, context.DeadlineExceeded) ||
			!strings.Contains(tr.Err.Error(), "no answer within 20ms") {
			t.Errorf("transition = %+v, want unhealthy after a timeout", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no transition after a check timed out")
	}
}

func TestMonitorGrace(t *testing.T) {
	const grace = 100 * time.Millisecond
	first := make(chan time.Time, 1)
	began := time.Now()
	run(t, CheckFunc(func(ctx context.Context) error {
		select {
		case first <- time.Now():
		default:
		}
		return nil
	}), Config{Interval: time.Millisecond, Grace: grace})
	select {
	case at := <-first:
		if at.Sub(began) < grace {
			t.Errorf("first check after %s, within the grace period of %s", at.Sub(began), grace)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no check after the grace period")
	}
}

func TestMonitorStopsDuringGrace(t *testing.T) {
	var checks atomic.Int32
	m := NewMonitor(CheckFunc(func(context.Context) error {
		checks.Add(1)
		return nil
	}), Config{Grace: time.Hour}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if n := checks.Load(); n != 0 {
		t.Errorf("%d checks during the grace period", n)
	}
}

// TestMonitorHTTP follows a server that fails and recovers.
func TestMonitorHTTP(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	_, ch := run(t, HTTP{URL: srv.URL}, Config{Interval: 5 * time.Millisecond, Timeout: time.Second, UnhealthyThreshold: 2})
	next := func(want Status) Transition {
		t.Helper()
		select {
		case tr := <-ch:
			if tr.To != want {
				t.Fatalf("transition = %+v, want to %s", tr, want)
			}
			return tr
		case <-time.After(10 * time.Second):
			t.Fatalf("no transition to %s", want)
			return Transition{}
		}
	}
	next(Healthy)
	status.Store(http.StatusServiceUnavailable)
	if tr := next(Unhealthy); tr.From != Healthy || !strings.Contains(tr.Err.Error(), "503") {
		t.Errorf("transition = %+v, want healthy to unhealthy with status 503", tr)
	}
	status.Store(http.StatusOK)
	next(Healthy)
}
