package integration

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/pgtest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// stores lists the durable stores the job-queue tests run against.
// PostgreSQL comes from STOMP_BROKER_TEST_POSTGRES (scripts/start-test-postgres).
func stores(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string {
			return "sqlite:" + filepath.Join(t.TempDir(), "broker.db")
		},
		"postgres": func(t *testing.T) string { return postgresDSN(t) },
	}
}

// postgresDSN returns a DSN on a fresh schema of the test database, or
// skips (fails under STOMP_BROKER_REQUIRE_ALL=1).
func postgresDSN(t *testing.T) string {
	t.Helper()
	return pgtest.FreshSchema(t, "it_")
}

// rawSend sends a SEND with a receipt and waits for the RECEIPT; it returns it.
func rawSend(t *testing.T, r *brokertest.Raw, dest, body string, headers ...string) *frame.Frame {
	t.Helper()
	id := fmt.Sprintf("r%d", time.Now().UnixNano())
	var h strings.Builder
	for i := 0; i+1 < len(headers); i += 2 {
		h.WriteString(headers[i] + ":" + headers[i+1] + "\n")
	}
	r.Send("SEND\ndestination:" + dest + "\nreceipt:" + id + "\n" + h.String() + "content-length:" + strconv.Itoa(len(body)) + "\n\n" + body + "\x00")
	f := r.Expect(frame.RECEIPT)
	if f.Header.Get(frame.ReceiptId) != id {
		t.Fatalf("receipt %q, want %q", f.Header.Get(frame.ReceiptId), id)
	}
	return f
}

// rawSubscribe subscribes and waits until the subscription is live.
func rawSubscribe(t *testing.T, r *brokertest.Raw, id, dest, ack string, headers ...string) {
	t.Helper()
	var h strings.Builder
	for i := 0; i+1 < len(headers); i += 2 {
		h.WriteString(headers[i] + ":" + headers[i+1] + "\n")
	}
	r.Send("SUBSCRIBE\nid:" + id + "\ndestination:" + dest + "\nack:" + ack + "\nreceipt:sub-" + id + "\n" + h.String() + "\n\x00")
	if f := r.Expect(frame.RECEIPT); f.Header.Get(frame.ReceiptId) != "sub-"+id {
		t.Fatalf("unexpected receipt %v", f.Header.Get(frame.ReceiptId))
	}
}

func rawAck(r *brokertest.Raw, cmd string, m *frame.Frame) {
	r.Send(cmd + "\nid:" + m.Header.Get(frame.Ack) + "\n\n\x00")
}

// noMessage fails if a MESSAGE arrives within d.
func noMessage(t *testing.T, r *brokertest.Raw, d time.Duration) {
	t.Helper()
	if f, err := r.Read(d); err == nil {
		t.Fatalf("unexpected %s: %s", f.Command, f.Body)
	}
}

