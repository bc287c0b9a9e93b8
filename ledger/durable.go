package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/store"
)

// durable connects the ledger to a durable store (SQLite or PostgreSQL).
// It is owned by the event loop like the ledger; every store call runs in
// a goroutine of its own (Host.Async) and its result comes back to the
// event loop as a function to apply, so a slow disk never stalls routing.
//
// A persistent message's life:
//
//  1. SEND persistent:true → put: batched per producer, stored with one
//     Put (the store group-commits concurrent Puts into one transaction);
//     the producer's RECEIPT waits for that commit (afterPut).
//  2. fetch: when a queue's consumers have credit, the ledger leases up to
//     that many messages from the store (a lease is a row lock with a
//     deadline, so several brokers can share one PostgreSQL database and
//     a crashed broker's messages come back when its leases run out).
//     Leased messages become ordinary ready messages in the ledger.
//  3. ACK → Ack deletes the row. NACK, a lost consumer or an ack-timeout →
//     Release (redelivered later, flagged, after the backoff) or, when the
//     redeliveries are used up, DeadLetter.
//
// So the broker holds only the leased window of a durable queue in memory:
// a queue larger than memory stays on disk.
type durable struct {
	l     *Ledger // the ledger it feeds (its books and queues)
	host  Host    // the ledger's host
	log   *slog.Logger
	st    store.Store
	owner string        // this broker's lease owner id
	lease time.Duration // lease length; renewed at a third of it

	producers map[Consumer]*producer
	dirty     map[*producer]bool
	acks      []int64
	lastRenew time.Time
	lastPoll  time.Time
	// hint marks queues whose store rows may be ready to lease.
	hint map[string]bool
	// due are the times stored messages this broker wrote or released come
	// due (wake.go); rows from elsewhere are found by the poll in onTick.
	due dueHeap

	// Shared stores (store.Watcher): the store announces stored messages
	// on notes (watch.go); the ledger then leases in small chunks (fetch).
	shared     bool
	notes      chan note
	stopWatch  context.CancelFunc
	watchDone  chan struct{} // closed when the store's Watch returned
	stopNotes  chan struct{} // closed by Close: the note waiter returns
	noteMissed atomic.Bool   // notes was full: poll every queue on the next tick
	subsMissed atomic.Bool   // notes was full: re-read the subscriptions on the next tick
	unwatched  bool
}

// producer is one child's persistent SENDs on their way to the store.
type producer struct {
	c         Consumer
	batch     []*store.Message // not yet given to Put
	batchSize int64
	inFlight  []*store.Message // given to the Put under way
	issued    uint64           // Put calls issued
	waiters   []putWaiter
	gone      bool // the consumer is gone; forget p once its Puts are done
}

// putWaiter is a RECEIPT waiting for the Put numbered seq (and so for
// every Put before it). The SEND it answers is either in that Put, at index
// idx (the Put's result says whether it coalesced), or it was not
// persistent (idx -1) and coalesced is already known.
type putWaiter struct {
	seq       uint64
	idx       int
	coalesced bool
	fn        func(coalesced bool)
}

// OpenStore connects the ledger to a durable store, which it closes on
// Close. It first releases the leases this broker (owner) held before a
// restart: its messages then come back at once, flagged redelivered,
// instead of after the lease. On an error the store is closed.
func (l *Ledger) OpenStore(ctx context.Context, st store.Store, owner string, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.ReleaseOwner(ctx, owner); err != nil {
		st.Close()
		return fmt.Errorf("store: releasing this broker's old leases: %w", err)
	}
	l.durable = newDurable(l, st, owner, lease)
	if err := l.durable.loadSubscriptions(ctx); err != nil {
		l.durable = nil
		st.Close()
		return fmt.Errorf("store: reading durable subscriptions: %w", err)
	}
	l.durable.watch()
	return nil
}

func newDurable(l *Ledger, st store.Store, owner string, lease time.Duration) *durable {
	return &durable{
		l: l, host: l.host, log: l.log, st: st, owner: owner, lease: lease,
		producers: map[Consumer]*producer{},
		dirty:     map[*producer]bool{},
		hint:      map[string]bool{},
	}
}

