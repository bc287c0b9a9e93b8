package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Acknowledgement, transactions and receipts, with raw frames.

// quiet is how long a test waits to be sure a frame does not come.
const quiet = 400 * time.Millisecond

// ackLine returns the ACK/NACK header line that names m by spelling: "id"
// (1.2: the MESSAGE's ack header) or "message-id" (1.0 and 1.1).
func ackLine(t *testing.T, m *frame.Frame, spelling string) string {
	t.Helper()
	if spelling == "id" {
		return "id:" + m.Header.Get(frame.Ack)
	}
	return "message-id:" + m.Header.Get(frame.MessageId) + "\nsubscription:" + m.Header.Get(frame.Subscription)
}

// queueIsEmpty checks that a new consumer of queue gets nothing: every
// message was acknowledged.
func queueIsEmpty(t *testing.T, b *brokertest.Broker, queue string) {
	t.Helper()
	c := newPeer(t, b, "checker")
	c.ConnectVersion("1.2")
	c.Subscribe("check", queue, "ack:client-individual")
	c.ExpectNothing(quiet)
}

func TestProtocolAckSpellings(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	cases := []struct {
		name     string
		version  string // "" = 1.0
		ack      string
		spelling string
	}{
		{"1.2 ACK id, client-individual", "1.2", "client-individual", "id"},
		{"1.2 ACK id, client", "1.2", "client", "id"},
		{"1.1 ACK message-id", "1.1", "client-individual", "message-id"},
		{"1.0 ACK message-id", "", "client", "message-id"},
		{"1.2 client using the 1.1 spelling", "1.2", "client-individual", "message-id"},
		{"1.1 client using the 1.2 spelling", "1.1", "client-individual", "id"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue := "/queue/spell-" + strconv.Itoa(i)
			cons := newPeer(t, b, "consumer")
			cons.ConnectVersion(tc.version)
			cons.Subscribe("c", queue, "ack:"+tc.ack, "prefetch-count:1")
			prod := newPeer(t, b, "producer")
			prod.ConnectVersion("1.2")
			prod.Receipted("SEND\ndestination:"+queue, "m1", "p1")
			prod.Receipted("SEND\ndestination:"+queue, "m2", "p2")

			m1, _ := cons.ExpectMessage("m1")
			header(t, m1, frame.Subscription, "c")
			header(t, m1, frame.Destination, queue)
			if m1.Header.Get(frame.Ack) == "" {
				t.Fatalf("MESSAGE for an ack:%s subscription has no ack header", tc.ack)
			}
			cons.ExpectNothing(quiet) // prefetch 1: m2 waits for the ACK
			cons.Receipted("ACK\n"+ackLine(t, m1, tc.spelling), "", "a1")
			m2, _ := cons.ExpectMessage("m2")
			cons.Receipted("ACK\n"+ackLine(t, m2, tc.spelling), "", "a2")
			cons.Send("DISCONNECT\nreceipt:bye\n\n\x00")
			cons.ExpectWire(frame.RECEIPT)
			cons.ExpectClosed()
			queueIsEmpty(t, b, queue)
		})
	}
}

func TestProtocolAckModes(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	cases := []struct {
		name      string
		ack       string
		ackIndex  int      // which of m1..m4 (0-based) the consumer acks
		redeliver []string // what a second consumer gets after the first leaves
	}{
		{"client is cumulative", "client", 2, []string{"m4"}},
		{"client-individual acks one", "client-individual", 2, []string{"m1", "m2", "m4"}},
		{"client acking the first acks only it", "client", 0, []string{"m2", "m3", "m4"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue := "/queue/mode-" + strconv.Itoa(i)
			cons := newPeer(t, b, "consumer")
			cons.ConnectVersion("1.2")
			cons.Subscribe("c", queue, "ack:"+tc.ack, "prefetch-count:10")
			prod := newPeer(t, b, "producer")
			prod.ConnectVersion("1.2")
			var msgs []*frame.Frame
			for j := 1; j <= 4; j++ {
				prod.Receipted("SEND\ndestination:"+queue, "m"+strconv.Itoa(j), "p")
				m, _ := cons.ExpectMessage("m" + strconv.Itoa(j))
				msgs = append(msgs, m)
			}
			cons.Receipted("ACK\nid:"+msgs[tc.ackIndex].Header.Get(frame.Ack), "", "a")
			cons.Send("DISCONNECT\nreceipt:bye\n\n\x00")
			cons.ExpectWire(frame.RECEIPT)
			cons.ExpectClosed()

			next := newPeer(t, b, "next")
			next.ConnectVersion("1.2")
			next.Subscribe("n", queue, "ack:client-individual")
			got := map[string]bool{}
			for range tc.redeliver {
				m, _ := next.ExpectWire(frame.MESSAGE)
				header(t, m, stompwire.HeaderRedelivered, "true")
				got[string(m.Body)] = true
			}
			for _, body := range tc.redeliver {
				if !got[body] {
					t.Errorf("%s was not redelivered (got %v)", body, got)
				}
			}
			next.ExpectNothing(quiet)
		})
	}
}