func TestDurableSurvivesKillOfWholeBroker(t *testing.T) {
	for name, spec := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := spec(t)
			args := []string{"--store", st, "--broker-id", "durable-test", "--default-prefetch", "5"}
			sock := filepath.Join(t.TempDir(), "control.sock")
			b := brokertest.Start(t, append(args, "--control-socket", sock)...)
			prod := b.Raw(t)
			prod.Connect()
			const n = 60
			for i := 0; i < n; i++ {
				rawSend(t, prod, "/queue/jobs", strconv.Itoa(i), stompwire.HeaderPersistent, "true")
			}
			cons := b.Raw(t)
			cons.Connect()
			rawSubscribe(t, cons, "1", "/queue/jobs", "client-individual", stompwire.HeaderPrefetchCount, "5")
			acked := map[string]bool{}
			delivered := map[string]bool{}
			for len(acked) < 20 {
				m := cons.Expect(frame.MESSAGE)
				delivered[string(m.Body)] = true
				rawAck(cons, "ACK", m)
				acked[string(m.Body)] = true
			}
			// Receive a few more without acking them.
			for i := 0; i < 3; i++ {
				m := cons.Expect(frame.MESSAGE)
				delivered[string(m.Body)] = true
			}
			// Make sure the ACKs reached the broker: a receipted frame after them.
			// (Messages still in flight to us count as delivered, unacked.)
			cons.Send("BEGIN\ntransaction:sync\nreceipt:acks-done\n\n\x00")
			for {
				f, err := cons.Read(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if f.Command == frame.RECEIPT {
					break
				}
				delivered[string(f.Body)] = true
			}
			// The store's Ack is asynchronous: wait until it holds only
			// the unacked messages.
			poll.Eventually(t, 10*time.Second, "the store drops the acked messages", func() bool {
				qs, err := control.Queues(sock, 5*time.Second)
				for _, q := range qs {
					if err == nil && q.Name == "/queue/jobs" {
						return q.Stored == n-len(acked)
					}
				}
				return false
			})
			b.KillGroup(t)

			b2 := brokertest.Start(t, args...)
			cons2 := b2.Raw(t)
			cons2.Connect()
			rawSubscribe(t, cons2, "1", "/queue/jobs", "client-individual", stompwire.HeaderPrefetchCount, "100")
			got := map[string]bool{}
			for len(got) < n-len(acked) {
				m := cons2.Expect(frame.MESSAGE)
				body := string(m.Body)
				if acked[body] {
					t.Fatalf("message %s was acked before the crash and came back", body)
				}
				if got[body] {
					t.Fatalf("message %s delivered twice after the restart", body)
				}
				if delivered[body] && m.Header.Get(stompwire.HeaderRedelivered) != "true" {
					t.Fatalf("message %s was delivered before the crash but not flagged redelivered", body)
				}
				got[body] = true
				rawAck(cons2, "ACK", m)
			}
			noMessage(t, cons2, 500*time.Millisecond)
		})
	}
}

func TestDeadLetterAfterMaxRedeliveries(t *testing.T) {
	for _, mode := range []string{"memory", "sqlite"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{}
			persistent := "false"
			if mode == "sqlite" {
				args = append(args, "--store", "sqlite:"+filepath.Join(t.TempDir(), "b.db"))
				persistent = "true"
			}
			b := brokertest.Start(t, args...)
			r := b.Raw(t)
			r.Connect()
			rawSend(t, r, "/queue/poison", "bad job", stompwire.HeaderPersistent, persistent, stompwire.HeaderMaxRedeliveries, "2")
			rawSubscribe(t, r, "1", "/queue/poison", "client-individual")
			for i := 1; i <= 3; i++ {
				m := r.Expect(frame.MESSAGE)
				if m.Header.Get(stompwire.HeaderDeliveryCount) != strconv.Itoa(i) {
					t.Fatalf("delivery %d has delivery-count %q", i, m.Header.Get(stompwire.HeaderDeliveryCount))
				}
				rawAck(r, "NACK", m)
			}
			noMessage(t, r, 300*time.Millisecond)
			rawSubscribe(t, r, "2", "/queue/DLQ.poison", "client-individual")
			m := r.Expect(frame.MESSAGE)
			if string(m.Body) != "bad job" ||
				m.Header.Get(stompwire.HeaderDLQOriginalDestination) != "/queue/poison" ||
				m.Header.Get(stompwire.HeaderDLQDeliveryCount) != "3" ||
				m.Header.Get(stompwire.HeaderDLQReason) == "" {
				t.Fatalf("dead letter: body %q headers %v", m.Body, m.Header)
			}
		})
	}
}

func TestScheduledDelayIsNotEarly(t *testing.T) {
	for _, mode := range []string{"memory", "sqlite"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{}
			if mode == "sqlite" {
				args = append(args, "--store", "sqlite:"+filepath.Join(t.TempDir(), "b.db"))
			}
			b := brokertest.Start(t, args...)
			r := b.Raw(t)
			r.Connect()
			rawSubscribe(t, r, "1", "/queue/later", "auto")
			sent := time.Now()
			rawSend(t, r, "/queue/later", "delayed", stompwire.HeaderPersistent, "true", stompwire.HeaderScheduledDelay, "1000")
			rawSend(t, r, "/queue/later", "now", stompwire.HeaderPersistent, "true")
			if m := r.Expect(frame.MESSAGE); string(m.Body) != "now" {
				t.Fatalf("first message %q, want the undelayed one", m.Body)
			}
			m := r.Expect(frame.MESSAGE)
			if elapsed := time.Since(sent); string(m.Body) != "delayed" || elapsed < time.Second {
				t.Fatalf("delayed message %q arrived after %v (want ≥ 1s)", m.Body, elapsed)
			}
		})
	}
}

