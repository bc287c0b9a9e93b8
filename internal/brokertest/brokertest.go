// Package brokertest runs the real stomp-broker binary for integration
// tests: it builds the binary once per test process, starts brokers on
// free loopback ports, and after each test checks that the broker left no
// process and no semaphore set behind.
package brokertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// EnvRequireAll, when "1", turns skips for missing outside programs (client
// libraries, PostgreSQL) into failures. CI sets it.
const EnvRequireAll = "STOMP_BROKER_REQUIRE_ALL"

var binDir, binPath string

// Main builds the broker binary, runs the package's tests and removes the
// build. Call it from TestMain: func TestMain(m *testing.M) { brokertest.Main(m) }.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "stomp-broker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "brokertest:", err)
		os.Exit(2)
	}
	binDir = dir
	binPath = filepath.Join(dir, "stomp-broker")
	// The tag is the release build's (scripts/build): it leaves urfave/cli's
	// docs generator, and its initialisers, out of every child.
	args := []string{"build", "-tags", "urfave_cli_no_docs", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/stomp-broker/stomp-broker/cmd/stomp-broker")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "brokertest: building stomp-broker:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Binary returns the path of the built broker.
func Binary(tb testing.TB) string {
	tb.Helper()
	if binPath == "" {
		tb.Fatal("brokertest: call brokertest.Main from TestMain")
	}
	return binPath
}

// Broker is a running stomp-broker parent process.
type Broker struct {
	Addr string // host:port clients connect to
	PID  int    // the parent's pid

	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	logMu    sync.Mutex
	log      bytes.Buffer
	semID    int
	privIPC  bool
	children map[int]bool // every child pid ever seen, checked at the end
	stopped  bool
}

var readyLine = regexp.MustCompile(`msg="broker ready" .*listen=(\S+) semaphore_set=(\d+)`)

// Start runs the broker with args (plus --listen 127.0.0.1:0 unless args
// name a --listen) and waits until it accepts clients. When the test ends
// the broker is stopped with SIGTERM and the test fails if a process or a
// semaphore set of it is left.
func Start(tb testing.TB, args ...string) *Broker {
	tb.Helper()
	hasListen := hasFlag(args, "--listen")
	if !hasListen {
		args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	}
	if !hasFlag(args, "--spare-children") {
		// Children started on accept, so that Children counts clients; the
		// tests of spare children ask for them.
		args = append([]string{"--spare-children", "0"}, args...)
	}
	if !hasFlag(args, "--control-socket") {
		// In the test's temp dir, so a SIGKILLed broker leaves nothing in /tmp.
		args = append([]string{"--control-socket", filepath.Join(tb.TempDir(), "control.sock")}, args...)
	}
	b := &Broker{exited: make(chan struct{}), children: map[int]bool{}}
	cmd := exec.Command(Binary(tb), args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	// Its own process group, so KillGroup can SIGKILL the parent and every
	// child at the same instant (a power cut, as far as the broker knows).
	// Pdeathsig: if the test binary dies without its cleanups (a panic in
	// a client library, a timeout), the broker dies with it instead of
	// lingering. (It fires when the forking thread exits; Go keeps its
	// threads until the process ends unless a goroutine locks one.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Our own pipe, not cmd.StderrPipe: Wait would close that as soon as
	// the parent exits, while its children may still be logging.
	stderr, stderrW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = stderrW
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		tb.Fatalf("brokertest: start: %v", err)
	}
	stderrW.Close()
	b.cmd, b.PID = cmd, cmd.Process.Pid
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			b.logMu.Lock()
			b.log.WriteString(line + "\n")
			b.logMu.Unlock()
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		stderr.Close()
	}()
	go func() {
		b.waitErr = cmd.Wait()
		close(b.exited)
	}()
	tb.Cleanup(func() {
		b.Stop(tb)
		if tb.Failed() && os.Getenv("STOMP_BROKER_TEST_LOGS") == "1" {
			tb.Logf("broker log:\n%s", b.Logs())
		}
	})
	select {
	case m := <-ready:
		b.Addr = m[1]
		b.semID, _ = strconv.Atoi(m[2])
	case <-b.exited:
		tb.Fatalf("brokertest: broker exited before it was ready: %v\n%s", b.waitErr, b.Logs())
	case <-time.After(20 * time.Second):
		tb.Fatalf("brokertest: broker not ready after 20s\n%s", b.Logs())
	}
	b.privIPC = !strings.Contains(b.Logs(), "no private IPC namespace") && !hasArg(args, "--ipc-namespace=off") && !hasPair(args, "--ipc-namespace", "off")
	return b
}

// hasFlag reports whether args set the flag (as "--name value" or "--name=value").
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func hasPair(args []string, k, v string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == k && args[i+1] == v {
			return true
		}
	}
	return false
}

// Logs returns everything the broker (parent and children) logged so far.
func (b *Broker) Logs() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return b.log.String()
}

// WaitLog waits until the broker's log matches re, or fails the test.
func (b *Broker) WaitLog(tb testing.TB, re string, timeout time.Duration) {
	tb.Helper()
	rx := regexp.MustCompile(re)
	if !poll.Within(timeout, func() bool { return rx.MatchString(b.Logs()) }) {
		tb.Fatalf("brokertest: log never matched %q\n%s", re, b.Logs())
	}
}

