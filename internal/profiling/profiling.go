// Package profiling writes CPU profiles of the broker's processes for
// performance work. It is off unless the environment variable EnvDir names
// a directory; it sits outside the data path and costs nothing when off.
//
// Usage (see README, Performance):
//
//	STOMP_BROKER_PROFILE=/tmp/prof stomp-broker --listen ...
//	go tool pprof stomp-broker /tmp/prof/parent-PID.pprof
//
// The parent profiles from start until it has run for EnvSeconds (default
// 30) seconds; every child profiles its whole life and writes its file when
// its session ends. Children only profile when the parent passes EnvDir on
// (it does: see parent.spawn).
package profiling

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"
)

// EnvDir names the directory profiles are written to; unset means off.
const EnvDir = "STOMP_BROKER_PROFILE"

// EnvSeconds bounds the parent's profile (seconds, default 30).
const EnvSeconds = "STOMP_BROKER_PROFILE_SECONDS"

// Dir returns the profile directory, or "" when profiling is off.
func Dir() string { return os.Getenv(EnvDir) }

// Start begins a CPU profile written to Dir()/ROLE-PID.pprof and returns
// the function that stops it and closes the file. When profiling is off, or
// the file cannot be created, it returns a no-op (a failed profile must
// never stop a broker) and reports the reason on stderr.
func Start(role string) (stop func()) {
	dir := Dir()
	if dir == "" {
		return func() {}
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "profiling: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "profiling: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// StartFor profiles like Start and stops by itself after EnvSeconds
// (default 30 s); for a process whose exit path is not under our control.
func StartFor(role string) {
	if Dir() == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv(EnvSeconds))
	if err != nil || secs <= 0 {
		secs = 30
	}
	stop := Start(role)
	time.AfterFunc(time.Duration(secs)*time.Second, stop)
}
