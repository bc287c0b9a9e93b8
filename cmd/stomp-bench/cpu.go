package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's HZ.
const clockTick = 10 * time.Millisecond

// parseStatCPU returns utime+stime and cutime+cstime (in clock ticks) of
// a /proc/PID/stat text. The command name in parentheses may hold spaces
// and parentheses, so the fields are counted from the last ')'.
func parseStatCPU(stat string) (self, reaped int64, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse stat %q: no ')'", stat)
	}
	// After ") ": state is field 3 of the man page, utime 14, stime 15,
	// cutime 16, cstime 17.
	f := strings.Fields(stat[i+1:])
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("parse stat %q: %d fields after the name, want at least 15", stat, len(f))
	}
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("parse stat field %d: %w", 14+k, err)
		}
	}
	return v[0] + v[1], v[2] + v[3], nil
}

// treeCPU returns the CPU time (user+system) pid and all its descendants
// have used so far, including the descendants that already exited and were
// reaped (the cutime and cstime of their parents in the tree). The
// difference of two samples is what the tree used in between, provided no
// process leaves the tree without being reaped by another member (a
// broker's children are reaped by the broker). Descendants that exit
// between listing and reading are skipped.
func treeCPU(root string, pid int) (time.Duration, error) {
	tree, err := processTree(root, pid)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, p := range tree {
		data, err := os.ReadFile(filepath.Join(root, strconv.Itoa(p), "stat"))
		if err != nil {
			if p != pid && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return 0, fmt.Errorf("process %d: %w", p, err)
		}
		self, reaped, err := parseStatCPU(string(data))
		if err != nil {
			return 0, fmt.Errorf("process %d: %w", p, err)
		}
		ticks += self + reaped
	}
	return time.Duration(ticks) * clockTick, nil
}

// cpuMeter measures the CPU a broker's process tree uses during a run.
// Its zero value (no pid) measures nothing.
type cpuMeter struct {
	pid   int
	start time.Duration
	err   error
}

// startCPU takes the first sample of pid's tree (nothing when pid is 0).
func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	if pid > 0 {
		m.start, m.err = treeCPU(procRoot, pid)
	}
	return m
}

// record takes the second sample and records the CPU used since the first,
// in total and per message of n, in r. It does nothing without a pid.
func (m *cpuMeter) record(r *result, n int) error {
	if m.pid == 0 {
		return nil
	}
	if m.err != nil {
		return fmt.Errorf("broker CPU: %w", m.err)
	}
	end, err := treeCPU(procRoot, m.pid)
	if err != nil {
		return fmt.Errorf("broker CPU: %w", err)
	}
	used := float64(end-m.start) / float64(time.Millisecond)
	perMsg := used * 1000 / float64(n)
	r.BrokerCPUMs, r.BrokerCPUUsPerMsg = &used, &perMsg
	return nil
}
