package ledger

import (
	"testing"

	"github.com/stomp-broker/stomp-broker/ipc"
)

func TestFairBatch(t *testing.T) {
	cases := []struct {
		name                    string
		ready, withCredit, best int
		total                   int // credit of all consumers with credit
		tied                    bool
		want                    int
	}{
		{"a burst of 30 for three", 30, 3, 32, 96, true, 10},
		{"rounded up", 31, 3, 32, 96, true, 11},
		{"one message for three", 1, 3, 32, 96, true, 1},
		{"capped by the winner's credit", 300, 3, 32, 96, true, 32},
		{"capped by maxOfferBatch", 1000, 2, 1000, 2000, true, maxOfferBatch},
		{"one consumer takes what it can", 20, 1, 32, 32, true, 20},
		{"never zero", 5, 3, 0, 0, false, 1},
		{"tied and the ready fill every credit: the winner's credit", 64, 2, 60, 64, true, 60},
		{"tied but the ready do not fill every credit: the share", 63, 2, 60, 64, true, 32},
		{"the ready fill every credit but not tied: the share", 64, 2, 60, 64, false, 32},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fairBatch(tc.ready, tc.withCredit, tc.best, tc.total, tc.tied); got != tc.want {
				t.Fatalf("fairBatch(%d, %d, %d, %d, %v) = %d, want %d", tc.ready, tc.withCredit, tc.best, tc.total, tc.tied, got, tc.want)
			}
		})
	}
}

// TestLedgerTiedConsumersTakeTheirCredit: two consumers served alike, one
// with credit 64, one with 8, and 72 messages ready (enough for both):
// the first batch is what a winner can take (64), not half of what is
// ready (36), and the two still end up with all their credit. Before the
// rule the batch was 36, and the consumer with credit 64 needed two.
func TestLedgerTiedConsumersTakeTheirCredit(t *testing.T) {
	tb := newTestLedger(t, 16, 1<<20)
	prod, a, b := tb.fakeChild(), tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, a, "1", "/queue/t", "client-individual", 64)
	tb.subscribe(t, b, "1", "/queue/t", "client-individual", 8)
	tb.sendBatch(t, prod, "/queue/t", 72)
	first := offersTo(t, []*fakeConsumer{a, b})
	if len(first[0]) != 1 || len(first[1]) != 1 || first[0][0].Count != 64 {
		t.Fatalf("first offers %v, want one offer of 64 messages to each", first)
	}
	o := first[0][0]
	tb.sem.Take(o.Slot)
	tb.claim(t, a, ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: o.Count})
	next := offersTo(t, []*fakeConsumer{a, b})
	if len(next[0]) != 0 || len(next[1]) != 1 || next[1][0].Count != 8 {
		t.Fatalf("after a took 64: offers %v, want one of 8 messages to b only", next)
	}
}

// offersTo returns the OFFER records queued for each consumer (and drains
// them).
func offersTo(t *testing.T, cons []*fakeConsumer) [][]ipc.Offer {
	t.Helper()
	out := make([][]ipc.Offer, len(cons))
	for i, c := range cons {
		for _, r := range drain(t, c) {
			if r.kind == ipc.KindOffer {
				out[i] = append(out[i], r.offer)
			}
		}
	}
	return out
}

// TestLedgerSharesABurstFairly plays three consumers racing for a burst of
// 30: each batch is a third of what is ready (10, then 7 of the 20 left,
// 5 of 13), and a consumer that won one is left out of the next race until
// the others have had theirs. Before the fair rule the first winner was
// offered, and took, all 30.
func TestLedgerSharesABurstFairly(t *testing.T) {
	for _, ack := range []string{"auto", "client", "client-individual"} {
		t.Run(ack, func(t *testing.T) {
			tb := newTestLedger(t, 16, 1<<20)
			prod := tb.fakeChild()
			cons := []*fakeConsumer{tb.fakeChild(), tb.fakeChild(), tb.fakeChild()}
			for _, c := range cons {
				tb.subscribe(t, c, "1", "/queue/f", ack, 32)
			}
			tb.sendBatch(t, prod, "/queue/f", 30)
			got := make([]int, len(cons))
			// The race always goes to the lowest-numbered consumer that
			// was offered the token: the worst case for fairness.
			for race := 0; race < 30; race++ {
				offers := offersTo(t, cons)
				winner := -1
				for i, os := range offers {
					if len(os) > 0 && winner < 0 {
						winner = i
					}
				}
				if winner < 0 {
					break
				}
				o := offers[winner][len(offers[winner])-1]
				wantTo := map[int][]int{0: {0, 1, 2}, 1: {1, 2}, 2: {2}}[race]
				if race < 3 {
					if want := []int{10, 7, 5}[race]; o.Count != want {
						t.Fatalf("race %d: offer of %d messages, want %d", race, o.Count, want)
					}
					for i, os := range offers {
						in := false
						for _, w := range wantTo {
							in = in || w == i
						}
						if (len(os) > 0) != in {
							t.Fatalf("race %d: consumer %d offered %v; want the offer to go to consumers %v only", race, i, os, wantTo)
						}
					}
				}
				if !tb.sem.Take(o.Slot) {
					t.Fatalf("race %d: token of slot %d already taken", race, o.Slot)
				}
				tb.claim(t, cons[winner], ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: o.Count})
				got[winner] += o.Count
			}
			if got[0] != 10 || got[1] != 10 || got[2] != 10 {
				t.Fatalf("granted %v, want [10 10 10]", got)
			}
		})
	}
}

