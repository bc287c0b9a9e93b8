package integration

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// The limits of issue 4, each a flag: the body size, the header count, the
// header line length, subscriptions per connection and the time to send
// CONNECT. Small values here, so the tests are cheap; the defaults are
// checked against --help.

var limitFlags = []string{
	"--heart-beat", "0",
	"--max-frame-size", "1024",
	"--max-headers", "8",
	"--max-header-line", "256",
	"--max-subscriptions", "3",
	"--connect-timeout", "1s",
}

// headerLines returns n header lines "hI:v" (newline-terminated).
func headerLines(n int) string {
	var sb strings.Builder
	for i := range n {
		sb.WriteString("h" + strconv.Itoa(i) + ":v\n")
	}
	return sb.String()
}

func TestProtocolLimitsRefused(t *testing.T) {
	b := brokertest.Start(t, limitFlags...)
	by := newBystander(t, b)
	line257 := "x:" + strings.Repeat("y", 255)
	cases := []hostileCase{
		{"content-length over the body limit", "1.2", "SEND\ndestination:/topic/x\nreceipt:l1\ncontent-length:1025\n\n", "content-length exceeds the 1024-byte body limit", "l1"},
		{"huge content-length", "1.2", "SEND\ndestination:/topic/x\ncontent-length:99999999999999999999\n\n", "body limit", ""},
		{"body over the limit without content-length", "1.2", "SEND\ndestination:/topic/x\nreceipt:l2\n\n" + strings.Repeat("b", 1025) + "\x00", "frame body exceeds 1024 bytes", "l2"},
		{"body over the limit, NUL never sent", "1.2", "SEND\ndestination:/topic/x\n\n" + strings.Repeat("b", 2000), "frame body exceeds 1024 bytes", ""},
		{"too many headers", "1.2", "SEND\nreceipt:l3\ndestination:/topic/x\n" + headerLines(7) + "\n\x00", "more than 8 headers", "l3"},
		{"too many headers, never ending", "1.2", "SEND\n" + headerLines(100), "more than 8 headers", ""},
		{"header line too long", "1.2", "SEND\nreceipt:l4\ndestination:/topic/x\n" + line257 + "\n\n\x00", "header line exceeds 256 bytes", "l4"},
		{"header line too long, never ending", "1.2", "SEND\nx:" + strings.Repeat("y", 5000), "header line exceeds 256 bytes", ""},
		{"command line too long", "1.2", strings.Repeat("S", 300), "unknown command", ""},
		{"one subscription too many", "1.2",
			"SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\x00SUBSCRIBE\nid:2\ndestination:/topic/b\n\n\x00SUBSCRIBE\nid:3\ndestination:/queue/c\n\n\x00" +
				"SUBSCRIBE\nid:4\ndestination:/topic/d\nreceipt:l5\n\n\x00", "too many subscriptions (limit 3)", "l5"},
		// Before CONNECT an unauthenticated peer gets no more room.
		{"CONNECT with too many headers", "none", "CONNECT\naccept-version:1.2\n" + headerLines(8) + "\n\x00", "more than 8 headers", ""},
		{"CONNECT with a line too long", "none", "CONNECT\naccept-version:1.2\n" + line257 + "\n\n\x00", "header line exceeds 256 bytes", ""},
		{"SEND before CONNECT with a huge body", "none", "SEND\ndestination:/topic/x\ncontent-length:1000000000\n\n", "body limit", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runHostile(t, b, tc)
			by.check(t)
		})
	}
}

func TestProtocolLimitsAccepted(t *testing.T) {
	b := brokertest.Start(t, limitFlags...)
	sub := newPeer(t, b, "sub")
	sub.ConnectVersion("1.2")
	sub.Subscribe("1", "/topic/lim")
	sub.Subscribe("2", "/topic/other")
	sub.Subscribe("3", "/queue/other") // the third: exactly at the limit
	pub := newPeer(t, b, "pub")
	pub.ConnectVersion("1.2")

	body := strings.Repeat("b", 1024)
	pub.Receipted("SEND\ndestination:/topic/lim\ncontent-length:1024", body, "r1")
	sub.ExpectMessage(body)
	pub.Receipted("SEND\ndestination:/topic/lim", body, "r2")
	sub.ExpectMessage(body)
	// 8 headers with receipt and destination; a 256-byte line.
	pub.Receipted("SEND\ndestination:/topic/lim\n"+strings.TrimSuffix(headerLines(6), "\n"), "h", "r3")
	m, _ := sub.ExpectMessage("h")
	header(t, m, "h5", "v")
	long := "x:" + strings.Repeat("y", 254)
	pub.Receipted("SEND\ndestination:/topic/lim\n"+long, "l", "r4")
	m, _ = sub.ExpectMessage("l")
	header(t, m, "x", strings.Repeat("y", 254))
	// Unsubscribing makes room for another subscription.
	sub.Receipted("UNSUBSCRIBE\nid:2", "", "u")
	sub.Subscribe("4", "/topic/lim2")
}

