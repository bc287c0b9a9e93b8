package ledger

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Host is what the ledger needs of the broker around it. The parent's
// event loop implements it; tests give it a fake. The ledger calls it only
// from the goroutine that calls the ledger (the event loop), and never
// keeps the records it passes to Send.
type Host interface {
	// Send queues records (OFFER, GRANT, DENY, REVOKE) for consumer c;
	// messages is how many queue messages they deliver (1 for a GRANT,
	// else 0), for the client's counters. It must copy what it keeps,
	// never block, and drop records for a consumer that is gone or told
	// to close. It may tell c to close (a slow consumer).
	Send(c Consumer, records []byte, messages int)
	// TellToClose asks c to send its client an ERROR with reason and
	// close (a malformed job header, the memory budget, a failed store).
	TellToClose(c Consumer, reason string)
	// NextMessage advances the host's message counter and returns it: the
	// publication number of a message the ledger makes itself (dead
	// letters, messages leased from the store).
	NextMessage() uint64
	// Async runs work in a goroutine of its own, then calls the function
	// it returns back on the event loop. Store calls go through it.
	Async(work func() (apply func()))
	// StoreCommitted reports each Put to the durable store, on the event
	// loop, with how long it took (for metrics and logs).
	StoreCommitted(took time.Duration, err error)
	// Fatal reports an error the ledger cannot continue after (the
	// semaphore set is gone); the host shuts down.
	Fatal(err error)
}

// Consumer is the host's handle for one client connection (one child
// process): the ledger keeps it as the owner of what it granted, keys its
// per-connection state by it (it must be comparable, and the same value
// for the connection's whole life), and hands it back to Host.Send.
type Consumer interface {
	// PID names the consumer in traces and logs (the child's pid).
	PID() int
}

// Semaphores is the part of semaphore.Set the ledger uses; tests give it a
// fake.
type Semaphores interface {
	Arm(slot int) error
	Disarm(slot int) error
	Value(slot int) (int, error)
	Slots() int
}

// Config is the ledger's configuration.
type Config struct {
	// MaxBytes caps the bytes of queued (not yet acked) messages; a SEND
	// over it is refused (its producer is told to close).
	MaxBytes int64
	// Jobs are the defaults for job headers (max-redeliveries, backoff).
	Jobs JobDefaults
	// PersistAll stores every queue message durably when there is a store.
	PersistAll bool
	// Relayed are the parse limits of frames read back from the store.
	Relayed stompwire.Limits
	// Log receives the ledger's log lines (default: discard); Trace logs
	// each hop of each queue message there.
	Log   *slog.Logger
	Trace bool
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// Subscription is one queue SUBSCRIBE of one consumer, with its credit.
// The host makes it (NewSubscription), keeps it in its own table of the
// consumer's subscriptions, and passes it to Subscribe, Claim and
// Unsubscribe.
type Subscription struct {
	c         Consumer
	key       string // the child's key for it (not the client's id)
	dest      string
	clientAck bool // ack mode client or client-individual
	prefetch  int
	inflight  int // queue messages offered-and-claimed or granted, not yet acked
	// ackTimeout, if set, is a lease on each client-mode delivery (the
	// SUBSCRIBE's ack-timeout header).
	ackTimeout time.Duration
}

// NewSubscription reads a queue SUBSCRIBE of c: its key (the child's, not
// the client's id), destination and the headers that set its credit and
// acknowledgement (ack, prefetch-count, ack-timeout).
func NewSubscription(c Consumer, key, dest string, h *frame.Header) *Subscription {
	prefetch, _ := strconv.Atoi(h.Get(stompwire.HeaderPrefetchCount))
	ack := h.Get(frame.Ack)
	sub := &Subscription{
		c: c, key: key, dest: dest,
		clientAck: ack == frame.AckClient || ack == frame.AckClientIndividual, prefetch: max(prefetch, 1),
	}
	if v := h.Get(stompwire.HeaderAckTimeout); v != "" {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
			sub.ackTimeout = time.Duration(ms) * time.Millisecond
		}
	}
	return sub
}