func TestProtocolNack(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	t.Run("client-individual NACK redelivers that message", func(t *testing.T) {
		cons := newPeer(t, b, "consumer")
		cons.ConnectVersion("1.2")
		cons.Subscribe("c", "/queue/nack1", "ack:client-individual", "prefetch-count:1")
		prod := newPeer(t, b, "producer")
		prod.ConnectVersion("1.2")
		prod.Receipted("SEND\ndestination:/queue/nack1\nx-custom:kept", "n1", "p")
		m, _ := cons.ExpectMessage("n1")
		if _, ok := m.Header.Contains(stompwire.HeaderRedelivered); ok && m.Header.Get(stompwire.HeaderRedelivered) != "false" {
			t.Fatalf("first delivery says redelivered:%s", m.Header.Get(stompwire.HeaderRedelivered))
		}
		cons.Receipted("NACK\nid:"+m.Header.Get(frame.Ack), "", "n")
		again, _ := cons.ExpectMessage("n1")
		header(t, again, stompwire.HeaderRedelivered, "true")
		header(t, again, frame.MessageId, m.Header.Get(frame.MessageId))
		header(t, again, "x-custom", "kept")
		cons.Receipted("ACK\nid:"+again.Header.Get(frame.Ack), "", "a")
		cons.ExpectNothing(quiet)
	})
	t.Run("client NACK is cumulative", func(t *testing.T) {
		cons := newPeer(t, b, "consumer")
		cons.ConnectVersion("1.1")
		cons.Subscribe("c", "/queue/nack2", "ack:client", "prefetch-count:2")
		prod := newPeer(t, b, "producer")
		prod.ConnectVersion("1.2")
		prod.Receipted("SEND\ndestination:/queue/nack2", "a", "p")
		prod.Receipted("SEND\ndestination:/queue/nack2", "b", "p")
		cons.ExpectMessage("a")
		mb, _ := cons.ExpectMessage("b")
		cons.Receipted("NACK\nmessage-id:"+mb.Header.Get(frame.MessageId)+"\nsubscription:c", "", "n")
		for _, body := range []string{"a", "b"} {
			m, _ := cons.ExpectMessage(body)
			header(t, m, stompwire.HeaderRedelivered, "true")
		}
	})
}

