package ledger

import (
	"container/heap"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Ledger is the single source of truth for queue messages ("first come,
// first served" delivery). It is owned by the host's event loop: every
// method must be called from that one goroutine (see the package doc).
//
// The original design let children race for a semaphore and deliver if
// they won; nobody recorded what happened to the message afterwards, so a
// winner that died lost it, and a slow child could win a token meant for a
// newer message. Here the semaphore only arbitrates (who may claim an
// offer); the ledger decides (grant or deny) and remembers (who holds what,
// until it is acked):
//
//	ready ──offer (arm slot)──▶ offered ──claim, grant (disarm slot)──▶ granted ──ACK──▶ gone
//	  ▲                            │ deny: stale or lost claim                │ NACK, UNSUBSCRIBE,
//	  └──────── requeue (redelivered:true), after a backoff, or to the DLQ ◀──┘ child death, ack-timeout
//
// Messages are offered in batches: one slot's token stands for up to
// maxOfferBatch messages of one queue (one consumer's fair share of what
// is ready, offered to the least-served consumers: fair.go), and its
// winner claims as many as it has credit for; the rest go back to the head
// of the queue, untouched (not delivered, so not flagged). Each message still has its own state
// and owner below; the batch only saves system calls and records.
//
// Invariants: a message is in exactly one state; a granted message has
// exactly one owner; a message leaves the ledger only on ACK (or on its way
// to a dead-letter queue, or back to the durable store it was leased from).
//
// Durable messages (persistent:true with a durable store) live in the store
// and pass through the ledger only while leased: see durable.go.
type Ledger struct {
	host       Host
	sem        Semaphores
	log        *slog.Logger
	trace      bool
	persistAll bool
	relayed    stompwire.Limits // parse limits of stored frames
	maxBytes   int64
	bytes      int64
	jobs       JobDefaults

	queues map[string]*queue
	msgs   map[string]*qmsg // every message the ledger holds, by message id
	slots  []slot           // index 1..Slots(); slot 0 is the semaphore set's refcount
	free   []int            // free slot numbers
	// hungry are queues that had ready messages and consumer credit but
	// found no free slot; they are pumped when one frees.
	hungry map[*queue]bool
	// leased are granted client-mode messages with an ack-timeout.
	leased map[*qmsg]bool
	// now is the clock (tests replace it).
	now func() time.Time
	// toPump and toReoffer are deferred work: while the event loop
	// applies one batch of records from a child it only notes which
	// queues need offers and which children need to see the current
	// offers again; flush does it once at the end of the batch, so a
	// batch of 100 SENDs or ACKs costs one offer of many messages instead
	// of 100 offers of one.
	toPump    []*queue
	toReoffer []reoffer
	// epoch counts flushes; a slot armed in the current epoch was offered
	// after whatever gave a child its credit back, so it needs no re-offer.
	epoch uint64
	// enc and rec are scratch buffers for encoding OFFERs and GRANTs
	// (Host.Send copies what it keeps).
	enc, rec []byte
	// offerTo is a scratch list of the consumers an offer goes to.
	offerTo []Consumer
	// counted is the queue whose served counts pump has just normalised
	// (queue.least) for the offer it is arming, so offer need not again.
	counted *queue

	durable *durable // nil without a durable store
	// topicSubs are the durable topic subscriptions (subscriptions.go).
	topicSubs topicSubs
	// lastSend is what became of the SEND a consumer sent most recently,
	// for the coalesced flag on the RECEIPT that may follow it.
	lastSend map[Consumer]sendOutcome
	// wake fires at wakeAt, the earliest due time of a delayed message the
	// ledger knows of (wake.go); nil until something is delayed.
	wake   *time.Timer
	wakeAt time.Time
}

// sendOutcome is what became of one SEND: coalesced or not, or, for a
// persistent SEND whose Put has not committed yet, where it is in that Put
// (the store decides whether it coalesces).
type sendOutcome struct {
	coalesced bool
	put       uint64 // nonzero: the number of the producer's Put that holds the SEND
	idx       int    // its index in that Put
}

// reoffer is a child that should be shown q's current offers again.
type reoffer struct {
	c Consumer
	q *queue
}

// maxOfferBatch bounds how many messages one offer (one semaphore token)
// carries. Batching is what makes the semaphore cheap: one SETVAL, one
// winning semop and one CLAIM move up to this many messages.
const maxOfferBatch = 64

type msgState int

const (
	stateReady msgState = iota
	stateDelayed
	stateOffered
	stateGranted
)

// qmsg is one queue message.
type qmsg struct {
	id         string
	seq        uint64 // publication order, for requeueing in order
	q          *queue
	send       *frame.Frame // the SEND as the producer wrote it
	size       int64
	deliveries int // deliveries so far; more than one means redelivered
	state      msgState
	slot       int // while offered (its batch is slots[slot].msgs)
	owner      Consumer
	sub        *Subscription // while granted
	job        jobSpec
	notBefore  time.Time // while delayed
	ackBy      time.Time // while granted with an ack-timeout
	heapIndex  int       // in q.delayed
	avoid      Consumer  // the consumer whose ack-timeout it ran out, while another may take it
	storeID    int64     // durable messages: the store's id; 0 for memory-only ones
}

// slot is one semaphore of the set, as the ledger sees it. Its token
// stands for a batch of messages of one queue, in queue order: whoever wins
// the token may claim the batch (or its first few messages).
type slot struct {
	gen        uint64  // bumped on every arm, so stale claims are recognised
	msgs       []*qmsg // the batch on offer; empty when the slot is free
	offeredAt  time.Time
	armedEpoch uint64 // ledger.epoch when it was last armed
	// sentTo are the children this generation's offer went to.
	sentTo []Consumer
}

// queue is one /queue/ destination.
type queue struct {
	name    string
	count   int // messages of this queue in the ledger, in any state
	ready   deque
	delayed delayHeap
	offered map[*qmsg]int // messages on offer → their slot
	slots   map[int]bool  // slots currently offering messages of this queue
	subs    map[*Subscription]Consumer
	uniq    map[string]*qmsg // pending messages by uniqkey
	// served counts the messages granted to each consumer, relative to
	// the least-served one with credit (fair.go).
	served map[Consumer]int
	// lastWinner is the consumer granted the queue's last batch (fair.go:
	// an offer to one idle consumer goes to someone else if it can).
	lastWinner Consumer
	// durable-store bookkeeping (durable.go)
	fetching bool // a Lease call is under way
}

// New returns an empty ledger that arbitrates with sem's slots and talks
// to its consumers through host.
func New(host Host, sem Semaphores, cfg Config) *Ledger {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Ledger{
		host: host, sem: sem, log: log, trace: cfg.Trace, persistAll: cfg.PersistAll,
		relayed: cfg.Relayed, maxBytes: cfg.MaxBytes,
		jobs:     cfg.Jobs,
		queues:   map[string]*queue{},
		msgs:     map[string]*qmsg{},
		slots:    make([]slot, sem.Slots()+1),
		hungry:   map[*queue]bool{},
		leased:   map[*qmsg]bool{},
		now:      cfg.Now,
		lastSend: map[Consumer]sendOutcome{},
	}
	if l.now == nil {
		l.now = time.Now
	}
	for i := sem.Slots(); i >= 1; i-- {
		l.free = append(l.free, i)
	}
	return l
}

func (l *Ledger) queue(name string) *queue {
	q := l.queues[name]
	if q == nil {
		q = &queue{name: name, offered: map[*qmsg]int{}, slots: map[int]bool{}, subs: map[*Subscription]Consumer{}, uniq: map[string]*qmsg{}, served: map[Consumer]int{}}
		l.queues[name] = q
	}
	return q
}

// frameSize estimates the memory a message holds.
func frameSize(f *frame.Frame) int64 {
	size := int64(len(f.Body)) + 256
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		size += int64(len(k) + len(v) + 2)
	}
	return size
}

// Publish takes a SEND to a queue; seq is its publication number (the
// host's message counter, also in id), which orders requeued messages. A malformed job header, or a message
// over the memory budget, gets the producer an ERROR saying so (nothing is
// dropped silently). Persistent messages go to the durable store when
// there is one; the rest wait in memory, at the tail of their queue or, if
// scheduled, until their time.
func (l *Ledger) Publish(from Consumer, seq uint64, id, dest string, f *frame.Frame) {
	l.publish(from, seq, id, dest, f, false)
}

// publish is Publish; persist stores the message durably (when there is a
// durable store) whatever its persistent header says.
func (l *Ledger) publish(from Consumer, seq uint64, id, dest string, f *frame.Frame, persist bool) {
	l.lastSend[from] = sendOutcome{}
	job, err := parseJobSpec(f, l.jobs, l.now())
	if err != nil {
		l.host.TellToClose(from, err.Error())
		return
	}
	size := frameSize(f)
	if l.bytes+size > l.maxBytes {
		l.log.Warn("queue memory limit reached; refusing SEND", "destination", dest, "limit_bytes", l.maxBytes)
		l.host.TellToClose(from, stompwire.ErrTextQueueMemoryLimit(l.maxBytes, dest))
		return
	}
	if (job.persistent || l.persistAll || persist) && l.durable != nil {
		put, idx := l.durable.put(from, dest, f, job, size)
		l.lastSend[from] = sendOutcome{put: put, idx: idx}
		return
	}
	q := l.queue(dest)
	if job.uniqKey != "" {
		if _, pending := q.uniq[job.uniqKey]; pending {
			l.lastSend[from] = sendOutcome{coalesced: true}
			return
		}
	}
	m := &qmsg{id: id, seq: seq, q: q, send: f, size: size, job: job}
	l.add(m)
	if !job.notBefore.IsZero() && job.notBefore.After(l.now()) {
		l.delay(m, job.notBefore)
		return
	}
	q.ready.pushBack(m)
	l.pumpLater(q)
}

// pumpLater notes that q may have messages to offer; flush offers them.
func (l *Ledger) pumpLater(q *queue) {
	for _, p := range l.toPump {
		if p == q {
			return
		}
	}
	l.toPump = append(l.toPump, q)
}

// reofferLater notes that c should see q's current offers again (it got
// credit back and may have dropped them when it had none); flush sends them.
func (l *Ledger) reofferLater(c Consumer, q *queue) {
	for _, r := range l.toReoffer {
		if r.c == c && r.q == q {
			return
		}
	}
	l.toReoffer = append(l.toReoffer, reoffer{c, q})
}

// Flush does the work deferred while a batch of records was applied: the
// durable store's Puts and Acks, then the re-offers of existing offers,
// then new offers. The host calls it after each batch of a child's records.
func (l *Ledger) Flush() {
	if l.durable != nil {
		l.durable.flush()
	}
	for i, r := range l.toReoffer {
		// A consumer that is gone has no subscription left, so offer
		// finds nobody to send to.
		for n := range r.q.slots {
			if l.slots[n].armedEpoch != l.epoch {
				l.offer(n, r.c, false)
			}
		}
		l.toReoffer[i] = reoffer{}
	}
	l.toReoffer = l.toReoffer[:0]
	for i := 0; i < len(l.toPump); i++ { // pump may add queues (DLQ)
		l.pump(l.toPump[i])
		l.toPump[i] = nil
	}
	l.toPump = l.toPump[:0]
	l.epoch++
}

// add enters m into the ledger's books.
func (l *Ledger) add(m *qmsg) {
	l.bytes += m.size
	l.msgs[m.id] = m
	m.q.count++
	if m.job.uniqKey != "" {
		m.q.uniq[m.job.uniqKey] = m
	}
}

// remove takes m off the ledger's books (ACK, dead-lettered, or handed
// back to the durable store).
func (l *Ledger) remove(m *qmsg) {
	delete(l.msgs, m.id)
	delete(l.leased, m)
	l.bytes -= m.size
	m.q.count--
	if m.job.uniqKey != "" && m.q.uniq[m.job.uniqKey] == m {
		delete(m.q.uniq, m.job.uniqKey)
	}
	m.q.forgetIfIdle(l)
}

// delay parks m until t; the wake-up timer releases it then.
func (l *Ledger) delay(m *qmsg, t time.Time) {
	m.state, m.notBefore = stateDelayed, t
	heap.Push(&m.q.delayed, m)
	l.wakeBy(t)
}

// AfterPending runs fn once every message c published so far is as safe as
// the broker promises: in memory, at once; persistent messages with a
// durable store, once committed. coalesced tells fn whether c's last SEND
// (the one a RECEIPT asked now answers) was merged with a pending message
// of the same uniqkey: for a memory SEND the ledger knows at once, for a
// persistent one the store says when its Put commits. While a durable
// subscription change is on its way to a store that keeps subscriptions,
// fn also waits for it (so a SUBSCRIBE's RECEIPT means every broker
// sharing the store has been told).
func (l *Ledger) AfterPending(c Consumer, fn func(coalesced bool)) {
	if l.topicSubs.writing > 0 {
		// A durable subscription is on its way to the store: once it is
		// there (and announced to the other brokers), a RECEIPT promises
		// they feed it.
		l.topicSubs.waiters = append(l.topicSubs.waiters, func() { l.AfterPending(c, fn) })
		return
	}
	last := l.lastSend[c]
	if l.durable != nil && l.durable.pending(c) {
		l.durable.afterPut(c, last, fn)
		return
	}
	fn(last.coalesced)
}

// credit is how many more messages the consumers of q could take.
func (q *queue) credit() int {
	total := 0
	for sub := range q.subs {
		total += max(0, sub.prefetch-sub.inflight)
	}
	return total
}

// pump offers ready messages of q while its consumers have more credit than
// messages already on offer, and slots are free; with a durable store it
// also asks the store for more when the consumers could take them.
//
// Each offer is a batch: the fair share of the ready messages for each
// consumer with credit (or, when they are all served alike and the ready
// messages fill all their credit, what the winner can take), no more than
// one of the least-served consumers can take (they get the offer, see
// fair.go), at most maxOfferBatch, and no more than the credit left.
func (l *Ledger) pump(q *queue) {
	// One batch of a queue on offer at a time. What a winner could not
	// take goes back to the front before the next batch is formed, so no
	// consumer ever gets a later message of a producer before an earlier
	// one that was still waiting (per-producer order per consumer; only
	// redeliveries come out of order, as in every broker).
	for q.ready.len() > 0 && len(q.slots) == 0 {
		total := q.credit()
		room := total - len(q.offered)
		if room <= 0 {
			break
		}
		withCredit, best, tied := q.least()
		if len(l.free) == 0 {
			l.hungry[q] = true
			return
		}
		n := l.free[len(l.free)-1]
		l.free = l.free[:len(l.free)-1]
		k := min(q.ready.len(), room, fairBatch(q.ready.len(), withCredit, best, total, tied))
		batch := l.slots[n].msgs[:0]
		for len(batch) < k {
			m := q.ready.popFront()
			m.state, m.slot = stateOffered, n
			q.offered[m] = n
			batch = append(batch, m)
			// A message taken back from a consumer that sat on it is
			// offered alone, so that consumer can be left out.
			if m.avoid != nil || (q.ready.len() > 0 && q.ready.front().avoid != nil) {
				break
			}
		}
		l.slots[n].msgs = batch
		q.slots[n] = true
		l.counted = q
		l.arm(n)
		l.counted = nil
	}
	delete(l.hungry, q)
	if l.durable != nil {
		l.durable.fetch(q)
	}
}

// arm makes slot n's token available (SETVAL 1, which also wipes any
// process's undo record for it), bumps its generation and offers its
// message to every consumer of the queue that has credit.
func (l *Ledger) arm(n int) {
	s := &l.slots[n]
	s.gen++
	s.offeredAt = l.now()
	s.armedEpoch = l.epoch
	clear(s.sentTo)
	s.sentTo = s.sentTo[:0]
	if err := l.sem.Arm(n); err != nil {
		l.semFailed(err)
		return
	}
	l.offer(n, nil, false)
}

// offer sends slot n's current offer to the least-served consumers of its
// queue with credit (fair.go; to just one of them for a batch of one), or to only one child if to is not nil (and
// it is one of them). A message taken back after an ack-timeout goes to
// every consumer with credit but the one that sat on it. With fresh set,
// only children that were not sent this generation's offer get it.
func (l *Ledger) offer(n int, to Consumer, fresh bool) {
	s := &l.slots[n]
	if len(s.msgs) == 0 {
		return
	}
	m := s.msgs[0]
	fair := m.avoid == nil
	if fair && l.counted != m.q {
		m.q.least()
	}
	eligible := l.offerTo[:0]
	for sub, c := range m.q.subs {
		if (to == nil || c == to) && sub.inflight < sub.prefetch && (!fair || m.q.preferred(c)) && !containsConsumer(eligible, c) && (!fresh || !containsConsumer(s.sentTo, c)) {
			eligible = append(eligible, c)
		}
	}
	// A message taken back from a consumer that sat on it past its
	// ack-timeout goes to someone else if anyone else can take it.
	if m.avoid != nil && containsConsumer(eligible, m.avoid) && (len(eligible) > 1 || m.q.otherConsumer(m.avoid)) {
		for i, c := range eligible {
			if c == m.avoid {
				eligible = append(eligible[:i], eligible[i+1:]...)
				break
			}
		}
	}
	// A batch of one message (the low-rate case) wakes one child rather
	// than all the least-served (fair.go).
	if fair && to == nil && !fresh && len(s.msgs) == 1 {
		if c := m.q.pickOne(eligible); c != nil {
			clear(eligible)
			eligible = append(eligible[:0], c)
		}
	}
	l.offerTo = eligible
	if len(eligible) == 0 {
		return
	}
	rec := ipc.AppendOffer(l.rec[:0], ipc.Offer{Slot: n, Gen: s.gen, Destination: m.q.name, MessageID: m.id, Count: len(s.msgs)})
	l.rec = rec
	for i, c := range eligible {
		if l.trace {
			l.log.Info("trace", "hop", ipc.HopQueueOffer, "record", ipc.KindOffer.String(), "destination", m.q.name, "message-id", m.id, "messages", len(s.msgs), "slot", n, "gen", s.gen, "to_child_pid", c.PID())
		}
		l.host.Send(c, rec, 0)
		if !containsConsumer(s.sentTo, c) {
			s.sentTo = append(s.sentTo, c)
		}
		eligible[i] = nil
	}
}

func containsConsumer(cs []Consumer, c Consumer) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// Claim answers a consumer that won slot cl.Slot's token: GRANTs if the
// slot still offers the batch it saw, at the generation it saw, and the
// subscription still exists; one DENY for the whole claim otherwise. sub
// is c's queue subscription with the key cl.SubID (nil if it has none).
func (l *Ledger) Claim(c Consumer, sub *Subscription, cl ipc.Claim) {
	if cl.Slot >= 1 && cl.Slot < len(l.slots) {
		s := &l.slots[cl.Slot]
		var m *qmsg
		if len(s.msgs) > 0 {
			m = s.msgs[0]
		}
		want := cl.Count
		if want <= 0 || want > len(s.msgs) {
			want = len(s.msgs)
		}
		if m != nil && s.gen == cl.Gen && m.id == cl.MessageID && sub != nil && sub.c == c && sub.dest == m.q.name {
			l.grant(c, sub, cl.Slot, want)
			return
		}
		if l.trace {
			l.log.Info("trace", "hop", ipc.HopGrant, "record", ipc.KindDeny.String(), "message-id", cl.MessageID, "slot", cl.Slot, "gen", cl.Gen, "to_child_pid", c.PID(), "reason", "stale claim: the slot was re-armed or its offer is gone")
		}
		l.host.Send(c, ipc.AppendDeny(nil, cl.SubID, cl.MessageID, claimCount(cl)), 0)
		if sub != nil {
			l.reofferLater(c, l.queue(sub.dest)) // its credit is back
		}
		// A stale claimer took whatever token the slot held when it
		// raced: possibly the token of the message offered there now
		// (the ABA case). If that token is gone, nobody can claim the
		// current offer, so arm it again (a legitimate winner's claim
		// then arrives stale and is denied too; the message is offered
		// once more).
		if m != nil {
			if v, err := l.sem.Value(cl.Slot); err == nil && v == 0 {
				l.arm(cl.Slot)
			}
		}
		return
	}
	l.host.Send(c, ipc.AppendDeny(nil, cl.SubID, cl.MessageID, claimCount(cl)), 0)
}

// claimCount is how many messages the child counts on for claim cl (what a
// DENY must give back): Count, or for Count 0 ("the whole batch") the size
// of the batch it was offered, which the parent may no longer know; the
// child resolves 0 itself and never sends it, so 1 is a safe answer.
func claimCount(cl ipc.Claim) int { return max(cl.Count, 1) }

// grant hands the first want messages of slot n's batch to (c, sub), at
// most as many as sub has credit for, and frees the slot; the rest of the
// batch goes back to the head of the queue, in order, and the child gets
// a DENY for what it asked and will not get. SETVAL 0 commits: it clears
// the winner's SEM_UNDO record, so its death later cannot resurrect the
// token; from here on the ledger alone knows who holds the messages.
func (l *Ledger) grant(c Consumer, sub *Subscription, n, want int) {
	s := &l.slots[n]
	batch := s.msgs
	q := batch[0].q
	if err := l.sem.Disarm(n); err != nil {
		l.semFailed(err)
		return
	}
	s.msgs = batch[:0]
	clear(s.sentTo)
	s.sentTo = s.sentTo[:0]
	delete(q.slots, n)
	l.free = append(l.free, n)
	take := min(want, max(0, sub.prefetch-sub.inflight))
	q.servedBy(c, take)
	q.lastWinner = c
	for i, m := range batch {
		delete(q.offered, m)
		if i >= take {
			continue
		}
		m.state, m.owner, m.sub, m.avoid = stateGranted, c, sub, nil
		if m.storeID == 0 {
			m.deliveries++ // durable messages count deliveries in the store, per lease
		}
		sub.inflight++
		if sub.clientAck && sub.ackTimeout > 0 {
			m.ackBy = l.now().Add(sub.ackTimeout)
			l.leased[m] = true
		}
		if l.trace {
			l.log.Info("trace", "hop", ipc.HopGrant, "record", ipc.KindGrant.String(), "destination", q.name, "message-id", m.id, "slot", n, "to_child_pid", c.PID(), "deliveries", m.deliveries)
		}
		dest := q.name
		if stompwire.IsDurable(dest) { // a durable subscription's message says which topic it came from
			dest = m.send.Header.Get(frame.Destination)
		}
		l.enc = EncodeMessage(l.enc[:0], dest, m.id, m.send, m.deliveries > 1, m.deliveries)
		l.rec = ipc.AppendMessage(l.rec[:0], ipc.KindGrant, sub.key, m.id, l.enc)
		l.host.Send(c, l.rec, 1)
	}
	// What was offered but not taken goes back to the front, in order, as
	// if never offered (it was not delivered, so it is no redelivery).
	for i := len(batch) - 1; i >= take; i-- {
		m := batch[i]
		m.state = stateReady
		q.ready.pushFront(m)
	}
	if take < want {
		l.host.Send(c, ipc.AppendDeny(nil, sub.key, batch[0].id, want-take), 0)
		l.reofferLater(c, q)
	}
	clear(batch) // the slot reuses the array; drop the pointers now
	l.slotFreed(q)
}

// slotFreed pumps (later, see flush) the queue that freed a slot, then
// any queue that was waiting for one.
func (l *Ledger) slotFreed(q *queue) {
	l.pumpLater(q)
	for h := range l.hungry {
		l.pumpLater(h)
	}
}

// Settle applies an ACK (consumed: forget it) or NACK (failed: redeliver
// it) for a message granted to c. Anything else (unknown id, someone
// else's message, one revoked after its ack-timeout) is ignored: it was
// already requeued or acked.
func (l *Ledger) Settle(c Consumer, id string, ack bool) {
	m := l.msgs[id]
	if l.trace {
		k, outcome := ipc.KindAck, "acked: removed from the ledger"
		if !ack {
			k, outcome = ipc.KindNack, "nacked: back to the queue, after any backoff, or to its DLQ"
		}
		if m == nil || m.state != stateGranted || m.owner != c {
			outcome = "ignored: not held by this child"
		}
		l.log.Info("trace", "hop", ipc.HopSettle, "record", k.String(), "message-id", id, "from_child_pid", c.PID(), "outcome", outcome)
	}
	if m == nil || m.state != stateGranted || m.owner != c {
		return
	}
	sub := m.sub
	sub.inflight--
	q := m.q
	if ack {
		if m.storeID != 0 {
			l.durable.ack(m)
		}
		l.remove(m)
	} else {
		l.failed(m, "NACK")
	}
	// The child has credit again: show it what is on offer now (it may
	// have dropped those offers when it had none), then offer more.
	l.reofferLater(c, q)
	l.pumpLater(q)
}

// failed handles a delivery that did not work out (NACK, consumer gone,
// ack-timeout): the message goes to the dead-letter queue if it has used
// up its redeliveries, else back to its queue, after a backoff if one is
// set; its next delivery carries redelivered:true.
func (l *Ledger) failed(m *qmsg, reason string) {
	delete(l.leased, m)
	m.owner, m.sub = nil, nil
	if m.storeID != 0 {
		l.durable.failed(m, reason)
		return
	}
	if exhausted(m.job.maxRedeliveries, m.deliveries) {
		l.deadLetter(m, reason)
		return
	}
	if wait := backoff(m.job.redeliveryDelay, m.deliveries, l.jobs.RedeliveryDelayMax); wait > 0 {
		l.delay(m, l.now().Add(wait))
		return
	}
	m.state = stateReady
	m.q.ready.pushFrontInOrder(m)
}

// deadLetter moves a memory message to its queue's dead-letter queue.
func (l *Ledger) deadLetter(m *qmsg, reason string) {
	l.log.Warn("message dead-lettered", "destination", m.q.name, "message-id", m.id, "deliveries", m.deliveries, "reason", reason)
	l.remove(m)
	dlq := dlqName(m.q.name)
	f := deadLetterFrame(m.send, m.q.name, m.deliveries, reason)
	d := &qmsg{id: m.id, seq: l.host.NextMessage(), q: l.queue(dlq), send: f, size: m.size, job: jobSpec{maxRedeliveries: -1}}
	l.add(d)
	d.q.ready.pushBack(d)
	l.pump(d.q)
}

// Subscribe adds a queue consumer and offers it what is waiting.
func (l *Ledger) Subscribe(sub *Subscription) {
	c := sub.c
	q := l.queue(sub.dest)
	q.subs[sub] = c
	for n := range q.slots {
		l.offer(n, c, false)
	}
	l.pump(q)
}

// Unsubscribe removes a consumer; what it held goes back to the queue.
func (l *Ledger) Unsubscribe(sub *Subscription) {
	q := l.queues[sub.dest]
	if q == nil {
		return
	}
	delete(q.subs, sub)
	delete(q.served, sub.c)
	if q.lastWinner == sub.c {
		q.lastWinner = nil
	}
	l.requeueHeldBy(func(m *qmsg) bool { return m.sub == sub }, "consumer unsubscribed")
	// The offer on the table may have gone to this consumer alone (the
	// least served): show it to whoever is least served now.
	for n := range q.slots {
		l.offer(n, nil, true)
	}
	l.pump(q)
	q.forgetIfIdle(l)
}

// requeueHeldBy fails every granted message for which held is true,
// keeping their original order at the head of each queue.
func (l *Ledger) requeueHeldBy(held func(*qmsg) bool, reason string) {
	var back []*qmsg
	for _, m := range l.msgs {
		if m.state == stateGranted && held(m) {
			back = append(back, m)
		}
	}
	sortBySeq(back)
	for i := len(back) - 1; i >= 0; i-- {
		m := back[i]
		if m.sub != nil {
			m.sub.inflight--
		}
		l.failed(m, reason)
	}
	for _, m := range back {
		l.pump(m.q)
	}
}

// ChildGone runs after every record of the dead child c was applied, and
// before its subscriptions are removed (Unsubscribe, which requeues what
// it held). It
// deals with offers it may have won but not claimed. SEM_UNDO returned such a
// token before the parent saw the child's EOF, so any offered slot whose
// value is above zero is armed again and re-offered (the other children
// dropped that offer when they lost the race).
func (l *Ledger) ChildGone(c Consumer) {
	delete(l.lastSend, c)
	if l.durable != nil {
		l.durable.childGone(c)
	}
	for n := 1; n < len(l.slots); n++ {
		if len(l.slots[n].msgs) == 0 {
			continue
		}
		if v, err := l.sem.Value(n); err == nil && v > 0 {
			l.arm(n)
		}
	}
}

// OnTick (the host calls it once a second) releases delayed messages whose time has come, takes back
// deliveries past their ack-timeout, and re-arms offers nobody claimed for
// a while although some consumer had credit (a safety net that should
// never fire).
func (l *Ledger) OnTick(now time.Time) {
	if next := l.releaseDue(now); !next.IsZero() {
		l.wakeBy(next)
	}
	for _, q := range l.queues {
		if q.ready.len() > 0 {
			l.pump(q)
		}
	}
	for m := range l.leased {
		if now.After(m.ackBy) {
			l.revoke(m)
		}
	}
	for n := 1; n < len(l.slots); n++ {
		s := &l.slots[n]
		if len(s.msgs) > 0 && now.Sub(s.offeredAt) > 2*time.Second && s.msgs[0].q.credit() > 0 {
			l.log.Debug("re-arming an unclaimed offer", "slot", n, "message-id", s.msgs[0].id)
			l.arm(n)
		}
	}
	if l.durable != nil {
		l.durable.onTick(now)
	}
}

// releaseDue makes the delayed messages whose time has come ready (and,
// with a durable store, asks it for stored ones coming due), and returns
// the next due time it knows of (zero: none). The wake-up timer calls it
// at that time (wake.go); the tick, as a safety net.
func (l *Ledger) releaseDue(now time.Time) (next time.Time) {
	for _, q := range l.queues {
		released := false
		for q.delayed.Len() > 0 && !q.delayed[0].notBefore.After(now) {
			m := heap.Pop(&q.delayed).(*qmsg)
			m.state = stateReady
			q.ready.pushBack(m)
			released = true
		}
		if q.delayed.Len() > 0 {
			next = earliest(next, q.delayed[0].notBefore)
		}
		if released {
			l.pump(q)
		}
	}
	if l.durable != nil {
		next = earliest(next, l.durable.releaseDue(now))
	}
	return next
}

// revoke takes back a delivery its consumer did not ack within the
// subscription's ack-timeout: the child forgets it (and ignores a late
// ACK), the consumer stays connected, and the message is redelivered.
func (l *Ledger) revoke(m *qmsg) {
	c, sub := m.owner, m.sub
	l.log.Info("ack-timeout: taking a delivery back", "destination", m.q.name, "message-id", m.id, "child_pid", c.PID())
	l.host.Send(c, ipc.AppendRevoke(nil, sub.key, m.id), 0)
	sub.inflight--
	q := m.q
	l.failed(m, "ack-timeout")
	m.avoid = c
	l.pump(q)
}

// otherConsumer reports whether a child other than c consumes q.
func (q *queue) otherConsumer(c Consumer) bool {
	for _, o := range q.subs {
		if o != c {
			return true
		}
	}
	return false
}

// forgetIfIdle drops an empty queue nobody consumes, so the map does not
// grow with every destination name ever used.
func (q *queue) forgetIfIdle(l *Ledger) {
	if q.count == 0 && len(q.subs) == 0 && !q.fetching {
		delete(l.queues, q.name)
		delete(l.hungry, q)
	}
}

// semFailed handles a semaphore error: the set was removed underneath the
// broker (logind's RemoveIPC, an operator's ipcrm). Nothing queue-related
// can work any more; stop the broker so the service manager restarts it.
func (l *Ledger) semFailed(err error) {
	l.log.Error("semaphore set failed; the broker cannot deliver queue messages and stops", "err", err)
	l.host.Fatal(fmt.Errorf("parent: semaphore set: %w", err))
}

func sortBySeq(ms []*qmsg) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
}

