//go:build linux

package systemd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Socket activation can only be tested in a process whose fds 3.. were set up before it started
// and whose LISTEN_PID is its own pid. So the tests re-run this test binary as a helper process
// with the sockets in cmd.ExtraFiles (which become fds 3, 4, ...). The helper cannot know its pid
// before it exists, so with fixPIDEnv=1 it sets LISTEN_PID itself before calling ListenFiles, as
// go-systemd's tests do with FIX_LISTEN_PID. TestSocketActivateCommand repeats the main case with
// the real systemd-socket-activate, which sets LISTEN_PID itself.
const (
	// helperEnv selects the helper mode (a key of helpers); unset in a normal test run.
	helperEnv = "STOMP_SYSTEMD_TEST_HELPER"
	// fixPIDEnv, when "1", makes the helper set LISTEN_PID to its own pid.
	fixPIDEnv = "STOMP_SYSTEMD_TEST_FIX_LISTEN_PID"
	// wantEnv carries the mode's expectation (comma-separated fd names, or an error substring).
	wantEnv = "STOMP_SYSTEMD_TEST_WANT"
)

// helperTimeout bounds every helper process and every network wait in these tests.
const helperTimeout = 20 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper runs one helper mode and turns its verdict into an exit status: 0 success, 1 a failed
// check (explained on stderr), 2 a usage error.
func runHelper(mode string) int {
	helper, ok := helpers[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "systemd test helper: unknown mode %q\n", mode)
		return 2
	}
	if os.Getenv(fixPIDEnv) == "1" {
		os.Setenv(envListenPID, strconv.Itoa(os.Getpid()))
	}
	if err := helper(os.Getenv(wantEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "systemd test helper %s: %v\n", mode, err)
		return 1
	}
	return 0
}

// helpers are the modes a helper process can run. Each returns nil if every check passed.
var helpers = map[string]func(want string) error{
	// serve: Listeners returns listeners named want (comma separated), close-on-exec, with the
	// LISTEN_* variables gone; then each accepts one connection and greets it with
	// "hello <name>\n", which the test reads from outside.
	"serve": func(want string) error {
		listeners, err := Listeners()
		if err != nil {
			return fmt.Errorf("Listeners: %w", err)
		}
		defer func() {
			for _, nl := range listeners {
				nl.Listener.Close()
			}
		}()
		if err := listenEnvGone(); err != nil {
			return err
		}
		var names []string
		for _, nl := range listeners {
			names = append(names, nl.Name)
		}
		if got := strings.Join(names, ","); got != want {
			return fmt.Errorf("listener names %q, want %q", got, want)
		}
		if err := passedFDsReleased(listeners); err != nil {
			return err
		}
		for _, nl := range listeners {
			if err := checkListenerCloexec(nl.Listener); err != nil {
				return fmt.Errorf("%s: %w", nl.Name, err)
			}
		}
		for _, nl := range listeners {
			if err := greetOne(nl); err != nil {
				return err
			}
		}
		return nil
	},

	// files: ListenFiles returns want's names on fds 3, 4, ... each close-on-exec, env gone.
	"files": func(want string) error {
		files, err := ListenFiles()
		if err != nil {
			return fmt.Errorf("ListenFiles: %w", err)
		}
		if err := listenEnvGone(); err != nil {
			return err
		}
		wantNames := strings.Split(want, ",")
		if len(files) != len(wantNames) {
			return fmt.Errorf("got %d files, want %d", len(files), len(wantNames))
		}
		for i, lf := range files {
			wantFD := listenFDsStart + i
			if lf.Name != wantNames[i] {
				return fmt.Errorf("fd %d: name %q, want %q", wantFD, lf.Name, wantNames[i])
			}
			if wantFileName := fmt.Sprintf("fd %d (%s)", wantFD, wantNames[i]); lf.File.Name() != wantFileName {
				return fmt.Errorf("File.Name() = %q, want %q", lf.File.Name(), wantFileName)
			}
			fd, cloexec, err := fileFlags(lf.File)
			if err != nil {
				return err
			}
			if fd != wantFD || !cloexec {
				return fmt.Errorf("%s: fd %d close-on-exec=%v, want fd %d close-on-exec=true", lf.Name, fd, cloexec, wantFD)
			}
			lf.File.Close()
		}
		return nil
	},

	// not-ours: LISTEN_PID names another process, so ListenFiles must return (nil, nil) and
	// touch neither the environment nor fd 3.
	"not-ours": func(string) error {
		before := listenEnv()
		files, err := ListenFiles()
		if files != nil || err != nil {
			return fmt.Errorf("ListenFiles = (%v, %v), want (nil, nil)", files, err)
		}
		if after := listenEnv(); after != before {
			return fmt.Errorf("environment changed from %q to %q", before, after)
		}
		cloexec, err := fdCloexec(listenFDsStart)
		if err != nil {
			return err
		}
		if cloexec {
			return errors.New("fd 3 became close-on-exec although LISTEN_PID was not ours")
		}
		return nil
	},

	// bad-env: ListenFiles must fail with ErrBadEnvironment and still consume the variables.
	"bad-env": func(want string) error {
		files, err := ListenFiles()
		if files != nil || !errors.Is(err, ErrBadEnvironment) || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("ListenFiles = (%v, %v), want (nil, ErrBadEnvironment mentioning %q)", files, err, want)
		}
		return listenEnvGone()
	},

	// not-listener: Listeners must fail with ErrNotListener naming the bad fd (want).
	"not-listener": func(want string) error {
		listeners, err := Listeners()
		if listeners != nil || !errors.Is(err, ErrNotListener) || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("Listeners = (%v, %v), want (nil, ErrNotListener naming %q)", listeners, err, want)
		}
		return listenEnvGone()
	},
}