func (d *durable) producer(c Consumer) *producer {
	p := d.producers[c]
	if p == nil {
		p = &producer{c: c}
		d.producers[c] = p
	}
	return p
}

// put queues a persistent SEND for the store. It returns the number of
// the producer's Put that will carry it and its index in that Put.
func (d *durable) put(from Consumer, dest string, f *frame.Frame, job jobSpec, size int64) (put uint64, idx int) {
	p := d.producer(from)
	hdr := frame.New(frame.SEND)
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		if k != frame.ContentLength { // the body is stored apart
			hdr.Header.Add(k, v)
		}
	}
	p.batch = append(p.batch, &store.Message{
		Queue:           dest,
		Headers:         stompwire.AppendFrame(nil, hdr, stompwire.V12),
		Body:            f.Body,
		UniqKey:         job.uniqKey,
		NotBefore:       job.notBefore,
		MaxRedeliveries: job.maxRedeliveries,
		Priority:        job.priority,
	})
	p.batchSize += size
	d.l.bytes += size
	d.dirty[p] = true
	return p.issued + 1, len(p.batch) - 1 // issue gives the whole batch to the next Put
}

// pending reports whether c has persistent SENDs not yet committed.
func (d *durable) pending(c Consumer) bool {
	p := d.producers[c]
	return p != nil && (len(p.batch) > 0 || len(p.inFlight) > 0)
}

// afterPut runs fn once every persistent SEND c made so far is committed,
// with the coalesced flag of last, c's most recent SEND.
func (d *durable) afterPut(c Consumer, last sendOutcome, fn func(bool)) {
	p := d.producer(c)
	w := putWaiter{seq: p.issued, idx: -1, coalesced: last.coalesced, fn: fn}
	if len(p.batch) > 0 {
		w.seq = p.issued + 1
	}
	if last.put != 0 {
		// A persistent SEND not yet committed: being c's latest, it is in
		// c's latest Put, the one w waits for.
		w.seq, w.idx = last.put, last.idx
	}
	p.waiters = append(p.waiters, w)
}

// flush issues the Puts and Acks gathered while applying one batch of
// records. Called by the event loop after each batch.
func (d *durable) flush() {
	for p := range d.dirty {
		if len(p.inFlight) == 0 && len(p.batch) > 0 {
			d.issue(p)
		}
		delete(d.dirty, p)
	}
	if len(d.acks) > 0 {
		ids := d.acks
		d.acks = nil
		d.host.Async(func() func() {
			err := d.st.Ack(context.Background(), ids)
			return func() {
				if err != nil {
					d.log.Error("store: deleting acked messages failed; they will be redelivered", "err", err)
				}
			}
		})
	}
}

// issue starts a Put of p's batch.
func (d *durable) issue(p *producer) {
	msgs, size := p.batch, p.batchSize
	p.batch, p.batchSize, p.inFlight = nil, 0, msgs
	p.issued++
	seq := p.issued
	d.host.Async(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		res, err := d.st.Put(ctx, msgs)
		took := time.Since(start)
		return func() { d.putDone(p, seq, msgs, res, err, size, took) }
	})
}

func (d *durable) putDone(p *producer, seq uint64, msgs []*store.Message, res []store.PutResult, err error, size int64, took time.Duration) {
	p.inFlight = nil
	d.l.bytes -= size
	d.host.StoreCommitted(took, err)
	if err != nil {
		d.log.Error("store: persistent messages not stored", "child_pid", p.c.PID(), "count", len(msgs), "err", err)
		d.host.TellToClose(p.c, stompwire.ErrTextNotStored(err.Error()))
		p.waiters = nil // no RECEIPT for what was not stored
	} else {
		keep := p.waiters[:0]
		for _, w := range p.waiters {
			if w.seq > seq {
				keep = append(keep, w)
				continue
			}
			coalesced := w.coalesced
			if w.idx >= 0 {
				coalesced = w.seq == seq && w.idx < len(res) && res[w.idx].Coalesced
			}
			w.fn(coalesced)
		}
		p.waiters = keep
		for _, m := range msgs {
			d.dueAt(m.Queue, m.NotBefore)
			d.hint[m.Queue] = true
			if q := d.l.queues[m.Queue]; q != nil {
				d.l.pump(q)
			}
		}
	}
	// A RECEIPT asked for later may answer a SEND of this Put: its outcome
	// is known now.
	if last, ok := d.l.lastSend[p.c]; ok && last.put == seq {
		d.l.lastSend[p.c] = sendOutcome{coalesced: err == nil && last.idx < len(res) && res[last.idx].Coalesced}
	}
	if len(p.batch) > 0 {
		d.issue(p)
	} else if p.gone {
		delete(d.producers, p.c)
	}
}

