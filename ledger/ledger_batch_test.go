package ledger

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// sendBatch publishes n SENDs to dest (bodies "0".."n-1") as one batch
// of records, as a producer child's one write would carry them.
func (tb *testLedger) sendBatch(t *testing.T, c *fakeConsumer, dest string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		tb.publish(c, dest, strconv.Itoa(i))
	}
	tb.queues.Flush()
}

func bodies(rs []record) string {
	var s []string
	for _, r := range rs {
		if r.kind == ipc.KindGrant {
			s = append(s, r.body)
		}
	}
	return strings.Join(s, ",")
}

func TestLedgerOffersBatches(t *testing.T) {
	cases := []struct {
		name      string
		prefetch  []int // one consumer child per entry
		sends     int
		wantCount []int // the batch sizes offered, in order
	}{
		{"one batch per producer write", []int{10}, 5, []int{5}},
		{"bounded by the consumer's credit", []int{3}, 5, []int{3}},
		{"bounded by maxOfferBatch", []int{100}, 100, []int{maxOfferBatch}},
		{"one batch on offer at a time, sized for one consumer", []int{4, 4}, 10, []int{4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestLedger(t, 16, 1<<20)
			prod := tb.fakeChild()
			var cons []*fakeConsumer
			for i, pf := range tc.prefetch {
				c := tb.fakeChild()
				tb.subscribe(t, c, strconv.Itoa(i), "/queue/b", "client-individual", pf)
				cons = append(cons, c)
			}
			tb.sendBatch(t, prod, "/queue/b", tc.sends)
			var got []int
			for _, r := range drain(t, cons[0]) {
				if r.kind != ipc.KindOffer {
					t.Fatalf("unexpected %s", r.kind)
				}
				got = append(got, r.offer.Count)
			}
			if len(got) != len(tc.wantCount) {
				t.Fatalf("offers of %v messages, want %v", got, tc.wantCount)
			}
			for i := range got {
				if got[i] != tc.wantCount[i] {
					t.Fatalf("offers of %v messages, want %v", got, tc.wantCount)
				}
			}
		})
	}
}

func TestLedgerPartialClaimRequeuesTheRestInOrder(t *testing.T) {
	tb := newTestLedger(t, 16, 1<<20)
	prod, cons := tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, cons, "1", "/queue/b", "client-individual", 10)
	tb.sendBatch(t, prod, "/queue/b", 5)
	off := only(t, drain(t, cons), ipc.KindOffer).offer
	if off.Count != 5 {
		t.Fatalf("offer of %d messages, want 5", off.Count)
	}
	tb.sem.Take(off.Slot)
	tb.claim(t, cons, ipc.Claim{Slot: off.Slot, Gen: off.Gen, SubID: "1", MessageID: off.MessageID, Count: 2})
	rs := drain(t, cons)
	if kinds(rs) != "GRANT,GRANT,OFFER" || bodies(rs) != "0,1" {
		t.Fatalf("records %s (bodies %s), want GRANT 0, GRANT 1, then an OFFER of the rest", kinds(rs), bodies(rs))
	}
	rest := rs[2].offer
	if rest.Count != 3 {
		t.Fatalf("re-offer of %d messages, want 3", rest.Count)
	}
	if v, _ := tb.sem.Value(rest.Slot); v != 1 {
		t.Fatalf("re-offered slot value %d, want 1", v)
	}
	tb.sem.Take(rest.Slot)
	tb.claim(t, cons, ipc.Claim{Slot: rest.Slot, Gen: rest.Gen, SubID: "1", MessageID: rest.MessageID, Count: 3})
	rs = drain(t, cons)
	if bodies(rs) != "2,3,4" {
		t.Fatalf("second claim got %s, want 2,3,4", bodies(rs))
	}
	for _, r := range rs {
		if r.hdr.Get(stompwire.HeaderRedelivered) != "" {
			t.Fatalf("message %s offered twice but delivered once is flagged redelivered", r.body)
		}
	}
}

func TestLedgerClaimBeyondCreditIsDeniedInPart(t *testing.T) {
	tb := newTestLedger(t, 16, 1<<20)
	prod, cons := tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, cons, "1", "/queue/b", "client-individual", 3)
	tb.sendBatch(t, prod, "/queue/b", 3)
	off := only(t, drain(t, cons), ipc.KindOffer).offer
	// The child lost credit meanwhile as the parent sees it: it holds one.
	cons.subs["1"].inflight = 2
	tb.sem.Take(off.Slot)
	tb.claim(t, cons, ipc.Claim{Slot: off.Slot, Gen: off.Gen, SubID: "1", MessageID: off.MessageID, Count: 3})
	denies := denyCounts(t, cons)
	rs := drain(t, cons)
	if len(rs) < 2 || kinds(rs[:2]) != "GRANT,DENY" || rs[0].body != "0" {
		t.Fatalf("records %s, want GRANT 0 then DENY", kinds(rs))
	}
	if len(denies) != 1 || denies[0] != 2 {
		t.Fatalf("DENY counts %v, want [2]", denies)
	}
	if len(tb.queues.msgs) != 3 || tb.queues.queues["/queue/b"].ready.len() != 2 {
		t.Fatalf("ledger: %d messages, %d ready; want 3 and 2", len(tb.queues.msgs), tb.queues.queues["/queue/b"].ready.len())
	}
}

// denyCounts returns the counts of the DENY records queued for c, without
// taking anything from its queue.
func denyCounts(t *testing.T, c *fakeConsumer) []int {
	t.Helper()
	buf := c.out
	var counts []int
	for len(buf) > 0 {
		k, body, rest, err := ipc.NextRecord(buf)
		if err != nil {
			t.Fatal(err)
		}
		buf = rest
		if k == ipc.KindDeny {
			_, _, n, err := ipc.DecodeDenyCount(body)
			if err != nil {
				t.Fatal(err)
			}
			counts = append(counts, n)
		}
	}
	return counts
}
