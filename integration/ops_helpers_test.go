package integration

// Helpers for the operating tests (ops_*_test.go): brokers started in ways
// brokertest.Start does not cover (daemonized, socket-activated, with a
// notification socket), a stand-in for systemd's NOTIFY_SOCKET, and /proc
// readers.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET: it collects every datagram the broker sends.
type notifySocket struct {
	Path string
	conn *net.UnixConn
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{Path: path, conn: conn, msgs: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// expect waits for a datagram containing want (one of the newline-separated
// assignments) and returns it, skipping others for which skip is true.
// Any other datagram fails the test.
func (n *notifySocket) expect(t *testing.T, want string, timeout time.Duration, skip ...string) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %q", want)
			}
			if hasAssignment(m, want) {
				return m
			}
			skipped := false
			for _, s := range skip {
				if hasAssignment(m, s) {
					skipped = true
				}
			}
			if !skipped {
				t.Fatalf("notify: got %q while waiting for %q", m, want)
			}
		case <-deadline:
			t.Fatalf("notify: no %q within %v", want, timeout)
			return ""
		}
	}
}

func hasAssignment(datagram, assignment string) bool {
	for _, line := range strings.Split(datagram, "\n") {
		if line == assignment {
			return true
		}
	}
	return false
}

// proc is a broker process started by a test by other means than
// brokertest.Start. Its stderr is collected; cleanup kills what is left.
type proc struct {
	cmd    *exec.Cmd
	logMu  sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
	err    error
}

// startProc starts cmd with stderr collected and registers a cleanup that
// SIGKILLs it if it still runs (after giving it SIGTERM and 10 s).
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.logMu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.logMu.Unlock()
		}
		r.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.done() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-p.exited
				t.Errorf("%v ignored SIGTERM for 10s\n%s", cmd.Args, p.logs())
			}
		}
	})
	return p
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// waitLog waits until the log matches re and returns the submatches.
func (p *proc) waitLog(t *testing.T, re string, timeout time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	matched := poll.Within(timeout, func() bool {
		if m = rx.FindStringSubmatch(p.logs()); m != nil {
			return true
		}
		if p.done() {
			t.Fatalf("process exited (%v) before its log matched %q\n%s", p.err, re, p.logs())
		}
		return false
	})
	if !matched {
		t.Fatalf("log never matched %q\n%s", re, p.logs())
	}
	return m
}

// wait waits for the process to exit and returns its wait error.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%v did not exit within %v\n%s", p.cmd.Args, timeout, p.logs())
		return nil
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// brokerChildren returns the descendants of pid that are broker children
// (their command line starts with "stomp-broker: client").
func brokerChildren(pid int) []int {
	return brokertest.WithCmdline(brokertest.Descendants(pid), "stomp-broker: client")
}

// waitGone waits until none of pids is alive (zombies count as gone).
func waitGone(t *testing.T, pids []int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		if !poll.Within(time.Until(deadline), func() bool { return !brokertest.Alive(pid) }) {
			t.Fatalf("process %d still alive after %v", pid, timeout)
		}
	}
}

// environOf returns a process's initial environment.
func environOf(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// fdTargets returns what each open fd of pid points to.
func fdTargets(t *testing.T, pid int) map[int]string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil {
			out[fd] = target
		}
	}
	return out
}

// pssKiB returns the summed proportional set size of pids in KiB, and how
// many of them could be read. Pss shares each page among the processes
// mapping it, so the sum is the memory the process tree really costs.
func pssKiB(pids []int) (kib int64, n int) {
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "Pss:" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				kib += v
				n++
				break
			}
		}
	}
	return kib, n
}

// selfSignedCert writes a fresh self-signed ECDSA certificate for
// 127.0.0.1 and its key into dir and returns the paths and the pool that
// trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stomp-broker test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// runBroker runs the broker binary with args (a subcommand such as
// clients) and returns its standard output; a non-zero exit fails the test.
func runBroker(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(brokertest.Binary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stomp-broker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