// childGone: a dead producer's SENDs still get stored (the spec asks
// brokers to process what a client sent before it went away).
func (d *durable) childGone(c Consumer) {
	p := d.producers[c]
	if p == nil {
		return
	}
	if len(p.inFlight) == 0 && len(p.batch) == 0 {
		delete(d.producers, c)
	}
	p.gone = true
}

// fetch leases messages of q from the store when its consumers could take
// more than the ledger holds.
func (d *durable) fetch(q *queue) {
	if q.fetching || !d.hint[q.name] {
		return
	}
	want := q.credit() - len(q.offered) - q.ready.len()
	if want <= 0 {
		return
	}
	n := min(want, 256)
	if d.shared {
		// Other brokers' consumers may want these rows too: hold no more
		// than a small window per local consumer (leased and not yet
		// acked), so a burst is shared among the brokers whose consumers
		// have credit instead of leased whole by the first to wake.
		n = min(n, sharedWindow*len(q.subs)-q.count)
		if n <= 0 {
			return
		}
	}
	q.fetching = true
	name := q.name
	d.host.Async(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		msgs, err := d.st.Lease(ctx, name, d.owner, n, d.lease)
		return func() { d.leased(name, n, msgs, err) }
	})
}

func (d *durable) leased(name string, asked int, msgs []*store.Message, err error) {
	q := d.l.queue(name)
	q.fetching = false
	if err != nil {
		d.log.Error("store: leasing messages failed; retrying", "destination", name, "err", err)
		d.hint[name] = false // the poll on the next tick tries again
		return
	}
	if len(msgs) < asked {
		d.hint[name] = false
	}
	for _, sm := range msgs {
		m, err := d.fromStore(q, sm)
		if err != nil {
			d.log.Error("store: undecodable stored message; dead-lettering it", "destination", name, "id", sm.ID, "err", err)
			id := sm.ID
			d.host.Async(func() func() {
				_ = d.st.DeadLetter(context.Background(), id, dlqName(name))
				return func() {}
			})
			continue
		}
		d.l.add(m)
		m.state = stateReady
		q.ready.pushBack(m)
	}
	d.l.pump(q)
}

// fromStore turns a leased store row into a ledger message.
func (d *durable) fromStore(q *queue, sm *store.Message) (*qmsg, error) {
	f, _, err := stompwire.Parse(append(append([]byte(nil), sm.Headers...), 0), stompwire.V12, d.l.relayed)
	if err != nil {
		return nil, err
	}
	if sm.OrigQueue != "" {
		f = deadLetterFrame(f, sm.OrigQueue, sm.OrigDeliveries, sm.LastError)
	}
	f.Body = sm.Body
	job, _ := parseJobSpec(f, d.l.jobs, d.l.now())
	if sm.MaxRedeliveries >= -1 && sm.OrigQueue == "" {
		job.maxRedeliveries = sm.MaxRedeliveries
		if sm.MaxRedeliveries == -1 {
			job.maxRedeliveries = d.l.jobs.MaxRedeliveries
		}
	} else {
		job.maxRedeliveries = -1
	}
	job.uniqKey = "" // the store enforces uniqueness for durable messages
	return &qmsg{
		id: "s" + strconv.FormatInt(sm.ID, 10), seq: d.host.NextMessage(), q: q, send: f,
		size: frameSize(f), deliveries: sm.Deliveries, job: job, storeID: sm.ID,
	}, nil
}

