package parent

import (
	"encoding/binary"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/ledger"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The parent must survive whatever a child sends it: a child runs the
// client's session and could be buggy or compromised. FuzzParentRecords
// plays a script of steps against the parent's event-loop handling with
// three fake children (no processes; see newTestBroker):
//
//	op>>5 0..3  child op%3 sends a batch: uvarint length, then that many
//	            bytes, handed to applyRecords as one packet
//	op>>5 4     child op%3 claims the last offer it saw (1 byte: count
//	            and which of its subscriptions), as a real child would
//	op>>5 5     child op%3 ACKs or NACKs one of its grants (1 byte)
//	op>>5 6     time passes (1 byte: × 50 ms): ledger tick, queue gauges,
//	            control answers
//	op>>5 7     child op%3 dies and a new child takes its place
//
// A batch applyRecords refuses kills the child (as Broker.handle does).
// After every step the harness checks that nothing panicked, that every
// record the parent queued for a child decodes (a MESSAGE in it parses),
// that the metrics can be gathered, and that the ledger's books add up.

// fuzzChildren is how many fake children a script drives.
const fuzzChildren = 3

// fuzzHarness is the parent with fake children and what each child saw.
type fuzzHarness struct {
	t   *testing.T
	tb  *testBroker
	now time.Time

	kids   [fuzzChildren]*childProc
	offers [fuzzChildren][]ipc.Offer
	grants [fuzzChildren][]string // message ids granted, not yet settled
	seen   map[ipc.Kind]int       // records the parent sent, by kind
}

func newFuzzHarness(t *testing.T) *fuzzHarness {
	h := &fuzzHarness{t: t, now: time.Unix(1_700_000_000, 0), seen: map[ipc.Kind]int{}}
	tb := newTestBroker(t, 4, 1<<16, func() time.Time { return h.now })
	h.tb = tb
	tb.metrics = newMetrics(func() float64 { return float64(len(tb.children)) })
	tb.cfg.Child.Limits = limitsWithDefaults(tb.cfg.Child.Limits)
	for i := range h.kids {
		h.kids[i] = tb.fakeChild()
	}
	return h
}

// run plays script.
func (h *fuzzHarness) run(script []byte) {
	for len(script) > 0 {
		op := script[0]
		script = script[1:]
		i := int(op&31) % fuzzChildren
		switch op >> 5 {
		case 4, 5, 6:
			var arg byte
			if len(script) > 0 {
				arg, script = script[0], script[1:]
			}
			switch op >> 5 {
			case 4:
				h.claim(i, arg)
			case 5:
				h.settle(i, arg)
			case 6:
				h.tick(arg)
			}
		case 7:
			h.die(i)
		default:
			// A length that does not fit makes the rest of the script the batch.
			n, w := binary.Uvarint(script)
			if w > 0 && n <= uint64(len(script)-w) {
				script = script[w:]
			} else {
				n = uint64(len(script))
			}
			h.apply(i, script[:n])
			script = script[n:]
		}
		h.check()
	}
	for i := range h.kids {
		h.die(i)
	}
	h.check() // no child is alive: no message may be granted or leased
}

// apply hands child i's batch to the parent, and kills the child if the
// parent refuses it.
func (h *fuzzHarness) apply(i int, batch []byte) {
	if err := h.tb.applyRecords(h.kids[i], batch); err != nil {
		h.die(i)
	}
}

// die is child i's death as the event loop sees it; a fresh child takes
// its place.
func (h *fuzzHarness) die(i int) {
	h.tb.forgetChild(h.kids[i])
	h.kids[i] = h.tb.fakeChild()
	h.offers[i], h.grants[i] = nil, nil
}

// claim plays child i winning its last offer for one of its queue
// subscriptions (arg picks which, and how many messages it asks for).
func (h *fuzzHarness) claim(i int, arg byte) {
	c := h.kids[i]
	if len(h.offers[i]) == 0 {
		return
	}
	o := h.offers[i][len(h.offers[i])-1]
	h.offers[i] = h.offers[i][:len(h.offers[i])-1]
	keys := make([]string, 0, len(c.subs))
	for k := range c.subs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	key := "none"
	if len(keys) > 0 {
		key = keys[int(arg>>4)%len(keys)]
	}
	h.tb.sem.Take(o.Slot)
	h.apply(i, ipc.AppendClaim(nil, ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: key, MessageID: o.MessageID, Count: int(arg & 15)}))
}

