package integration

// Tests of what an operator meets first: the daemon's pidfile and log
// file, the users file, and the messages for bad arguments.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// daemonize runs `stomp-broker --daemonize args...` and returns the
// launcher's combined output, its error, and the daemon's pid (0 if it
// did not report one). A daemon still running when the test ends is
// SIGKILLed.
func daemonize(t *testing.T, args ...string) (out string, err error, pid int) {
	t.Helper()
	cmd := exec.Command(brokertest.Binary(t), append([]string{"--daemonize", "--control-socket", "off"}, args...)...)
	b, err := cmd.CombinedOutput()
	out = string(b)
	if m := regexp.MustCompile(`running in the background, pid (\d+)`).FindStringSubmatch(out); m != nil {
		pid, _ = strconv.Atoi(m[1])
		t.Cleanup(func() {
			if brokertest.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				waitGone(t, []int{pid}, 10*time.Second)
			}
		})
	}
	return out, err, pid
}

func readPidfile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pidfile: %v", err)
	}
	return strings.TrimSpace(string(data))
}

// TestPidfileProtectsALiveBroker: a second broker with the same --pidfile
// is refused with a message naming the flag and the running broker's pid,
// and the first broker's pidfile stays; it is removed when that broker
// stops cleanly.
func TestPidfileProtectsALiveBroker(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "broker.pid")
	out, err, first := daemonize(t, "--pidfile", pidfile, "--log-file", filepath.Join(dir, "first.log"),
		"--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	if err != nil || first == 0 {
		t.Fatalf("first broker: %v\n%s", err, out)
	}
	out, err, second := daemonize(t, "--pidfile", pidfile, "--log-file", filepath.Join(dir, "second.log"),
		"--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	want := "stomp-broker: --pidfile: " + pidfile + ": in use by the running broker with pid " + strconv.Itoa(first) + "\n"
	if err == nil || second != 0 || out != want {
		t.Fatalf("second broker on the same pidfile: %v, pid %d, said %q; want a refusal %q", err, second, out, want)
	}
	if got := readPidfile(t, pidfile); got != strconv.Itoa(first) {
		t.Fatalf("pidfile holds %q after the refused start, want the first broker's %d", got, first)
	}
	if err := syscall.Kill(first, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitGone(t, []int{first}, 10*time.Second)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile still there after a clean stop (%v)", err)
	}
}

// TestPidfileOfADeadBrokerIsTakenOver: a pidfile left by a process that no
// longer runs does not stop a new broker, which writes its own pid there.
func TestPidfileOfADeadBrokerIsTakenOver(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(t.TempDir(), "broker.pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err, pid := daemonize(t, "--pidfile", pidfile, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	if err != nil || pid == 0 {
		t.Fatalf("broker over a stale pidfile: %v\n%s", err, out)
	}
	if got := readPidfile(t, pidfile); got != strconv.Itoa(pid) {
		t.Fatalf("pidfile holds %q, want the new broker's %d", got, pid)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	waitGone(t, []int{pid}, 10*time.Second)
}

// TestDaemonCrashLandsInTheLogFile: the daemon's stderr is its --log-file,
// so what the Go runtime prints when the broker dies reaches the file. A
// SIGQUIT (what an operator sends for a stack dump) makes the runtime
// print every goroutine's stack and exit 2: the file must hold it, with
// the start line before it and no "broker stopped" after, and the pidfile
// stays (a crash must not look like a clean stop).
func TestDaemonCrashLandsInTheLogFile(t *testing.T) {
	dir := t.TempDir()
	pidfile, logfile := filepath.Join(dir, "broker.pid"), filepath.Join(dir, "broker.log")
	out, err, pid := daemonize(t, "--pidfile", pidfile, "--log-file", logfile, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	if err != nil || pid == 0 {
		t.Fatalf("daemonize: %v\n%s", err, out)
	}
	conn := dialAndConnect(t, "127.0.0.1:"+regexp.MustCompile(`:(\d+)\s*$`).FindStringSubmatch(out)[1])
	defer conn.Close()
	children := brokerChildren(pid)
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	waitGone(t, append(children, pid), 10*time.Second)
	logs, _ := os.ReadFile(logfile)
	for _, want := range []string{`msg="broker starting" pid=` + strconv.Itoa(pid), "SIGQUIT: quit", "main.serve("} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("log file lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(string(logs), "broker stopped") {
		t.Errorf("log file says the broker stopped cleanly:\n%s", logs)
	}
	if got := readPidfile(t, pidfile); got != strconv.Itoa(pid) {
		t.Errorf("pidfile holds %q after the crash, want %d", got, pid)
	}
}
