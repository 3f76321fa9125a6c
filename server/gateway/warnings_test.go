package gateway

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A flood of one kind of warning logs warnBurst lines per window and one
// summary of the rest; other kinds are not held back by it.
func TestWarningsAreRateLimitedPerKind(t *testing.T) {
	var out syncBuf
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newWarnings(hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn}), func() time.Time { return now })
	for i := 0; i < 1000; i++ {
		w.Warn("agent refused", "remote", "10.0.0.1:1234")
	}
	w.Warn("agent sent no valid hello")
	if got := out.count("agent refused"); got != warnBurst {
		t.Fatalf("%d lines of a flood of 1000 in one window, want %d:\n%s", got, warnBurst, out.String())
	}
	if got := out.count("agent sent no valid hello"); got != 1 {
		t.Fatalf("another kind of warning logged %d times, want 1", got)
	}
	now = now.Add(warnWindow)
	w.Warn("agent refused", "remote", "10.0.0.1:1234")
	if !strings.Contains(out.String(), "suppressed=990") {
		t.Fatalf("no summary of the 990 suppressed warnings:\n%s", out.String())
	}
	if got := out.count("[WARN]  agent refused"); got != warnBurst+1 {
		t.Fatalf("the next window logs again: %d lines, want %d", got, warnBurst+1)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuf) count(sub string) int { return strings.Count(s.String(), sub) }