// greetOne accepts one connection on nl and writes "hello <name>\n" to it.
func greetOne(nl NamedListener) error {
	if dl, ok := nl.Listener.(interface{ SetDeadline(time.Time) error }); ok {
		if err := dl.SetDeadline(time.Now().Add(helperTimeout)); err != nil {
			return err
		}
	}
	conn, err := nl.Listener.Accept()
	if err != nil {
		return fmt.Errorf("%s: accept: %w", nl.Name, err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "hello %s\n", nl.Name); err != nil {
		return fmt.Errorf("%s: write: %w", nl.Name, err)
	}
	return nil
}

// listenEnv renders the LISTEN_* variables, for before/after comparisons.
func listenEnv() string {
	return fmt.Sprintf("%s=%s %s=%s %s=%s",
		envListenPID, os.Getenv(envListenPID), envListenFDs, os.Getenv(envListenFDs),
		envListenFDNames, os.Getenv(envListenFDNames))
}

// listenEnvGone reports any LISTEN_* variable still set.
func listenEnvGone() error {
	for _, name := range []string{envListenPID, envListenFDs, envListenFDNames} {
		if v, ok := os.LookupEnv(name); ok {
			return fmt.Errorf("%s=%q still in the environment", name, v)
		}
	}
	return nil
}

// passedFDsReleased checks that Listeners closed its *os.File copies: each passed fd (3, 4, ...)
// must now be closed, or reused as the fd of one of the returned listeners (net.FileListener's
// duplicate takes the lowest free fd, which can be a passed fd closed a moment before).
func passedFDsReleased(listeners []NamedListener) error {
	ours := map[int]bool{}
	for _, nl := range listeners {
		rc, err := nl.Listener.(syscall.Conn).SyscallConn()
		if err != nil {
			return err
		}
		if err := rc.Control(func(fd uintptr) { ours[int(fd)] = true }); err != nil {
			return err
		}
	}
	for fd := listenFDsStart; fd < listenFDsStart+len(listeners); fd++ {
		if _, err := fdCloexec(fd); err == nil && !ours[fd] {
			return fmt.Errorf("fd %d is still open: Listeners kept its *os.File copy", fd)
		}
	}
	return nil
}

// fdCloexec reports whether FD_CLOEXEC is set on fd.
func fdCloexec(fd int) (bool, error) {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		return false, fmt.Errorf("fcntl(%d, F_GETFD): %w", fd, errno)
	}
	return flags&syscall.FD_CLOEXEC != 0, nil
}

