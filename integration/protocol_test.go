package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"golang.org/x/crypto/bcrypt"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The protocol conformance suite: raw frames against the real binary, one
// case per obligation of STOMP 1.0, 1.1 and 1.2 (see
// docs/protocol-conformance.md for the map from the spec to these tests).
// Each case asserts exactly what arrives: command, headers, body bytes, the
// ERROR's message and receipt-id, and that the connection is closed.

func TestProtocolVersionNegotiation(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	cases := []struct {
		name    string
		connect string // the whole CONNECT (or STOMP) frame
		version string // CONNECTED's version header
	}{
		{"no accept-version is 1.0", "CONNECT\nlogin:a\npasscode:b\n\n\x00", "1.0"},
		{"1.0 only", "CONNECT\naccept-version:1.0\n\n\x00", "1.0"},
		{"1.1 only", "CONNECT\naccept-version:1.1\nhost:h\n\n\x00", "1.1"},
		{"1.2 only", "CONNECT\naccept-version:1.2\nhost:h\n\n\x00", "1.2"},
		{"highest common of 1.0,1.1", "CONNECT\naccept-version:1.0,1.1\nhost:h\n\n\x00", "1.1"},
		{"highest common, any order", "CONNECT\naccept-version:1.2,1.0,1.1\nhost:h\n\n\x00", "1.2"},
		{"unknown versions ignored", "CONNECT\naccept-version:1.1,2.0,9.9\nhost:h\n\n\x00", "1.1"},
		{"STOMP command is CONNECT", "STOMP\naccept-version:1.2\nhost:h\n\n\x00", "1.2"},
		{"STOMP command for 1.1", "STOMP\naccept-version:1.1\nhost:h\n\n\x00", "1.1"},
		{"any host is accepted", "CONNECT\naccept-version:1.2\nhost:no-such-vhost.example\n\n\x00", "1.2"},
		{"missing host is tolerated", "CONNECT\naccept-version:1.2\n\n\x00", "1.2"},
		{"CR LF line ends on CONNECT", "CONNECT\r\naccept-version:1.2\r\nhost:h\r\n\r\n\x00", "1.2"},
		{"first accept-version wins", "CONNECT\naccept-version:1.1\naccept-version:1.2\nhost:h\n\n\x00", "1.1"},
		{"leading EOLs before CONNECT", "\n\r\n\nCONNECT\naccept-version:1.2\nhost:h\n\n\x00", "1.2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, b, "client")
			p.Send(tc.connect)
			f, _ := p.ExpectWire(frame.CONNECTED)
			header(t, f, frame.Version, tc.version)
			if f.Header.Get(frame.Session) == "" {
				t.Errorf("CONNECTED has no session header")
			}
			if !strings.HasPrefix(f.Header.Get(frame.Server), "stomp-broker") {
				t.Errorf("CONNECTED server header %q does not name the broker", f.Header.Get(frame.Server))
			}
			if tc.version != "1.0" {
				header(t, f, frame.HeartBeat, "0,0")
			}
			p.Adopt(f)
			// The session works in the negotiated version.
			p.Receipted("SEND\ndestination:/topic/negotiated", "x", "r1")
			p.Send("DISCONNECT\nreceipt:bye\n\n\x00")
			r, _ := p.ExpectWire(frame.RECEIPT)
			header(t, r, frame.ReceiptId, "bye")
			p.ExpectClosed()
		})
	}
}

func TestProtocolNoCommonVersion(t *testing.T) {
	b := brokertest.Start(t)
	by := newBystander(t, b)
	for _, accept := range []string{"2.0", "2.0,2.1", "1.3", " "} {
		t.Run(accept, func(t *testing.T) {
			p := newPeer(t, b, "client")
			p.Send("CONNECT\naccept-version:" + accept + "\nhost:h\n\n\x00")
			f := p.ExpectError("unsupported protocol version", "")
			header(t, f, frame.Version, "1.0,1.1,1.2")
			if !bytes.Contains(f.Body, []byte("1.0, 1.1 and 1.2")) {
				t.Errorf("ERROR body %q does not say which versions the broker speaks", f.Body)
			}
			by.check(t)
		})
	}
}

