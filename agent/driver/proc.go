package driver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procStat holds the fields of /proc/PID/stat the driver relies on.
type procStat struct {
	state     byte   // R, S, D, Z, ...
	pgrp      int    // process group ID
	session   int    // session ID
	startTime uint64 // clock ticks after boot; with the PID it names one process
}

// zombie reports whether the process has exited and only waits to be reaped.
func (s procStat) zombie() bool { return s.state == 'Z' || s.state == 'X' }

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the content of /proc/PID/stat (proc(5)).
func parseProcStat(b []byte) (procStat, error) {
	f, err := statFields(b)
	if err != nil {
		return procStat{}, err
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: pgrp: %w", err)
	}
	session, err := strconv.Atoi(f[3])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: session: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: starttime: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, session: session, startTime: start}, nil
}

// statFields splits /proc/PID/stat after the command name: field n of
// proc(5) is at index n-3.
func statFields(b []byte) ([]string, error) {
	// The command name (field 2) is in parentheses and may itself
	// contain spaces and parentheses, so split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("malformed /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return nil, fmt.Errorf("malformed /proc stat: %d fields", len(f)+2)
	}
	return f, nil
}

// groupAlive reports whether process group pgid has a member that is
// not a zombie.
func groupAlive(pgid int) bool {
	if err := unix.Kill(-pgid, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	// kill(2) also finds zombies: members that are dead but not yet
	// reaped by their parent, which for orphans is init and may be slow.
	// They hold nothing, so look for a live member in /proc.
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err == nil && st.pgrp == pgid && !st.zombie() {
			return true
		}
	}
	return false
}

// sessionMembers returns the live processes of session sid.
func sessionMembers(sid int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.session == sid && !st.zombie() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ignoringEINTR calls fn until it fails with an error other than EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
