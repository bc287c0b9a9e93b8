package parent

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/ipc"
)

// slotSemaphores is the part of semaphore.Set the ledger uses; tests give
// it a fake.
type slotSemaphores interface {
	Arm(slot int) error
	Disarm(slot int) error
	Value(slot int) (int, error)
	Slots() int
}

// ledger is the single source of truth for queue messages ("first come,
// first served" delivery). It is owned by the event loop.
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
//	  └──────────── requeue, redelivered:true ◀────────────────────────────────┘ child death
//
// Invariants: a message is in exactly one state; a granted message has
// exactly one owner; a message leaves the ledger only on ACK.
type ledger struct {
	b        *Broker
	sem      slotSemaphores
	maxBytes int64
	bytes    int64

	queues map[string]*queue
	msgs   map[string]*qmsg // every message not yet acked, by id
	slots  []slot           // index 1..Slots(); slot 0 is the semaphore set's refcount
	free   []int            // free slot numbers
	// hungry are queues that had ready messages and consumer credit but
	// found no free slot; they are pumped when one frees.
	hungry map[*queue]bool
}

type msgState int

const (
	stateReady msgState = iota
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
	deliveries int // grants so far; more than one means redelivered
	state      msgState
	slot       int // while offered
	owner      *childProc
	sub        *subscription // while granted
}

// slot is one semaphore of the set, as the ledger sees it.
type slot struct {
	gen       uint64 // bumped on every arm, so stale claims are recognised
	msg       *qmsg  // nil when free
	offeredAt time.Time
}

// queue is one /queue/ destination.
type queue struct {
	name    string
	count   int // messages of this queue in the ledger, in any state
	ready   deque
	offered map[int]bool // slots currently offering a message of this queue
	subs    map[*subscription]*childProc
}

func newLedger(b *Broker, sem slotSemaphores, maxBytes int64) *ledger {
	l := &ledger{
		b: b, sem: sem, maxBytes: maxBytes,
		queues: map[string]*queue{},
		msgs:   map[string]*qmsg{},
		slots:  make([]slot, sem.Slots()+1),
		hungry: map[*queue]bool{},
	}
	for i := sem.Slots(); i >= 1; i-- {
		l.free = append(l.free, i)
	}
	return l
}

func (l *ledger) queue(name string) *queue {
	q := l.queues[name]
	if q == nil {
		q = &queue{name: name, offered: map[int]bool{}, subs: map[*subscription]*childProc{}}
		l.queues[name] = q
	}
	return q
}

// publish stores a new message at the tail of its queue and offers it if a
// consumer has credit. A message over the memory budget is refused: the
// producer's client gets an ERROR saying so (nothing is dropped silently).
func (l *ledger) publish(from *childProc, id, dest string, f *frame.Frame) {
	size := int64(len(f.Body)) + 256
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		size += int64(len(k) + len(v) + 2)
	}
	if l.bytes+size > l.maxBytes {
		l.b.log.Warn("queue memory limit reached; refusing SEND", "destination", dest, "limit_bytes", l.maxBytes)
		l.b.tellToClose(from, "queue memory limit reached ("+strconv.FormatInt(l.maxBytes, 10)+" bytes): message to "+dest+" not accepted")
		return
	}
	l.bytes += size
	q := l.queue(dest)
	m := &qmsg{id: id, seq: l.b.nextMsg, q: q, send: f, size: size}
	l.msgs[id] = m
	q.count++
	q.ready.pushBack(m)
	l.pump(q)
}

// afterPending runs fn once every message c published so far is as safe
// as the broker promises (in memory: at once).
func (l *ledger) afterPending(c *childProc, fn func()) { fn() }

// credit is how many more messages the consumers of q could take.
func (q *queue) credit() int {
	n := 0
	for sub := range q.subs {
		n += max(0, sub.prefetch-sub.inflight)
	}
	return n
}

// pump offers ready messages of q while its consumers have more credit than
// messages already on offer, and slots are free.
func (l *ledger) pump(q *queue) {
	for q.ready.len() > 0 && len(q.offered) < q.credit() {
		if len(l.free) == 0 {
			l.hungry[q] = true
			return
		}
		n := l.free[len(l.free)-1]
		l.free = l.free[:len(l.free)-1]
		m := q.ready.popFront()
		m.state, m.slot = stateOffered, n
		l.slots[n].msg = m
		q.offered[n] = true
		l.arm(n)
	}
	delete(l.hungry, q)
}