// versionPeers connects one subscriber per STOMP version to dest (ids
// "s10", "s11", "s12") and one publisher per version.
type versionPeers struct {
	subs, pubs map[string]*peer // by version "1.0", "1.1", "1.2"
}

func connectVersionPeers(t *testing.T, b *brokertest.Broker, dest string) *versionPeers {
	t.Helper()
	vp := &versionPeers{subs: map[string]*peer{}, pubs: map[string]*peer{}}
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		accept := v
		if v == "1.0" {
			accept = "" // a real 1.0 client sends no accept-version
		}
		sub := newPeer(t, b, "sub"+v)
		sub.ConnectVersion(accept)
		sub.Subscribe("s"+strings.ReplaceAll(v, ".", ""), dest)
		vp.subs[v] = sub
		pub := newPeer(t, b, "pub"+v)
		pub.ConnectVersion(accept)
		vp.pubs[v] = pub
	}
	return vp
}

func TestProtocolHeaderEscaping(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	vp := connectVersionPeers(t, b, "/topic/esc")
	cases := []struct {
		name  string
		from  string // publisher version
		line  string // the header line as the publisher writes it
		value string // the value every subscriber must decode
		// wire is the header line each subscriber must see on the wire; ""
		// means the header must be absent (that version cannot carry it).
		wire map[string]string
		// mark is text that no header line of a subscriber whose wire
		// entry is "" may contain.
		mark string
	}{
		{"1.2 escapes decoded and re-encoded per version", "1.2", `x:a\cb\\c`, `a:b\c`,
			map[string]string{"1.2": `x:a\cb\\c`, "1.1": `x:a\cb\\c`, "1.0": `x:a:b\c`}, ""},
		{"1.2 LF escape; 1.0 cannot carry an LF", "1.2", `x:line1\nline2`, "line1\nline2",
			map[string]string{"1.2": `x:line1\nline2`, "1.1": `x:line1\nline2`, "1.0": ""}, "line"},
		{"1.2 CR escape is raw CR to 1.1 and 1.0", "1.2", `x:a\rb`, "a\rb",
			map[string]string{"1.2": `x:a\rb`, "1.1": "x:a\rb", "1.0": "x:a\rb"}, ""},
		{"1.2 escaped colon in a name", "1.2", `a\cb:v`, "v",
			map[string]string{"1.2": `a\cb:v`, "1.1": `a\cb:v`, "1.0": ""}, "a:b"},
		{"1.1 escapes", "1.1", `x:a\cb\nc\\d`, "a:b\nc\\d",
			map[string]string{"1.2": `x:a\cb\nc\\d`, "1.1": `x:a\cb\nc\\d`, "1.0": ""}, "a:b"},
		{"1.1 raw CR inside a value", "1.1", "x:a\rb", "a\rb",
			map[string]string{"1.2": `x:a\rb`, "1.1": "x:a\rb", "1.0": "x:a\rb"}, ""},
		{"1.0 is not escaped: colon in a value", "1.0", "x:a:b", "a:b",
			map[string]string{"1.2": `x:a\cb`, "1.1": `x:a\cb`, "1.0": "x:a:b"}, ""},
		{"1.0 is not escaped: backslashes are text", "1.0", `x:a\nb\c`, `a\nb\c`,
			map[string]string{"1.2": `x:a\\nb\\c`, "1.1": `x:a\\nb\\c`, "1.0": `x:a\nb\c`}, ""},
		{"1.2 values are not trimmed", "1.2", "x:  padded  ", "  padded  ",
			map[string]string{"1.2": "x:  padded  ", "1.1": "x:  padded  ", "1.0": "x:  padded  "}, ""},
		{"1.1 values are not trimmed", "1.1", "x: v ", " v ",
			map[string]string{"1.2": "x: v ", "1.1": "x: v ", "1.0": "x: v "}, ""},
		{"empty value", "1.2", "x:", "",
			map[string]string{"1.2": "x:", "1.1": "x:", "1.0": "x:"}, ""},
		{"UTF-8 value", "1.2", "x:grüße ✓", "grüße ✓",
			map[string]string{"1.2": "x:grüße ✓", "1.1": "x:grüße ✓", "1.0": "x:grüße ✓"}, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := "esc-" + strings.Repeat("!", i)
			vp.pubs[tc.from].In(t).Receipted("SEND\ndestination:/topic/esc\n"+tc.line, body, "r")
			for _, v := range []string{"1.0", "1.1", "1.2"} {
				f, wire := vp.subs[v].In(t).ExpectMessage(body)
				lines := wireHeaders(wire)
				want := tc.wire[v]
				name, _, _ := strings.Cut(tc.line, ":")
				switch {
				case want == "":
					for _, l := range lines {
						if strings.Contains(l, tc.mark) {
							t.Errorf("%s subscriber got header line %q, which STOMP %s cannot carry", v, l, v)
						}
					}
				case !hasLine(lines, want):
					t.Errorf("%s subscriber: no header line %q in %q", v, want, wire)
				default:
					if name == "x" {
						if got := f.Header.Get("x"); got != tc.value {
							t.Errorf("%s subscriber decodes x as %q, want %q", v, got, tc.value)
						}
					}
				}
				if v == "1.1" && bytes.Contains(wire, []byte(`\r`)) {
					t.Errorf("1.1 subscriber got a \\r escape, which STOMP 1.1 does not define: %q", wire)
				}
			}
		})
	}
}

