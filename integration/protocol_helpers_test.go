package integration

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

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// This file holds the raw-frame client the protocol conformance tests
// (protocol_*_test.go) drive the broker with. brokertest.Raw parses every
// frame by STOMP 1.2 rules; a conformance test must read a 1.0 or 1.1
// session by that version's rules and see the exact bytes the broker wrote
// (was a ':' escaped? was a CR written raw?), so peer keeps both.

// waitFrame is how long a test waits for a frame it expects.
const waitFrame = 10 * time.Second

// peer is one raw STOMP connection. It reads frames under the version the
// broker negotiated (1.2 rules until CONNECTED says otherwise) and keeps
// each frame's wire bytes.
type peer struct {
	t    *testing.T
	name string
	conn net.Conn
	v    stompwire.Version
	buf  []byte // read from the socket, not yet parsed
	eof  error  // sticky read error once the socket ended
}

// newPeer dials the broker. The connection is closed when the test ends.
func newPeer(t *testing.T, b *brokertest.Broker, name string) *peer {
	t.Helper()
	return &peer{t: t, name: name, conn: b.Dial(t), v: stompwire.V12}
}

// in makes p report failures to t (a subtest of the test that made p)
// and returns p.
func (p *peer) in(t *testing.T) *peer {
	p.t = t
	return p
}

// send writes s as is (use \x00 for NUL, \r\n for CR LF).
func (p *peer) send(s string) {
	p.t.Helper()
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.conn.Write([]byte(s)); err != nil {
		p.t.Fatalf("%s: write: %v", p.name, err)
	}
}

// connect sends CONNECT accepting versions (none at all when versions is
// "": a STOMP 1.0 client) plus the extra header lines, expects CONNECTED
// and from then on parses by the negotiated version.
func (p *peer) connect(versions string, extra ...string) *frame.Frame {
	p.t.Helper()
	var sb strings.Builder
	sb.WriteString("CONNECT\n")
	if versions != "" {
		sb.WriteString("accept-version:" + versions + "\nhost:localhost\n")
	}
	for _, h := range extra {
		sb.WriteString(h + "\n")
	}
	sb.WriteString("\n\x00")
	p.send(sb.String())
	f, _ := p.expect(frame.CONNECTED)
	p.adopt(f)
	return f
}

// adopt switches the parsing rules to the version a CONNECTED frame names.
func (p *peer) adopt(connected *frame.Frame) {
	p.t.Helper()
	v, ok := stompwire.ParseVersion(connected.Header.Get(frame.Version))
	if !ok {
		p.t.Fatalf("%s: CONNECTED has version %q", p.name, connected.Header.Get(frame.Version))
	}
	p.v = v
}

// next returns the next frame and its wire bytes (from the command to the
// NUL), skipping heart-beats, or the error that ended the wait: a timeout
// (net.Error), io.EOF or another read error once the broker closed.
func (p *peer) next(timeout time.Duration) (*frame.Frame, []byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		if len(p.buf) > 0 {
			f, n, err := stompwire.Parse(p.buf, p.v, stompwire.Limits{MaxBodyBytes: 64 << 20})
			switch {
			case err == nil && f == nil: // heart-beat
				p.buf = p.buf[n:]
				continue
			case err == nil:
				wire := append([]byte(nil), p.buf[:bytes.IndexByte(p.buf, 0)+1]...)
				if f.Header.Get(frame.ContentLength) != "" {
					cl, _ := strconv.Atoi(f.Header.Get(frame.ContentLength))
					start := bytes.Index(p.buf, []byte("\n\n"))
					wire = append([]byte(nil), p.buf[:start+2+cl+1]...)
				}
				p.buf = p.buf[n:]
				return f, wire, nil
			case !errors.Is(err, stompwire.ErrIncomplete):
				p.t.Fatalf("%s: broker sent an unparsable frame: %v\n%q", p.name, err, p.buf)
			}
		}
		if p.eof != nil {
			return nil, nil, p.eof
		}
		_ = p.conn.SetReadDeadline(deadline)
		chunk := make([]byte, 64<<10)
		n, err := p.conn.Read(chunk)
		p.buf = append(p.buf, chunk[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, nil, err
			}
			p.eof = err
		}
	}
}

// expect reads the next frame and fails the test unless it is a cmd.
func (p *peer) expect(cmd string) (*frame.Frame, []byte) {
	p.t.Helper()
	f, wire, err := p.next(waitFrame)
	if err != nil {
		p.t.Fatalf("%s: waiting for %s: %v", p.name, cmd, err)
	}
	if f.Command != cmd {
		p.t.Fatalf("%s: got %s, want %s\n%q", p.name, f.Command, cmd, wire)
	}
	return f, wire
}