// fileFlags returns f's fd number and whether it is close-on-exec.
func fileFlags(f *os.File) (fd int, cloexec bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	var flagErr error
	if err := rc.Control(func(raw uintptr) {
		fd = int(raw)
		cloexec, flagErr = fdCloexec(fd)
	}); err != nil {
		return 0, false, err
	}
	return fd, cloexec, flagErr
}

// checkListenerCloexec fails unless ln's fd is close-on-exec.
func checkListenerCloexec(ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no SyscallConn", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var cloexec bool
	var flagErr error
	if err := rc.Control(func(fd uintptr) { cloexec, flagErr = fdCloexec(int(fd)) }); err != nil {
		return err
	}
	if flagErr != nil {
		return flagErr
	}
	if !cloexec {
		return errors.New("listener fd is not close-on-exec")
	}
	return nil
}

// helperProcess is a running helper; wait must be called (it is also called on cleanup).
type helperProcess struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	cancel context.CancelFunc
	waited bool
	err    error
}

// startHelper starts a helper process in mode with want, the extra environment env and files at
// fds 3, 4, ... and then closes the test's copies of files, so that only the helper holds them.
func startHelper(t *testing.T, mode, want string, fixPID bool, env []string, files []*os.File) *helperProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	h := &helperProcess{cancel: cancel}
	h.cmd = exec.CommandContext(ctx, exe)
	h.cmd.Env = append(cleanEnv(), helperEnv+"="+mode, wantEnv+"="+want)
	if fixPID {
		h.cmd.Env = append(h.cmd.Env, fixPIDEnv+"=1")
	}
	h.cmd.Env = append(h.cmd.Env, env...)
	h.cmd.ExtraFiles = files
	h.cmd.Stderr = &h.stderr
	h.cmd.WaitDelay = 5 * time.Second
	if err := h.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start helper: %v", err)
	}
	for _, f := range files {
		f.Close()
	}
	t.Cleanup(func() { h.wait() })
	return h
}

// wait waits for the helper once and returns its error, with stderr attached.
func (h *helperProcess) wait() error {
	if !h.waited {
		h.waited = true
		if err := h.cmd.Wait(); err != nil {
			h.err = fmt.Errorf("helper: %w; stderr:\n%s", err, h.stderr.String())
		}
		h.cancel()
	}
	return h.err
}