// settle plays child i acking (arg bit 0) or nacking one of its grants.
func (h *fuzzHarness) settle(i int, arg byte) {
	g := h.grants[i]
	if len(g) == 0 {
		return
	}
	j := int(arg>>1) % len(g)
	id := g[j]
	h.grants[i] = append(g[:j], g[j+1:]...)
	k := ipc.KindNack
	if arg&1 == 1 {
		k = ipc.KindAck
	}
	h.apply(i, ipc.AppendText(nil, k, id))
}

// tick lets arg × 50 ms pass and runs what the event loop runs every second.
func (h *fuzzHarness) tick(arg byte) {
	h.now = h.now.Add(time.Duration(arg) * 50 * time.Millisecond)
	h.tb.queues.OnTick(h.now)
	h.tb.queues.Flush()
	h.tb.refreshQueueMetrics()
	for _, req := range []string{control.RequestClients, control.RequestQueues, "bogus\xff"} {
		_ = h.tb.answer(req)
	}
}

// check drains what the parent queued for each child, which must decode,
// and checks the metrics and the ledger's books.
func (h *fuzzHarness) check() {
	t := h.t
	for i, c := range h.kids {
		c.out.mu.Lock()
		buf := append([]byte(nil), c.out.buf...)
		c.out.buf = c.out.buf[:0]
		c.out.mu.Unlock()
		for len(buf) > 0 {
			k, body, rest, err := ipc.NextRecord(buf)
			if err != nil {
				t.Fatalf("parent queued a malformed batch for a child: %v", err)
			}
			buf = rest
			if err := h.sawRecord(i, k, body); err != nil {
				t.Fatalf("parent queued a bad %s record: %v", k, err)
			}
		}
	}
	exposition(t, h.tb.metrics) // the metrics page parses
	if err := h.tb.queues.CheckBooks(func(c ledger.Consumer) bool { return !c.(*childProc).gone }); err != nil {
		t.Fatal(err)
	}
}

// sawRecord decodes one record the parent sent child i and remembers the
// offers and grants for later claim and settle steps.
func (h *fuzzHarness) sawRecord(i int, k ipc.Kind, body []byte) error {
	h.seen[k]++
	switch k {
	case ipc.KindOffer:
		o, err := ipc.DecodeOffer(body)
		if err != nil {
			return err
		}
		h.offers[i] = append(h.offers[i], o)
	case ipc.KindGrant, ipc.KindDeliver:
		_, id, enc, err := ipc.DecodeMessage(body)
		if err != nil {
			return err
		}
		f, n, err := stompwire.Parse(enc, stompwire.V12, h.tb.cfg.Child.Limits.Relayed())
		if err != nil {
			return err
		}
		if f == nil || f.Command != frame.MESSAGE || n != len(enc) {
			return fmt.Errorf("not one MESSAGE frame: %q", enc)
		}
		if k == ipc.KindGrant {
			h.grants[i] = append(h.grants[i], id)
		}
	case ipc.KindDeny, ipc.KindRevoke:
		if _, _, _, err := ipc.DecodeDenyCount(body); err != nil {
			return err
		}
	case ipc.KindSynced:
		if _, _, err := ipc.DecodeSynced(body); err != nil {
			return err
		}
	case ipc.KindShutdown:
	default:
		return fmt.Errorf("unexpected kind")
	}
	return nil
}

// fuzzScript builds a seed script.
type fuzzScript []byte

// batch appends a step in which child i sends records.
func (s fuzzScript) batch(i int, records ...[]byte) fuzzScript {
	var b []byte
	for _, r := range records {
		b = append(b, r...)
	}
	s = append(s, byte(i))
	s = binary.AppendUvarint(s, uint64(len(b)))
	return append(s, b...)
}

