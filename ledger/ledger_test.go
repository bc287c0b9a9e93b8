package ledger

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/fakesem"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// fakeConsumer is a child process as the ledger sees it: a handle, its
// queue subscriptions (the parent's table of them) and what the host
// queued for it.
type fakeConsumer struct {
	pid  int
	subs map[string]*Subscription
	out  []byte
	told bool
}

func (c *fakeConsumer) PID() int { return c.pid }

// fakeHost is the broker around the ledger: it queues records per
// consumer, numbers messages and runs async work at once.
type fakeHost struct {
	next  uint64
	fatal error
}

func (h *fakeHost) Send(c Consumer, records []byte, messages int) {
	fc := c.(*fakeConsumer)
	if !fc.told {
		fc.out = append(fc.out, records...)
	}
}

// TellToClose replaces what is queued with the SHUTDOWN, as the parent's
// outbox does.
func (h *fakeHost) TellToClose(c Consumer, reason string) {
	fc := c.(*fakeConsumer)
	if !fc.told {
		fc.told = true
		fc.out = ipc.AppendText(fc.out[:0], ipc.KindShutdown, reason)
	}
}

func (h *fakeHost) NextMessage() uint64                 { h.next++; return h.next }
func (h *fakeHost) Async(work func() (apply func()))    { work()() }
func (h *fakeHost) StoreCommitted(time.Duration, error) {}
func (h *fakeHost) Fatal(err error)                     { h.fatal = err }

// testLedger is a ledger with a fake host and fake semaphores; its helpers
// play the parent's event loop applying one batch of a child's records
// (then Flush).
type testLedger struct {
	queues *Ledger
	host   *fakeHost
	sem    *fakesem.Set
	pid    int
}

func newTestLedger(t *testing.T, slots int, maxBytes int64) *testLedger {
	t.Helper()
	sem := fakesem.New(slots)
	host := &fakeHost{}
	l := New(host, sem, Config{MaxBytes: maxBytes, Jobs: JobDefaults{MaxRedeliveries: -1}})
	return &testLedger{queues: l, host: host, sem: sem}
}

// fakeChild is a new consumer.
func (tb *testLedger) fakeChild() *fakeConsumer {
	tb.pid++
	return &fakeConsumer{pid: tb.pid, subs: map[string]*Subscription{}}
}

func (tb *testLedger) subscribe(t *testing.T, c *fakeConsumer, key, dest, ack string, prefetch int) {
	t.Helper()
	f := frame.New(frame.SUBSCRIBE, frame.Id, key, frame.Destination, dest, frame.Ack, ack, stompwire.HeaderPrefetchCount, strconv.Itoa(prefetch))
	sub := NewSubscription(c, key, dest, f.Header)
	c.subs[key] = sub
	tb.queues.Subscribe(sub)
	tb.queues.Flush()
}

// publish hands the ledger one SEND, numbered as the parent numbers it.
func (tb *testLedger) publish(c *fakeConsumer, dest, body string) {
	f := frame.New(frame.SEND, frame.Destination, dest)
	f.Body = []byte(body)
	n := tb.host.NextMessage()
	tb.queues.Publish(c, n, "t-"+strconv.FormatUint(n, 10), dest, f)
}

func (tb *testLedger) send(t *testing.T, c *fakeConsumer, dest, body string) {
	t.Helper()
	tb.publish(c, dest, body)
	tb.queues.Flush()
}

func (tb *testLedger) claim(t *testing.T, c *fakeConsumer, cl ipc.Claim) {
	t.Helper()
	tb.queues.Claim(c, c.subs[cl.SubID], cl)
	tb.queues.Flush()
}

func (tb *testLedger) settle(t *testing.T, c *fakeConsumer, id string, ack bool) {
	t.Helper()
	tb.queues.Settle(c, id, ack)
	tb.queues.Flush()
}

// forgetChild plays the parent's forgetChild: the ledger hears of the
// death first, then every subscription is removed.
func (tb *testLedger) forgetChild(c *fakeConsumer) {
	tb.queues.ChildGone(c)
	for key, sub := range c.subs {
		tb.queues.Unsubscribe(sub)
		delete(c.subs, key)
	}
}

// record is one decoded record the host queued for a consumer.
type record struct {
	kind  ipc.Kind
	offer ipc.Offer
	key   string
	msgID string
	body  string
	hdr   *frame.Header
}

