//go:build linux

package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listenNotify binds a unixgram socket, as systemd does for NOTIFY_SOCKET, and closes it when the
// test ends. name is a path, or "@name" for the abstract namespace.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen unixgram %q: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// receive returns the next datagram, failing the test if none arrives within a few seconds.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := conn.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("receive notification: %v", err)
	}
	return string(buf[:n])
}

// setNotifyEnv sets NOTIFY_SOCKET for the test (or unsets it for "") and clears the watchdog
// variables, so that tests do not depend on how the test binary itself was started.
func setNotifyEnv(t *testing.T, socket string) {
	t.Helper()
	for _, name := range []string{envNotifySocket, envWatchdogUsec, envWatchdogPID} {
		t.Setenv(name, "") // registers restoration of the original value
		os.Unsetenv(name)
	}
	if socket != "" {
		t.Setenv(envNotifySocket, socket)
	}
}

func TestNotify(t *testing.T) {
	dir := t.TempDir()
	abstract := fmt.Sprintf("@stomp-broker-systemd-test-%d", os.Getpid())

	tests := []struct {
		name     string
		socket   string // NOTIFY_SOCKET; "" = unset
		listen   bool   // bind a receiver at socket
		wantSent bool
		wantErr  bool
	}{
		{name: "unsupported", socket: "", wantSent: false, wantErr: false},
		{name: "sent", socket: filepath.Join(dir, "notify.sock"), listen: true, wantSent: true},
		{name: "sent abstract", socket: abstract, listen: true, wantSent: true},
		{name: "failed no socket", socket: filepath.Join(dir, "missing.sock"), wantErr: true},
		{name: "failed abstract no socket", socket: abstract + "-missing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var receiver *net.UnixConn
			if tt.listen {
				receiver = listenNotify(t, tt.socket)
			}
			setNotifyEnv(t, tt.socket)
			n := NewNotifierFromEnv()

			sent, err := n.Notify("READY=1")
			if sent != tt.wantSent || (err != nil) != tt.wantErr {
				t.Fatalf("Notify = (%v, %v), want (%v, error=%v)", sent, err, tt.wantSent, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "systemd: notify: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if receiver != nil {
				if got := receive(t, receiver); got != "READY=1" {
					t.Errorf("received %q, want %q", got, "READY=1")
				}
			}
		})
	}
}

// TestNotifyWrongSocketType covers a NOTIFY_SOCKET that exists but is not a datagram socket.
func TestNotifyWrongSocketType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stream.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	setNotifyEnv(t, path)

	sent, err := NewNotifierFromEnv().Notify("READY=1")
	if sent || err == nil {
		t.Fatalf("Notify to a stream socket = (%v, %v), want (false, error)", sent, err)
	}
	if !errors.Is(err, syscall.EPROTOTYPE) {
		t.Errorf("error %v, want one wrapping EPROTOTYPE", err)
	}
}

func TestNotifierMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	receiver := listenNotify(t, path)
	pid := strconv.Itoa(os.Getpid())

	tests := []struct {
		name string
		send func(*Notifier) error
		want string // exact datagram
	}{
		{"ready", func(n *Notifier) error { return n.Ready("accepting") }, "READY=1\nSTATUS=accepting\nMAINPID=" + pid},
		{"ready empty status", func(n *Notifier) error { return n.Ready("") }, "READY=1\nSTATUS=\nMAINPID=" + pid},
		{"ready newline cannot inject", func(n *Notifier) error { return n.Ready("up\nSTOPPING=1") }, "READY=1\nSTATUS=up STOPPING=1\nMAINPID=" + pid},
		{"stopping", (*Notifier).Stopping, "STOPPING=1"},
		{"status", func(n *Notifier) error { return n.Status("draining 3 clients") }, "STATUS=draining 3 clients"},
		{"watchdog", (*Notifier).Watchdog, "WATCHDOG=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setNotifyEnv(t, path)
			n := NewNotifierFromEnv()
			if err := tt.send(n); err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := receive(t, receiver); got != tt.want {
				t.Errorf("received %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReloading checks the datagram's form and that MONOTONIC_USEC really is CLOCK_MONOTONIC:
// it must lie between two readings taken around the call, and cannot exceed the time since boot
// (/proc/uptime is CLOCK_BOOTTIME, which is CLOCK_MONOTONIC plus time spent suspended). A
// CLOCK_REALTIME value (~1.7e15 µs) or a value in the wrong unit fails the second check.
func TestReloading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	receiver := listenNotify(t, path)
	setNotifyEnv(t, path)
	n := NewNotifierFromEnv()

	before, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reloading(); err != nil {
		t.Fatalf("Reloading: %v", err)
	}
	after, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}

	got := receive(t, receiver)
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("received %q, want RELOADING=1\\nMONOTONIC_USEC=<digits>", got)
	}
	usec, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d not within [%d, %d]", usec, before, after)
	}
	if uptime := uptimeUsec(t); usec > uptime+1_000_000 {
		t.Errorf("MONOTONIC_USEC=%d exceeds the time since boot (%d µs): wrong clock or unit", usec, uptime)
	}
}

