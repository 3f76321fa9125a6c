package testwait

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	err := Until(time.Minute, func() error {
		n++
		if n < 3 {
			return fmt.Errorf("n=%d", n)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Until: %v after %d checks, want nil after 3", err, n)
	}
}

func TestUntilReportsTheLastStateSeen(t *testing.T) {
	n := 0
	err := Until(30*time.Millisecond, func() error {
		n++
		return fmt.Errorf("check %d", n)
	})
	if err == nil || err.Error() != fmt.Sprintf("check %d", n) {
		t.Fatalf("Until: %v, want the last check's error (check %d)", err, n)
	}
}

func TestEventuallyFailsNamingWhatWasAwaited(t *testing.T) {
	ft := &fakeT{}
	Eventually(ft, 20*time.Millisecond, "the answer", func() error { return errors.New("still 41") })
	if want := "waited 20ms for the answer; last seen: still 41"; ft.msg != want {
		t.Fatalf("failure %q, want %q", ft.msg, want)
	}
}

// fakeT records Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}
