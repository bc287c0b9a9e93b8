package brokertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// WaitFrame is how long Expect and its relatives wait for a frame.
const WaitFrame = 10 * time.Second

// Raw is a STOMP connection driven by hand: tests write exact bytes and
// read exact frames, to check what a library client would hide. It reads
// frames by the rules of the version the broker negotiated (STOMP 1.2
// until a CONNECTED says otherwise, see Adopt) and keeps each frame's wire
// bytes, so a conformance test can see how the broker wrote it (was a ':'
// escaped? was a CR written raw?).
type Raw struct {
	tb   testing.TB
	name string // in failure messages
	// Conn is the TCP connection; it is closed when the test ends.
	Conn net.Conn
	v    stompwire.Version
	buf  []byte // read from the socket, not yet parsed
	eof  error  // sticky read error once the socket ended
}

// Raw opens a raw connection to the broker, named "raw" in failures.
func (b *Broker) Raw(tb testing.TB) *Raw { return b.RawNamed(tb, "raw") }

// RawNamed opens a raw connection that failure messages call name.
func (b *Broker) RawNamed(tb testing.TB, name string) *Raw {
	tb.Helper()
	return NewRaw(tb, b.Dial(tb), name)
}

// NewRaw drives conn, a connection the test dialled itself (from a chosen
// source address, over TLS, ...), as a Raw named name. conn is closed when
// the test ends.
func NewRaw(tb testing.TB, conn net.Conn, name string) *Raw {
	tb.Cleanup(func() { conn.Close() })
	return &Raw{tb: tb, name: name, Conn: conn, v: stompwire.V12}
}

// First sends connect (unless it is "") and returns the broker's first
// frame, whatever it is (CONNECTED, or an ERROR refusing the client).
func (r *Raw) First(connect string) *frame.Frame {
	r.tb.Helper()
	if connect != "" {
		r.Send(connect)
	}
	f, err := r.Read(WaitFrame)
	if err != nil {
		r.tb.Fatalf("%s: waiting for the first frame: %v", r.name, err)
	}
	return f
}

// In makes r report failures to tb (a subtest of the test that made r)
// and returns r.
func (r *Raw) In(tb testing.TB) *Raw {
	r.tb = tb
	return r
}

// Send writes s as is (use \x00 for NUL, \r\n for CR LF).
func (r *Raw) Send(s string) {
	r.tb.Helper()
	_ = r.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.Conn.Write([]byte(s)); err != nil {
		r.tb.Fatalf("%s: write: %v", r.name, err)
	}
}

// Connect sends a STOMP 1.2 CONNECT and expects CONNECTED.
func (r *Raw) Connect() *frame.Frame {
	r.tb.Helper()
	return r.ConnectVersion("1.2", "heart-beat:0,0")
}

// ConnectVersion sends CONNECT accepting versions (none at all when
// versions is "": a STOMP 1.0 client) plus the extra header lines, expects
// CONNECTED and from then on parses by the negotiated version.
func (r *Raw) ConnectVersion(versions string, extra ...string) *frame.Frame {
	r.tb.Helper()
	var sb strings.Builder
	sb.WriteString("CONNECT\n")
	if versions != "" {
		sb.WriteString("accept-version:" + versions + "\nhost:localhost\n")
	}
	for _, h := range extra {
		sb.WriteString(h + "\n")
	}
	sb.WriteString("\n\x00")
	r.Send(sb.String())
	f, _ := r.ExpectWire(frame.CONNECTED)
	r.Adopt(f)
	return f
}

// Adopt switches the parsing rules to the version a CONNECTED frame names.
func (r *Raw) Adopt(connected *frame.Frame) {
	r.tb.Helper()
	v, ok := stompwire.ParseVersion(connected.Header.Get(frame.Version))
	if !ok {
		r.tb.Fatalf("%s: CONNECTED has version %q", r.name, connected.Header.Get(frame.Version))
	}
	r.v = v
}

// Next returns the next frame and its wire bytes (from the command to the
// NUL), skipping heart-beats, or the error that ended the wait: a timeout
// (net.Error), io.EOF or another read error once the broker closed.
func (r *Raw) Next(timeout time.Duration) (*frame.Frame, []byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		if len(r.buf) > 0 {
			f, n, err := stompwire.Parse(r.buf, r.v, stompwire.Limits{MaxBodyBytes: 64 << 20})
			switch {
			case err == nil && f == nil: // heart-beat
				r.buf = r.buf[n:]
				continue
			case err == nil:
				wire := append([]byte(nil), r.buf[:bytes.IndexByte(r.buf, 0)+1]...)
				if f.Header.Get(frame.ContentLength) != "" {
					cl, _ := strconv.Atoi(f.Header.Get(frame.ContentLength))
					start := bytes.Index(r.buf, []byte("\n\n"))
					wire = append([]byte(nil), r.buf[:start+2+cl+1]...)
				}
				r.buf = r.buf[n:]
				return f, wire, nil
			case !errors.Is(err, stompwire.ErrIncomplete):
				r.tb.Fatalf("%s: broker sent an unparsable frame: %v\n%q", r.name, err, r.buf)
			}
		}
		if r.eof != nil {
			return nil, nil, r.eof
		}
		_ = r.Conn.SetReadDeadline(deadline)
		chunk := make([]byte, 64<<10)
		n, err := r.Conn.Read(chunk)
		r.buf = append(r.buf, chunk[:n]...)
		if err != nil {
			if isTimeout(err) {
				return nil, nil, err
			}
			r.eof = err
		}
	}
}

// Read returns the next frame (heart-beats skipped), or the read error.
func (r *Raw) Read(timeout time.Duration) (*frame.Frame, error) {
	f, _, err := r.Next(timeout)
	return f, err
}

