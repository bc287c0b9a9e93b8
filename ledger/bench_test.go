package ledger

import (
	"strconv"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/fakesem"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// BenchmarkQueueRoundTrip is the parent's half of one queue message's hot
// path: publish, offer (Flush), claim and grant, ACK; the fake host keeps
// no records, so what is allocated is the ledger's own (and the MESSAGE
// encoding's). Compare allocs/op across changes to the Host interface.
func BenchmarkQueueRoundTrip(b *testing.B) {
	sem := fakesem.New(4)
	host := &discardHost{}
	l := New(host, sem, Config{MaxBytes: 1 << 30, Jobs: JobDefaults{MaxRedeliveries: -1}})
	prod, cons := &fakeConsumer{pid: 1}, &fakeConsumer{pid: 2}
	f := frame.New(frame.SUBSCRIBE, frame.Id, "1", frame.Destination, "/queue/bench", frame.Ack, "client-individual", stompwire.HeaderPrefetchCount, "1")
	sub := NewSubscription(cons, "1", "/queue/bench", f.Header)
	l.Subscribe(sub)
	send := frame.New(frame.SEND, frame.Destination, "/queue/bench", "content-type", "text/plain")
	send.Body = []byte("hello, world")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		n := host.NextMessage()
		id := "b-" + strconv.FormatUint(n, 10)
		l.Publish(prod, n, id, "/queue/bench", send)
		l.Flush()
		o := host.offer
		sem.Take(o.Slot)
		l.Claim(cons, sub, ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: 1})
		l.Flush()
		l.Settle(cons, id, true)
		l.Flush()
	}
}

// discardHost keeps only the last OFFER it was given.
type discardHost struct {
	fakeHost
	offer ipc.Offer
}

func (h *discardHost) Send(c Consumer, records []byte, messages int) {
	if k, body, _, err := ipc.NextRecord(records); err == nil && k == ipc.KindOffer {
		h.offer, _ = ipc.DecodeOffer(body)
	}
}
