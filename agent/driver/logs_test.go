package driver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), StdoutFile)
	// The writer stands for the process: it keeps its descriptor.
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Fprint(w, "0123456789")

	if ok, err := rotate(path, 10); ok || err != nil {
		t.Fatalf("rotate at the limit = %v, %v; want no rotation", ok, err)
	}
	fmt.Fprint(w, "abc")
	if ok, err := rotate(path, 10); !ok || err != nil {
		t.Fatalf("rotate over the limit = %v, %v; want rotation", ok, err)
	}
	fmt.Fprint(w, "next")

	if got, _ := os.ReadFile(path + RotatedSuffix); string(got) != "0123456789abc" {
		t.Errorf("rotated copy = %q, want %q", got, "0123456789abc")
	}
	// No hole of zeros where the old content was.
	if got, _ := os.ReadFile(path); string(got) != "next" {
		t.Errorf("log after rotation = %q, want %q", got, "next")
	}
}

func TestProcessLogRotation(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "rotating", "ticker")
	task.LogMaxBytes = 2000
	start(t, d, task)

	rotated := filepath.Join(task.LogDir, StdoutFile+RotatedSuffix)
	var prev []byte
	eventually(t, 20*time.Second, "two rotations", func() bool {
		b, err := os.ReadFile(rotated)
		if err != nil || len(b) == 0 {
			return false
		}
		if prev == nil {
			prev = b
			return false
		}
		return !bytes.Equal(prev, b)
	})
	// The process writes whole lines and the file is truncated between
	// writes, so every file holds whole lines, without a hole.
	for _, name := range []string{StdoutFile, StdoutFile + RotatedSuffix} {
		b := readLog(t, task, name)
		for _, line := range strings.Split(strings.TrimSuffix(b, "\n"), "\n") {
			var n int
			if _, err := fmt.Sscanf(line, "tick %d", &n); err != nil && b != "" {
				t.Fatalf("%s: bad line %q", name, line)
			}
		}
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	long := strings.Repeat("x", 100<<10) // longer than a read chunk
	for _, tc := range []struct {
		name    string
		content string
		rotated string
		n       int
		want    []string
	}{
		{"last lines", "a\nb\nc\nd\n", "", 2, []string{"c", "d"}},
		{"partial last line", "a\nb\nc", "", 2, []string{"b", "c"}},
		{"fewer than asked", "a\nb\n", "", 5, []string{"a", "b"}},
		{"empty lines", "a\n\n\n", "", 2, []string{"", ""}},
		{"none asked", "a\nb\n", "", 0, nil},
		{"empty file", "", "", 3, nil},
		{"long lines", "a\n" + long + "\n" + long + "\nz\n", "", 3, []string{long, long, "z"}},
		{"from rotated copy", "c\nd\n", "a\nb\n", 3, []string{"b", "c", "d"}},
		{"rotated copy unused", "c\nd\n", "a\nb\n", 2, []string{"c", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(path + RotatedSuffix)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.rotated != "" {
				if err := os.WriteFile(path+RotatedSuffix, []byte(tc.rotated), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, end, err := Tail(path, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Tail(%d) = %q, want %q", tc.n, got, tc.want)
			}
			if end != int64(len(tc.content)) {
				t.Errorf("end = %d, want %d", end, len(tc.content))
			}
		})
	}
	if _, _, err := Tail(filepath.Join(dir, "missing"), 1); !os.IsNotExist(err) {
		t.Errorf("Tail of a missing file = %v, want not exist", err)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), StdoutFile)
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Fprint(w, "old\nseen\n")
	_, end, err := Tail(path, 1)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, path, end, &out, nil) }()

	var want string
	write := func(s string) {
		t.Helper()
		fmt.Fprint(w, s)
		want += s
		eventually(t, 10*time.Second, fmt.Sprintf("Follow to deliver %q", want), func() bool {
			return out.String() == want
		})
	}
	write("one\n")
	write("two\n")
	// Written after Follow last looked, then rotated away: Follow finds
	// it in the rotated copy.
	fmt.Fprint(w, "three\n")
	want += "three\n"
	if ok, err := rotate(path, 0); !ok || err != nil {
		t.Fatalf("rotate = %v, %v", ok, err)
	}
	write("four\n")
	if ok, err := rotate(path, 0); !ok || err != nil {
		t.Fatalf("rotate = %v, %v", ok, err)
	}
	write("five, and the file is longer than before\n")

	cancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Follow = %v, want context.Canceled", err)
	}
}

// Follow ends once its until channel closes, with what was written last.
func TestFollowUntil(t *testing.T) {
	path := filepath.Join(t.TempDir(), StdoutFile)
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	until := make(chan struct{})
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- Follow(context.Background(), path, 0, &out, until) }()
	fmt.Fprint(w, "first\n")
	eventually(t, 10*time.Second, "Follow to deliver the first line", func() bool { return out.String() == "first\n" })
	fmt.Fprint(w, "last words\n")
	close(until)
	select {
	case err := <-errc:
		if err != nil || out.String() != "first\nlast words\n" {
			t.Errorf("Follow = %v with %q, want nil with both lines", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not end when until closed")
	}
}