func TestProtocolMessageHeaders(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	sub := newPeer(t, b, "sub")
	sub.ConnectVersion("1.2")
	sub.Subscribe("my-sub", "/topic/h")
	sub.Subscribe("other", "/topic/h2")
	pub := newPeer(t, b, "pub")
	pub.ConnectVersion("1.2")

	t.Run("required headers and content-length", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("SEND\ndestination:/topic/h", "no length given", "r1")
		f, wire := sub.ExpectMessage("no length given")
		header(t, f, frame.Destination, "/topic/h")
		header(t, f, frame.Subscription, "my-sub")
		header(t, f, frame.ContentLength, "15")
		if f.Header.Get(frame.MessageId) == "" {
			t.Errorf("MESSAGE has no message-id: %q", wire)
		}
		if _, ok := f.Header.Contains(frame.Ack); ok {
			t.Errorf("MESSAGE for an ack:auto subscription has an ack header: %q", wire)
		}
		if f.Header.Get(frame.Receipt) != "" {
			t.Errorf("the SEND's receipt header leaked into the MESSAGE: %q", wire)
		}
	})
	t.Run("message ids are unique", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Send("SEND\ndestination:/topic/h\n\na\x00SEND\ndestination:/topic/h\n\nb\x00")
		f1, _ := sub.ExpectMessage("a")
		f2, _ := sub.ExpectMessage("b")
		if f1.Header.Get(frame.MessageId) == f2.Header.Get(frame.MessageId) {
			t.Errorf("two messages share message-id %q", f1.Header.Get(frame.MessageId))
		}
	})
	t.Run("custom headers pass through untouched", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		custom := []string{
			"content-type:application/json;charset=utf-8", "x-trace-id:abc-123", "persistent:true",
			"priority:9", "reply-to:/queue/replies", "expires:0", "correlation-id:c1", "X-Case:Sensitive",
		}
		pub.Receipted("SEND\ndestination:/topic/h\n"+strings.Join(custom, "\n"), `{"k":1}`, "r2")
		f, wire := sub.ExpectMessage(`{"k":1}`)
		lines := wireHeaders(wire)
		for _, h := range custom {
			if !hasLine(lines, escapeValue(h)) {
				t.Errorf("header %q did not arrive as sent: %q", h, wire)
			}
		}
		header(t, f, frame.ContentType, "application/json;charset=utf-8")
	})
	t.Run("first of repeated headers wins, all are kept in order", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("SEND\ndestination:/topic/h\nx:first\nx:second\nx:third", "rep", "r3")
		f, _ := sub.ExpectMessage("rep")
		if got := f.Header.GetAll("x"); strings.Join(got, ",") != "first,second,third" {
			t.Errorf("MESSAGE x headers %q, want first,second,third in order", got)
		}
	})
	t.Run("first destination routes", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("SEND\ndestination:/topic/h2\ndestination:/topic/h", "dest", "r4")
		f, _ := sub.ExpectMessage("dest")
		header(t, f, frame.Subscription, "other")
		header(t, f, frame.Destination, "/topic/h2")
		sub.ExpectNothing(200 * time.Millisecond)
	})
	t.Run("first content-length counts", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("SEND\ndestination:/topic/h\ncontent-length:3\ncontent-length:1", "a\x00c", "r5")
		f, _ := sub.ExpectMessage("a\x00c")
		header(t, f, frame.ContentLength, "3")
	})
	t.Run("a SEND cannot forge broker headers", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("SEND\ndestination:/topic/h\nmessage-id:forged\nsubscription:forged\nack:forged\nredelivered:true\ncontent-length:6", "forged", "r6")
		f, wire := sub.ExpectMessage("forged")
		for _, h := range []string{frame.MessageId, frame.Subscription, frame.Ack, stompwire.HeaderRedelivered} {
			for _, v := range f.Header.GetAll(h) {
				if v == "forged" || (h == stompwire.HeaderRedelivered && v == "true") {
					t.Errorf("the publisher's %s header reached the subscriber: %q", h, wire)
				}
			}
		}
		header(t, f, frame.Subscription, "my-sub")
	})
}

