package parent

import (
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/ledger"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// benchSlots stands in for the semaphore set.
type benchSlots []int

func (s benchSlots) Arm(n int) error          { s[n] = 1; return nil }
func (s benchSlots) Disarm(n int) error       { s[n] = 0; return nil }
func (s benchSlots) Value(n int) (int, error) { return s[n], nil }
func (s benchSlots) Slots() int               { return len(s) - 1 }

// BenchmarkQueueRoundTrip is the parent's half of one queue message's hot
// path through the ledger and back into a child's outbox: publish, offer,
// claim and grant, ACK. It measures what the ledger.Host and
// ledger.Consumer seam costs per message (compare allocs/op).
func BenchmarkQueueRoundTrip(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bk := &Broker{cfg: Config{Log: log}, log: log, children: map[int]*childProc{}, topics: map[string]map[*childProc]int{}, idPrefix: "b"}
	sem := make(benchSlots, 5)
	bk.queues = ledger.New(ledgerHost{bk}, sem, ledger.Config{MaxBytes: 1 << 30, Jobs: ledger.JobDefaults{MaxRedeliveries: -1}, Log: log})
	prod := &childProc{pid: 1, out: newOutbox(1 << 30), subs: map[string]*subscription{}}
	cons := &childProc{pid: 2, out: newOutbox(1 << 30), subs: map[string]*subscription{}}
	f := frame.New(frame.SUBSCRIBE, frame.Id, "1", frame.Destination, "/queue/bench", frame.Ack, "client-individual", stompwire.HeaderPrefetchCount, "1")
	sub := &subscription{key: "1", dest: "/queue/bench", queue: ledger.NewSubscription(cons, "1", "/queue/bench", f.Header)}
	cons.subs["1"] = sub
	bk.queues.Subscribe(sub.queue)
	send := frame.New(frame.SEND, frame.Destination, "/queue/bench", "content-type", "text/plain")
	send.Body = []byte("hello, world")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bk.nextMsg++
		id := "b-" + strconv.FormatUint(bk.nextMsg, 10)
		bk.queues.Publish(prod, bk.nextMsg, id, "/queue/bench", send)
		bk.queues.Flush()
		_, body, _, err := ipc.NextRecord(cons.out.buf)
		if err != nil {
			b.Fatal(err)
		}
		o, err := ipc.DecodeOffer(body)
		if err != nil {
			b.Fatal(err)
		}
		cons.out.buf = cons.out.buf[:0]
		sem[o.Slot]--
		bk.queues.Claim(cons, sub.queue, ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: "1", MessageID: o.MessageID, Count: 1})
		bk.queues.Flush()
		cons.out.buf = cons.out.buf[:0]
		bk.queues.Settle(cons, id, true)
		bk.queues.Flush()
		cons.out.buf = cons.out.buf[:0]
	}
}