// Children returns the pids of the broker's live child processes (one per
// client, plus spares if the test asked for --spare-children), and
// remembers them for the leak check at the end of the test.
func (b *Broker) Children(tb testing.TB) []int {
	tb.Helper()
	pids := childPIDs(b.PID)
	for _, p := range pids {
		b.children[p] = true
	}
	return pids
}

// Spares returns the pids of the broker's spare children (started and
// waiting for a client: their command line is "stomp-broker: spare").
func (b *Broker) Spares(tb testing.TB) []int {
	tb.Helper()
	return WithCmdline(b.Children(tb), "stomp-broker: spare\x00")
}

// WithCmdline returns the pids among pids whose command line (as
// /proc/PID/cmdline has it, NUL-separated) starts with prefix.
func WithCmdline(pids []int, prefix string) []int {
	var out []int
	for _, p := range pids {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if bytes.HasPrefix(data, []byte(prefix)) {
			out = append(out, p)
		}
	}
	return out
}

// WaitChildren waits until the broker has n children and returns them.
func (b *Broker) WaitChildren(tb testing.TB, n int, timeout time.Duration) []int {
	tb.Helper()
	var pids []int
	if !poll.Within(timeout, func() bool { pids = b.Children(tb); return len(pids) == n }) {
		tb.Fatalf("brokertest: broker has %d children, want %d", len(pids), n)
	}
	return pids
}

// Descendants lists pid's children, grandchildren and so on: the one
// process-tree walk the tests use.
func Descendants(pid int) []int {
	var out []int
	for _, c := range childPIDs(pid) {
		out = append(out, c)
		out = append(out, Descendants(c)...)
	}
	return out
}

// childPIDs lists the direct children of pid, from the children files of
// all its threads.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(data)) {
			if p, err := strconv.Atoi(f); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// Signal sends sig to the parent.
func (b *Broker) Signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("brokertest: signal %v: %v", sig, err)
	}
}

// KillGroup SIGKILLs the parent and all its children at once and waits for
// the parent to die.
func (b *Broker) KillGroup(tb testing.TB) {
	tb.Helper()
	b.Children(tb)
	if err := syscall.Kill(-b.PID, syscall.SIGKILL); err != nil {
		tb.Fatalf("brokertest: kill process group: %v", err)
	}
	b.WaitExit(tb, 10*time.Second)
}

// WaitExit waits for the parent to exit and returns its wait error.
func (b *Broker) WaitExit(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	select {
	case <-b.exited:
		return b.waitErr
	case <-time.After(timeout):
		tb.Fatalf("brokertest: broker did not exit within %v\n%s", timeout, b.Logs())
		return nil
	}
}

// Exited reports whether the parent has exited.
func (b *Broker) Exited() bool {
	select {
	case <-b.exited:
		return true
	default:
		return false
	}
}

// Stop stops the broker with SIGTERM (SIGKILL after 15s) and checks that
// none of its children and no semaphore set of it survive. Safe to call
// twice; Start registers it as a cleanup.
func (b *Broker) Stop(tb testing.TB) {
	tb.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	if !b.Exited() {
		b.Children(tb)
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(15 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exited
			tb.Errorf("brokertest: broker ignored SIGTERM for 15s\n%s", b.Logs())
		}
	}
	// All children share one 5s allowance to go after the broker.
	deadline := time.Now().Add(5 * time.Second)
	for pid := range b.children {
		gone := func() bool { return !Alive(pid) || !isBrokerChild(pid) }
		if !poll.Within(time.Until(deadline), gone) {
			tb.Errorf("brokertest: child process %d outlived the broker", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if !b.privIPC && b.semID > 0 && SemaphoreSetExists(b.semID) {
		tb.Errorf("brokertest: semaphore set %d outlived the broker", b.semID)
	}
}

// isBrokerChild reports whether pid still runs a broker child (pids are
// reused).
func isBrokerChild(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && (bytes.HasPrefix(data, []byte("stomp-broker: client")) || bytes.HasPrefix(data, []byte("stomp-broker: spare")))
}

// SemaphoreSetExists reports whether a set with this id exists in the
// caller's IPC namespace, from /proc/sysvipc/sem (`ipcs -s -i ID` exits 0
// even for a missing id).
func SemaphoreSetExists(id int) bool {
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == strconv.Itoa(id) {
			return true
		}
	}
	return false
}

// SemaphoreID returns the id of the broker's semaphore set.
func (b *Broker) SemaphoreID() int { return b.semID }

// PrivateIPC reports whether the broker runs in its own IPC namespace.
func (b *Broker) PrivateIPC() bool { return b.privIPC }

// RequireTool skips the test when the program name is not installed (why
// says what needs it), or fails it when EnvRequireAll is set, so CI never
// silently skips.
func RequireTool(tb testing.TB, name, why string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	Missing(tb, fmt.Sprintf("%s not found (%s)", name, why))
	return ""
}

// Missing skips with msg, or fails when EnvRequireAll=1.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv(EnvRequireAll) == "1" {
		tb.Fatalf("%s; %s=1 makes this a failure", msg, EnvRequireAll)
	}
	tb.Skipf("skipped: %s (set %s=1 to make this fail)", msg, EnvRequireAll)
}

// Dial opens a raw TCP connection to the broker.
func (b *Broker) Dial(tb testing.TB) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("brokertest: dial %s: %v", b.Addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
