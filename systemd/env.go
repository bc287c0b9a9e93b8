package systemd

import (
	"errors"
	"os"
)

// The environment variables systemd sets for the main process of a service. All of them are
// addressed to one process (the parent) and become wrong or dangerous in any other process.
const (
	// envNotifySocket is the AF_UNIX datagram socket to send notifications to.
	envNotifySocket = "NOTIFY_SOCKET"
	// envWatchdogUsec is the watchdog timeout in microseconds (WatchdogSec=).
	envWatchdogUsec = "WATCHDOG_USEC"
	// envWatchdogPID is the pid the watchdog is meant for; unset means "the main process".
	envWatchdogPID = "WATCHDOG_PID"
	// envListenPID is the pid the passed fds are meant for.
	envListenPID = "LISTEN_PID"
	// envListenFDs is how many fds were passed, starting at listenFDsStart.
	envListenFDs = "LISTEN_FDS"
	// envListenFDNames holds one name per passed fd, colon separated (FileDescriptorName=).
	envListenFDNames = "LISTEN_FDNAMES"
)

// scrubbedVars lists what ScrubEnv removes. Variables systemd sets that are true for every process
// of the unit (INVOCATION_ID, JOURNAL_STREAM, STATE_DIRECTORY, RUNTIME_DIRECTORY, ...) are left
// alone: a child may legitimately rely on them.
var scrubbedVars = []string{
	envListenPID, envListenFDs, envListenFDNames,
	envNotifySocket,
	envWatchdogUsec, envWatchdogPID,
}

// ErrBadEnvironment reports a systemd variable addressed to this process whose value cannot be
// interpreted (for example LISTEN_FDS=x, or LISTEN_FDNAMES with fewer names than LISTEN_FDS).
var ErrBadEnvironment = errors.New("systemd: malformed environment variable")

// ScrubEnv removes from the process environment every variable systemd hands to the main process
// that a child must not inherit: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID. It is idempotent and never fails.
//
// Call it after NewNotifierFromEnv and ListenFiles/Listeners (they read these variables; after
// ScrubEnv they find nothing) and before the first child is spawned.
func ScrubEnv() {
	unsetenv(scrubbedVars...)
}

// unsetenv removes names from the environment. os.Unsetenv only fails for names containing '=' or
// NUL, which none of ours do, so its error is not interesting here.
func unsetenv(names ...string) {
	for _, name := range names {
		_ = os.Unsetenv(name)
	}
}
