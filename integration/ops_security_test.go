package integration

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"golang.org/x/crypto/bcrypt"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

func TestPasswdCommand(t *testing.T) {
	line := strings.TrimSpace(runBroker(t, "s3cret:with colon\n", "passwd", "--cost", "4", "alice"))
	login, hash, ok := strings.Cut(line, ":")
	if !ok || login != "alice" || !strings.HasPrefix(hash, "$2a$04$") {
		t.Fatalf("passwd printed %q, want alice:<bcrypt hash of cost 4>", line)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret:with colon")); err != nil {
		t.Fatalf("the hash does not match the passcode: %v", err)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
	}{
		{"login with a colon", "x\n", []string{"passwd", "a:b"}},
		{"empty passcode", "\n", []string{"passwd", "bob"}},
		{"no login", "x\n", []string{"passwd"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(brokertest.Binary(t), tt.args...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; output %q", err, out)
			}
		})
	}
}

// usersBroker starts a broker with a users file holding alice (passcode
// "wonderland"), made with the passwd command.
func usersBroker(t *testing.T, args ...string) *brokertest.Broker {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users")
	line := runBroker(t, "wonderland\n", "passwd", "--cost", "4", "alice")
	if err := os.WriteFile(users, []byte("# test users\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, append([]string{"--users", users}, args...)...)
}

func TestUsersFileChecksCONNECT(t *testing.T) {
	b := usersBroker(t)
	tests := []struct {
		name, headers string
		ok            bool
	}{
		{"no credentials", "", false},
		{"wrong passcode", "login:alice\npasscode:looking-glass\n", false},
		{"unknown login", "login:mallory\npasscode:wonderland\n", false},
		{"empty passcode", "login:alice\npasscode:\n", false},
		{"right credentials", "login:alice\npasscode:wonderland\n", true},
		{"STOMP frame, right credentials", "login:alice\npasscode:wonderland\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.Raw(t)
			cmd := "CONNECT"
			if strings.HasPrefix(tt.name, "STOMP") {
				cmd = "STOMP"
			}
			r.Send(cmd + "\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n" + tt.headers + "\n\x00")
			if tt.ok {
				r.Expect(frame.CONNECTED)
				return
			}
			f := r.ExpectError("", "")
			if !regexp.MustCompile(`denied|login|passcode|authentication`).MatchString(f.Header.Get(frame.Message)) {
				t.Errorf("ERROR message %q does not say what failed", f.Header.Get(frame.Message))
			}
		})
	}
}

// TestNothingBeforeCONNECTHasEffect sends frames that would publish to a
// subscribed topic, without a successful CONNECT first: none reaches the
// subscriber, and each attempt ends with an ERROR and a closed connection.
func TestNothingBeforeCONNECTHasEffect(t *testing.T) {
	b := usersBroker(t)
	sub := b.Raw(t)
	sub.Send("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\nlogin:alice\npasscode:wonderland\n\n\x00")
	sub.Expect(frame.CONNECTED)
	sub.Send("SUBSCRIBE\nid:1\ndestination:/topic/guarded\n\n\x00SUBSCRIBE\nid:2\ndestination:/queue/guarded\n\n\x00")
	syncRaw(t, sub)

	send := "SEND\ndestination:/topic/guarded\n\nevil\x00SEND\ndestination:/queue/guarded\n\nevil\x00"
	attacks := []struct{ name, bytes string }{
		{"SEND first", send},
		{"SUBSCRIBE first", "SUBSCRIBE\nid:9\ndestination:/queue/guarded\n\n\x00" + send},
		{"bad CONNECT then SEND in one write", "CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\npasscode:nope\n\n\x00" + send},
		{"CONNECT without credentials then SEND", "CONNECT\naccept-version:1.2\nhost:x\n\n\x00" + send},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := b.Raw(t)
			r.Send(a.bytes)
			r.ExpectError("", "")
		})
	}
	// The first message the subscriber gets is the legitimate one.
	sub.Send("SEND\ndestination:/topic/guarded\n\ngood\x00SEND\ndestination:/queue/guarded\n\ngood\x00")
	for i := 0; i < 2; i++ {
		if m := sub.Expect(frame.MESSAGE); string(m.Body) != "good" {
			t.Fatalf("subscriber got %q from %s before the legitimate message", m.Body, m.Header.Get(frame.Destination))
		}
	}
}

// dialTLS connects to the broker's TLS listener.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *brokertest.Raw {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	return brokertest.NewRaw(t, c, "tls client")
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSignedCert(t, dir)
	sock := filepath.Join(dir, "control.sock")
	b := brokertest.Start(t, "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
		"--control-socket", sock, "--max-clients", "3")
	m := regexp.MustCompile(`tls_listen=(\S+)`).FindStringSubmatch(b.Logs())
	if m == nil {
		t.Fatalf("no tls_listen in the ready line\n%s", b.Logs())
	}
	tlsAddr := m[1]
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	// A plain client subscribes; a TLS client publishes to it.
	plain := b.Raw(t)
	plain.Connect()
	plain.Send("SUBSCRIBE\nid:1\ndestination:/topic/tls\n\n\x00")
	syncRaw(t, plain)
	sec := dialTLS(t, tlsAddr, cfg)
	sec.Send("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00")
	sec.Expect(frame.CONNECTED)
	sec.Send("SUBSCRIBE\nid:1\ndestination:/topic/tls\n\n\x00SEND\ndestination:/topic/tls\n\nover tls\x00")
	if got := plain.Expect(frame.MESSAGE); string(got.Body) != "over tls" {
		t.Fatalf("plain subscriber got %q", got.Body)
	}
	if got := sec.Expect(frame.MESSAGE); string(got.Body) != "over tls" {
		t.Fatalf("TLS subscriber got %q", got.Body)
	}

	// The TLS session lives in the child: the clients table marks it, and
	// the child (not the parent) holds the socket.
	clients, err := control.Clients(sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tlsClients := 0
	for _, c := range clients {
		if c.TLS {
			tlsClients++
			if c.Addr != sec.Conn.LocalAddr().String() {
				t.Errorf("TLS client listed as %s, is %s", c.Addr, sec.Conn.LocalAddr())
			}
			if n := countTCPSockets(t, c.PID); n != 1 {
				t.Errorf("TLS child holds %d TCP sockets, want 1", n)
			}
		}
	}
	if tlsClients != 1 {
		t.Errorf("%d TLS clients listed, want 1: %+v", tlsClients, clients)
	}

	// Plain STOMP on the TLS port is not understood: the child's
	// handshake fails and it exits.
	badConn, err := net.DialTimeout("tcp", tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer badConn.Close()
	_, _ = badConn.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\n\n\x00"))
	_ = badConn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, _ := io.ReadAll(badConn)
	if strings.Contains(string(reply), "CONNECTED") {
		t.Fatalf("plain CONNECT on the TLS port was answered: %q", reply)
	}
	b.WaitChildren(t, 2, 5*time.Second)

	// A TLS client over --max-clients (3) gets its ERROR over TLS.
	third := dialTLS(t, tlsAddr, cfg)
	third.Send("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00")
	third.Expect(frame.CONNECTED)
	over := dialTLS(t, tlsAddr, cfg)
	f := over.Expect(frame.ERROR)
	if !strings.Contains(f.Header.Get(frame.Message), "too many clients") {
		t.Errorf("ERROR over TLS: %q", f.Header.Get(frame.Message))
	}
}
