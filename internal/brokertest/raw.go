package brokertest

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Raw is a STOMP connection driven by hand: tests write exact bytes and
// read exact frames, to check what a library client would hide.
type Raw struct {
	tb   testing.TB
	Conn net.Conn
	r    *stompwire.Reader
}

// Raw opens a raw connection to the broker.
func (b *Broker) Raw(tb testing.TB) *Raw {
	c := b.Dial(tb)
	return &Raw{tb: tb, Conn: c, r: stompwire.NewReader(c, stompwire.Limits{MaxBodyBytes: 64 << 20})}
}

// Send writes s as is (use \x00 for NUL).
func (r *Raw) Send(s string) {
	r.tb.Helper()
	_ = r.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.Conn.Write([]byte(s)); err != nil {
		r.tb.Fatalf("raw: write: %v", err)
	}
}

// Connect sends a STOMP 1.2 CONNECT and expects CONNECTED.
func (r *Raw) Connect() *frame.Frame {
	r.tb.Helper()
	r.Send("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\x00")
	return r.Expect(frame.CONNECTED)
}

// Read returns the next frame (heart-beats skipped), or the read error.
func (r *Raw) Read(timeout time.Duration) (*frame.Frame, error) {
	_ = r.Conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, err := r.r.Read()
		if err != nil || f != nil {
			return f, err
		}
	}
}

// Expect reads the next frame and fails the test unless its command is cmd.
func (r *Raw) Expect(cmd string) *frame.Frame {
	r.tb.Helper()
	f, err := r.Read(10 * time.Second)
	if err != nil {
		r.tb.Fatalf("raw: waiting for %s: %v", cmd, err)
	}
	if f.Command != cmd {
		r.tb.Fatalf("raw: got %s (%s), want %s", f.Command, describe(f), cmd)
	}
	return f
}

// ExpectError reads an ERROR frame whose message header contains want, and
// then the end of the connection.
func (r *Raw) ExpectError(want string) *frame.Frame {
	r.tb.Helper()
	f := r.Expect(frame.ERROR)
	if !strings.Contains(f.Header.Get(frame.Message), want) {
		r.tb.Fatalf("raw: ERROR message %q does not contain %q", f.Header.Get(frame.Message), want)
	}
	r.ExpectClosed()
	return f
}

// ExpectClosed fails the test unless the broker closes the connection.
func (r *Raw) ExpectClosed() {
	r.tb.Helper()
	f, err := r.Read(5 * time.Second)
	if err == nil {
		r.tb.Fatalf("raw: expected the connection to close, got %s (%s)", f.Command, describe(f))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.tb.Fatalf("raw: connection still open after 5s")
	}
}

func describe(f *frame.Frame) string {
	var parts []string
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		parts = append(parts, k+":"+v)
	}
	return strings.Join(parts, " ") + " body=" + string(f.Body)
}
