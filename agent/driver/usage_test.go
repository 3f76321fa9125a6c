package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProcUsage(t *testing.T) {
	// utime 100, stime 50, cutime 7, cstime 3 ticks; rss 1000 pages.
	stat := "4242 (a) b (c)) S 1 4242 4241 0 -1 4194560 100 0 0 0 100 50 7 3 20 0 1 0 987654 1000 1000 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	ticks, rss, err := parseProcUsage([]byte(stat))
	if err != nil || ticks != 160 || rss != 1000 {
		t.Errorf("parseProcUsage = %d ticks, %d pages, %v; want 160, 1000", ticks, rss, err)
	}
	if _, _, err := parseProcUsage([]byte("4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19")); err == nil {
		t.Error("parseProcUsage accepted a line without rss")
	}
}

// A cgroup's accounting is read from the files of its version; one that
// lacks them is not used.
func TestCgroupUsage(t *testing.T) {
	write := func(dir, name, content string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	v2 := filepath.Join(root, "v2")
	write(v2, "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
	write(v2, "memory.current", "1048576\n")
	acct, mem := filepath.Join(root, "cpuacct"), filepath.Join(root, "memory")
	write(acct, "cpuacct.usage", "1500000000\n")
	write(mem, "memory.usage_in_bytes", "2097152\n")
	for _, tc := range []struct {
		name string
		cg   *cgroup
		want Usage
		ok   bool
	}{
		{"v2", &cgroup{version: CgroupV2, dirs: map[string]string{"": v2}}, Usage{2.5, 1 << 20, "cgroup v2"}, true},
		{"v1 cpuacct apart", &cgroup{version: CgroupV1, dirs: map[string]string{"cpuacct": acct, "cpu": root, "memory": mem}}, Usage{1.5, 2 << 20, "cgroup v1"}, true},
		{"v1 cpu,cpuacct", &cgroup{version: CgroupV1, dirs: map[string]string{"cpu": acct, "memory": mem}}, Usage{1.5, 2 << 20, "cgroup v1"}, true},
		{"v1 without cpuacct", &cgroup{version: CgroupV1, dirs: map[string]string{"cpu": root, "memory": mem}}, Usage{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.cg.usage()
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("usage = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// A running task's usage grows with the CPU it burns and shows the
// memory it holds, from its cgroup where the host has one.
func TestUsage(t *testing.T) {
	d := newTestDriver(t)
	task := helperTask(t, "spin", "spin")
	p := start(t, d, task)
	defer func() {
		p.Stop(context.Background())
		p.Wait()
	}()
	eventually(t, 10*time.Second, "the task to spin", func() bool { return strings.Contains(readLog(t, task, StdoutFile), "spinning") })
	var u Usage
	eventually(t, 10*time.Second, "a tenth of a second of CPU", func() bool {
		var err error
		u, err = d.Usage(task.ID)
		return err == nil && u.CPUSeconds >= 0.1
	})
	if u.MemoryBytes < 32<<20 {
		t.Errorf("usage = %+v, want at least the 32 MiB it holds", u)
	}
	want := UsageProc
	if d.cg != nil && d.caps.Memory {
		want = "cgroup " + d.caps.Cgroup.String()
	}
	if u.Source != want {
		t.Errorf("usage read from %q, want %q (capabilities %s)", u.Source, want, d.caps)
	}
	if _, err := d.Usage("nothing"); err == nil {
		t.Error("usage of a task that does not run")
	}
}
