package systemd

import (
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// notifyTimeout bounds one send. systemd reads its notification socket promptly, but a datagram
// send to a full AF_UNIX receive queue blocks, and Watchdog is called from the parent's event
// loop, which must never block for long.
const notifyTimeout = 2 * time.Second

// Notifier sends sd_notify datagrams to the socket systemd named in NOTIFY_SOCKET.
//
// It captures NOTIFY_SOCKET (and WATCHDOG_USEC/WATCHDOG_PID) once, at construction, so the
// environment can be scrubbed before any child process is spawned. A Notifier is immutable after
// construction and safe for concurrent use. A nil *Notifier is valid and behaves like one built
// from an environment without NOTIFY_SOCKET: every method does nothing and reports "not
// supported".
//
// See sd_notify(3) for the protocol: each notification is one datagram of newline-separated
// VARIABLE=value assignments.
type Notifier struct {
	// socket is NOTIFY_SOCKET as captured: a file system path, or an abstract socket name written
	// with a leading '@'. Empty means notifications are not supported.
	socket string

	// watchdog is WATCHDOG_USEC as captured; 0 when unset, zero or malformed (disabled).
	watchdog time.Duration
	// watchdogPID is WATCHDOG_PID as captured: 0 when unset (the watchdog is for whoever holds
	// the Notifier), -1 when malformed (the watchdog is for nobody).
	watchdogPID int

	// env holds the captured variables as "NAME=value", for Environ.
	env []string
}

// NewNotifierFromEnv captures NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets them
// (and only them) from the process environment. It never fails and never returns nil: when the
// variables are absent the returned Notifier's methods do nothing and return (false, nil) or nil.
// A malformed WATCHDOG_USEC or WATCHDOG_PID disables the watchdog rather than failing start-up.
//
// Call it once, early, before anything spawns a child process.
func NewNotifierFromEnv() *Notifier {
	n := &Notifier{}
	for _, name := range []string{envNotifySocket, envWatchdogUsec, envWatchdogPID} {
		if v, ok := os.LookupEnv(name); ok {
			n.env = append(n.env, name+"="+v)
		}
	}
	n.socket = os.Getenv(envNotifySocket)
	n.watchdog = parseWatchdogUsec(os.Getenv(envWatchdogUsec))
	n.watchdogPID = parseWatchdogPID(os.Getenv(envWatchdogPID))
	unsetenv(envNotifySocket, envWatchdogUsec, envWatchdogPID)
	return n
}

// parseWatchdogUsec turns WATCHDOG_USEC into a duration; anything unusable means "disabled".
func parseWatchdogUsec(v string) time.Duration {
	usec, err := strconv.ParseUint(v, 10, 64)
	if err != nil || usec == 0 || usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// parseWatchdogPID turns WATCHDOG_PID into a pid: 0 for unset, -1 for malformed.
func parseWatchdogPID(v string) int {
	if v == "" {
		return 0
	}
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 0 {
		return -1
	}
	return pid
}

// Notify sends state (for example "READY=1\nSTATUS=accepting\nMAINPID=123") as one datagram.
// It blocks for at most a couple of seconds. Results:
//
//   - (false, nil): notifications are not supported (NOTIFY_SOCKET was unset, or n is nil);
//   - (false, err): supported, but connecting or sending failed;
//   - (true, nil): the datagram was sent.
//
// A socket name starting with '@' is in the abstract namespace. Callers usually log and otherwise
// ignore errors: a missed notification must not take the broker down.
func (n *Notifier) Notify(state string) (bool, error) {
	if n == nil || n.socket == "" {
		return false, nil
	}
	// Go's net package maps a leading '@' to the abstract namespace (a leading NUL byte in
	// sun_path), which is exactly what systemd means by it.
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return false, fmt.Errorf("systemd: notify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(notifyTimeout)); err != nil {
		return false, fmt.Errorf("systemd: notify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("systemd: notify: %w", err)
	}
	return true, nil
}

// send is Notify for the helpers that only report errors.
func (n *Notifier) send(state string) error {
	_, err := n.Notify(state)
	return err
}

// Ready tells systemd that start-up (or a reload) is complete:
// "READY=1\nSTATUS=<status>\nMAINPID=<our pid>". Until it is sent, a Type=notify unit is
// "activating" and units ordered after it wait. An empty status clears the status line shown by
// systemctl status. It returns nil when notifications are not supported.
func (n *Notifier) Ready(status string) error {
	return n.send("READY=1\nSTATUS=" + oneLine(status) + "\nMAINPID=" + strconv.Itoa(os.Getpid()))
}

// Reloading tells systemd that a configuration reload has begun:
// "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>". The timestamp lets newer managers tell
// this reload apart from an earlier one. Send Ready when the reload is done. It returns nil when
// notifications are not supported, and an error if the clock cannot be read.
func (n *Notifier) Reloading() error {
	if n == nil || n.socket == "" {
		return nil
	}
	usec, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("systemd: reloading: %w", err)
	}
	return n.send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatUint(usec, 10))
}

// Stopping tells systemd that shutdown has begun ("STOPPING=1"), so systemctl status shows
// "deactivating" while the parent drains its children. It returns nil when notifications are not
// supported.
func (n *Notifier) Stopping() error {
	return n.send("STOPPING=1")
}

// Status sets the free-form status line shown by systemctl status ("STATUS=<s>"). Newlines in s
// are replaced by spaces. It returns nil when notifications are not supported.
func (n *Notifier) Status(s string) error {
	return n.send("STATUS=" + oneLine(s))
}

// WatchdogInterval returns how often the caller must call Watchdog: half of WATCHDOG_USEC when
// the watchdog is enabled for this process (WATCHDOG_PID unset or equal to os.Getpid()), else 0,
// meaning "do not ping". Half, so that one late tick is not fatal.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil || n.watchdog == 0 {
		return 0
	}
	if n.watchdogPID != 0 && n.watchdogPID != os.Getpid() {
		return 0
	}
	return n.watchdog / 2
}

// Watchdog sends the keep-alive ping "WATCHDOG=1". Call it every WatchdogInterval from the code
// whose liveness it vouches for (the parent's event loop), not from a dedicated goroutine that
// would keep pinging while the loop is stuck. It returns nil when notifications are not
// supported.
func (n *Notifier) Watchdog() error {
	return n.send("WATCHDOG=1")
}

// Environ returns the variables the Notifier captured, as "NAME=value" strings in the form
// os/exec expects, or nil if none were set. The parent needs them only to hand the notification
// socket and the watchdog to its own next image when it re-executes itself in place (same pid);
// they must never be given to a child.
func (n *Notifier) Environ() []string {
	if n == nil || len(n.env) == 0 {
		return nil
	}
	return append([]string(nil), n.env...)
}

// oneLine keeps a value on one line: a newline would start a new assignment in the datagram, so a
// status text containing "\nSTOPPING=1" would otherwise stop the service.
func oneLine(s string) string {
	return strings.ReplaceAll(s, "\n", " ")
}