// ack deletes a consumed durable message (batched; see flush).
func (d *durable) ack(m *qmsg) { d.acks = append(d.acks, m.storeID) }

// failed hands a durable message back to the store after a failed
// delivery: dead-lettered if its redeliveries are used up, else released
// with the backoff as its not-before time.
func (d *durable) failed(m *qmsg, reason string) {
	d.l.remove(m)
	id, name := m.storeID, m.q.name
	if exhausted(m.job.maxRedeliveries, m.deliveries) {
		d.log.Warn("message dead-lettered", "destination", name, "message-id", m.id, "deliveries", m.deliveries, "reason", reason)
		dlq := dlqName(name)
		d.host.Async(func() func() {
			err := d.st.DeadLetter(context.Background(), id, dlq)
			return func() { d.afterGiveBack(dlq, err) }
		})
		return
	}
	notBefore := time.Time{}
	if wait := backoff(m.job.redeliveryDelay, m.deliveries, d.l.jobs.RedeliveryDelayMax); wait > 0 {
		notBefore = d.l.now().Add(wait)
	}
	d.host.Async(func() func() {
		err := d.st.Release(context.Background(), []int64{id}, false, notBefore, reason)
		return func() {
			if err == nil {
				d.dueAt(name, notBefore)
			}
			d.afterGiveBack(name, err)
		}
	})
}

func (d *durable) afterGiveBack(queue string, err error) {
	if err != nil {
		d.log.Error("store: giving a message back failed; its lease will run out", "destination", queue, "err", err)
	}
	d.hint[queue] = true
	if q := d.l.queues[queue]; q != nil {
		d.l.pump(q)
	}
}

// onTick renews the leases of every durable message the broker holds, and
// polls the store for queues whose consumers have credit (other brokers add
// rows the ledger has no news of; the delayed rows this broker wrote or
// released are asked for at their due time, see dueAt).
func (d *durable) onTick(now time.Time) {
	d.flush()
	d.refreshSubscriptions(now)
	if now.Sub(d.lastRenew) >= d.lease/3 {
		d.lastRenew = now
		var ids []int64
		for _, m := range d.l.msgs {
			if m.storeID != 0 {
				ids = append(ids, m.storeID)
			}
		}
		if len(ids) > 0 {
			d.host.Async(func() func() {
				err := d.st.Renew(context.Background(), d.owner, ids, d.lease)
				return func() {
					if err != nil {
						d.log.Warn("store: renewing leases", "err", err)
					}
				}
			})
		}
	}
	poll := 250 * time.Millisecond
	if d.shared && !d.noteMissed.Swap(false) {
		poll = sharedPoll // notifications wake the broker; this is the fallback
	}
	if now.Sub(d.lastPoll) >= poll {
		d.lastPoll = now
		for _, q := range d.l.queues {
			if len(q.subs) > 0 {
				d.hint[q.name] = true
				d.fetch(q)
			}
		}
	}
}

// Close ends the ledger's use of its durable store, if it has one: it
// issues the Puts and Acks still gathered, calls drain (which must apply
// every Async result still under way, on the event loop), then gives back
// every leased message (unoffered ones as not delivered, so their delivery
// count does not grow) and closes the store. The host calls it once, after
// its consumers are gone.
func (l *Ledger) Close(drain func()) {
	if l.durable == nil {
		return
	}
	l.durable.flush()
	l.durable.unwatch()
	drain()
	l.durable.close()
}

func (d *durable) close() {
	var undelivered, delivered []int64
	for _, m := range d.l.msgs {
		if m.storeID == 0 {
			continue
		}
		if m.state == stateGranted {
			delivered = append(delivered, m.storeID)
		} else {
			undelivered = append(undelivered, m.storeID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(d.acks) > 0 {
		_ = d.st.Ack(ctx, d.acks)
	}
	if len(undelivered) > 0 {
		_ = d.st.Release(ctx, undelivered, true, time.Time{}, "")
	}
	if len(delivered) > 0 {
		_ = d.st.Release(ctx, delivered, false, time.Time{}, "broker stopped")
	}
	if err := d.st.Close(); err != nil {
		d.log.Warn("store: close", "err", err)
	}
}
