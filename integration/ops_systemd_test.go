package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-stomp/stomp/v3/frame"
	"golang.org/x/sys/unix"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

func TestDaemonizeWithPidfileAndLogFile(t *testing.T) {
	dir := t.TempDir()
	pidfile, logfile := filepath.Join(dir, "broker.pid"), filepath.Join(dir, "broker.log")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(brokertest.Binary(t), "--daemonize", "--pidfile", pidfile, "--log-file", logfile,
		"--listen", addr, "--control-socket", "off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("--daemonize: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`running in the background, pid (\d+), accepting clients on (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("launcher said %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		if brokertest.Alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	data, err := os.ReadFile(pidfile)
	if err != nil || strings.TrimSpace(string(data)) != m[1] {
		t.Fatalf("pidfile %q (%v), want %s", data, err, m[1])
	}
	if m[2] != addr {
		t.Errorf("launcher reports %s, want %s", m[2], addr)
	}
	// The daemon is in a session of its own, detached from the terminal.
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("daemon session id %d, want its own pid %d", sid, pid)
	}

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(plainConnect))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 9)
	if _, err := conn.Read(buf); err != nil || string(buf) != "CONNECTED" {
		t.Fatalf("daemon answered %q, %v", buf, err)
	}
	children := brokerChildren(pid)
	if len(children) != 1 {
		t.Fatalf("daemon has %d children, want 1", len(children))
	}

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitGone(t, append(children, pid), 10*time.Second)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile still there after a clean stop (%v)", err)
	}
	logs, _ := os.ReadFile(logfile)
	for _, want := range []string{`msg="broker ready"`, `role=child client=` + conn.LocalAddr().String(), `msg="broker stopped"`} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("log file lacks %s:\n%s", want, logs)
		}
	}
}

func TestDaemonizeReportsStartupFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(brokertest.Binary(t), "--daemonize", "--listen", l.Addr().String(), "--control-socket", "off")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("daemonizing on a busy port: %v, %q; want a failure naming the cause", err, out)
	}
}

// TestNotifyLifecycle runs the broker with a unixgram socket standing in
// for systemd's NOTIFY_SOCKET and a watchdog: READY=1 with MAINPID once
// listening, WATCHDOG=1 at half the interval, RELOADING=1 then READY=1
// around SIGHUP, STOPPING=1 on SIGTERM. Children see none of it.
func TestNotifyLifecycle(t *testing.T) {
	n := newNotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", n.Path)
	t.Setenv("WATCHDOG_USEC", "400000") // ping every 200ms
	b := brokertest.Start(t)

	ready := n.expect(t, "READY=1", 5*time.Second, "WATCHDOG=1")
	if !hasAssignment(ready, "MAINPID="+strconv.Itoa(b.PID)) || !strings.Contains(ready, "STATUS=accepting clients on "+b.Addr) {
		t.Errorf("READY datagram %q lacks MAINPID=%d or the status", ready, b.PID)
	}
	start := time.Now()
	for i := 0; i < 5; i++ {
		n.expect(t, "WATCHDOG=1", 2*time.Second)
	}
	// Not early: the first ping may come at once, the other four each
	// 200ms later (800ms, less slack). Not late: on a loaded machine each
	// may lag, so twice the interval each plus a fixed margin.
	const ping = 200 * time.Millisecond
	if d := time.Since(start); d < 3*ping || d > 5*2*ping+3*time.Second {
		t.Errorf("5 watchdog pings took %v, want about 1s (every %v)", d, ping)
	}

	r := b.Raw(t)
	r.Connect()
	pid := b.WaitChildren(t, 1, 5*time.Second)[0]
	for _, kv := range environOf(t, pid) {
		for _, v := range []string{"NOTIFY_SOCKET=", "WATCHDOG_", "LISTEN_"} {
			if strings.HasPrefix(kv, v) {
				t.Errorf("child environment has %s", kv)
			}
		}
	}

	b.Signal(t, syscall.SIGHUP)
	reloading := n.expect(t, "RELOADING=1", 5*time.Second, "WATCHDOG=1")
	if !regexp.MustCompile(`(?m)^MONOTONIC_USEC=\d+$`).MatchString(reloading) {
		t.Errorf("RELOADING datagram %q lacks MONOTONIC_USEC", reloading)
	}
	n.expect(t, "READY=1", 5*time.Second, "WATCHDOG=1")
	r.Send("SEND\ndestination:/topic/x\nreceipt:1\n\n\x00")
	r.Expect(frame.RECEIPT) // the client did not notice the reload

	b.Signal(t, syscall.SIGTERM)
	n.expect(t, "STOPPING=1", 5*time.Second, "WATCHDOG=1")
	r.ExpectError("broker shutting down", "")
	if err := b.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestSocketActivation starts the broker under systemd-socket-activate,
// which binds the sockets, waits for the first client, and execs the
// broker with LISTEN_FDS (and LISTEN_FDNAMES when given --fdname).
func TestSocketActivation(t *testing.T) {
	activate := brokertest.RequireTool(t, "systemd-socket-activate", "socket activation test")
	cert, key, pool := selfSignedCert(t, t.TempDir())
	tlsArgs := []string{"--tls-cert", cert, "--tls-key", key}
	tests := []struct {
		name    string
		fdnames string   // --fdname for the three sockets, "" for none
		args    []string // more broker args
		// Which of the three activated ports must serve plain STOMP, which
		// TLS, which metrics, which STOMP over WebSocket (-1: none), and
		// which must end up closed; --listen is served instead when listen
		// is set.
		serve, closed    []int
		tls, metrics, ws int
		listen           bool
	}{
		{"named stomp and admin", "stomp:admin:admin", nil, []int{0}, []int{1, 2}, -1, -1, -1, false},
		{"all named stomp", "stomp:stomp:stomp", nil, []int{0, 1, 2}, nil, -1, -1, -1, false},
		{"unnamed sockets all serve", "", nil, []int{0, 1, 2}, nil, -1, -1, -1, false},
		{"stomp, stomp-tls and metrics", "stomp:stomp-tls:metrics", tlsArgs, []int{0}, nil, 1, 2, -1, false},
		{"stomp, stomp-ws and metrics", "stomp:stomp-ws:metrics", nil, []int{0}, nil, -1, 2, 1, false},
		{"--listen wins", "stomp:stomp:stomp", nil, nil, []int{0, 1, 2}, -1, -1, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports := []int{freePort(t), freePort(t), freePort(t)}
			n := newNotifySocket(t)
			var args []string
			for _, port := range ports {
				args = append(args, "-l", fmt.Sprintf("127.0.0.1:%d", port))
			}
			if tt.fdnames != "" {
				args = append(args, "--fdname="+tt.fdnames)
			}
			args = append(args, "-E", "NOTIFY_SOCKET="+n.Path, "-E", "WATCHDOG_USEC=60000000",
				brokertest.Binary(t), "--control-socket", "off")
			args = append(args, tt.args...)
			listenAddr := ""
			if tt.listen {
				listenAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
				args = append(args, "--listen", listenAddr)
			}
			p := startProc(t, exec.Command(activate, args...))

			// systemd-socket-activate execs the broker on the first client
			// (once it has bound the ports).
			var first net.Conn
			var err error
			if !poll.Within(10*time.Second, func() bool {
				first, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), 5*time.Second)
				return err == nil
			}) {
				t.Fatalf("systemd-socket-activate never listened: %v\n%s", err, p.logs())
			}
			defer first.Close()
			p.waitLog(t, `msg="broker ready"`, 20*time.Second)
			n.expect(t, "READY=1", 5*time.Second, "WATCHDOG=1")
			pid := p.cmd.Process.Pid // the broker replaced systemd-socket-activate in this process

			var served []string
			for _, i := range tt.serve {
				served = append(served, fmt.Sprintf("127.0.0.1:%d", ports[i]))
			}
			if tt.listen {
				served = append(served, listenAddr)
			}
			for _, addr := range served {
				checkServes(t, addr)
			}
			if tt.tls >= 0 {
				c := dialTLS(t, fmt.Sprintf("127.0.0.1:%d", ports[tt.tls]), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
				c.Send(plainConnect)
				c.Expect(frame.CONNECTED)
				c.Conn.Close()
			}
			if tt.ws >= 0 {
				ws, _, err := dialWS(t, fmt.Sprintf("ws://127.0.0.1:%d/ws", ports[tt.ws]), nil)
				if err != nil {
					t.Fatalf("WebSocket on the stomp-ws socket: %v", err)
				}
				ws.connect()
				ws.c.Close(websocket.StatusNormalClosure, "")
			}
			if tt.metrics >= 0 {
				if m := scrape(t, fmt.Sprintf("127.0.0.1:%d", ports[tt.metrics])); m["stomp_broker_spawns_total"] < 1 {
					t.Errorf("metrics on the activated socket: spawns_total %v", m["stomp_broker_spawns_total"])
				}
			}
			for _, i := range tt.closed {
				addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s still accepts connections; the broker should have closed it", addr)
				}
			}

			// A child holds exactly two sockets (its client and its
			// socketpair), none of the passed listeners, and has none of
			// the variables systemd addressed to the parent.
			c := dialAndConnect(t, served[0])
			defer c.Close()
			var child int
			for _, k := range brokerChildren(pid) {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
				if strings.Contains(string(cmdline), c.LocalAddr().String()) {
					child = k
				}
			}
			if child == 0 {
				t.Fatalf("no child serves %s", c.LocalAddr())
			}
			sockets := 0
			for fd, target := range fdTargets(t, child) {
				if strings.HasPrefix(target, "socket:") {
					sockets++
				}
				if fd >= 3 && fd < 5 && !strings.HasPrefix(target, "socket:") {
					t.Errorf("child fd %d is %s", fd, target)
				}
			}
			if sockets != 2 {
				t.Errorf("child holds %d sockets, want 2 (client and parent): %v", sockets, fdTargets(t, child))
			}
			for _, kv := range environOf(t, child) {
				for _, v := range []string{"LISTEN_", "NOTIFY_SOCKET=", "WATCHDOG_"} {
					if strings.HasPrefix(kv, v) {
						t.Errorf("child environment has %s", kv)
					}
				}
			}

			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			n.expect(t, "STOPPING=1", 5*time.Second, "WATCHDOG=1")
			if err := p.wait(t, 10*time.Second); err != nil {
				t.Errorf("exit: %v\n%s", err, p.logs())
			}
		})
	}
}

// checkServes connects to addr and expects CONNECTED.
func checkServes(t *testing.T, addr string) {
	t.Helper()
	c := dialAndConnect(t, addr)
	c.Close()
}

func dialAndConnect(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	_, _ = c.Write([]byte(plainConnect))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 9)
	if _, err := c.Read(buf); err != nil || string(buf) != "CONNECTED" {
		c.Close()
		t.Fatalf("%s answered %q, %v", addr, buf, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// TestParentSIGKILLLeavesNothing kills the parent with SIGKILL, with and
// without the private IPC namespace: every child exits within 2 s (they
// see EOF on their socketpair) and no semaphore set is left (in the
// namespace the kernel removes it with the namespace; without it the last
// child to leave removes it).
func TestParentSIGKILLLeavesNothing(t *testing.T) {
	for _, ns := range []string{"auto", "off"} {
		t.Run("ipc-namespace="+ns, func(t *testing.T) {
			p := startProc(t, exec.Command(brokertest.Binary(t), "--listen", "127.0.0.1:0", "--control-socket", "off", "--ipc-namespace", ns))
			m := p.waitLog(t, `msg="broker ready" .*listen=(\S+) semaphore_set=(\d+)`, 20*time.Second)
			addr, semID := m[1], m[2]
			private := !strings.Contains(p.logs(), "no private IPC namespace") && ns != "off"
			var conns []net.Conn
			for i := 0; i < 3; i++ {
				conns = append(conns, dialAndConnect(t, addr))
				defer conns[i].Close()
			}
			// One consumer holds a queue message, so a slot is in use too.
			_, _ = conns[0].Write([]byte("SUBSCRIBE\nid:1\ndestination:/queue/k\nack:client\n\n\x00SEND\ndestination:/topic/x\nreceipt:r\n\n\x00"))
			_, _ = conns[1].Write([]byte("SEND\ndestination:/queue/k\n\nheld\x00"))
			_ = conns[0].SetReadDeadline(time.Now().Add(10 * time.Second))
			got := ""
			for buf := make([]byte, 4096); !strings.Contains(got, "held"); {
				n, err := conns[0].Read(buf)
				if err != nil {
					t.Fatalf("consumer: %v (got %q)", err, got)
				}
				got += string(buf[:n])
			}
			children := brokerChildren(p.cmd.Process.Pid)
			if len(children) != 3 || (!private && !semSetExists(t, semID)) {
				t.Fatalf("before the kill: %d children, set %s exists %v", len(children), semID, semSetExists(t, semID))
			}

			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			p.wait(t, 5*time.Second)
			waitGone(t, children, 2*time.Second)
			if private {
				return // the set lived in the namespace, which died with its last process
			}
			if !poll.Within(2*time.Second, func() bool { return !semSetExists(t, semID) }) {
				t.Fatalf("semaphore set %s still exists 2s after the parent was killed", semID)
			}
		})
	}
}

// semSetExists reports whether a semaphore set with this id exists in the
// test's IPC namespace, from /proc/sysvipc/sem. (`ipcs -s -i ID` is no use
// here: it exits 0 for a missing id.)
func semSetExists(t *testing.T, id string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == id {
			return true
		}
	}
	return false
}