// drain takes everything queued for c.
func drain(t *testing.T, c *fakeConsumer) []record {
	t.Helper()
	buf := c.out
	c.out = nil
	var out []record
	for len(buf) > 0 {
		k, body, rest, err := ipc.NextRecord(buf)
		if err != nil {
			t.Fatal(err)
		}
		buf = rest
		r := record{kind: k}
		switch k {
		case ipc.KindOffer:
			r.offer, err = ipc.DecodeOffer(body)
		case ipc.KindGrant, ipc.KindDeliver:
			var enc []byte
			r.key, r.msgID, enc, err = ipc.DecodeMessage(body)
			if err == nil {
				f, _, perr := stompwire.Parse(enc, stompwire.V12, stompwire.DefaultLimits())
				err = perr
				if f != nil {
					r.body, r.hdr = string(f.Body), f.Header
				}
			}
		case ipc.KindDeny:
			r.key, r.msgID, err = ipc.DecodeDeny(body)
		case ipc.KindShutdown:
			r.body = string(body)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// takeAll plays child c winning every offer it gets for subscription key,
// claiming it whole, until no more offers come; it returns the grants.
// (One batch of a queue is on offer at a time, so this takes rounds.)
func takeAll(t *testing.T, tb *testLedger, c *fakeConsumer, key string) []record {
	t.Helper()
	var grants []record
	for round := 0; round < 100; round++ {
		offered := false
		for _, r := range drain(t, c) {
			switch r.kind {
			case ipc.KindOffer:
				offered = true
				if tb.sem.Take(r.offer.Slot) {
					tb.claim(t, c, ipc.Claim{Slot: r.offer.Slot, Gen: r.offer.Gen, SubID: key, MessageID: r.offer.MessageID, Count: r.offer.Count})
				}
			case ipc.KindGrant:
				grants = append(grants, r)
			}
		}
		if !offered {
			return append(grants, grantsOnly(drain(t, c))...)
		}
	}
	t.Fatal("offers never stopped")
	return nil
}

func grantsOnly(rs []record) []record {
	var g []record
	for _, r := range rs {
		if r.kind == ipc.KindGrant {
			g = append(g, r)
		}
	}
	return g
}

func kinds(rs []record) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.kind.String())
	}
	return strings.Join(s, ",")
}

func only(t *testing.T, rs []record, want ipc.Kind) record {
	t.Helper()
	if len(rs) != 1 || rs[0].kind != want {
		t.Fatalf("records %s, want exactly one %s", kinds(rs), want)
	}
	return rs[0]
}

func TestLedgerOfferClaimGrantAck(t *testing.T) {
	tb := newTestLedger(t, 4, 1<<20)
	prod, cons := tb.fakeChild(), tb.fakeChild()
	tb.send(t, prod, "/queue/a", "hello")
	if rs := drain(t, cons); len(rs) != 0 {
		t.Fatalf("offer before any subscription: %s", kinds(rs))
	}
	tb.subscribe(t, cons, "1", "/queue/a", "client-individual", 1)
	off := only(t, drain(t, cons), ipc.KindOffer).offer
	if v, _ := tb.sem.Value(off.Slot); v != 1 {
		t.Fatalf("offered slot value %d, want 1 (armed)", v)
	}
	if !tb.sem.Take(off.Slot) {
		t.Fatal("could not take the armed token")
	}
	tb.claim(t, cons, ipc.Claim{Slot: off.Slot, Gen: off.Gen, SubID: "1", MessageID: off.MessageID})
	g := only(t, drain(t, cons), ipc.KindGrant)
	if g.body != "hello" || g.key != "1" || g.hdr.Get(stompwire.HeaderRedelivered) != "" {
		t.Fatalf("grant %+v", g)
	}
	if v, _ := tb.sem.Value(off.Slot); v != 0 {
		t.Fatalf("slot value after grant %d, want 0 (committed)", v)
	}
	tb.settle(t, cons, off.MessageID, true)
	if len(tb.queues.msgs) != 0 || tb.queues.bytes != 0 {
		t.Fatalf("ledger still holds %d messages, %d bytes after ACK", len(tb.queues.msgs), tb.queues.bytes)
	}
}

func TestLedgerDeniesStaleAndForeignClaims(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*ipc.Claim)
		rearmed bool // the slot's token was taken by the denied claimer, so it is armed again
	}{
		{"old generation", func(c *ipc.Claim) { c.Gen-- }, true},
		{"other message", func(c *ipc.Claim) { c.MessageID = "nope" }, true},
		{"unknown subscription", func(c *ipc.Claim) { c.SubID = "9" }, true},
		{"slot out of range", func(c *ipc.Claim) { c.Slot = 99 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestLedger(t, 4, 1<<20)
			prod, cons := tb.fakeChild(), tb.fakeChild()
			tb.subscribe(t, cons, "1", "/queue/a", "client-individual", 1)
			tb.send(t, prod, "/queue/a", "m")
			off := only(t, drain(t, cons), ipc.KindOffer).offer
			tb.sem.Take(off.Slot)
			cl := ipc.Claim{Slot: off.Slot, Gen: off.Gen, SubID: "1", MessageID: off.MessageID}
			tc.mutate(&cl)
			tb.claim(t, cons, cl)
			rs := drain(t, cons)
			if len(rs) == 0 || rs[0].kind != ipc.KindDeny {
				t.Fatalf("records %s, want DENY first", kinds(rs))
			}
			reoffered := len(rs) == 2 && rs[1].kind == ipc.KindOffer && rs[1].offer.Gen == off.Gen+1
			if reoffered != tc.rearmed {
				t.Fatalf("records %s: re-armed=%v, want %v", kinds(rs), reoffered, tc.rearmed)
			}
			if tc.rearmed {
				if v, _ := tb.sem.Value(off.Slot); v != 1 {
					t.Fatalf("slot value %d after re-arm", v)
				}
			}
		})
	}
}

