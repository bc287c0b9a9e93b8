package console

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ, the unit of the CPU times in
// /proc/PID/stat: 100 on every Linux architecture Go supports (the kernel
// fixes it for user space; sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// procStats are the figures of one process the console reads from /proc.
type procStats struct {
	// CPUSeconds is the process's user and system CPU time so far.
	CPUSeconds float64
	// PssKiB is its proportional set size (shared pages divided among
	// the processes sharing them), from smaps_rollup.
	PssKiB int64
}

// readProc reads pid's CPU time and Pss below root (normally "/proc").
// A process that exited meanwhile is an error wrapping os.ErrNotExist.
func readProc(root string, pid int) (procStats, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procStats{}, fmt.Errorf("console: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procStats{}, fmt.Errorf("console: %s/stat: %w", dir, err)
	}
	rollup, err := os.ReadFile(filepath.Join(dir, "smaps_rollup"))
	if err != nil {
		return procStats{}, fmt.Errorf("console: %w", err)
	}
	pss, err := parsePss(rollup)
	if err != nil {
		return procStats{}, fmt.Errorf("console: %s/smaps_rollup: %w", dir, err)
	}
	return procStats{CPUSeconds: cpu, PssKiB: pss}, nil
}

// parseStatCPU returns utime+stime of a /proc/PID/stat text in seconds.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so fields are counted after its last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After ") ": field 3 (state) is index 0, so utime (14) is 11 and
	// stime (15) is 12.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("utime/stime: %w", err)
	}
	return float64(utime+stime) / clockTicks, nil
}

// parsePss returns the "Pss:" value of a smaps_rollup text in KiB (the
// Pss_Anon, Pss_File and Pss_Shmem break-down lines are skipped).
func parsePss(rollup []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(rollup))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "Pss:" && f[2] == "kB" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("Pss line %q: %w", sc.Text(), err)
			}
			return kib, nil
		}
	}
	return 0, errors.New("no \"Pss: N kB\" line")
}