func TestRedeliveryBackoff(t *testing.T) {
	b := brokertest.Start(t)
	r := b.Raw(t)
	r.Connect()
	rawSubscribe(t, r, "1", "/queue/retry", "client-individual")
	rawSend(t, r, "/queue/retry", "job", stompwire.HeaderRedeliveryDelay, "300")
	m := r.Expect(frame.MESSAGE)
	for _, want := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond} {
		nacked := time.Now()
		rawAck(r, "NACK", m)
		m = r.Expect(frame.MESSAGE)
		if waited := time.Since(nacked); waited < want {
			t.Fatalf("redelivered after %v, want at least %v", waited, want)
		}
	}
}

func TestUniqKeyCoalesces(t *testing.T) {
	for _, mode := range []string{"memory", "sqlite"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{}
			if mode == "sqlite" {
				args = append(args, "--store", "sqlite:"+filepath.Join(t.TempDir(), "b.db"))
			}
			b := brokertest.Start(t, args...)
			r := b.Raw(t)
			r.Connect()
			if f := rawSend(t, r, "/queue/mail", "first", stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "user-7"); f.Header.Get(stompwire.HeaderCoalesced) != "" {
				t.Fatal("first SEND reported coalesced")
			}
			if f := rawSend(t, r, "/queue/mail", "second", stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "user-7"); f.Header.Get(stompwire.HeaderCoalesced) != "true" {
				t.Fatal("second SEND with the same uniqkey not reported coalesced")
			}
			rawSubscribe(t, r, "1", "/queue/mail", "client-individual")
			m := r.Expect(frame.MESSAGE)
			if string(m.Body) != "first" {
				t.Fatalf("got %q", m.Body)
			}
			noMessage(t, r, 300*time.Millisecond)
			rawAck(r, "ACK", m)
			// Once the first is gone the key is free again.
			poll.Eventually(t, 5*time.Second, "uniqkey free again after the message was acked", func() bool {
				f := rawSend(t, r, "/queue/mail", "third", stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "user-7")
				return f.Header.Get(stompwire.HeaderCoalesced) == ""
			})
			if m := r.Expect(frame.MESSAGE); string(m.Body) != "third" {
				t.Fatalf("got %q, want third", m.Body)
			}
		})
	}
}

func TestAckTimeoutRedeliversWithoutDisconnecting(t *testing.T) {
	b := brokertest.Start(t)
	slow := b.Raw(t)
	slow.Connect()
	rawSubscribe(t, slow, "1", "/queue/lease", "client-individual", stompwire.HeaderAckTimeout, "500", stompwire.HeaderPrefetchCount, "1")
	p := b.Raw(t)
	p.Connect()
	rawSend(t, p, "/queue/lease", "job")
	first := slow.Expect(frame.MESSAGE)
	taken := time.Now()
	fast := b.Raw(t)
	fast.Connect()
	rawSubscribe(t, fast, "1", "/queue/lease", "client-individual")
	m := fast.Expect(frame.MESSAGE)
	if string(m.Body) != "job" || m.Header.Get(stompwire.HeaderRedelivered) != "true" || time.Since(taken) < 500*time.Millisecond {
		t.Fatalf("second consumer got %q redelivered=%q after %v", m.Body, m.Header.Get(stompwire.HeaderRedelivered), time.Since(taken))
	}
	rawAck(fast, "ACK", m)
	fast.Send("DISCONNECT\nreceipt:bye\n\n\x00")
	fast.Expect(frame.RECEIPT)
	// The slow consumer is still connected and still served; its late ACK is ignored.
	rawAck(slow, "ACK", first)
	rawSend(t, p, "/queue/lease", "next")
	if m := slow.Expect(frame.MESSAGE); string(m.Body) != "next" {
		t.Fatalf("slow consumer got %q", m.Body)
	}
}