func TestLedgerNackRedeliversFlagged(t *testing.T) {
	tb := newTestLedger(t, 4, 1<<20)
	prod, cons := tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, cons, "1", "/queue/a", "client-individual", 1)
	tb.send(t, prod, "/queue/a", "m")
	for delivery := 1; delivery <= 3; delivery++ {
		off := only(t, drain(t, cons), ipc.KindOffer).offer
		tb.sem.Take(off.Slot)
		tb.claim(t, cons, ipc.Claim{Slot: off.Slot, Gen: off.Gen, SubID: "1", MessageID: off.MessageID})
		g := only(t, drain(t, cons), ipc.KindGrant)
		wantRed := delivery > 1
		if (g.hdr.Get(stompwire.HeaderRedelivered) == "true") != wantRed || g.hdr.Get(stompwire.HeaderDeliveryCount) != strconv.Itoa(delivery) {
			t.Fatalf("delivery %d: redelivered=%q delivery-count=%q", delivery, g.hdr.Get(stompwire.HeaderRedelivered), g.hdr.Get(stompwire.HeaderDeliveryCount))
		}
		tb.settle(t, cons, off.MessageID, false)
	}
}

func TestLedgerChildDeathRequeuesWhatItHeld(t *testing.T) {
	tb := newTestLedger(t, 4, 1<<20)
	prod, dead, live := tb.fakeChild(), tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, dead, "1", "/queue/a", "client", 2)
	tb.send(t, prod, "/queue/a", "m1")
	tb.send(t, prod, "/queue/a", "m2")
	if rs := takeAll(t, tb, dead, "1"); kinds(rs) != "GRANT,GRANT" {
		t.Fatalf("dead child got %s", kinds(rs))
	}
	tb.forgetChild(dead)
	tb.subscribe(t, live, "1", "/queue/a", "auto", 5)
	var bodies []string
	for _, g := range takeAll(t, tb, live, "1") {
		if g.hdr.Get(stompwire.HeaderRedelivered) != "true" {
			t.Fatalf("requeued %q not flagged", g.body)
		}
		bodies = append(bodies, g.body)
	}
	if strings.Join(bodies, ",") != "m1,m2" {
		t.Fatalf("redelivered %v, want m1,m2 in order", bodies)
	}
}

func TestLedgerReoffersWhenAWinnerDiesBeforeClaiming(t *testing.T) {
	tb := newTestLedger(t, 4, 1<<20)
	prod, dead, live := tb.fakeChild(), tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, dead, "1", "/queue/a", "auto", 1)
	tb.subscribe(t, live, "1", "/queue/a", "auto", 1)
	tb.send(t, prod, "/queue/a", "m")
	// A one-message offer goes to one idle child: whichever got it dies.
	got := offersTo(t, []*fakeConsumer{dead, live})
	if len(got[0])+len(got[1]) != 1 {
		t.Fatalf("offers %v, want one OFFER to one of the two idle children", got)
	}
	if len(got[1]) == 1 {
		dead, live = live, dead
		got[0] = got[1]
	}
	off := got[0][0]
	tb.sem.Take(off.Slot) // the dead child won...
	tb.sem.Undo(off.Slot) // ...and SEM_UNDO gave the token back when it died
	tb.forgetChild(dead)
	re := only(t, drain(t, live), ipc.KindOffer).offer
	if re.Slot != off.Slot || re.Gen != off.Gen+1 {
		t.Fatalf("re-offer %+v after %+v", re, off)
	}
}

func TestLedgerPrefetchBoundsOffers(t *testing.T) {
	tb := newTestLedger(t, 16, 1<<20)
	prod, cons := tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, cons, "1", "/queue/a", "client-individual", 2)
	for i := 0; i < 10; i++ {
		tb.send(t, prod, "/queue/a", strconv.Itoa(i))
	}
	grants := takeAll(t, tb, cons, "1")
	if kinds(grants) != "GRANT,GRANT" {
		t.Fatalf("with prefetch 2 the consumer got %s", kinds(grants))
	}
	tb.settle(t, cons, grants[0].msgID, true)
	if rs := drain(t, cons); kinds(rs) != "OFFER" || rs[0].offer.Count != 1 {
		t.Fatalf("after one ACK: %s, want one new OFFER of one message", kinds(rs))
	}
}

func TestLedgerMemoryLimitTellsProducer(t *testing.T) {
	tb := newTestLedger(t, 4, 2048)
	prod := tb.fakeChild()
	for i := 0; i < 4; i++ {
		tb.send(t, prod, "/queue/a", strings.Repeat("x", 600))
	}
	rs := drain(t, prod)
	if len(rs) != 1 || rs[0].kind != ipc.KindShutdown || !strings.Contains(rs[0].body, "queue memory limit") {
		t.Fatalf("producer got %s %v", kinds(rs), rs)
	}
}
