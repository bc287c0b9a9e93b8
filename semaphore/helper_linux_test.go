//go:build linux && (amd64 || arm64)

package semaphore

// The test binary impersonates the broker's other processes (os/exec's pattern):
// TestMain runs a helper instead of the tests when envHelper is set. A helper is
// driven line by line over stdin and answers on stdout, so a test can make several
// processes act at chosen moments and then SIGKILL them.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envHelper, when set, makes the test binary run a helper; os.Args[1:] name it.
const envHelper = "SEMAPHORE_TEST_HELPER"

// helperTimeout bounds every wait on a helper process.
const helperTimeout = 20 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) != "" {
		os.Exit(runHelper(os.Args[1:]))
	}
	// execwait=2 makes an exec.Cmd that is started but never waited for panic with
	// the stack that created it: every helper process must be reaped. (It is not a
	// registered //go:debug setting, so it goes through the environment.)
	os.Setenv("GODEBUG", strings.TrimPrefix(os.Getenv("GODEBUG")+",execwait=2", ","))
	os.Exit(m.Run())
}

// runHelper is the main function of a helper process. Commands:
//
//	create SLOTS          Create a set, print "id ID".
//	join ID SLOTS         Join a set, print "joined".
//	exit                  Exit at once with status 0 (a pid that dies on cue).
//	private-ns SLOTS      Re-exec into a private IPC namespace, then Create and print
//	                      "ns NSLINK id ID pid PID" (or "eperm" / "err ..." on failure).
//
// then serve stdin lines until EOF: "take N" (prints won/lost/err), "leave" (prints
// "left true|false" or err), "record PATH" (WriteRecord, prints recorded/err).
// At EOF the helper exits with status 0 without leaving: the kernel's undo does it.
func runHelper(args []string) int {
	fail := func(err error) int { fmt.Println("err", err); return 1 }
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	var s *Set
	var err error
	switch {
	case len(args) == 2 && args[0] == "create":
		if s, err = Create(atoi(args[1])); err != nil {
			return fail(err)
		}
		fmt.Println("id", s.ID())
	case len(args) == 3 && args[0] == "join":
		if s, err = Join(atoi(args[1]), atoi(args[2])); err != nil {
			return fail(err)
		}
		fmt.Println("joined")
	case len(args) == 1 && args[0] == "exit":
		return 0
	case len(args) == 2 && args[0] == "private-ns":
		if !InPrivateIPCNamespace() {
			err := EnterPrivateIPCNamespace("test")
			if errors.Is(err, unix.EPERM) {
				fmt.Println("eperm")
				return 0
			}
			return fail(err) // EnterPrivateIPCNamespace returns only on failure
		}
		if s, err = Create(atoi(args[1])); err != nil {
			return fail(err)
		}
		ns, _ := os.Readlink("/proc/self/ns/ipc")
		fmt.Println("ns", ns, "id", s.ID(), "pid", os.Getpid())
	default:
		fmt.Fprintf(os.Stderr, "unknown helper command %q\n", args)
		return 2
	}

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "take":
			won, err := s.TryTake(atoi(f[1]))
			switch {
			case err != nil:
				fmt.Println("err", err)
			case won:
				fmt.Println("won")
			default:
				fmt.Println("lost")
			}
		case len(f) == 1 && f[0] == "leave":
			removed, err := s.Leave()
			if err != nil {
				fmt.Println("err", err)
			} else {
				fmt.Println("left", removed)
			}
		case len(f) == 2 && f[0] == "record":
			if err := WriteRecord(f[1], s.ID()); err != nil {
				fmt.Println("err", err)
			} else {
				fmt.Println("recorded")
			}
		default:
			fmt.Println("err unknown command", f)
		}
	}
	return 0
}

// helperProc is a running helper seen from the test.
type helperProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr lockedBuffer
	done   bool
}

// lockedBuffer collects a helper's stderr for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// helperEnv is the test's environment with the helper switch on and without the
// private-namespace marker, so every helper starts from the same state.
func helperEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvPrivateIPC+"=") && !strings.HasPrefix(kv, envHelper+"=") &&
			!strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	// A race-enabled binary sleeps 1 s at exit by default so late reports get out;
	// helpers exit on purpose all the time, so drop the sleep.
	return append(env, envHelper+"=1", "GORACE=atexit_sleep_ms=0")
}