// escapeValue escapes the value part of a "name:value" line by STOMP 1.2
// rules, as the broker writes it.
func escapeValue(line string) string {
	name, value, _ := strings.Cut(line, ":")
	return name + ":" + strings.ReplaceAll(value, ":", `\c`)
}

func TestProtocolBodies(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	vp := connectVersionPeers(t, b, "/topic/body")
	all256 := make([]byte, 256)
	for i := range all256 {
		all256[i] = byte(i)
	}
	cases := []struct {
		name string
		from string
		send string // the whole SEND frame after its destination line
		body string // what every subscriber must receive
	}{
		{"body up to the NUL without content-length", "1.2", "\nhello world\x00", "hello world"},
		{"content-length with embedded NULs", "1.2", "content-length:5\n\na\x00b\x00c\x00", "a\x00b\x00c"},
		{"content-length with all 256 byte values", "1.1", "content-length:256\n\n" + string(all256) + "\x00", string(all256)},
		{"empty body", "1.2", "\n\x00", ""},
		{"content-length 0", "1.2", "content-length:0\n\n\x00", ""},
		{"body with line ends kept", "1.2", "\n\r\nline\r\n\n\x00", "\r\nline\r\n\n"},
		{"1.0 body", "1.0", "\n1.0 body\x00", "1.0 body"},
		{"1.0 content-length with NUL", "1.0", "content-length:3\n\nx\x00y\x00", "x\x00y"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rid := "b" + strings.Repeat("x", i)
			pub := vp.pubs[tc.from].In(t)
			pub.Send("SEND\ndestination:/topic/body\nreceipt:" + rid + "\n" + tc.send)
			r, _ := pub.ExpectWire(frame.RECEIPT)
			header(t, r, frame.ReceiptId, rid)
			for _, v := range []string{"1.0", "1.1", "1.2"} {
				f, _ := vp.subs[v].In(t).ExpectMessage(tc.body)
				header(t, f, frame.ContentLength, strconv.Itoa(len(tc.body)))
			}
		})
	}
}