// Expect reads the next frame and fails the test unless its command is cmd.
func (r *Raw) Expect(cmd string) *frame.Frame {
	r.tb.Helper()
	f, _ := r.ExpectWire(cmd)
	return f
}

// ExpectWire is Expect that also returns the frame's wire bytes.
func (r *Raw) ExpectWire(cmd string) (*frame.Frame, []byte) {
	r.tb.Helper()
	f, wire, err := r.Next(WaitFrame)
	if err != nil {
		r.tb.Fatalf("%s: waiting for %s: %v", r.name, cmd, err)
	}
	if f.Command != cmd {
		r.tb.Fatalf("%s: got %s, want %s\n%q", r.name, f.Command, cmd, wire)
	}
	return f, wire
}

// ExpectError reads an ERROR whose message header contains msg, with a
// content-length matching its body and whose receipt-id is receiptID
// (absent when receiptID is ""), then checks that the broker closed the
// connection.
func (r *Raw) ExpectError(msg, receiptID string) *frame.Frame {
	r.tb.Helper()
	f, wire := r.ExpectWire(frame.ERROR)
	m, ok := f.Header.Contains(frame.Message)
	if !ok || m == "" {
		r.tb.Fatalf("%s: ERROR without a message header: %q", r.name, wire)
	}
	if !strings.Contains(m, msg) {
		r.tb.Fatalf("%s: ERROR message %q does not contain %q", r.name, m, msg)
	}
	// SHOULD: a content-length (and type) on ERROR.
	if cl := f.Header.Get(frame.ContentLength); cl != strconv.Itoa(len(f.Body)) {
		r.tb.Errorf("%s: ERROR content-length %q for a %d-byte body", r.name, cl, len(f.Body))
	}
	if got, ok := f.Header.Contains(frame.ReceiptId); got != receiptID || ok != (receiptID != "") {
		r.tb.Fatalf("%s: ERROR receipt-id is %q (present %v), want %q", r.name, got, ok, receiptID)
	}
	r.ExpectClosed()
	return f
}

// ExpectClosed fails unless the broker closes the connection (EOF or
// reset) without sending another frame.
func (r *Raw) ExpectClosed() {
	r.tb.Helper()
	f, wire, err := r.Next(5 * time.Second)
	if err == nil {
		r.tb.Fatalf("%s: expected the connection to close, got %s\n%q", r.name, f.Command, wire)
	}
	if isTimeout(err) {
		r.tb.Fatalf("%s: connection still open 5s after it should have closed", r.name)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !IsReset(err) {
		r.tb.Fatalf("%s: connection ended with %v", r.name, err)
	}
}

// ExpectNothing fails if a frame arrives within d (heart-beats are fine).
func (r *Raw) ExpectNothing(d time.Duration) {
	r.tb.Helper()
	f, wire, err := r.Next(d)
	if err == nil {
		r.tb.Fatalf("%s: expected nothing, got %s\n%q", r.name, f.Command, wire)
	}
	if !isTimeout(err) {
		r.tb.Fatalf("%s: connection ended while expecting nothing: %v", r.name, err)
	}
}

// Receipted sends frame text (command and header lines, without the blank
// line, body and NUL) with a receipt header added, and waits for the
// RECEIPT: afterwards the broker has applied it.
func (r *Raw) Receipted(frameText, body, receiptID string) {
	r.tb.Helper()
	r.Send(frameText + "\nreceipt:" + receiptID + "\n\n" + body + "\x00")
	f, _ := r.ExpectWire(frame.RECEIPT)
	if got := f.Header.Get(frame.ReceiptId); got != receiptID {
		r.tb.Fatalf("%s: RECEIPT for %q, want %q", r.name, got, receiptID)
	}
}

// Subscribe subscribes with id to dest (extra header lines added) and
// waits until the subscription is live.
func (r *Raw) Subscribe(id, dest string, extra ...string) {
	r.tb.Helper()
	text := "SUBSCRIBE\nid:" + id + "\ndestination:" + dest
	for _, h := range extra {
		text += "\n" + h
	}
	r.Receipted(text, "", "sub-"+id)
}

// ExpectMessage reads a MESSAGE and checks its body.
func (r *Raw) ExpectMessage(body string) (*frame.Frame, []byte) {
	r.tb.Helper()
	f, wire := r.ExpectWire(frame.MESSAGE)
	if string(f.Body) != body {
		r.tb.Fatalf("%s: MESSAGE body %q, want %q\n%q", r.name, f.Body, body, wire)
	}
	return f, wire
}

// BeatArrivals reads from r for d and returns when data arrived, failing
// if anything but line ends (heart-beats) arrives. The first entry is the
// start time.
func (r *Raw) BeatArrivals(d time.Duration) []time.Time {
	r.tb.Helper()
	start := time.Now()
	times := []time.Time{start}
	if strings.Trim(string(r.buf), "\r\n") != "" {
		r.tb.Fatalf("%s: unexpected bytes before the heart-beats: %q", r.name, r.buf)
	}
	r.buf = nil
	deadline := start.Add(d)
	buf := make([]byte, 4096)
	for {
		_ = r.Conn.SetReadDeadline(deadline)
		n, err := r.Conn.Read(buf)
		if n > 0 {
			if s := string(buf[:n]); strings.Trim(s, "\r\n") != "" {
				r.tb.Fatalf("%s: expected only heart-beats, got %q", r.name, s)
			}
			times = append(times, time.Now())
		}
		if isTimeout(err) {
			return append(times, deadline)
		}
		if err != nil {
			r.tb.Fatalf("%s: connection ended while heart-beating: %v", r.name, err)
		}
	}
}

// IsReset reports whether err is a connection reset by the peer.
func IsReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