func TestProtocolTransactions(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	sub := newPeer(t, b, "sub")
	sub.ConnectVersion("1.2")
	sub.Subscribe("s", "/topic/tx")
	pub := newPeer(t, b, "pub")
	pub.ConnectVersion("1.2")

	t.Run("SEND in an aborted transaction is never delivered", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("BEGIN\ntransaction:t1", "", "b")
		pub.Receipted("SEND\ndestination:/topic/tx\ntransaction:t1", "aborted", "s")
		pub.Receipted("ABORT\ntransaction:t1", "", "a")
		pub.Receipted("SEND\ndestination:/topic/tx", "after abort", "s2")
		sub.ExpectMessage("after abort")
		sub.ExpectNothing(quiet)
	})
	t.Run("committed SENDs arrive at COMMIT, in order, without the transaction header", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Receipted("BEGIN\ntransaction:t2", "", "b")
		pub.Receipted("SEND\ndestination:/topic/tx\ntransaction:t2", "one", "s1")
		pub.Receipted("SEND\ndestination:/topic/tx\ntransaction:t2\ncontent-length:3", "t\x00o", "s2")
		sub.ExpectNothing(quiet)
		pub.Receipted("COMMIT\ntransaction:t2", "", "c")
		m, _ := sub.ExpectMessage("one")
		if _, ok := m.Header.Contains(frame.Transaction); ok {
			t.Errorf("MESSAGE carries the SEND's transaction header")
		}
		sub.ExpectMessage("t\x00o")
	})
	t.Run("interleaved transactions", func(t *testing.T) {
		sub.In(t)
		pub.In(t)
		pub.Send("BEGIN\ntransaction:a\n\n\x00BEGIN\ntransaction:b\n\n\x00" +
			"SEND\ndestination:/topic/tx\ntransaction:a\n\nfrom a\x00" +
			"SEND\ndestination:/topic/tx\ntransaction:b\n\nfrom b\x00" +
			"SEND\ndestination:/topic/tx\n\nno tx\x00")
		sub.ExpectMessage("no tx")
		pub.Receipted("COMMIT\ntransaction:b", "", "cb")
		sub.ExpectMessage("from b")
		pub.Receipted("ABORT\ntransaction:a", "", "aa")
		sub.ExpectNothing(quiet)
		// A finished transaction's id may be used again.
		pub.Receipted("BEGIN\ntransaction:a", "", "b2")
		pub.Receipted("SEND\ndestination:/topic/tx\ntransaction:a", "a again", "s")
		pub.Receipted("COMMIT\ntransaction:a", "", "c2")
		sub.ExpectMessage("a again")
	})
	t.Run("open transactions are aborted on DISCONNECT", func(t *testing.T) {
		sub.In(t)
		p := newPeer(t, b, "leaver")
		p.ConnectVersion("1.2")
		p.Receipted("BEGIN\ntransaction:t3", "", "b")
		p.Receipted("SEND\ndestination:/topic/tx\ntransaction:t3", "never", "s")
		p.Send("DISCONNECT\nreceipt:bye\n\n\x00")
		r, _ := p.ExpectWire(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "bye")
		p.ExpectClosed()
		sub.ExpectNothing(quiet)
	})
	t.Run("open transactions are aborted when the connection drops", func(t *testing.T) {
		sub.In(t)
		p := newPeer(t, b, "dropper")
		p.ConnectVersion("1.2")
		p.Receipted("BEGIN\ntransaction:t4", "", "b")
		p.Receipted("SEND\ndestination:/topic/tx\ntransaction:t4", "never", "s")
		p.Conn.Close()
		sub.ExpectNothing(quiet)
	})
	t.Run("ACK in a transaction is applied at COMMIT", func(t *testing.T) {
		cons := newPeer(t, b, "consumer")
		cons.ConnectVersion("1.2")
		cons.Subscribe("q", "/queue/txack", "ack:client-individual", "prefetch-count:1")
		prod := newPeer(t, b, "producer")
		prod.ConnectVersion("1.2")
		for _, body := range []string{"q1", "q2", "q3"} {
			prod.Receipted("SEND\ndestination:/queue/txack", body, "p")
		}
		m1, _ := cons.ExpectMessage("q1")
		cons.Receipted("BEGIN\ntransaction:ta", "", "b")
		cons.Receipted("ACK\nid:"+m1.Header.Get(frame.Ack)+"\ntransaction:ta", "", "a")
		cons.ExpectNothing(quiet) // q1 is not acked yet, so no credit for q2
		cons.Receipted("COMMIT\ntransaction:ta", "", "c")
		m2, _ := cons.ExpectMessage("q2")

		// An aborted ACK is not applied: q2 stays with this consumer and
		// goes back to the queue when it leaves.
		cons.Receipted("BEGIN\ntransaction:tb", "", "b")
		cons.Receipted("ACK\nid:"+m2.Header.Get(frame.Ack)+"\ntransaction:tb", "", "a")
		cons.Receipted("ABORT\ntransaction:tb", "", "ab")
		cons.ExpectNothing(quiet)
		cons.Send("DISCONNECT\nreceipt:bye\n\n\x00")
		cons.ExpectWire(frame.RECEIPT)
		cons.ExpectClosed()
		next := newPeer(t, b, "next")
		next.ConnectVersion("1.2")
		next.Subscribe("n", "/queue/txack", "ack:client-individual")
		// The parent requeues q2 when it sees the consumer's process end,
		// which may be after next subscribed: either order is right.
		seen := map[string]bool{}
		for range 2 {
			m, _ := next.ExpectWire(frame.MESSAGE)
			body := string(m.Body)
			if (body != "q2" && body != "q3") || seen[body] {
				t.Fatalf("got %q after %v, want q2 (redelivered) and q3 once each", body, seen)
			}
			seen[body] = true
			if body == "q2" {
				header(t, m, stompwire.HeaderRedelivered, "true")
			}
		}
		next.ExpectNothing(quiet)
	})
}

