package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pidfile is a --pidfile held for the broker's life. The file is locked
// (flock) while the broker runs, so a second broker naming the same file
// is refused instead of overwriting it, and a file left by a broker that
// died (its lock died with it) is taken over. The lock's descriptor is
// close-on-exec, so children never hold it.
type pidfile struct {
	path string
	pid  int
	f    *os.File
}

// lockPidfile locks path (creating it) and writes this process's pid into
// it. A nil *pidfile (path "") does nothing.
func lockPidfile(path string) (*pidfile, error) {
	if path == "" {
		return nil, nil
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, usageError(flagPidfile, "%v", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			data, _ := io.ReadAll(io.LimitReader(f, 32))
			f.Close()
			if !errors.Is(err, unix.EWOULDBLOCK) {
				return nil, usageError(flagPidfile, "%s: lock: %v", path, err)
			}
			if pid := strings.TrimSpace(string(data)); pid != "" {
				return nil, usageError(flagPidfile, "%s: in use by the running broker with pid %s", path, pid)
			}
			return nil, usageError(flagPidfile, "%s: locked by another process", path)
		}
		// The holder may have removed the file between our open and our
		// lock; then we locked an unlinked file and must start over.
		if held, err := f.Stat(); err == nil {
			if now, err := os.Stat(path); err != nil || !os.SameFile(held, now) {
				f.Close()
				continue
			}
		}
		p := &pidfile{path: path, pid: os.Getpid(), f: f}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, usageError(flagPidfile, "%v", err)
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(p.pid)+"\n"), 0); err != nil {
			f.Close()
			return nil, usageError(flagPidfile, "%v", err)
		}
		return p, nil
	}
}

// release removes the file if it still names this process, then drops the
// lock.
func (p *pidfile) release() {
	if p == nil {
		return
	}
	if data, err := os.ReadFile(p.path); err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(p.pid) {
		if err := os.Remove(p.path); err != nil {
			fmt.Fprintf(os.Stderr, "stomp-broker: --%s: %v\n", flagPidfile, err)
		}
	}
	p.f.Close()
}
