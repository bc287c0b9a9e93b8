package stompwire

import (
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

func TestAppendFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *frame.Frame
		v    Version
		want string
	}{
		{"no headers", fr("DISCONNECT", ""), V12, "DISCONNECT\n\n\x00"},
		{"nil header", &frame.Frame{Command: "ACK"}, V12, "ACK\n\n\x00"},
		{"body", fr("SEND", "hi\x00there", "content-length", "8"), V12, "SEND\ncontent-length:8\n\nhi\x00there\x00"},
		{"escapes v1.2", fr("SEND", "", "a:b", "x\\y\nz\r:"), V12, "SEND\na\\cb:x\\\\y\\nz\\r\\c\n\n\x00"},
		{"escapes v1.1 keep CR raw", fr("SEND", "", "a:b", "x\\y\nz\r:"), V11, "SEND\na\\cb:x\\\\y\\nz\r\\c\n\n\x00"},
		{"no escapes v1.0", fr("SEND", "", "a", "x\\y:z"), V10, "SEND\na:x\\y:z\n\n\x00"},
		{"CONNECT not escaped", fr("CONNECT", "", "passcode", "p:w\\d"), V12, "CONNECT\npasscode:p:w\\d\n\n\x00"},
		{"STOMP not escaped", fr("STOMP", "", "login", "a:b"), V11, "STOMP\nlogin:a:b\n\n\x00"},
		{"CONNECTED not escaped", fr("CONNECTED", "", "server", "b/1:x"), V12, "CONNECTED\nserver:b/1:x\n\n\x00"},
		{"repeated headers kept", fr("MESSAGE", "", "k", "1", "k", "2"), V12, "MESSAGE\nk:1\nk:2\n\n\x00"},
		{"nil frame is a heart-beat", nil, V12, "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendFrame([]byte("prefix|"), tc.f, tc.v))
			if got != "prefix|"+tc.want {
				t.Errorf("AppendFrame = %q, want %q", got, "prefix|"+tc.want)
			}
		})
	}
	if got := string(AppendHeartBeat([]byte("x"))); got != "x\n" {
		t.Errorf("AppendHeartBeat = %q", got)
	}
}

func TestAppendFrameDoesNotAllocate(t *testing.T) {
	f := fr("MESSAGE", "body", "destination", "/queue/a:b", "subscription", "1", "x", "line\nbreak\\")
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendFrame(buf[:0], f, V12)
	})
	if allocs != 0 {
		t.Errorf("AppendFrame allocated %v times into a big enough buffer", allocs)
	}
}

// TestRoundTrip checks Parse(AppendFrame(f, v), v) == f for values that need
// every escape the version has.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *frame.Frame
		v    Version
	}{
		{"v1.1 specials", fr("SEND", "body", "desti:nation", "a:b\nc\\d", "e", "\\n literal", "cr", "x\ry"), V11},
		{"v1.2 specials", fr("SEND", "body", "desti:nation", "a:b\nc\\d\re", "\r\n", "\\c"), V12},
		{"v1.2 empty values", fr("MESSAGE", "", "a", "", "b", ":"), V12},
		{"v1.2 embedded NULs", fr("SEND", "a\x00b\x00", "content-length", "4"), V12},
		{"v1.2 repeated", fr("MESSAGE", "x", "k", "1", "k", "2"), V12},
		{"v1.2 CONNECT raw", fr("CONNECT", "", "login", "u\\ser", "passcode", "p\\t:w"), V12},
		{"v1.1 ERROR", fr("ERROR", "details", "message", "bad: thing\nhappened"), V11},
		{"v1.0 plain", fr("SEND", "hello", "destination", "/queue/a", "x", "a:b\\c"), V10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := AppendFrame(nil, tc.f, tc.v)
			got, n, err := Parse(wire, tc.v, Limits{})
			if err != nil {
				t.Fatalf("Parse(%q): %v", wire, err)
			}
			if n != len(wire) {
				t.Errorf("Parse consumed %d of %d bytes", n, len(wire))
			}
			if d := frameDiff(got, tc.f); d != "" {
				t.Errorf("wire %q: %s", wire, d)
			}
		})
	}
}