// expectError reads an ERROR whose message header contains msg and whose
// receipt-id is receiptID (absent when receiptID is ""), then checks that
// the broker closed the connection.
func (p *peer) expectError(msg, receiptID string) *frame.Frame {
	p.t.Helper()
	f, wire := p.expect(frame.ERROR)
	m, ok := f.Header.Contains(frame.Message)
	if !ok || m == "" {
		p.t.Fatalf("%s: ERROR without a message header: %q", p.name, wire)
	}
	if !strings.Contains(m, msg) {
		p.t.Fatalf("%s: ERROR message %q does not contain %q", p.name, m, msg)
	}
	// SHOULD: a content-length (and type) on ERROR.
	if cl := f.Header.Get(frame.ContentLength); cl != strconv.Itoa(len(f.Body)) {
		p.t.Errorf("%s: ERROR content-length %q for a %d-byte body", p.name, cl, len(f.Body))
	}
	if got, ok := f.Header.Contains(frame.ReceiptId); got != receiptID || ok != (receiptID != "") {
		p.t.Fatalf("%s: ERROR receipt-id is %q (present %v), want %q", p.name, got, ok, receiptID)
	}
	p.expectClosed()
	return f
}

// expectClosed fails unless the broker closes the connection (EOF or
// reset) without sending another frame.
func (p *peer) expectClosed() {
	p.t.Helper()
	f, wire, err := p.next(5 * time.Second)
	if err == nil {
		p.t.Fatalf("%s: expected the connection to close, got %s\n%q", p.name, f.Command, wire)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		p.t.Fatalf("%s: connection still open 5s after it should have closed", p.name)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		p.t.Fatalf("%s: connection ended with %v", p.name, err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// expectNothing fails if a frame arrives within d (heart-beats are fine).
func (p *peer) expectNothing(d time.Duration) {
	p.t.Helper()
	f, wire, err := p.next(d)
	if err == nil {
		p.t.Fatalf("%s: expected nothing, got %s\n%q", p.name, f.Command, wire)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		p.t.Fatalf("%s: connection ended while expecting nothing: %v", p.name, err)
	}
}

// receipted sends frame text (command and header lines, without the blank
// line, body and NUL) with a receipt header added, and waits for the
// RECEIPT: afterwards the broker has applied it.
func (p *peer) receipted(frameText, body, receiptID string) {
	p.t.Helper()
	p.send(frameText + "\nreceipt:" + receiptID + "\n\n" + body + "\x00")
	f, _ := p.expect(frame.RECEIPT)
	if got := f.Header.Get(frame.ReceiptId); got != receiptID {
		p.t.Fatalf("%s: RECEIPT for %q, want %q", p.name, got, receiptID)
	}
}

// subscribe subscribes with id to dest (extra header lines added) and
// waits until the subscription is live.
func (p *peer) subscribe(id, dest string, extra ...string) {
	p.t.Helper()
	text := "SUBSCRIBE\nid:" + id + "\ndestination:" + dest
	for _, h := range extra {
		text += "\n" + h
	}
	p.receipted(text, "", "sub-"+id)
}

// expectMessage reads a MESSAGE and checks its body.
func (p *peer) expectMessage(body string) (*frame.Frame, []byte) {
	p.t.Helper()
	f, wire := p.expect(frame.MESSAGE)
	if string(f.Body) != body {
		p.t.Fatalf("%s: MESSAGE body %q, want %q\n%q", p.name, f.Body, body, wire)
	}
	return f, wire
}

// header checks that f's first value of name is want.
func header(t *testing.T, f *frame.Frame, name, want string) {
	t.Helper()
	got, ok := f.Header.Contains(name)
	if !ok {
		t.Fatalf("%s has no %s header (want %q)", f.Command, name, want)
	}
	if got != want {
		t.Fatalf("%s header %s is %q, want %q", f.Command, name, got, want)
	}
}

// bystander is a pair of well-behaved clients connected before a hostile
// one: a subscriber and a publisher on one topic. check proves they are
// still served after the hostile client was thrown out.
type bystander struct {
	t        *testing.T
	sub, pub *peer
	dest     string
	n        int
}

// newBystander connects the pair (adding the extra CONNECT header lines)
// and checks that it works.
func newBystander(t *testing.T, b *brokertest.Broker, extra ...string) *bystander {
	t.Helper()
	by := &bystander{t: t, dest: "/topic/bystander", sub: newPeer(t, b, "bystander-sub"), pub: newPeer(t, b, "bystander-pub")}
	by.sub.connect("1.2", extra...)
	by.pub.connect("1.2", extra...)
	by.sub.subscribe("by", by.dest)
	by.check(t)
	return by
}

// check publishes one message and expects the subscriber to get it, and
// nothing else first. t is the (sub)test running now.
func (by *bystander) check(t *testing.T) {
	t.Helper()
	by.t = t
	by.sub.in(t)
	by.pub.in(t)
	by.n++
	body := "still here " + strconv.Itoa(by.n)
	by.pub.receipted("SEND\ndestination:"+by.dest, body, "by-"+strconv.Itoa(by.n))
	by.sub.expectMessage(body)
}

// wireHeaders returns the header lines of a frame's wire bytes, as written
// (escapes not decoded, line ends removed).
func wireHeaders(wire []byte) []string {
	end := bytes.Index(wire, []byte("\n\n"))
	if end < 0 {
		return nil
	}
	lines := strings.Split(string(wire[:end]), "\n")
	return lines[1:]
}

// hasLine reports whether lines contains line.
func hasLine(lines []string, line string) bool {
	for _, l := range lines {
		if l == line {
			return true
		}
	}
	return false
}