// deque is a double-ended queue of messages: producers append at the back,
// requeued messages go back to the front.
type deque struct {
	buf  []*qmsg
	head int
}

func (d *deque) len() int { return len(d.buf) - d.head }

// front returns the first message without removing it; the deque must not be empty.
func (d *deque) front() *qmsg { return d.buf[d.head] }

func (d *deque) pushBack(m *qmsg) { d.buf = append(d.buf, m) }

func (d *deque) pushFront(m *qmsg) {
	if d.head == 0 {
		// Make room at the front for this and later requeues (a batch
		// that was offered and not taken goes back one by one).
		room := len(d.buf)/2 + 8
		buf := make([]*qmsg, room+len(d.buf), room+cap(d.buf))
		copy(buf[room:], d.buf)
		d.buf, d.head = buf, room
	}
	d.head--
	d.buf[d.head] = m
}

// pushFrontInOrder puts a requeued message at the front, behind the
// requeued messages just before it that were published earlier: a
// cumulative NACK requeues several messages in a row, and they must come
// again in their original order. The walk is bounded; beyond it the
// message simply goes first.
func (d *deque) pushFrontInOrder(m *qmsg) {
	d.pushFront(m)
	for i := d.head; i+1 < len(d.buf) && i-d.head < 2*maxOfferBatch && d.buf[i+1].seq < m.seq; i++ {
		d.buf[i], d.buf[i+1] = d.buf[i+1], d.buf[i]
	}
}

func (d *deque) popFront() *qmsg {
	m := d.buf[d.head]
	d.buf[d.head] = nil
	d.head++
	if d.head == len(d.buf) {
		d.buf, d.head = d.buf[:0], 0
	} else if d.head > 1024 && d.head > len(d.buf)/2 {
		d.buf = append(d.buf[:0], d.buf[d.head:]...)
		d.head = 0
	}
	return m
}

// delayHeap orders delayed messages by the time they become visible.
type delayHeap []*qmsg

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *delayHeap) Push(x any) { m := x.(*qmsg); m.heapIndex = len(*h); *h = append(*h, m) }
func (h *delayHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return m
}
