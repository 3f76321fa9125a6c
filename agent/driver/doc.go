// Package driver runs the processes of replicas on a Linux host: it
// starts them with their output in files and their resources limited
// by cgroups, stops them with a signal and then SIGKILL, and adopts
// them again after the agent restarts.
//
// # Surviving the agent
//
// A started process does not depend on the agent. It runs in a session
// and process group of its own, so no signal aimed at the agent or its
// terminal reaches it; its standard input is /dev/null and its output
// goes to files the agent opened and handed over, not to pipes, so it
// never gets SIGPIPE and keeps writing when the agent is gone. A new
// agent finds it again with [Driver.Recover], given the [Handle] (PID
// and start time) the old one recorded; the start time tells it from a
// later process that got the same PID. The new agent is not its parent:
// it watches the process with a pidfd (or, on kernels before 5.3, by
// polling /proc) and cannot learn its exit status.
//
// # Stopping
//
// [Process.Stop] signals the whole process group, waits, then kills the
// group. When the main process exits, for whatever reason, the driver
// kills what is left of its group and of its cgroup, so a replica never
// leaves processes behind, except, without cgroups, those that started
// a session of their own.
//
// # Logs
//
// Output goes to [StdoutFile] and [StderrFile] in the task's LogDir,
// opened for appending. While the agent runs it checks their sizes
// every Config.RotateInterval and rotates a file larger than
// Task.LogMaxBytes by copy and truncate: the content is copied to the
// file name plus [RotatedSuffix], replacing the previous copy, and the
// file is truncated while the process keeps its descriptor. Because the
// file is opened for appending, the next write goes to the start of the
// truncated file. Output written between the copy and the truncation is
// lost, files can exceed the limit by what is written in one interval,
// and while no agent runs they grow without bound. [Tail] and [Follow]
// read the files across rotations.
//
// # Cgroups
//
// On a host with the unified hierarchy (cgroup v2 at /sys/fs/cgroup) each
// task gets /sys/fs/cgroup/drover/ID with memory.max (and swap.max 0),
// cpu.max and pids.max; on a v1 host (including hybrid hosts whose
// cgroup2 mount holds no controllers) it gets drover/ID in the memory,
// cpu and pids hierarchies with memory.limit_in_bytes (and memsw),
// cpu.cfs_quota_us and pids.max. A process is born in its cgroup: on v2
// with clone3's CLONE_INTO_CGROUP, on v1 (or v2 before Linux 5.7) by
// stopping it with ptrace right after its exec, before it runs, to move
// it in. Where ptrace is not permitted it is moved in right after its
// start, together with what it forked meanwhile. An OOM kill is read
// from the cgroup's counters (memory.events, or memory.oom_control on
// v1) and reported in [ExitResult]. The cgroup is removed when the task
// ends. [Driver.Capabilities] says what could be set up, and why not.
package driver
