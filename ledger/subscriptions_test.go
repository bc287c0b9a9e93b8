package ledger

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/store"
)

// TestLedgerDurableSubscription: topic SENDs feed each durable subscription
// of the topic (and only those) while nobody consumes it; its consumer then
// gets them in order, named by the topic; DeleteDurable drops what is kept
// and stops the feeding.
func TestLedgerDurableSubscription(t *testing.T) {
	tb := newTestLedger(t, 4, 1<<20)
	prod := tb.fakeChild()
	qa, qb, qc := stompwire.DurablePrefix+"a", stompwire.DurablePrefix+"b", stompwire.DurablePrefix+"c"
	tb.queues.AddDurable(qa, "/topic/news")
	tb.queues.AddDurable(qb, "/topic/news")
	tb.queues.AddDurable(qc, "/topic/other")
	pub := func(topic string, i int) {
		f := frame.New(frame.SEND, frame.Destination, topic)
		f.Body = []byte(strconv.Itoa(i))
		n := tb.host.NextMessage()
		tb.queues.PublishTopic(prod, n, "t-"+strconv.FormatUint(n, 10), topic, f)
		tb.queues.Flush()
	}
	for i := 0; i < 5; i++ {
		pub("/topic/news", i)
	}
	if n := tb.queues.queues[qc]; n != nil && n.count != 0 {
		t.Fatalf("a subscription of another topic kept %d messages", n.count)
	}
	for _, q := range []string{qa, qb} {
		if got := tb.queues.queues[q].count; got != 5 {
			t.Fatalf("%s keeps %d messages, want 5", q, got)
		}
	}

	c := tb.fakeChild()
	tb.subscribe(t, c, "1", qa, "client-individual", 10)
	if got := tb.queues.Consumers(qa); got != 1 {
		t.Fatalf("Consumers = %d, want 1", got)
	}
	grants := takeAll(t, tb, c, "1")
	if len(grants) != 5 {
		t.Fatalf("%d grants, want 5", len(grants))
	}
	for i, g := range grants {
		if g.body != strconv.Itoa(i) || g.hdr.Get(frame.Destination) != "/topic/news" {
			t.Fatalf("grant %d: body %q destination %q", i, g.body, g.hdr.Get(frame.Destination))
		}
	}

	tb.queues.DeleteDurable(qb)
	if q := tb.queues.queues[qb]; q != nil && q.count != 0 {
		t.Fatalf("deleted subscription still keeps %d messages", q.count)
	}
	pub("/topic/news", 5)
	if q := tb.queues.queues[qb]; q != nil && q.count != 0 {
		t.Fatalf("deleted subscription was fed (%d messages)", q.count)
	}
}

// TestDurableWriteWaitsForEcho: with a store that announces subscription
// changes, what waits for a durable subscription change (a SUBSCRIBE's
// RECEIPT, through AfterPending) runs once the store call returned AND its
// announcement came back, in either order, or once subsRefresh passed
// without the announcement; another queue's announcement does not count.
func TestDurableWriteWaitsForEcho(t *testing.T) {
	const q = stompwire.DurablePrefix + "e"
	added := store.SubscriptionChange{Subscription: store.Subscription{Queue: q, Topic: "/topic/e"}, Own: true}
	other := store.SubscriptionChange{Subscription: store.Subscription{Queue: q + "-other", Topic: "/topic/e"}, Own: true}
	for _, tc := range []struct {
		name  string
		steps []string // "written", "echo", "other-echo", "expire"
		ranAt int      // index of the step after which the waiter ran; -1 never
	}{
		{"written then echo", []string{"written", "echo"}, 1},
		{"echo then written", []string{"echo", "written"}, 1},
		{"another queue's echo", []string{"written", "other-echo"}, -1},
		{"no echo: expires", []string{"written", "other-echo", "expire"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Ledger{durable: &durable{shared: true}}
			l.durable.l = l
			l.topicSubs.startWrite()
			ran, fired := -1, false
			l.topicSubs.waiters = append(l.topicSubs.waiters, func() { fired = true })
			for i, step := range tc.steps {
				switch step {
				case "written":
					l.subsWritten(q, false, nil)
				case "echo":
					l.topicSubs.echoed(added)
				case "other-echo":
					l.topicSubs.echoed(other)
				case "expire":
					l.topicSubs.expireEchoes(time.Now().Add(subsRefresh), false)
				}
				if fired && ran < 0 {
					ran = i
				}
			}
			if ran != tc.ranAt {
				t.Fatalf("waiter ran after step %d, want %d (-1: never)", ran, tc.ranAt)
			}
			if tc.ranAt >= 0 && l.topicSubs.writing != 0 {
				t.Fatalf("writing = %d after the waiter ran", l.topicSubs.writing)
			}
		})
	}
}