func (s fuzzScript) op(kind, i int, arg ...byte) fuzzScript {
	return append(append(s, byte(kind<<5|i)), arg...)
}

// frameRecord is a FRAME record as a child forwards it.
func frameRecord(command string, body string, headers ...string) []byte {
	f := frame.New(command, headers...)
	if body != "" {
		f.Body = []byte(body)
	}
	return ipc.AppendRecord(nil, ipc.KindFrame, stompwire.AppendFrame(nil, f, stompwire.V12))
}

// fuzzSeeds are scripts of real records: a consumer and a producer on a
// queue and a topic, claims, acks, nacks, timeouts, deaths, and some
// records no correct child sends.
func fuzzSeeds() []fuzzScript {
	hello := ipc.AppendHello(nil, ipc.SessionInfo{Addr: "127.0.0.1:1", Login: "guest", Version: "1.2"})
	subQ := frameRecord(frame.SUBSCRIBE, "", frame.Id, "1", frame.Destination, "/queue/q", frame.Ack, "client-individual", stompwire.HeaderPrefetchCount, "2", stompwire.HeaderAckTimeout, "100")
	subT := frameRecord(frame.SUBSCRIBE, "", frame.Id, "2", frame.Destination, "/topic/t")
	sendQ := frameRecord(frame.SEND, "hello", frame.Destination, "/queue/q", "x-user", "v")
	sendT := frameRecord(frame.SEND, "news", frame.Destination, "/topic/t")
	sendJob := frameRecord(frame.SEND, "job", frame.Destination, "/queue/q", stompwire.HeaderMaxRedeliveries, "1", stompwire.HeaderUniqKey, "k", stompwire.HeaderRedeliveryDelay, "100")
	sync := ipc.AppendToken(nil, ipc.KindSync, 7)
	unsub := frameRecord(frame.UNSUBSCRIBE, "", frame.Id, "1")
	return []fuzzScript{
		fuzzScript(nil).batch(0, hello, subQ, subT).batch(1, hello, sendQ, sendQ, sendQ, sendT, sync).
			op(4, 0, 0x01).op(4, 0, 0x00).op(5, 0, 1).op(5, 0, 0).op(6, 0, 40).op(4, 0, 0).op(7, 0).op(6, 0, 1),
		fuzzScript(nil).batch(0, subQ).batch(2, subQ).batch(1, sendJob, sendJob, sendQ).
			op(4, 2, 0).op(4, 0, 0).op(5, 0, 0).op(6, 0, 255).op(4, 2, 0).op(5, 2, 0).batch(0, unsub).op(7, 1),
		// One consumer sits on a message past its ack-timeout (REVOKE),
		// whichever child a one-message offer would have picked.
		fuzzScript(nil).batch(0, subQ).batch(1, sendQ).op(4, 0, 0).op(6, 0, 255).op(5, 0, 0),
		fuzzScript(nil).batch(0, subQ).batch(1, sendQ).
			batch(0, ipc.AppendClaim(nil, ipc.Claim{Slot: 4, Gen: 1, SubID: "1", MessageID: "t-1", Count: 9})).
			batch(0, ipc.AppendClaim(nil, ipc.Claim{Slot: 1 << 40, Gen: 1, SubID: "nope", MessageID: "t-1"})).
			batch(0, ipc.AppendText(nil, ipc.KindAck, "t-1"), ipc.AppendText(nil, ipc.KindNack, "t-99")),
		// What a broken child might send.
		fuzzScript(nil).batch(0, frameRecord(frame.SEND, "x", frame.Destination, "/queue/\xff\xfe")).
			batch(1, frameRecord(frame.SUBSCRIBE, "", frame.Id, "1", frame.Destination, "/queue/\xc3")).
			batch(1, frameRecord(frame.SEND, "x", frame.Destination, "/queue/\xc3")).
			batch(2, frameRecord(frame.SEND, "x", frame.Destination, "/topic/\x80", "\xfe", "\xff")).
			batch(0, frameRecord(frame.ACK, "", frame.Id, "1")).
			batch(0, ipc.AppendRecord(nil, ipc.KindHello, []byte("{not json"))).
			batch(0, ipc.AppendRecord(nil, ipc.KindDeliver, nil)).
			batch(0, []byte{'F', 0xff}).op(6, 0, 20),
	}
}

