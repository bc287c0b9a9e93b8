package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// counts is the integrity verdict of a run: how many expected message ids
// never arrived, how many extra copies arrived, how many arrived out of
// order within one receiver's stream, and how many bodies carried no valid
// id at all.
type counts struct {
	Lost       int
	Duplicated int
	Reordered  int
	Invalid    int
}

// add returns the field-by-field sum of c and o.
func (c counts) add(o counts) counts {
	return counts{
		Lost:       c.Lost + o.Lost,
		Duplicated: c.Duplicated + o.Duplicated,
		Reordered:  c.Reordered + o.Reordered,
		Invalid:    c.Invalid + o.Invalid,
	}
}

// failed reports whether the run broke delivery guarantees: a lost, an
// extra or an unidentifiable message. Reordering is reported but is not a
// failure, because STOMP does not promise order across redeliveries.
func (c counts) failed() bool {
	return c.Lost > 0 || c.Duplicated > 0 || c.Invalid > 0
}

// ledger counts deliveries of every message id (producer, seq) for one group
// of receivers that together expect each message exactly once: all consumers
// of a queue share one ledger, while every topic subscriber has its own.
//
// It is safe for concurrent use; each delivery costs one atomic add, so
// consumers do not serialise on a lock.
type ledger struct {
	perProducer int
	counts      []atomic.Uint32
	distinct    atomic.Int64
	invalid     atomic.Int64

	completeOnce sync.Once
	complete     chan struct{}
	completedAt  time.Duration // since epoch; written before complete is closed
}

// newLedger returns a ledger expecting perProducer messages (sequence numbers
// 0..perProducer-1) from each of producers producers.
func newLedger(producers, perProducer int) *ledger {
	return &ledger{
		perProducer: perProducer,
		counts:      make([]atomic.Uint32, producers*perProducer),
		complete:    make(chan struct{}),
	}
}

// expected returns how many distinct ids the ledger waits for.
func (l *ledger) expected() int { return len(l.counts) }

// mark records one delivery of (producer, seq) observed at the given time
// since epoch. An id outside the expected range is counted as invalid and
// mark returns false. When the last missing id arrives, mark records the
// time and closes the channel returned by [ledger.done].
func (l *ledger) mark(producer, seq int, at time.Duration) bool {
	if producer < 0 || seq < 0 || seq >= l.perProducer || producer*l.perProducer+seq >= len(l.counts) {
		l.invalid.Add(1)
		return false
	}
	if l.counts[producer*l.perProducer+seq].Add(1) == 1 {
		if l.distinct.Add(1) == int64(len(l.counts)) {
			l.completeOnce.Do(func() {
				l.completedAt = at
				close(l.complete)
			})
		}
	}
	return true
}

// markInvalid counts one body that carried no parsable id.
func (l *ledger) markInvalid() { l.invalid.Add(1) }

// delivered returns the number of distinct ids seen so far.
func (l *ledger) delivered() int { return int(l.distinct.Load()) }

// done returns a channel that is closed once every expected id has been
// delivered at least once. Read [ledger.completedAt] only after it closed.
func (l *ledger) done() <-chan struct{} { return l.complete }

// tally returns the lost, duplicated and invalid counts. Call it only after
// every receiver using the ledger has stopped, or the numbers are a snapshot.
func (l *ledger) tally() counts {
	var c counts
	for i := range l.counts {
		switch n := l.counts[i].Load(); {
		case n == 0:
			c.Lost++
		case n > 1:
			c.Duplicated += int(n - 1)
		}
	}
	c.Invalid = int(l.invalid.Load())
	return c
}

// orderTracker detects reordering within one receiver's stream: a message
// whose sequence number is lower than one already seen from the same
// producer. Gaps are normal (on a queue other consumers take the missing
// messages) and are not reordering. Not safe for concurrent use: each
// receiver owns one.
type orderTracker struct {
	last      []int
	reordered int
}

// newOrderTracker returns a tracker for a stream fed by producers producers.
func newOrderTracker(producers int) *orderTracker {
	last := make([]int, producers)
	for i := range last {
		last[i] = -1
	}
	return &orderTracker{last: last}
}

// observe records (producer, seq) and reports whether it arrived out of
// order. Out-of-range producers are ignored (the ledger counts them).
func (o *orderTracker) observe(producer, seq int) bool {
	if producer < 0 || producer >= len(o.last) {
		return false
	}
	if seq < o.last[producer] {
		o.reordered++
		return true
	}
	o.last[producer] = seq
	return false
}

// receiver is one subscription's view of a run: it decodes each body, marks
// the id in the group's shared ledger, checks per-producer order and, when
// asked to, keeps the end-to-end latency of every message.
type receiver struct {
	ledger      *ledger
	order       *orderTracker
	keepLatency bool
	latencies   []time.Duration
	last        atomic.Int64 // time since epoch of the latest delivery
	received    atomic.Int64 // MESSAGE frames read, valid or not
}

// newReceiver returns a receiver that marks into l and expects messages from
// producers producers.
func newReceiver(l *ledger, producers int, keepLatency bool) *receiver {
	return &receiver{ledger: l, order: newOrderTracker(producers), keepLatency: keepLatency}
}

// deliver accounts for one MESSAGE body received at now (time since epoch).
func (r *receiver) deliver(body []byte, now time.Duration) {
	r.last.Store(int64(now))
	producer, seq, stamp, ok := decodePayload(body)
	if !ok {
		r.ledger.markInvalid()
		return
	}
	r.record(producer, seq, now)
	if r.keepLatency {
		r.latencies = append(r.latencies, now-stamp)
	}
}

// record marks (producer, seq) in the ledger and checks its order.
func (r *receiver) record(producer, seq int, now time.Duration) {
	if r.ledger.mark(producer, seq, now) {
		r.order.observe(producer, seq)
	}
}
