package ledger

import (
	"container/heap"
	"time"
)

// The wake-up timer releases delayed messages (AMQ_SCHEDULED_DELAY, a
// redelivery backoff) at their due time rather than on the next one-second
// tick. It is ledger state, owned by the event loop like the rest: one
// timer, set to the earliest due time the ledger knows of, moved earlier
// when an earlier one arrives (wakeBy), and re-armed for the next due time
// each time it fires (OnWake). The event loop selects on WakeC.

// wakeBy makes sure the event loop wakes at t or earlier.
func (l *Ledger) wakeBy(t time.Time) {
	if !l.wakeAt.IsZero() && !t.Before(l.wakeAt) {
		return
	}
	l.wakeAt = t
	d := time.Until(t)
	if l.wake == nil {
		l.wake = time.NewTimer(d)
		return
	}
	l.wake.Reset(d) // Go ≥ 1.23: no stale value can be received after Reset
}

// WakeC is the channel the event loop selects on; when it fires, the loop
// calls OnWake. It is nil (never ready) until something is delayed.
func (l *Ledger) WakeC() <-chan time.Time {
	if l.wake == nil {
		return nil
	}
	return l.wake.C
}

// OnWake releases what came due and re-arms the timer for the next due time.
func (l *Ledger) OnWake(now time.Time) {
	l.wakeAt = time.Time{}
	if next := l.releaseDue(now); !next.IsZero() {
		l.wakeBy(next)
	}
}

// earliest returns the earlier of two times, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// maxDue bounds the due times the durable store's side remembers; stored
// messages beyond it are found by the periodic poll instead, up to a second
// late.
const maxDue = 16384

// dueRecheck is how long after a stored message's due time the store is
// asked once more: the database's clock (PostgreSQL computes not_before from
// its own now() at commit) may put the row a few milliseconds after the
// time the broker asked for.
const dueRecheck = 100 * time.Millisecond

// due is a time a stored message of queue comes due.
type due struct {
	at      time.Time
	queue   string
	recheck bool // the second look, dueRecheck after the first
}

// dueHeap orders due times, earliest first.
type dueHeap []due

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}

// dueAt notes that a stored message of queue comes due at t, and wakes the
// event loop then.
func (d *durable) dueAt(queue string, t time.Time) {
	if t.IsZero() || len(d.due) >= maxDue {
		return
	}
	heap.Push(&d.due, due{at: t, queue: queue})
	d.l.wakeBy(t)
}

// releaseDue asks the store for the messages of every queue with a due
// time up to now (if it has consumers with credit), and returns the next
// due time (zero: none).
func (d *durable) releaseDue(now time.Time) time.Time {
	for len(d.due) > 0 && !d.due[0].at.After(now) {
		e := heap.Pop(&d.due).(due)
		d.hint[e.queue] = true
		if q := d.l.queues[e.queue]; q != nil {
			d.fetch(q)
		}
		if !e.recheck {
			heap.Push(&d.due, due{at: e.at.Add(dueRecheck), queue: e.queue, recheck: true})
		}
	}
	if len(d.due) == 0 {
		return time.Time{}
	}
	return d.due[0].at
}