// TestEncodableMatchesParse checks Encodable against its definition: for
// every short name and value over the characters that matter, it is true
// exactly when Parse reads back what AppendFrame wrote.
func TestEncodableMatchesParse(t *testing.T) {
	alphabet := []string{"a", ":", "\n", "\r", `\`, "\x00"}
	words := []string{""}
	for _, x := range alphabet {
		words = append(words, x)
		for _, y := range alphabet {
			words = append(words, x+y)
		}
	}
	for _, cmd := range []string{frame.MESSAGE, frame.CONNECT, frame.CONNECTED} {
		for _, v := range []Version{V10, V11, V12} {
			for _, name := range words {
				for _, value := range words {
					f := frame.New(cmd, name, value)
					back, _, err := Parse(AppendFrame(nil, f, v), v, Limits{})
					roundTrips := err == nil && back.Header.Len() == 1
					if roundTrips {
						n, val := back.Header.GetAt(0)
						roundTrips = n == name && val == value
					}
					if got := Encodable(cmd, v, name, value); got != roundTrips {
						t.Errorf("Encodable(%s, %v, %q, %q) = %v, but the round trip gives %v (err %v)",
							cmd, v, name, value, got, roundTrips, err)
					}
				}
			}
		}
	}
}

// TestRelayedLimitsFitReencodedFrames checks that a frame at the limits in
// any version, re-encoded as STOMP 1.2 with the broker's headers added,
// still parses under Relayed limits (and not under the original ones).
func TestRelayedLimitsFitReencodedFrames(t *testing.T) {
	lim := Limits{MaxHeaderLines: 4, MaxHeaderLineBytes: 32, MaxBodyBytes: 16}
	for _, v := range []Version{V10, V11} {
		// The longest line of characters that 1.2 must escape: ':' raw
		// in 1.0, CR raw in 1.1.
		c := ":"
		if v == V11 {
			c = "\r"
		}
		line := "x:" + strings.Repeat(c, 30)
		in := "SEND\n" + line + "\na:1\nb:2\ndestination:/queue/q\n\n0123456789abcdef\x00"
		f, _, err := Parse([]byte(in), v, lim)
		if err != nil {
			t.Fatalf("%v: the frame at the limits is refused: %v", v, err)
		}
		m := frame.New(frame.MESSAGE, frame.MessageId, "1", frame.Subscription, "s", frame.Ack, "1", frame.ContentLength, "16")
		for i := 0; i < f.Header.Len(); i++ {
			k, val := f.Header.GetAt(i)
			m.Header.Add(k, val)
		}
		m.Body = f.Body
		wire := AppendFrame(nil, m, V12)
		if _, _, err := Parse(wire, V12, lim); err == nil {
			t.Errorf("%v: the re-encoded frame fits the client limits; the test proves nothing", v)
		}
		back, _, err := Parse(wire, V12, lim.Relayed())
		if err != nil {
			t.Fatalf("%v: the re-encoded frame is refused under Relayed limits: %v", v, err)
		}
		if got := back.Header.Get("x"); got != strings.Repeat(c, 30) {
			t.Errorf("%v: x is %q after the relay", v, got)
		}
	}
	if r := (Limits{}).Relayed(); r.MaxBodyBytes != DefaultMaxBodyBytes || r.MaxHeaderLineBytes != 2*DefaultMaxHeaderLineBytes {
		t.Errorf("Limits{}.Relayed() = %+v: defaults not applied first", r)
	}
}

// TestAppendHeaderMatchesAppendFrame checks that a header spliced in with
// AppendHeader is byte for byte the line AppendFrame writes for it, in
// every version and for frames that are escaped and frames that are not.
func TestAppendHeaderMatchesAppendFrame(t *testing.T) {
	values := []string{"", "plain", "id:with\\specials\r\n", "a\\b", "x:y", "cr\r"}
	for _, cmd := range []string{frame.MESSAGE, frame.CONNECTED} {
		for _, v := range []Version{V10, V11, V12} {
			for _, name := range []string{frame.Subscription, "n:\\\n"} {
				for _, value := range values {
					want := string(AppendFrame(nil, frame.New(cmd, name, value), v))
					got := cmd + "\n" + string(AppendHeader(nil, cmd, v, name, value)) + "\n\x00"
					if got != want {
						t.Errorf("%s %v %q:%q: AppendHeader gives %q, AppendFrame %q", cmd, v, name, value, got, want)
					}
				}
			}
		}
	}
}