// arm makes slot n's token available (SETVAL 1, which also wipes any
// process's undo record for it), bumps its generation and offers its
// message to every consumer of the queue that has credit.
func (l *ledger) arm(n int) {
	s := &l.slots[n]
	s.gen++
	s.offeredAt = time.Now()
	if err := l.sem.Arm(n); err != nil {
		l.semFailed(err)
		return
	}
	l.offer(n, nil)
}

// offer sends slot n's current offer to the consumers of its queue with
// credit, or to only one child if to is not nil.
func (l *ledger) offer(n int, to *childProc) {
	s := &l.slots[n]
	m := s.msg
	rec := ipc.AppendOffer(nil, ipc.Offer{Slot: n, Gen: s.gen, Destination: m.q.name, MessageID: m.id})
	sent := map[*childProc]bool{}
	for sub, c := range m.q.subs {
		if sent[c] || (to != nil && c != to) || sub.inflight >= sub.prefetch {
			continue
		}
		sent[c] = true
		if l.b.cfg.Trace {
			l.b.log.Info("trace: parent offers queue message", "hop", "4 ledger arms slot → OFFER", "destination", m.q.name, "message-id", m.id, "slot", n, "gen", s.gen, "child_pid", c.pid)
		}
		l.b.send(c, rec)
	}
}

