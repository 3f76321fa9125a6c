package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what a task's processes use: the CPU time they have taken
// since the task started, and the memory they hold now.
type Usage struct {
	CPUSeconds  float64
	MemoryBytes int64
	// Source says where the numbers come from: "cgroup v1", "cgroup v2",
	// or "proc" (the sum over the task's processes in /proc, which misses
	// what exited children took unless their parent waited for them).
	Source string
}

// UsageProc is the Source of Usage read from /proc.
const UsageProc = "proc"

// ErrNoTask means no process of the task runs under this driver.
var ErrNoTask = errors.New("no such task")

// Usage reads what task id's processes use: from its cgroup's
// accounting where the host has it, else from /proc.
func (d *Driver) Usage(id string) (Usage, error) {
	d.mu.Lock()
	p := d.procs[id]
	d.mu.Unlock()
	if p == nil {
		return Usage{}, fmt.Errorf("usage of %s: %w", id, ErrNoTask)
	}
	return p.usage()
}

func (p *Process) usage() (Usage, error) {
	if p.cg != nil {
		if u, ok := p.cg.usage(); ok {
			return u, nil
		}
		return procUsage(p.cg.procs())
	}
	return procUsage(sessionMembers(p.handle.PID))
}

// usage reads the cgroup's CPU and memory accounting; false when it
// lacks either.
func (cg *cgroup) usage() (Usage, bool) {
	u := Usage{Source: "cgroup " + cg.version.String()}
	var cpuOK, memOK bool
	switch cg.version {
	case CgroupV2:
		// cpu.stat's usage_usec is there with or without the cpu
		// controller.
		dir := cg.dirs[""]
		var usec int64
		if usec, cpuOK = readKeyed(filepath.Join(dir, "cpu.stat"), "usage_usec"); cpuOK {
			u.CPUSeconds = float64(usec) / 1e6
		}
		u.MemoryBytes, memOK = readInt(filepath.Join(dir, "memory.current"))
	case CgroupV1:
		// cpuacct is its own hierarchy, or mounted with cpu.
		for _, c := range []string{"cpuacct", "cpu"} {
			if dir := cg.dirs[c]; dir != "" && !cpuOK {
				var ns int64
				if ns, cpuOK = readInt(filepath.Join(dir, "cpuacct.usage")); cpuOK {
					u.CPUSeconds = float64(ns) / 1e9
				}
			}
		}
		if dir := cg.dirs["memory"]; dir != "" {
			u.MemoryBytes, memOK = readInt(filepath.Join(dir, "memory.usage_in_bytes"))
		}
	}
	return u, cpuOK && memOK
}

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat: 100 on
// every Linux the driver runs on.
const clockTicks = 100

// procUsage sums what processes pids use, from /proc.
func procUsage(pids []int) (Usage, error) {
	if len(pids) == 0 {
		return Usage{}, fmt.Errorf("usage: %w", ErrNoTask)
	}
	u := Usage{Source: UsageProc}
	page := int64(os.Getpagesize())
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		ticks, rss, err := parseProcUsage(b)
		if err != nil {
			return Usage{}, err
		}
		u.CPUSeconds += float64(ticks) / clockTicks
		u.MemoryBytes += rss * page
	}
	return u, nil
}

// parseProcUsage reads from /proc/PID/stat the CPU time of a process and
// of its children it waited for (utime, stime, cutime, cstime), in clock
// ticks, and its resident pages (rss).
func parseProcUsage(b []byte) (ticks uint64, rssPages int64, err error) {
	f, err := statFields(b)
	if err != nil {
		return 0, 0, err
	}
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("malformed /proc stat: %d fields", len(f)+2)
	}
	for _, s := range f[11:15] { // fields 14 to 17
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed /proc stat: cpu time: %w", err)
		}
		ticks += uint64(max(n, 0))
	}
	if rssPages, err = strconv.ParseInt(f[21], 10, 64); err != nil { // field 24
		return 0, 0, fmt.Errorf("malformed /proc stat: rss: %w", err)
	}
	return ticks, rssPages, nil
}

// readInt reads a file holding one integer, such as memory.current.
func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}