// TestLedgerOfferFollowsTheLeastServedAway: the offer on the table went
// to the least-served consumer alone; when it unsubscribes, the consumer
// that was left out gets that same offer at once (not after the tick's
// safety net), and only once.
func TestLedgerOfferFollowsTheLeastServedAway(t *testing.T) {
	tb := newTestLedger(t, 16, 1<<20)
	prod, a, b := tb.fakeChild(), tb.fakeChild(), tb.fakeChild()
	tb.subscribe(t, a, "1", "/queue/f", "client-individual", 32)
	tb.subscribe(t, b, "1", "/queue/f", "client-individual", 32)
	tb.sendBatch(t, prod, "/queue/f", 4)
	first := offersTo(t, []*fakeConsumer{a, b})
	if len(first[0]) != 1 || len(first[1]) != 1 || first[0][0].Count != 2 {
		t.Fatalf("first offers %v, want one offer of 2 messages to each", first)
	}
	o := first[0][0]
	tb.sem.Take(o.Slot)
	tb.claim(t, a, ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: o.Count})
	next := offersTo(t, []*fakeConsumer{a, b})
	if len(next[0]) != 0 || len(next[1]) != 1 {
		t.Fatalf("after a won: offers %v, want one to b only", next)
	}
	tb.queues.Unsubscribe(b.subs["1"]) // b stays connected
	tb.queues.Flush()
	again := offersTo(t, []*fakeConsumer{a})
	if len(again[0]) != 1 || again[0][0] != next[1][0] {
		t.Fatalf("after b left: offers to a %v, want the offer b had", again)
	}
}

// TestLedgerOneMessageWakesOneIdleChild: at low rates (one message per
// batch) an offer goes to one consumer, not to every least-served one (the
// others would wake and lose the race); single messages still alternate
// between the two, whether they hold messages or not. Before the rule
// every offer between tied consumers went to both.
func TestLedgerOneMessageWakesOneIdleChild(t *testing.T) {
	tb := newTestLedger(t, 16, 1<<20)
	prod, a, b := tb.fakeChild(), tb.fakeChild(), tb.fakeChild()
	cons := []*fakeConsumer{a, b}
	tb.subscribe(t, a, "1", "/queue/i", "client-individual", 4)
	tb.subscribe(t, b, "1", "/queue/i", "client-individual", 4)
	got := make([]int, 2)
	for i := range 10 {
		tb.sendBatch(t, prod, "/queue/i", 1)
		offers := offersTo(t, cons)
		if len(offers[0])+len(offers[1]) != 1 {
			t.Fatalf("message %d: offers %v, want one OFFER to one child", i, offers)
		}
		w := 0
		if len(offers[1]) == 1 {
			w = 1
		}
		o := offers[w][0]
		tb.sem.Take(o.Slot)
		tb.claim(t, cons[w], ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: 1})
		drain(t, cons[w])
		tb.settle(t, cons[w], o.MessageID, true)
		drain(t, cons[0])
		drain(t, cons[1])
		got[w]++
	}
	if got[0] != 5 || got[1] != 5 {
		t.Fatalf("single messages went %v, want [5 5]", got)
	}

	// Both hold one unacked message: nobody is idle, and still one child
	// is woken.
	held := make([]string, 2)
	for i := range 3 {
		tb.sendBatch(t, prod, "/queue/i", 1)
		offers := offersTo(t, cons)
		if len(offers[0])+len(offers[1]) != 1 {
			t.Fatalf("busy message %d: offers %v, want one OFFER to one child", i, offers)
		}
		w := 0
		if len(offers[0]) == 0 {
			w = 1
		}
		o := offers[w][0]
		tb.sem.Take(o.Slot)
		tb.claim(t, cons[w], ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: 1})
		drain(t, cons[0])
		drain(t, cons[1])
		held[w] = o.MessageID
		if i == 1 && (held[0] == "" || held[1] == "") {
			t.Fatalf("the two messages went to one child: %v", held)
		}
	}
}