func TestProtocolLineEnds(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	sub := newPeer(t, b, "sub")
	sub.ConnectVersion("1.2")
	sub.Subscribe("1", "/topic/eol")

	t.Run("CR LF throughout a 1.2 session", func(t *testing.T) {
		sub.In(t)
		p := newPeer(t, b, "crlf")
		p.Send("STOMP\r\naccept-version:1.2\r\nhost:h\r\n\r\n\x00\r\n")
		f, _ := p.ExpectWire(frame.CONNECTED)
		p.Adopt(f)
		p.Send("SEND\r\ndestination:/topic/eol\r\nx:y\r\nreceipt:r\r\n\r\nbody\r\n\x00\r\n")
		r, _ := p.ExpectWire(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "r")
		m, _ := sub.ExpectMessage("body\r\n")
		header(t, m, "x", "y")
		header(t, m, frame.Destination, "/topic/eol")
	})
	t.Run("any number of EOLs between frames", func(t *testing.T) {
		sub.In(t)
		p := newPeer(t, b, "eols")
		p.Send("\n\n\r\nCONNECT\naccept-version:1.2\nhost:h\n\n\x00\n\n\n")
		f, _ := p.ExpectWire(frame.CONNECTED)
		p.Adopt(f)
		p.Send("\r\n\nSEND\ndestination:/topic/eol\n\none\x00\n\r\n\n\nSEND\ndestination:/topic/eol\n\ntwo\x00SEND\ndestination:/topic/eol\n\nthree\x00\r\n")
		p.Send("\n\n\n")
		p.Receipted("SEND\ndestination:/topic/eol", "four", "r")
		for _, body := range []string{"one", "two", "three", "four"} {
			sub.ExpectMessage(body)
		}
	})
	t.Run("EOLs between frames in 1.1 and 1.0", func(t *testing.T) {
		sub.In(t)
		for _, v := range []string{"1.1", ""} {
			p := newPeer(t, b, "eols-"+v)
			p.ConnectVersion(v)
			p.Send("\n\n\nSEND\ndestination:/topic/eol\n\nv" + v + "\x00\n\n")
			p.Receipted("\nSEND\ndestination:/topic/eol", "end"+v, "r")
			sub.ExpectMessage("v" + v)
			sub.ExpectMessage("end" + v)
		}
	})
	t.Run("a frame split into single bytes", func(t *testing.T) {
		sub.In(t)
		p := newPeer(t, b, "bytes")
		p.ConnectVersion("1.2")
		for _, c := range []byte("SEND\r\ndestination:/topic/eol\r\ncontent-length:3\r\n\r\na\x00b\x00") {
			p.Send(string([]byte{c}))
		}
		sub.ExpectMessage("a\x00b")
	})
}

func TestProtocolAuthentication(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("# test users\nalice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, "--heart-beat", "0", "--users", users)
	t.Run("right passcode", func(t *testing.T) {
		p := newPeer(t, b, "alice")
		p.ConnectVersion("1.2", "login:alice", "passcode:s3cret")
		p.Receipted("SEND\ndestination:/topic/auth", "in", "r")
	})
	by := newBystander(t, b, "login:alice", "passcode:s3cret")
	for _, tc := range []struct{ name, connect string }{
		{"wrong passcode", "CONNECT\naccept-version:1.2\nhost:h\nlogin:alice\npasscode:guess\n\n\x00"},
		{"unknown login", "CONNECT\naccept-version:1.2\nhost:h\nlogin:mallory\npasscode:s3cret\n\n\x00"},
		{"no login", "CONNECT\naccept-version:1.2\nhost:h\n\n\x00"},
		{"STOMP 1.0 wrong passcode", "CONNECT\nlogin:alice\npasscode:x\n\n\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, b, "intruder")
			p.Send(tc.connect)
			p.ExpectError("access denied", "")
			by.check(t)
		})
	}
}