func TestTwoBrokersShareOnePostgres(t *testing.T) {
	dsn := postgresDSN(t)
	a := brokertest.Start(t, "--store", dsn, "--broker-id", "a", "--lease", "2s")
	b := brokertest.Start(t, "--store", dsn, "--broker-id", "b", "--lease", "2s")
	ca, cb := a.Raw(t), b.Raw(t)
	ca.Connect()
	cb.Connect()
	rawSubscribe(t, ca, "1", "/queue/shared", "client-individual", stompwire.HeaderPrefetchCount, "10")
	rawSubscribe(t, cb, "1", "/queue/shared", "client-individual", stompwire.HeaderPrefetchCount, "10")
	prod := a.Raw(t)
	prod.Connect()
	const n = 200
	for i := 0; i < n; i++ {
		rawSend(t, prod, "/queue/shared", strconv.Itoa(i), stompwire.HeaderPersistent, "true")
	}
	seen := map[string]string{}
	perBroker := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		for name, r := range map[string]*brokertest.Raw{"a": ca, "b": cb} {
			f, err := r.Read(50 * time.Millisecond)
			if err != nil {
				continue
			}
			if prev, dup := seen[string(f.Body)]; dup {
				t.Fatalf("message %s delivered by broker %s and again by %s", f.Body, prev, name)
			}
			seen[string(f.Body)] = name
			perBroker[name]++
			rawAck(r, "ACK", f)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d of %d messages delivered", len(seen), n)
	}
	t.Logf("deliveries per broker: %v", perBroker)
	if perBroker["a"] == 0 || perBroker["b"] == 0 {
		t.Errorf("one broker got no messages: %v", perBroker)
	}

	// A crashed broker's leased messages come back through the other once the lease runs out.
	rawSend(t, prod, "/queue/orphan", "held", stompwire.HeaderPersistent, "true")
	holder := a.Raw(t)
	holder.Connect()
	rawSubscribe(t, holder, "1", "/queue/orphan", "client-individual")
	holder.Expect(frame.MESSAGE)
	a.KillGroup(t)
	killed := time.Now()
	rawSubscribe(t, cb, "2", "/queue/orphan", "client-individual")
	m, err := cb.Read(15 * time.Second)
	if err != nil {
		t.Fatalf("the other broker never redelivered the crashed broker's message: %v", err)
	}
	if string(m.Body) != "held" || m.Header.Get(stompwire.HeaderRedelivered) != "true" {
		t.Fatalf("got %q redelivered=%q", m.Body, m.Header.Get(stompwire.HeaderRedelivered))
	}
	t.Logf("redelivered %v after the crash (lease 2s)", time.Since(killed).Round(10*time.Millisecond))
}

// TestReceiptCoalescedDescribesItsOwnSend: the coalesced flag on a RECEIPT
// is about the SEND that RECEIPT answers, not about an earlier persistent
// SEND of the same connection that was coalesced. Checked with each SEND
// waiting for its RECEIPT, and with the SENDs pipelined (written in one go,
// so the parent sees them in one batch, before the store has committed).
func TestReceiptCoalescedDescribesItsOwnSend(t *testing.T) {
	type send struct {
		dest, body string
		headers    []string
		coalesced  bool
	}
	sends := []send{
		{"/queue/mail", "first", []string{stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "user-7"}, false},
		{"/queue/mail", "second", []string{stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "user-7"}, true},
		{"/queue/other", "memory-1", nil, false},
		{"/queue/other", "persistent-1", []string{stompwire.HeaderPersistent, "true"}, false},
		{"/queue/other", "memory-2", nil, false},
		{"/queue/mail", "third", []string{stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "user-7"}, true},
		{"/queue/other", "memory-3", nil, false},
	}
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%v", pipelined), func(t *testing.T) {
			b := brokertest.Start(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "b.db"))
			r := b.Raw(t)
			r.Connect()
			var wire strings.Builder
			for i, s := range sends {
				var h strings.Builder
				for j := 0; j+1 < len(s.headers); j += 2 {
					h.WriteString(s.headers[j] + ":" + s.headers[j+1] + "\n")
				}
				fmt.Fprintf(&wire, "SEND\ndestination:%s\nreceipt:r%d\n%scontent-length:%d\n\n%s\x00", s.dest, i, h.String(), len(s.body), s.body)
				if !pipelined {
					r.Send(wire.String())
					wire.Reset()
					checkReceipt(t, r, i, s.body, s.coalesced)
				}
			}
			if pipelined {
				r.Send(wire.String())
				for i, s := range sends {
					checkReceipt(t, r, i, s.body, s.coalesced)
				}
			}
			// Every SEND not reported coalesced was delivered; the others not.
			r.Send("SUBSCRIBE\nid:1\ndestination:/queue/other\nack:auto\n\n\x00" +
				"SUBSCRIBE\nid:2\ndestination:/queue/mail\nack:auto\n\n\x00")
			want := map[string]bool{}
			for _, s := range sends {
				if !s.coalesced {
					want[s.body] = true
				}
			}
			for len(want) > 0 {
				m := r.Expect(frame.MESSAGE)
				if !want[string(m.Body)] {
					t.Fatalf("unexpected or repeated message %q", m.Body)
				}
				delete(want, string(m.Body))
			}
			noMessage(t, r, 300*time.Millisecond)
		})
	}
}