// uptimeUsec reads the first field of /proc/uptime (seconds since boot, two decimals) in µs.
func uptimeUsec(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Skipf("cannot cross-check the clock: %v", err)
	}
	secs, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatalf("parse /proc/uptime %q: %v", b, err)
	}
	return uint64(secs * 1e6)
}

// TestNotifierUnsupported checks that every method of a Notifier without a socket, and of a nil
// Notifier, does nothing and reports no error.
func TestNotifierUnsupported(t *testing.T) {
	setNotifyEnv(t, "")
	for name, n := range map[string]*Notifier{"from empty env": NewNotifierFromEnv(), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			if sent, err := n.Notify("READY=1"); sent || err != nil {
				t.Errorf("Notify = (%v, %v), want (false, nil)", sent, err)
			}
			for op, f := range map[string]func() error{
				"Ready":     func() error { return n.Ready("x") },
				"Reloading": n.Reloading,
				"Stopping":  n.Stopping,
				"Status":    func() error { return n.Status("x") },
				"Watchdog":  n.Watchdog,
			} {
				if err := f(); err != nil {
					t.Errorf("%s = %v, want nil", op, err)
				}
			}
			if d := n.WatchdogInterval(); d != 0 {
				t.Errorf("WatchdogInterval = %v, want 0", d)
			}
			if env := n.Environ(); env != nil {
				t.Errorf("Environ = %q, want nil", env)
			}
		})
	}
}

// TestNewNotifierFromEnvUnsets checks that the three variables leave the environment, that
// nothing else does, and that the Notifier still reaches the socket afterwards (the bug the
// design notes record: scrubbing before capturing meant READY=1 was never sent).
func TestNewNotifierFromEnvUnsets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	receiver := listenNotify(t, path)
	setNotifyEnv(t, path)
	t.Setenv(envWatchdogUsec, "30000000")
	t.Setenv(envWatchdogPID, strconv.Itoa(os.Getpid()))
	t.Setenv(envListenFDs, "1") // not ours to touch
	t.Setenv("STOMP_BROKER_UNRELATED", "kept")

	n := NewNotifierFromEnv()

	for _, name := range []string{envNotifySocket, envWatchdogUsec, envWatchdogPID} {
		if v, ok := os.LookupEnv(name); ok {
			t.Errorf("%s=%q still set", name, v)
		}
	}
	for name, want := range map[string]string{envListenFDs: "1", "STOMP_BROKER_UNRELATED": "kept"} {
		if got := os.Getenv(name); got != want {
			t.Errorf("%s=%q, want %q (must be left alone)", name, got, want)
		}
	}
	wantEnv := []string{
		envNotifySocket + "=" + path,
		envWatchdogUsec + "=30000000",
		envWatchdogPID + "=" + strconv.Itoa(os.Getpid()),
	}
	if got := n.Environ(); strings.Join(got, "|") != strings.Join(wantEnv, "|") {
		t.Errorf("Environ = %q, want %q", got, wantEnv)
	}
	if err := n.Stopping(); err != nil {
		t.Fatalf("Stopping after the environment was scrubbed: %v", err)
	}
	if got := receive(t, receiver); got != "STOPPING=1" {
		t.Errorf("received %q, want STOPPING=1", got)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name string
		usec string // "" = unset
		pid  string // "" = unset
		want time.Duration
	}{
		{"pid matches", "30000000", self, 15 * time.Second},
		{"pid unset", "30000000", "", 15 * time.Second},
		{"pid mismatch", "30000000", strconv.Itoa(os.Getpid() + 1), 0},
		{"pid malformed", "30000000", "self", 0},
		{"usec unset", "", self, 0},
		{"usec zero", "0", self, 0},
		{"usec malformed", "30s", self, 0},
		{"usec negative", "-5", self, 0},
		{"usec overflows Duration", "18446744073709551615", self, 0},
		{"odd usec", "3", "", 1500 * time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setNotifyEnv(t, "")
			if tt.usec != "" {
				t.Setenv(envWatchdogUsec, tt.usec)
			}
			if tt.pid != "" {
				t.Setenv(envWatchdogPID, tt.pid)
			}
			if got := NewNotifierFromEnv().WatchdogInterval(); got != tt.want {
				t.Errorf("WatchdogInterval = %v, want %v", got, tt.want)
			}
		})
	}
}