// FuzzParentRecords feeds scripts of child records to the parent (see
// fuzzHarness). Its seeds run in every `go test`; fuzz it with
//
//	go test ./parent -run XXX -fuzz FuzzParentRecords -fuzztime 3m
func FuzzParentRecords(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		newFuzzHarness(t).run(script)
	})
}

// TestFuzzSeedsReachTheLedger keeps the fuzz harness honest: its seeds
// must drive the parent through offers, grants, topic deliveries,
// receipts, ack-timeouts and denials, or the fuzzer starts from nowhere.
func TestFuzzSeedsReachTheLedger(t *testing.T) {
	seen := map[ipc.Kind]int{}
	for _, s := range fuzzSeeds() {
		h := newFuzzHarness(t)
		h.run(s)
		for k, n := range h.seen {
			seen[k] += n
		}
	}
	for _, k := range []ipc.Kind{ipc.KindOffer, ipc.KindGrant, ipc.KindDeliver, ipc.KindSynced, ipc.KindRevoke, ipc.KindDeny} {
		if seen[k] == 0 {
			t.Errorf("no seed makes the parent send a %s record (saw %v)", k, seen)
		}
	}
}

// TestParentRefusesBrokenRecords checks that records no correct child
// sends are refused with an error (the event loop then kills that child),
// never applied and never a panic.
func TestParentRefusesBrokenRecords(t *testing.T) {
	sub := frameRecord(frame.SUBSCRIBE, "", frame.Id, "1", frame.Destination, "/topic/t")
	cases := []struct {
		name  string
		batch []byte
	}{
		{"SEND to a destination that is not UTF-8", frameRecord(frame.SEND, "x", frame.Destination, "/queue/\xff\xfe")},
		{"SUBSCRIBE to a destination that is not UTF-8", frameRecord(frame.SUBSCRIBE, "", frame.Id, "1", frame.Destination, "/queue/\xc3")},
		{"header name not UTF-8", frameRecord(frame.SEND, "x", frame.Destination, "/topic/t", "\xfe", "v")},
		{"stray byte", []byte{'A'}},
		{"length beyond the batch", []byte{'A', 9, 'x'}},
		{"unknown kind", ipc.AppendRecord(nil, 'Z', nil)},
		{"a parent-only kind", ipc.AppendRecord(nil, ipc.KindDeliver, nil)},
		{"HELLO that is not JSON", ipc.AppendRecord(nil, ipc.KindHello, []byte("{"))},
		{"truncated CLAIM", ipc.AppendRecord(nil, ipc.KindClaim, []byte{1, 1})},
		{"SYNC with trailing bytes", ipc.AppendRecord(nil, ipc.KindSync, []byte{1, 2})},
		{"empty FRAME", ipc.AppendRecord(nil, ipc.KindFrame, nil)},
		{"FRAME that does not parse", ipc.AppendRecord(nil, ipc.KindFrame, []byte("SEND\nbroken\n\n\x00"))},
		{"FRAME with a client-only command", frameRecord(frame.ACK, "", frame.Id, "1")},
		{"SEND without destination", frameRecord(frame.SEND, "x")},
		{"SEND to a bare prefix", frameRecord(frame.SEND, "x", frame.Destination, "/queue/")},
		{"SUBSCRIBE to an unknown kind of destination", frameRecord(frame.SUBSCRIBE, "", frame.Id, "1", frame.Destination, "/exchange/x")},
		{"SUBSCRIBE without id", frameRecord(frame.SUBSCRIBE, "", frame.Destination, "/topic/t")},
		{"duplicate SUBSCRIBE", append(append([]byte(nil), sub...), sub...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFuzzHarness(t)
			if err := h.tb.applyRecords(h.kids[0], tc.batch); err == nil {
				t.Fatalf("applyRecords(%q) = nil, want an error", tc.batch)
			}
		})
	}
}
