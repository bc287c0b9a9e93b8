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
	c.connect("1.2")
	c.subscribe("check", queue, "ack:client-individual")
	c.expectNothing(quiet)
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
			cons.connect(tc.version)
			cons.subscribe("c", queue, "ack:"+tc.ack, "prefetch-count:1")
			prod := newPeer(t, b, "producer")
			prod.connect("1.2")
			prod.receipted("SEND\ndestination:"+queue, "m1", "p1")
			prod.receipted("SEND\ndestination:"+queue, "m2", "p2")

			m1, _ := cons.expectMessage("m1")
			header(t, m1, frame.Subscription, "c")
			header(t, m1, frame.Destination, queue)
			if m1.Header.Get(frame.Ack) == "" {
				t.Fatalf("MESSAGE for an ack:%s subscription has no ack header", tc.ack)
			}
			cons.expectNothing(quiet) // prefetch 1: m2 waits for the ACK
			cons.receipted("ACK\n"+ackLine(t, m1, tc.spelling), "", "a1")
			m2, _ := cons.expectMessage("m2")
			cons.receipted("ACK\n"+ackLine(t, m2, tc.spelling), "", "a2")
			cons.send("DISCONNECT\nreceipt:bye\n\n\x00")
			cons.expect(frame.RECEIPT)
			cons.expectClosed()
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
			cons.connect("1.2")
			cons.subscribe("c", queue, "ack:"+tc.ack, "prefetch-count:10")
			prod := newPeer(t, b, "producer")
			prod.connect("1.2")
			var msgs []*frame.Frame
			for j := 1; j <= 4; j++ {
				prod.receipted("SEND\ndestination:"+queue, "m"+strconv.Itoa(j), "p")
				m, _ := cons.expectMessage("m" + strconv.Itoa(j))
				msgs = append(msgs, m)
			}
			cons.receipted("ACK\nid:"+msgs[tc.ackIndex].Header.Get(frame.Ack), "", "a")
			cons.send("DISCONNECT\nreceipt:bye\n\n\x00")
			cons.expect(frame.RECEIPT)
			cons.expectClosed()

			next := newPeer(t, b, "next")
			next.connect("1.2")
			next.subscribe("n", queue, "ack:client-individual")
			got := map[string]bool{}
			for range tc.redeliver {
				m, _ := next.expect(frame.MESSAGE)
				header(t, m, stompwire.HeaderRedelivered, "true")
				got[string(m.Body)] = true
			}
			for _, body := range tc.redeliver {
				if !got[body] {
					t.Errorf("%s was not redelivered (got %v)", body, got)
				}
			}
			next.expectNothing(quiet)
		})
	}
}

func TestProtocolNack(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	t.Run("client-individual NACK redelivers that message", func(t *testing.T) {
		cons := newPeer(t, b, "consumer")
		cons.connect("1.2")
		cons.subscribe("c", "/queue/nack1", "ack:client-individual", "prefetch-count:1")
		prod := newPeer(t, b, "producer")
		prod.connect("1.2")
		prod.receipted("SEND\ndestination:/queue/nack1\nx-custom:kept", "n1", "p")
		m, _ := cons.expectMessage("n1")
		if _, ok := m.Header.Contains(stompwire.HeaderRedelivered); ok && m.Header.Get(stompwire.HeaderRedelivered) != "false" {
			t.Fatalf("first delivery says redelivered:%s", m.Header.Get(stompwire.HeaderRedelivered))
		}
		cons.receipted("NACK\nid:"+m.Header.Get(frame.Ack), "", "n")
		again, _ := cons.expectMessage("n1")
		header(t, again, stompwire.HeaderRedelivered, "true")
		header(t, again, frame.MessageId, m.Header.Get(frame.MessageId))
		header(t, again, "x-custom", "kept")
		cons.receipted("ACK\nid:"+again.Header.Get(frame.Ack), "", "a")
		cons.expectNothing(quiet)
	})
	t.Run("client NACK is cumulative", func(t *testing.T) {
		cons := newPeer(t, b, "consumer")
		cons.connect("1.1")
		cons.subscribe("c", "/queue/nack2", "ack:client", "prefetch-count:2")
		prod := newPeer(t, b, "producer")
		prod.connect("1.2")
		prod.receipted("SEND\ndestination:/queue/nack2", "a", "p")
		prod.receipted("SEND\ndestination:/queue/nack2", "b", "p")
		cons.expectMessage("a")
		mb, _ := cons.expectMessage("b")
		cons.receipted("NACK\nmessage-id:"+mb.Header.Get(frame.MessageId)+"\nsubscription:c", "", "n")
		for _, body := range []string{"a", "b"} {
			m, _ := cons.expectMessage(body)
			header(t, m, stompwire.HeaderRedelivered, "true")
		}
	})
}

