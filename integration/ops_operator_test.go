package integration

// Tests of what an operator meets first: the daemon's pidfile and log
// file, the users file, and the messages for bad arguments.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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

// TestBadArguments runs the binary with bad arguments: it prints the one
// error (once prefixed, naming the flag and what it wants) and no help
// text, and exits with the status shown.
func TestBadArguments(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := selfSignedCert(t, dir)
	listen := []string{"--listen", "127.0.0.1:0", "--control-socket", "off"}
	config := filepath.Join(dir, "broker.conf")
	if err := os.WriteFile(config, []byte("max-clients = many\nheart-beat = 5\nnonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		stderr string
		status int
	}{
		{"duration without a unit", []string{"--connect-timeout", "5"},
			`stomp-broker: --connect-timeout: invalid value "5": want a duration with a unit, such as 5s, 500ms or 2m (see stomp-broker --help)` + "\n", 2},
		{"not a number", []string{"--max-clients=lots"},
			`stomp-broker: --max-clients: invalid value "lots": want a whole number (see stomp-broker --help)` + "\n", 2},
		{"unknown flag", []string{"--no-such-flag"},
			"stomp-broker: unknown flag --no-such-flag (see stomp-broker --help)\n", 2},
		{"flag without its value", []string{"--lease"},
			"stomp-broker: --lease: needs a value (a duration with a unit, such as 5s, 500ms or 2m) (see stomp-broker --help)\n", 2},
		{"unknown flag of a subcommand", []string{"passwd", "--salt", "x", "alice"},
			"stomp-broker passwd: unknown flag --salt (see stomp-broker passwd --help)\n", 2},
		{"every bad flag at once", []string{"--log-level", "loud", "--max-headers", "0"},
			"stomp-broker: --log-level: unknown level \"loud\" (want debug, info, warn or error)\nstomp-broker: --max-headers: must be positive, got 0\n", 2},
		{"negative heart-beat floor", []string{"--heart-beat-min", "-1s"},
			"stomp-broker: --heart-beat-min: must not be negative\n", 2},
		{"pidfile in a missing directory", append([]string{"--pidfile", filepath.Join(dir, "no", "such.pid")}, listen...),
			"stomp-broker: --pidfile: open " + filepath.Join(dir, "no", "such.pid") + ": no such file or directory\n", 2},
		{"TLS files without --tls-listen", append([]string{"--tls-cert", cert, "--tls-key", key}, listen...),
			"stomp-broker: --tls-cert and --tls-key are set but there is no TLS client socket to use them on: add --tls-listen ADDR (or a systemd socket named \"stomp-tls\")\n", 2},
		{"TLS key without its certificate", append([]string{"--tls-key", key, "--tls-listen", "127.0.0.1:0"}, listen...),
			"stomp-broker: --tls-cert: missing: --tls-key needs it\n", 2},
		{"TLS key given as the certificate", append([]string{"--tls-cert", key, "--tls-key", key, "--tls-listen", "127.0.0.1:0"}, listen...),
			"stomp-broker: --tls-cert: " + key + " holds a private key, not a certificate (swapped with --tls-key?)\n", 2},
		{"TLS certificate given as the key", append([]string{"--tls-cert", cert, "--tls-key", cert, "--tls-listen", "127.0.0.1:0"}, listen...),
			"stomp-broker: --tls-key: " + cert + " holds a certificate, not a private key (swapped with --tls-cert?)\n", 2},
		{"TLS files swapped", append([]string{"--tls-cert", key, "--tls-key", cert, "--tls-listen", "127.0.0.1:0"}, listen...),
			"stomp-broker: --tls-cert: " + key + " holds a private key, not a certificate (swapped with --tls-key?)\n" +
				"stomp-broker: --tls-key: " + cert + " holds a certificate, not a private key (swapped with --tls-cert?)\n", 2},
		{"every error of the config file", append([]string{"--config", config}, listen...),
			"stomp-broker: config file: " + config + ":3: want \"name = value\", got \"nonsense\"\n" +
				"stomp-broker: config file: " + config + ":1: max-clients: invalid value \"many\" (parse error): want a whole number\n" +
				"stomp-broker: config file: " + config + ":2: heart-beat: invalid value \"5\" (parse error): want a duration with a unit, such as 5s, 500ms or 2m\n", 2},
		{"daemonized, one prefix", append([]string{"--daemonize", "--pidfile", filepath.Join(dir, "no", "such.pid")}, listen...),
			"stomp-broker: --pidfile: open " + filepath.Join(dir, "no", "such.pid") + ": no such file or directory\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(brokertest.Binary(t), tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			status := 0
			if ee, ok := err.(*exec.ExitError); ok {
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			// The broker's own log lines (time=...) go to stderr too.
			var msgs strings.Builder
			for _, line := range strings.SplitAfter(stderr.String(), "\n") {
				if !strings.HasPrefix(line, "time=") {
					msgs.WriteString(line)
				}
			}
			if status != tt.status || msgs.String() != tt.stderr || stdout.Len() != 0 {
				t.Errorf("stomp-broker %s: exit %d, stdout %q\nstderr %q\nwant exit %d, no stdout, stderr\n       %q",
					strings.Join(tt.args, " "), status, stdout.String(), msgs.String(), tt.status, tt.stderr)
			}
		})
	}
}

// TestSIGHUPReportsEveryConfigError: a reload of a file with several bad
// lines logs all of them, each with its line, and keeps the settings.
func TestSIGHUPReportsEveryConfigError(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "broker.conf")
	if err := os.WriteFile(conf, []byte("max-clients = 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, "--config", conf)
	if err := os.WriteFile(conf, []byte("max-clients = lots\nmax-clientz = 1\nheart-beat = 5\nlog-level = loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Signal(t, syscall.SIGHUP)
	b.WaitLog(t, `msg="reload failed; keeping the running settings"`, 10*time.Second)
	logs := b.Logs()
	for _, want := range []string{
		conf + `:1: max-clients: invalid value \"lots\"`,
		conf + `:2: unknown setting \"max-clientz\"`,
		conf + `:3: heart-beat: invalid value \"5\" (parse error): want a duration with a unit`,
		conf + `: --log-level: unknown level \"loud\"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("reload log lacks %s:\n%s", want, logs)
		}
	}
}

// TestBadUsersFileIsRefused: a --users file with a bad line, a hash that is
// not bcrypt or a login given twice stops the start with every problem by
// file and line; on SIGHUP the same problems are logged. A refused login
// is logged at WARN with the login, never the passcode.
func TestBadUsersFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	good := runBroker(t, "wonderland\n", "passwd", "--cost", "4", "alice")
	bad := good + "garbage line\nbob:plain-text-passcode\n" + good
	if err := os.WriteFile(users, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a broker that starts is killed
	defer cancel()
	cmd := exec.CommandContext(ctx, brokertest.Binary(t), "--users", users, "--listen", "127.0.0.1:0", "--control-socket", "off")
	out, err := cmd.CombinedOutput()
	want := []string{
		"stomp-broker: --users: " + users + `:2: want "login:bcrypt-hash"`,
		"stomp-broker: --users: " + users + `:3: the hash of "bob" is not a bcrypt hash`,
		"stomp-broker: --users: " + users + `:4: login "alice" again (first on line 1)`,
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("broker with a bad users file: %v, want exit 2\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %s:\n%s", w, out)
		}
	}

	if err := os.WriteFile(users, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, "--users", users)
	r := b.Raw(t)
	r.Send("CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\npasscode:looking-glass\n\n\x00")
	r.ExpectError("access denied", "")
	b.WaitLog(t, `level=WARN msg="login refused" role=child client=\S+ transport=tcp login=alice`, 5*time.Second)
	if strings.Contains(b.Logs(), "looking-glass") {
		t.Errorf("the passcode is in the log:\n%s", b.Logs())
	}

	if err := os.WriteFile(users, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Signal(t, syscall.SIGHUP)
	b.WaitLog(t, `level=ERROR msg="users file has errors; the logins on those lines are refused" .*:4: login \\"alice\\" again`, 10*time.Second)
}

// TestPasswdReadsOneLineWhenNotATerminal: with standard input a pipe,
// passwd neither prompts nor asks twice: it reads the first line, and
// stdout holds just the users line.
func TestPasswdReadsOneLineWhenNotATerminal(t *testing.T) {
	cmd := exec.Command(brokertest.Binary(t), "passwd", "--cost", "4", "alice")
	cmd.Stdin = strings.NewReader("wonderland\nsecond line is not read\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("passwd: %v\n%s", err, stderr.String())
	}
	login, hash, ok := strings.Cut(strings.TrimSuffix(stdout.String(), "\n"), ":")
	if !ok || login != "alice" || strings.Contains(hash, "\n") || stderr.Len() != 0 {
		t.Fatalf("passwd printed %q and %q on stderr; want one users line and no prompt", stdout.String(), stderr.String())
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("wonderland")); err != nil {
		t.Fatalf("hash does not match the first line: %v", err)
	}
}
