package ledger

import (
	"strconv"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
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