func TestProtocolTransactions(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	sub := newPeer(t, b, "sub")
	sub.connect("1.2")
	sub.subscribe("s", "/topic/tx")
	pub := newPeer(t, b, "pub")
	pub.connect("1.2")

	t.Run("SEND in an aborted transaction is never delivered", func(t *testing.T) {
		sub.in(t)
		pub.in(t)
		pub.receipted("BEGIN\ntransaction:t1", "", "b")
		pub.receipted("SEND\ndestination:/topic/tx\ntransaction:t1", "aborted", "s")
		pub.receipted("ABORT\ntransaction:t1", "", "a")
		pub.receipted("SEND\ndestination:/topic/tx", "after abort", "s2")
		sub.expectMessage("after abort")
		sub.expectNothing(quiet)
	})
	t.Run("committed SENDs arrive at COMMIT, in order, without the transaction header", func(t *testing.T) {
		sub.in(t)
		pub.in(t)
		pub.receipted("BEGIN\ntransaction:t2", "", "b")
		pub.receipted("SEND\ndestination:/topic/tx\ntransaction:t2", "one", "s1")
		pub.receipted("SEND\ndestination:/topic/tx\ntransaction:t2\ncontent-length:3", "t\x00o", "s2")
		sub.expectNothing(quiet)
		pub.receipted("COMMIT\ntransaction:t2", "", "c")
		m, _ := sub.expectMessage("one")
		if _, ok := m.Header.Contains(frame.Transaction); ok {
			t.Errorf("MESSAGE carries the SEND's transaction header")
		}
		sub.expectMessage("t\x00o")
	})
	t.Run("interleaved transactions", func(t *testing.T) {
		sub.in(t)
		pub.in(t)
		pub.send("BEGIN\ntransaction:a\n\n\x00BEGIN\ntransaction:b\n\n\x00" +
			"SEND\ndestination:/topic/tx\ntransaction:a\n\nfrom a\x00" +
			"SEND\ndestination:/topic/tx\ntransaction:b\n\nfrom b\x00" +
			"SEND\ndestination:/topic/tx\n\nno tx\x00")
		sub.expectMessage("no tx")
		pub.receipted("COMMIT\ntransaction:b", "", "cb")
		sub.expectMessage("from b")
		pub.receipted("ABORT\ntransaction:a", "", "aa")
		sub.expectNothing(quiet)
		// A finished transaction's id may be used again.
		pub.receipted("BEGIN\ntransaction:a", "", "b2")
		pub.receipted("SEND\ndestination:/topic/tx\ntransaction:a", "a again", "s")
		pub.receipted("COMMIT\ntransaction:a", "", "c2")
		sub.expectMessage("a again")
	})
	t.Run("open transactions are aborted on DISCONNECT", func(t *testing.T) {
		sub.in(t)
		p := newPeer(t, b, "leaver")
		p.connect("1.2")
		p.receipted("BEGIN\ntransaction:t3", "", "b")
		p.receipted("SEND\ndestination:/topic/tx\ntransaction:t3", "never", "s")
		p.send("DISCONNECT\nreceipt:bye\n\n\x00")
		r, _ := p.expect(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "bye")
		p.expectClosed()
		sub.expectNothing(quiet)
	})
	t.Run("open transactions are aborted when the connection drops", func(t *testing.T) {
		sub.in(t)
		p := newPeer(t, b, "dropper")
		p.connect("1.2")
		p.receipted("BEGIN\ntransaction:t4", "", "b")
		p.receipted("SEND\ndestination:/topic/tx\ntransaction:t4", "never", "s")
		p.conn.Close()
		sub.expectNothing(quiet)
	})
	t.Run("ACK in a transaction is applied at COMMIT", func(t *testing.T) {
		cons := newPeer(t, b, "consumer")
		cons.connect("1.2")
		cons.subscribe("q", "/queue/txack", "ack:client-individual", "prefetch-count:1")
		prod := newPeer(t, b, "producer")
		prod.connect("1.2")
		for _, body := range []string{"q1", "q2", "q3"} {
			prod.receipted("SEND\ndestination:/queue/txack", body, "p")
		}
		m1, _ := cons.expectMessage("q1")
		cons.receipted("BEGIN\ntransaction:ta", "", "b")
		cons.receipted("ACK\nid:"+m1.Header.Get(frame.Ack)+"\ntransaction:ta", "", "a")
		cons.expectNothing(quiet) // q1 is not acked yet, so no credit for q2
		cons.receipted("COMMIT\ntransaction:ta", "", "c")
		m2, _ := cons.expectMessage("q2")

		// An aborted ACK is not applied: q2 stays with this consumer and
		// goes back to the queue when it leaves.
		cons.receipted("BEGIN\ntransaction:tb", "", "b")
		cons.receipted("ACK\nid:"+m2.Header.Get(frame.Ack)+"\ntransaction:tb", "", "a")
		cons.receipted("ABORT\ntransaction:tb", "", "ab")
		cons.expectNothing(quiet)
		cons.send("DISCONNECT\nreceipt:bye\n\n\x00")
		cons.expect(frame.RECEIPT)
		cons.expectClosed()
		next := newPeer(t, b, "next")
		next.connect("1.2")
		next.subscribe("n", "/queue/txack", "ack:client-individual")
		// The parent requeues q2 when it sees the consumer's process end,
		// which may be after next subscribed: either order is right.
		seen := map[string]bool{}
		for range 2 {
			m, _ := next.expect(frame.MESSAGE)
			body := string(m.Body)
			if (body != "q2" && body != "q3") || seen[body] {
				t.Fatalf("got %q after %v, want q2 (redelivered) and q3 once each", body, seen)
			}
			seen[body] = true
			if body == "q2" {
				header(t, m, stompwire.HeaderRedelivered, "true")
			}
		}
		next.expectNothing(quiet)
	})
}