// startHelper starts the test binary as a helper running args. The helper is killed
// and reaped when the test ends, if the test has not done so.
func startHelper(t testing.TB, args ...string) *helperProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &helperProc{t: t, lines: make(chan string, 16)}
	h.cmd = exec.Command(exe, args...)
	h.cmd.Env = helperEnv()
	h.cmd.Stderr = &h.stderr
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(h.kill)
	return h
}

func (h *helperProc) pid() int { return h.cmd.Process.Pid }

// send writes one command line to the helper.
func (h *helperProc) send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		h.t.Fatalf("helper %d: send %q: %v (stderr: %s)", h.pid(), line, err, h.stderr.String())
	}
}

// expect returns the helper's next output line.
func (h *helperProc) expect() string {
	h.t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %d: exited early (stderr: %s)", h.pid(), h.stderr.String())
		}
		return line
	case <-time.After(helperTimeout):
		h.t.Fatalf("helper %d: no answer within %v", h.pid(), helperTimeout)
		return ""
	}
}

// expectLine fails the test unless the next line is want.
func (h *helperProc) expectLine(want string) {
	h.t.Helper()
	if got := h.expect(); got != want {
		h.t.Fatalf("helper %d: got %q, want %q (stderr: %s)", h.pid(), got, want, h.stderr.String())
	}
}

// exit closes the helper's stdin (it exits with status 0) and reaps it.
func (h *helperProc) exit() {
	h.t.Helper()
	h.stdin.Close()
	if err := h.reap(); err != nil {
		h.t.Fatalf("helper %d: %v (stderr: %s)", h.pid(), err, h.stderr.String())
	}
}

// kill SIGKILLs the helper and reaps it. Safe to call after exit or kill.
func (h *helperProc) kill() {
	if h.done {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	_ = h.reap()
}

// reap drains stdout (required before Wait) and waits for the process, within
// helperTimeout; a helper that does not exit by then is SIGKILLed.
func (h *helperProc) reap() error {
	if h.done {
		return nil
	}
	h.done = true
	timeout := time.After(helperTimeout)
	for drained := false; !drained; {
		select {
		case _, ok := <-h.lines:
			drained = !ok
		case <-timeout:
			_ = h.cmd.Process.Signal(syscall.SIGKILL)
			timeout = nil // the kill closes stdout; keep draining
		}
	}
	return h.cmd.Wait()
}

// requireGone fails the test unless set id no longer exists, checked both with
// IPC_STAT and in /proc/sysvipc/sem (the file `ipcs -s` reads).
func requireGone(t testing.TB, id int) {
	t.Helper()
	if _, err := stat(id); !isGone(err) {
		t.Errorf("set %d still exists (IPC_STAT error %v)", id, err)
	}
	if nsems, ok := sysvSets(t)[id]; ok {
		t.Errorf("set %d (%d semaphores) still listed in /proc/sysvipc/sem", id, nsems)
	}
}

// sysvSets returns semid → nsems for the sets of the caller's IPC namespace, read
// from /proc/sysvipc/sem.
func sysvSets(t testing.TB) map[int]int {
	t.Helper()
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		t.Fatal(err)
	}
	return parseSysvSem(t, data)
}

// parseSysvSem parses /proc/sysvipc/sem: a header line, then
// "key semid perms nsems uid gid cuid cgid otime ctime" per set.
func parseSysvSem(t testing.TB, data []byte) map[int]int {
	t.Helper()
	sets := map[int]int{}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 4 {
			t.Fatalf("/proc/sysvipc/sem: odd line %q", line)
		}
		id, err1 := strconv.Atoi(f[1])
		nsems, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("/proc/sysvipc/sem: odd line %q", line)
		}
		sets[id] = nsems
	}
	return sets
}

// rawValue is GETVAL without a Set, for sets made by helpers.
func rawValue(t testing.TB, id, num int) int {
	t.Helper()
	v, err := semctl(id, num, getVal, 0)
	if err != nil {
		t.Fatalf("GETVAL set %d sem %d: %v", id, num, err)
	}
	return v
}

// removeOnCleanup removes set id when the test ends, in case the test failed
// before the code under test removed it. "Already gone" is the expected outcome.
func removeOnCleanup(t testing.TB, id int) {
	t.Cleanup(func() {
		if err := rmid(id); err == nil {
			t.Errorf("set %d was still there at the end of the test; removed it", id)
		}
	})
}