func TestProtocolDefaultBodyLimit(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	by := newBystander(t, b)
	const max = 4 << 20
	sub := newPeer(t, b, "sub")
	sub.ConnectVersion("1.2")
	sub.Subscribe("1", "/topic/big")
	pub := newPeer(t, b, "pub")
	pub.ConnectVersion("1.2")
	body := strings.Repeat("z", max)
	pub.Receipted("SEND\ndestination:/topic/big\ncontent-length:"+strconv.Itoa(max), body, "big")
	sub.ExpectMessage(body)
	runHostile(t, b, hostileCase{"4 MiB + 1", "1.2",
		"SEND\ndestination:/topic/big\nreceipt:r\ncontent-length:" + strconv.Itoa(max+1) + "\n\n", "content-length exceeds the 4194304-byte body limit", "r"})
	by.check(t)
}

// TestProtocolLimitFlagsDocumented checks that every limit is a flag whose
// help states its default, and that the defaults are the documented ones.
func TestProtocolLimitFlagsDocumented(t *testing.T) {
	out, err := exec.Command(brokertest.Binary(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("stomp-broker --help: %v\n%s", err, out)
	}
	for flag, def := range map[string]string{
		"max-frame-size":    "4194304",
		"max-headers":       "128",
		"max-header-line":   "8192",
		"max-subscriptions": "1000",
		"connect-timeout":   "10s",
		"heart-beat":        "10s",
	} {
		re := regexp.MustCompile(`(?m)^\s+--` + flag + `\b.*\(default: ` + def + `\)`)
		if !re.Match(out) {
			t.Errorf("--help does not document --%s with default %s:\n%s", flag, def, out)
		}
	}
}

func TestProtocolConnectTimeout(t *testing.T) {
	b := brokertest.Start(t, limitFlags...)
	by := newBystander(t, b)
	cases := []struct {
		name string
		act  func(p *peer) // what the client does meanwhile (returns quickly)
	}{
		{"silent connection", func(p *peer) {}},
		{"half a CONNECT", func(p *peer) { p.Send("CONNECT\naccept-version:1.2\n") }},
		{"only heart-beats", func(p *peer) {
			go func() {
				for range 8 {
					time.Sleep(150 * time.Millisecond)
					if _, err := p.Conn.Write([]byte("\n")); err != nil {
						return
					}
				}
			}()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, b, "slow")
			start := time.Now()
			tc.act(p)
			p.ExpectError("no CONNECT frame within 1s", "")
			// The broker's 1s timer starts after this dial returned:
			// never early; late by at most a loaded machine's lag.
			if took := time.Since(start); took < 900*time.Millisecond || took > 2*time.Second+3*time.Second {
				t.Errorf("closed after %v, want about 1s", took)
			}
			by.check(t)
		})
	}
	t.Run("CONNECT in time lifts the deadline", func(t *testing.T) {
		p := newPeer(t, b, "prompt")
		time.Sleep(500 * time.Millisecond)
		p.ConnectVersion("1.2")
		time.Sleep(1500 * time.Millisecond)
		p.Receipted("SEND\ndestination:/topic/x", "still connected", "r")
	})
}

// TestProtocolLimitsApplyToClientsOnly checks that a frame within the
// limits reaches every subscriber whole, although the broker's MESSAGE has
// more headers than the SEND (message-id, subscription, ...) and escaping
// for another version can make a line up to twice as long.
func TestProtocolLimitsApplyToClientsOnly(t *testing.T) {
	b := brokertest.Start(t, limitFlags...)
	vp := connectVersionPeers(t, b, "/topic/full")
	colons := "x:" + strings.Repeat(":", 254) // 256 bytes raw, 510 escaped
	crs := "x:" + strings.Repeat("\r", 254)
	// (A 1.0/1.1 line at the limit grows when the child re-escapes it for
	// 1.2; the parent parses forwarded frames with Limits.Relayed().)
	cases := []struct {
		name, from, headers string
		check               func(t *testing.T, v string, m *frame.Frame)
		skip                string
	}{
		{"SEND with the most headers allowed", "1.2", "receipt:r\n" + headerLines(6), func(t *testing.T, v string, m *frame.Frame) {
			header(t, m, "h5", "v")
		}, ""},
		{"1.0 line of colons at the limit", "1.0", "receipt:r\n" + colons + "\n", func(t *testing.T, v string, m *frame.Frame) {
			header(t, m, "x", strings.Repeat(":", 254))
		}, ""},
		{"1.1 line of CRs at the limit", "1.1", "receipt:r\n" + crs + "\n", func(t *testing.T, v string, m *frame.Frame) {
			header(t, m, "x", strings.Repeat("\r", 254))
		}, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			body := "full-" + strconv.Itoa(i)
			pub := vp.pubs[tc.from].In(t)
			pub.Send("SEND\ndestination:/topic/full\n" + tc.headers + "\n" + body + "\x00")
			pub.ExpectWire(frame.RECEIPT)
			for _, v := range []string{"1.0", "1.1", "1.2"} {
				m, _ := vp.subs[v].In(t).ExpectMessage(body)
				tc.check(t, v, m)
			}
		})
	}
}