// claim answers a child that won slot cl.Slot's token: GRANT if the slot
// still offers the message the child saw, at the generation it saw, and
// the subscription still exists; DENY otherwise.
func (l *ledger) claim(c *childProc, cl ipc.Claim) {
	sub := c.subs[cl.SubID]
	if cl.Slot >= 1 && cl.Slot < len(l.slots) {
		s := &l.slots[cl.Slot]
		m := s.msg
		if m != nil && s.gen == cl.Gen && m.id == cl.MessageID && sub != nil && sub.queue && sub.dest == m.q.name {
			l.grant(c, sub, cl.Slot)
			return
		}
		l.b.send(c, ipc.AppendDeny(nil, cl.SubID, cl.MessageID))
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
	l.b.send(c, ipc.AppendDeny(nil, cl.SubID, cl.MessageID))
}

// grant hands the message in slot n to (c, sub) and frees the slot.
// SETVAL 0 commits: it clears the winner's SEM_UNDO record, so its death
// later cannot resurrect the token; from here on the ledger alone knows
// who holds the message.
func (l *ledger) grant(c *childProc, sub *subscription, n int) {
	s := &l.slots[n]
	m := s.msg
	if err := l.sem.Disarm(n); err != nil {
		l.semFailed(err)
		return
	}
	s.msg = nil
	delete(m.q.offered, n)
	l.free = append(l.free, n)
	m.state, m.owner, m.sub = stateGranted, c, sub
	m.deliveries++
	sub.inflight++
	c.messagesOut++
	if l.b.cfg.Trace {
		l.b.log.Info("trace: parent grants claim", "hop", "6 claim → ledger GRANT", "destination", m.q.name, "message-id", m.id, "slot", n, "child_pid", c.pid, "deliveries", m.deliveries)
	}
	enc := encodeMessage(nil, m.q.name, m.id, m.send, m.deliveries > 1, m.deliveries)
	l.b.send(c, ipc.AppendMessage(nil, ipc.KindGrant, sub.key, m.id, enc))
	l.slotFreed(m.q)
}

// slotFreed pumps the queue that freed a slot, then any queue that was
// waiting for one.
func (l *ledger) slotFreed(q *queue) {
	l.pump(q)
	for h := range l.hungry {
		if len(l.free) == 0 {
			return
		}
		l.pump(h)
	}
}

// settle applies an ACK (consumed: forget it) or NACK (redeliver it) for a
// message granted to c. Anything else (unknown id, someone else's message)
// is ignored: it was already requeued or acked.
func (l *ledger) settle(c *childProc, id string, ack bool) {
	m := l.msgs[id]
	if m == nil || m.state != stateGranted || m.owner != c {
		return
	}
	sub := m.sub
	sub.inflight--
	if ack {
		delete(l.msgs, id)
		l.bytes -= m.size
		m.q.count--
	} else {
		l.requeue(m)
	}
	// The child has credit again: show it what is on offer now (it may
	// have dropped those offers when it had none), then offer more.
	for n := range m.q.offered {
		l.offer(n, c)
	}
	l.pump(m.q)
	m.q.forgetIfIdle(l)
}

// requeue puts a granted message back at the head of its queue; its next
// delivery carries redelivered:true.
func (l *ledger) requeue(m *qmsg) {
	m.state, m.owner, m.sub = stateReady, nil, nil
	m.q.ready.pushFront(m)
}

// subscribe adds a queue consumer and offers it what is waiting.
func (l *ledger) subscribe(c *childProc, sub *subscription) {
	q := l.queue(sub.dest)
	q.subs[sub] = c
	for n := range q.offered {
		l.offer(n, c)
	}
	l.pump(q)
}

// unsubscribe removes a consumer; what it held goes back to the queue.
func (l *ledger) unsubscribe(c *childProc, sub *subscription) {
	q := l.queues[sub.dest]
	if q == nil {
		return
	}
	delete(q.subs, sub)
	l.requeueHeldBy(func(m *qmsg) bool { return m.sub == sub })
	l.pump(q)
	q.forgetIfIdle(l)
}

// requeueHeldBy requeues every granted message for which held is true,
// keeping their original order at the head of each queue.
func (l *ledger) requeueHeldBy(held func(*qmsg) bool) {
	var back []*qmsg
	for _, m := range l.msgs {
		if m.state == stateGranted && held(m) {
			back = append(back, m)
		}
	}
	sortByID(back)
	for i := len(back) - 1; i >= 0; i-- {
		m := back[i]
		if m.sub != nil {
			m.sub.inflight--
		}
		l.requeue(m)
	}
	for _, m := range back {
		l.pump(m.q)
	}
}

// childGone runs after every record of the dead child c was applied and
// its subscriptions were removed (which requeued what it held). What is
// left: offers it may have won but not claimed. SEM_UNDO returned such a
// token before the parent saw the child's EOF, so any offered slot whose
// value is above zero is armed again and re-offered (the other children
// dropped that offer when they lost the race).
func (l *ledger) childGone(c *childProc) {
	for n := 1; n < len(l.slots); n++ {
		if l.slots[n].msg == nil {
			continue
		}
		if v, err := l.sem.Value(n); err == nil && v > 0 {
			l.arm(n)
		}
	}
}

// onTick re-arms offers nobody claimed for a while although some consumer
// had credit: a safety net that should never fire.
func (l *ledger) onTick(now time.Time) {
	for n := 1; n < len(l.slots); n++ {
		s := &l.slots[n]
		if s.msg != nil && now.Sub(s.offeredAt) > 2*time.Second && s.msg.q.credit() > 0 {
			l.b.log.Debug("re-arming an unclaimed offer", "slot", n, "message-id", s.msg.id)
			l.arm(n)
		}
	}
}

// forgetIfIdle drops an empty queue nobody consumes, so the map does not
// grow with every destination name ever used.
func (q *queue) forgetIfIdle(l *ledger) {
	if q.count == 0 && len(q.subs) == 0 {
		delete(l.queues, q.name)
		delete(l.hungry, q)
	}
}

// semFailed handles a semaphore error: the set was removed underneath the
// broker (logind's RemoveIPC, an operator's ipcrm). Nothing queue-related
// can work any more; stop the broker so the service manager restarts it.
func (l *ledger) semFailed(err error) {
	l.b.log.Error("semaphore set failed; the broker cannot deliver queue messages and stops", "err", err)
	l.b.fatal(fmt.Errorf("parent: semaphore set: %w", err))
}

func sortByID(ms []*qmsg) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
}

// deque is a double-ended queue of messages: producers append at the back,
// requeued messages go back to the front.
type deque struct {
	buf  []*qmsg
	head int
}

func (d *deque) len() int { return len(d.buf) - d.head }

func (d *deque) pushBack(m *qmsg) { d.buf = append(d.buf, m) }

func (d *deque) pushFront(m *qmsg) {
	if d.head > 0 {
		d.head--
		d.buf[d.head] = m
		return
	}
	d.buf = append([]*qmsg{m}, d.buf...)
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
