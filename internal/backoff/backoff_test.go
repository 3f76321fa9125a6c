package backoff

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestExp(t *testing.T) {
	for _, tc := range []struct {
		name      string
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{"first retry waits base", time.Second, time.Minute, 1, time.Second},
		{"doubles", time.Second, time.Minute, 4, 8 * time.Second},
		{"capped", time.Second, time.Minute, 7, time.Minute},
		{"no overflow", time.Second, time.Minute, 1000, time.Minute},
		{"huge max", time.Second, math.MaxInt64, 200, math.MaxInt64},
		{"zero retries", time.Second, time.Minute, 0, time.Second},
		{"base above max", time.Hour, time.Minute, 1, time.Minute},
		{"zero base", 0, time.Minute, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Exp(tc.base, tc.max, tc.n); got != tc.want {
				t.Fatalf("Exp(%s, %s, %d) = %s, want %s", tc.base, tc.max, tc.n, got, tc.want)
			}
		})
	}
}

func TestBackoffJitterStaysInItsHalf(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: true}
	for i := 1; i <= 10; i++ {
		full := Exp(b.Min, b.Max, i)
		d := b.Next()
		if d < full/2 || d > full {
			t.Fatalf("wait %d: %s, want within [%s, %s]", i, d, full/2, full)
		}
	}
	if b.Failures() != 10 {
		t.Fatalf("failures %d, want 10", b.Failures())
	}
	b.Reset()
	if d := b.Next(); d > b.Min {
		t.Fatalf("after Reset: %s, want at most %s", d, b.Min)
	}
}

func TestBackoffWithoutJitterIsExact(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 4 * time.Second}
	var got []time.Duration
	for range 4 {
		got = append(got, b.Next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep of an ended context reported a full wait")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of a live context did not report a full wait")
	}
}
