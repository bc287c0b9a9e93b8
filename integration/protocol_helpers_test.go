package integration

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// The protocol conformance tests (protocol_*_test.go) drive the broker with
// brokertest.Raw, which reads a 1.0 or 1.1 session by that version's rules
// and keeps each frame's wire bytes.

// peer is one raw STOMP connection (see brokertest.Raw).
type peer = brokertest.Raw

// newPeer dials the broker; failures name the connection name.
func newPeer(t *testing.T, b *brokertest.Broker, name string) *peer {
	t.Helper()
	return b.RawNamed(t, name)
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
	by.sub.ConnectVersion("1.2", extra...)
	by.pub.ConnectVersion("1.2", extra...)
	by.sub.Subscribe("by", by.dest)
	by.check(t)
	return by
}

// check publishes one message and expects the subscriber to get it, and
// nothing else first. t is the (sub)test running now.
func (by *bystander) check(t *testing.T) {
	t.Helper()
	by.t = t
	by.sub.In(t)
	by.pub.In(t)
	by.n++
	body := "still here " + strconv.Itoa(by.n)
	by.pub.Receipted("SEND\ndestination:"+by.dest, body, "by-"+strconv.Itoa(by.n))
	by.sub.ExpectMessage(body)
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