// cleanEnv is this process's environment without systemd's variables and the helper switches,
// so the helper sees exactly what each test case sets.
func cleanEnv() []string {
	drop := append(append([]string(nil), scrubbedVars...), helperEnv, fixPIDEnv, wantEnv)
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, name := range drop {
			if strings.HasPrefix(kv, name+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	// A -race binary sleeps a second at exit (the race runtime's atexit_sleep_ms) unless told
	// otherwise; every helper would pay it.
	if _, ok := os.LookupEnv("GORACE"); !ok {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// tcpListenerFile returns a listening TCP socket on a free loopback port as an *os.File, and its
// address. The listener itself is closed; the file keeps the socket open.
func tcpListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// udpFile returns a bound UDP socket as an *os.File: a socket, but not a stream socket.
func udpFile(t *testing.T) *os.File {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// connectedTCPFile returns a connected (not listening) TCP socket as an *os.File: the one kind
// of fd net.FileListener would wrongly accept.
func connectedTCPFile(t *testing.T) *os.File {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// regularFile returns an open regular file: not a socket at all.
func regularFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readGreeting connects to addr and returns the first line the server writes.
func readGreeting(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, helperTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(helperTimeout)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

func TestListenFilesInHelperProcess(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		want   string
		fixPID bool
		env    []string
		// files builds the fds for the helper; dial lists the addresses to read a greeting from.
		files func(t *testing.T) (files []*os.File, dial []string)
	}{
		{
			name: "listener named stomp", mode: "serve", want: "stomp", fixPID: true,
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f, addr := tcpListenerFile(t)
				return []*os.File{f}, []string{addr}
			},
		},
		{
			name: "two named listeners in order", mode: "serve", want: "stomp,admin", fixPID: true,
			env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=stomp:admin"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f1, addr1 := tcpListenerFile(t)
				f2, addr2 := tcpListenerFile(t)
				return []*os.File{f1, f2}, []string{addr1, addr2}
			},
		},
		{
			name: "files without names are unknown", mode: "files", want: "unknown,unknown", fixPID: true,
			env: []string{"LISTEN_FDS=2"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f1, _ := tcpListenerFile(t)
				return []*os.File{f1, udpFile(t)}, nil
			},
		},
		{
			name: "files are close-on-exec", mode: "files", want: "stomp", fixPID: true,
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f}, nil
			},
		},
		{
			name: "LISTEN_PID of another process", mode: "not-ours",
			env: []string{"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f}, nil
			},
		},
		{
			name: "LISTEN_PID unset", mode: "not-ours",
			env: []string{"LISTEN_FDS=1"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f}, nil
			},
		},
		{
			name: "fewer names than fds", mode: "bad-env", want: "LISTEN_FDNAMES", fixPID: true,
			env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f1, _ := tcpListenerFile(t)
				f2, _ := tcpListenerFile(t)
				return []*os.File{f1, f2}, nil
			},
		},
		{
			name: "LISTEN_FDS not a number", mode: "bad-env", want: `LISTEN_FDS="one"`, fixPID: true,
			env: []string{"LISTEN_FDS=one"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f}, nil
			},
		},
		{
			name: "datagram socket", mode: "not-listener", want: "fd 3 (stomp): socket type", fixPID: true,
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				return []*os.File{udpFile(t)}, nil
			},
		},
		{
			name: "connected stream socket", mode: "not-listener", want: "fd 3 (stomp): stream socket is not in the listening state", fixPID: true,
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				return []*os.File{connectedTCPFile(t)}, nil
			},
		},
		{
			name: "regular file", mode: "not-listener", want: "fd 3 (stomp)", fixPID: true,
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=stomp"},
			files: func(t *testing.T) ([]*os.File, []string) {
				return []*os.File{regularFile(t)}, nil
			},
		},
		{
			name: "second fd is not a listener", mode: "not-listener", want: "fd 4 (admin)", fixPID: true,
			env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=stomp:admin"},
			files: func(t *testing.T) ([]*os.File, []string) {
				f, _ := tcpListenerFile(t)
				return []*os.File{f, udpFile(t)}, nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, dial := tt.files(t)
			h := startHelper(t, tt.mode, tt.want, tt.fixPID, tt.env, files)
			var greetErr error
			for i, addr := range dial {
				wantLine := "hello " + strings.Split(tt.want, ",")[i] + "\n"
				if line, err := readGreeting(addr); err != nil || line != wantLine {
					greetErr = errors.Join(greetErr, fmt.Errorf("from %s read (%q, %v), want %q", addr, line, err, wantLine))
				}
			}
			if err := errors.Join(greetErr, h.wait()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSocketActivateCommand runs the helper under systemd's own socket activation tool, so that
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES come from systemd's implementation rather than from
// this test. systemd-socket-activate binds the address, waits for the first connection, then
// execs the helper in its own process (so LISTEN_PID is the helper's pid).
func TestSocketActivateCommand(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate is not installed (Debian/Ubuntu: apt-get install systemd); " +
			"TestListenFilesInHelperProcess covers the same code with emulated activation")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)

	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	// The tool passes on only the variables named with -E (plus a few of its own), so the
	// helper's switches go through -E too.
	cmd := exec.CommandContext(ctx, tool,
		"--listen="+addr, "--fdname=stomp",
		"-E", helperEnv+"=serve", "-E", wantEnv+"=stomp", "-E", "GORACE",
		exe)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	line, greetErr := readGreetingWhenListening(ctx, addr)
	waitErr := cmd.Wait()
	if greetErr != nil || line != "hello stomp\n" || waitErr != nil {
		t.Fatalf("greeting (%q, %v), want %q; exit: %v; stderr:\n%s", line, greetErr, "hello stomp\n", waitErr, stderr.String())
	}
}

// freeLoopbackAddr returns a loopback TCP address that was free a moment ago. Another process
// could take it before systemd-socket-activate binds it; the tool then fails and so does the test,
// loudly rather than silently.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readGreetingWhenListening retries readGreeting until the address accepts connections (the tool
// needs a moment to bind) or ctx ends.
func readGreetingWhenListening(ctx context.Context, addr string) (string, error) {
	for {
		line, err := readGreeting(addr)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return line, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s never accepted a connection: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