func TestProtocolReceipts(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	t.Run("every client frame can ask for a receipt, answered in order", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.connect("1.2")
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
		p.send(all.String())
		for i := range frames {
			r, _ := p.expect(frame.RECEIPT)
			header(t, r, frame.ReceiptId, "r"+strconv.Itoa(i))
		}
	})
	t.Run("receipt ids are escaped and unescaped", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.connect("1.2")
		p.send("SEND\ndestination:/topic/rcpt\nreceipt:a\\cb\\\\c\\nd\n\n\x00")
		r, wire := p.expect(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "a:b\\c\nd")
		if !hasLine(wireHeaders(wire), `receipt-id:a\cb\\c\nd`) {
			t.Errorf("RECEIPT not escaped: %q", wire)
		}
	})
	t.Run("a RECEIPT for SUBSCRIBE means it is live; for UNSUBSCRIBE that it is gone", func(t *testing.T) {
		sub := newPeer(t, b, "sub")
		sub.connect("1.2")
		pub := newPeer(t, b, "pub")
		pub.connect("1.2")
		sub.subscribe("1", "/topic/live")
		pub.send("SEND\ndestination:/topic/live\n\nhello\x00")
		sub.expectMessage("hello")
		sub.receipted("UNSUBSCRIBE\nid:1", "", "u")
		pub.receipted("SEND\ndestination:/topic/live", "gone", "s")
		sub.expectNothing(quiet)
	})
	t.Run("DISCONNECT with receipt: RECEIPT, then close; later frames ignored", func(t *testing.T) {
		sub := newPeer(t, b, "sub")
		sub.connect("1.2")
		sub.subscribe("1", "/topic/after")
		p := newPeer(t, b, "client")
		p.connect("1.2")
		p.send("SEND\ndestination:/topic/after\n\nbefore\x00DISCONNECT\nreceipt:bye\n\n\x00SEND\ndestination:/topic/after\n\nafter\x00")
		r, _ := p.expect(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "bye")
		p.expectClosed()
		sub.expectMessage("before")
		sub.expectNothing(quiet)
	})
	t.Run("DISCONNECT without receipt closes", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.connect("1.1")
		p.send("DISCONNECT\n\n\x00")
		p.expectClosed()
	})
	t.Run("1.0 DISCONNECT with receipt", func(t *testing.T) {
		p := newPeer(t, b, "client")
		p.connect("")
		p.send("DISCONNECT\nreceipt:bye\n\n\x00")
		r, _ := p.expect(frame.RECEIPT)
		header(t, r, frame.ReceiptId, "bye")
		p.expectClosed()
	})
}

func TestProtocolStomp10Session(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	sub := newPeer(t, b, "sub10")
	sub.connect("")
	// 1.0: SUBSCRIBE without id; padded values of the headers the broker
	// reads are trimmed (1.0 examples used "name: value").
	sub.receipted("SUBSCRIBE\ndestination: /topic/ten ", "", "s")
	pub := newPeer(t, b, "pub10")
	pub.connect("")
	pub.receipted("SEND\ndestination: /topic/ten\nx: padded", "ten", "p")
	m, _ := sub.expectMessage("ten")
	header(t, m, frame.Destination, "/topic/ten")
	header(t, m, "x", " padded") // user headers pass through untouched
	// 1.0 UNSUBSCRIBE names the destination.
	sub.receipted("UNSUBSCRIBE\ndestination:/topic/ten", "", "u")
	pub.receipted("SEND\ndestination:/topic/ten", "gone", "p2")
	sub.expectNothing(quiet)
}