// checkReceipt reads the RECEIPT for SEND number i and checks its coalesced flag.
func checkReceipt(t *testing.T, r *brokertest.Raw, i int, body string, coalesced bool) {
	t.Helper()
	f := r.Expect(frame.RECEIPT)
	if got, want := f.Header.Get(frame.ReceiptId), fmt.Sprintf("r%d", i); got != want {
		t.Fatalf("receipt %q, want %q", got, want)
	}
	if got := f.Header.Get(stompwire.HeaderCoalesced) == "true"; got != coalesced {
		t.Errorf("RECEIPT for SEND %q: coalesced=%v, want %v", body, got, coalesced)
	}
}

// lateSlack is how much later than asked a delayed message may arrive: the
// broker wakes at the due time, and the rest is scheduling on a loaded
// 2-core machine (and, with a store, one commit and one lease).
const lateSlack = 250 * time.Millisecond

// storeArgs returns the broker arguments for a store mode ("memory": none).
func storeArgs(t *testing.T, mode string) []string {
	if mode == "sqlite" {
		return []string{"--store", "sqlite:" + filepath.Join(t.TempDir(), "b.db")}
	}
	return nil
}

// TestScheduledDelayIsOnTime: a message with AMQ_SCHEDULED_DELAY arrives no
// earlier than asked and not much later, in memory and from the store.
func TestScheduledDelayIsOnTime(t *testing.T) {
	for _, mode := range []string{"memory", "sqlite"} {
		for _, delay := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/%v", mode, delay), func(t *testing.T) {
				b := brokertest.Start(t, storeArgs(t, mode)...)
				r := b.Raw(t)
				r.Connect()
				rawSubscribe(t, r, "1", "/queue/later", "auto")
				sent := time.Now()
				rawSend(t, r, "/queue/later", "delayed", stompwire.HeaderPersistent, "true",
					stompwire.HeaderScheduledDelay, strconv.Itoa(int(delay/time.Millisecond)))
				m := r.Expect(frame.MESSAGE)
				took := time.Since(sent)
				if string(m.Body) != "delayed" || took < delay || took > delay+lateSlack {
					t.Fatalf("message %q arrived after %v, want %v to %v", m.Body, took, delay, delay+lateSlack)
				}
				t.Logf("asked %v, arrived after %v", delay, took)
			})
		}
	}
}

// TestRedeliveryDelayIsOnTime: a NACKed message with a redelivery-delay
// comes back no earlier than the backoff asks and not much later.
func TestRedeliveryDelayIsOnTime(t *testing.T) {
	for _, mode := range []string{"memory", "sqlite"} {
		t.Run(mode, func(t *testing.T) {
			b := brokertest.Start(t, storeArgs(t, mode)...)
			r := b.Raw(t)
			r.Connect()
			rawSubscribe(t, r, "1", "/queue/retry", "client-individual")
			rawSend(t, r, "/queue/retry", "job", stompwire.HeaderPersistent, "true", stompwire.HeaderRedeliveryDelay, "150")
			m := r.Expect(frame.MESSAGE)
			for _, want := range []time.Duration{150 * time.Millisecond, 300 * time.Millisecond} {
				nacked := time.Now()
				rawAck(r, "NACK", m)
				m = r.Expect(frame.MESSAGE)
				waited := time.Since(nacked)
				if waited < want || waited > want+lateSlack {
					t.Fatalf("redelivered after %v, want %v to %v", waited, want, want+lateSlack)
				}
				t.Logf("backoff %v, redelivered after %v", want, waited)
			}
		})
	}
}