func TestProtocolReceipts(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	t.Run("every client frame can ask for a receipt, answered in order", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.ConnectVersion("1.2")
		frames := []string{
			"SUBSCRIBE\nid:1\ndestination:/queue/rcpt\nack:client-individual",
			"SEND\ndestination:/topic/rcpt",
			"BEGIN\ntransaction:t",
			"SEND\ndestination:/topic/rcpt\ntransaction:t",
			"COMMIT\ntransaction:t",
			"BEGIN\ntransaction:u",
			"ABORT\ntransaction:u",
			"ACK\nid:unknown-message",
			"NACK\nid:unknown-message",
			"UNSUBSCRIBE\nid:1",
		}
		var all strings.Builder
		for i, f := range frames {
			all.WriteString(f + "\nreceipt:r" + strconv.Itoa(i) + "\n\n\x00")
		}
		p.Send(all.String())
		for i := range frames {
			r, _ := p.ExpectWire(frame.RECEIPT)
			header(t, r, frame.ReceiptId, "r"+strconv.Itoa(i))
		}
	})
	t.Run("receipt ids are escaped and unescaped", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.ConnectVersion("1.2")
		p.Send("SEND\ndestination:/topic/rcpt\nreceipt:a\\cb\\\\c\\nd\n\n\x00")
		r, wire := p.ExpectWire(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "a:b\\c\nd")
		if !hasLine(wireHeaders(wire), `receipt-id:a\cb\\c\nd`) {
			t.Errorf("RECEIPT not escaped: %q", wire)
		}
	})
	t.Run("a RECEIPT for SUBSCRIBE means it is live; for UNSUBSCRIBE that it is gone", func(t *testing.T) {
		sub := newPeer(t, b, "sub")
		sub.ConnectVersion("1.2")
		pub := newPeer(t, b, "pub")
		pub.ConnectVersion("1.2")
		sub.Subscribe("1", "/topic/live")
		pub.Send("SEND\ndestination:/topic/live\n\nhello\x00")
		sub.ExpectMessage("hello")
		sub.Receipted("UNSUBSCRIBE\nid:1", "", "u")
		pub.Receipted("SEND\ndestination:/topic/live", "gone", "s")
		sub.ExpectNothing(quiet)
	})
	t.Run("DISCONNECT with receipt: RECEIPT, then close; later frames ignored", func(t *testing.T) {
		sub := newPeer(t, b, "sub")
		sub.ConnectVersion("1.2")
		sub.Subscribe("1", "/topic/after")
		p := newPeer(t, b, "client")
		p.ConnectVersion("1.2")
		p.Send("SEND\ndestination:/topic/after\n\nbefore\x00DISCONNECT\nreceipt:bye\n\n\x00SEND\ndestination:/topic/after\n\nafter\x00")
		r, _ := p.ExpectWire(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "bye")
		p.ExpectClosed()
		sub.ExpectMessage("before")
		sub.ExpectNothing(quiet)
	})
	t.Run("DISCONNECT without receipt closes", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.ConnectVersion("1.1")
		p.Send("DISCONNECT\n\n\x00")
		p.ExpectClosed()
	})
	t.Run("1.0 DISCONNECT with receipt", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.ConnectVersion("")
		p.Send("DISCONNECT\nreceipt:bye\n\n\x00")
		r, _ := p.ExpectWire(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "bye")
		p.ExpectClosed()
	})
}

func TestProtocolStomp10Session(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	sub := newPeer(t, b, "sub10")
	sub.ConnectVersion("")
	// 1.0: SUBSCRIBE without id; padded values of the headers the broker
	// reads are trimmed (1.0 examples used "name: value").
	sub.Receipted("SUBSCRIBE\ndestination: /topic/ten ", "", "s")
	pub := newPeer(t, b, "pub10")
	pub.ConnectVersion("")
	pub.Receipted("SEND\ndestination: /topic/ten\nx: padded", "ten", "p")
	m, _ := sub.ExpectMessage("ten")
	header(t, m, frame.Destination, "/topic/ten")
	header(t, m, "x", " padded") // user headers pass through untouched
	// 1.0 UNSUBSCRIBE names the destination.
	sub.Receipted("UNSUBSCRIBE\ndestination:/topic/ten", "", "u")
	pub.Receipted("SEND\ndestination:/topic/ten", "gone", "p2")
	sub.ExpectNothing(quiet)
}
