package agent

import (
	"os"
	"runtime"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"

	"github.com/drover-dev/drover/agent/driver"
	"github.com/drover-dev/drover/protocol"
)

// hostFacts reads the host's facts and capacity with gopsutil. Values it
// cannot read stay zero rather than failing the agent.
func hostFacts(dataDir string, caps driver.Capabilities) (protocol.NodeFacts, protocol.NodeResources) {
	var f protocol.NodeFacts
	var r protocol.NodeResources
	if hi, err := host.Info(); err == nil {
		f.Hostname, f.OS, f.Platform, f.Kernel = hi.Hostname, hi.OS, hi.Platform+" "+hi.PlatformVersion, hi.KernelVersion
	} else {
		f.Hostname, _ = os.Hostname()
		f.OS = runtime.GOOS
	}
	f.Arch = runtime.GOARCH
	if n, err := cpu.Counts(true); err == nil {
		f.CPUCores = n
		r.CPUMillis = int64(n) * 1000
	}
	if infos, err := cpu.Info(); err == nil && len(infos) > 0 {
		f.CPUMHz = infos[0].Mhz
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		r.MemoryMB = int64(vm.Total >> 20)
		r.FreeMemoryMB = int64(vm.Available >> 20)
	}
	if du, err := disk.Usage(dataDir); err == nil {
		r.DiskMB = int64(du.Total >> 20)
		r.FreeDiskMB = int64(du.Free >> 20)
	}
	r.FreeCPUMillis = r.CPUMillis
	f.Cgroups = caps.Cgroup.String()
	f.Limits = caps.Memory && caps.CPU
	f.LimitsReason = caps.Reason
	return f, r
}

// loadMetrics reads the host's current load for status reports.
func loadMetrics(dataDir string) *protocol.Metrics {
	m := &protocol.Metrics{}
	if p, err := cpu.Percent(0, false); err == nil && len(p) > 0 {
		m.CPUPercent = p[0]
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		m.MemoryUsedMB = int64(vm.Used >> 20)
	}
	if du, err := disk.Usage(dataDir); err == nil {
		m.DiskUsedMB = int64(du.Used >> 20)
	}
	if l, err := load.Avg(); err == nil {
		m.Load1 = l.Load1
	}
	return m
}
