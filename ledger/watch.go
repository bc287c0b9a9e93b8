package ledger

import (
	"context"
	"time"

	"github.com/stomp-broker/stomp-broker/store"
)

// sharedWindow is how many messages of a queue a broker on a shared store
// holds at most (leased and not yet acked) per local consumer, whatever
// the consumers' prefetch (see durable.fetch).
const sharedWindow = 8

// sharedPoll is how often a broker on a shared store polls for rows it was
// not told of (missed notifications, delayed rows another broker wrote).
const sharedPoll = 2 * time.Second

// watch starts listening to the store's announcements of stored messages,
// if it makes them (store.Watcher): each wakes the queue at once instead of
// at the next poll.
func (d *durable) watch() {
	w, ok := d.st.(store.Watcher)
	if !ok {
		return
	}
	d.shared = true
	d.notes = make(chan note, 1024)
	d.stopNotes = make(chan struct{})
	d.watchDone = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	d.stopWatch = cancel
	go func() {
		defer close(d.watchDone)
		_ = w.Watch(ctx, store.WatchFuncs{
			Stored: func(queue string) {
				select {
				case d.notes <- note{queue: queue}:
				default:
					d.noteMissed.Store(true) // the poll catches up
				}
			},
			Subscription: func(c store.SubscriptionChange) {
				select {
				case d.notes <- note{sub: &c}:
				default:
					d.subsMissed.Store(true) // the next tick re-reads them
				}
			},
			Err: func(err error) {
				d.log.Warn("store: notifications of new messages and subscriptions interrupted; polling meanwhile", "err", err)
			},
		})
	}()
	d.awaitNotes()
}

// note is one announcement of the store: messages stored in queue, or
// (sub not nil) another broker's change of the durable subscriptions.
type note struct {
	queue string
	sub   *store.SubscriptionChange
}

// awaitNotes waits (in an Async goroutine) for the next announcements and
// applies them on the event loop, then waits again, until unwatch.
func (d *durable) awaitNotes() {
	d.host.Async(func() func() {
		var notes []note
		select {
		case n := <-d.notes:
			notes = append(notes, n)
		case <-d.stopNotes:
			return func() {}
		}
		for len(notes) < cap(d.notes) {
			select {
			case n := <-d.notes:
				notes = append(notes, n)
				continue
			default:
			}
			break
		}
		return func() {
			for _, n := range notes {
				switch {
				case n.sub != nil && n.sub.Own:
					d.l.topicSubs.echoed(*n.sub)
					continue
				case n.sub != nil:
					// Another broker's subscription: fed from this moment.
					d.l.topicSubs.apply(*n.sub)
					continue
				}
				d.hint[n.queue] = true
				if q := d.l.queues[n.queue]; q != nil && len(q.subs) > 0 {
					d.fetch(q)
				}
			}
			select {
			case <-d.stopNotes:
			default:
				d.awaitNotes()
			}
		}
	})
}

// StopNotifications stops listening to the store's announcements of new
// messages (the goroutine waiting for them is an Async call the host would
// otherwise wait for). The host calls it when it starts shutting down; Close
// calls it too. It is safe to call more than once.
func (l *Ledger) StopNotifications() {
	if l.durable != nil {
		l.durable.unwatch()
	}
}

// unwatch stops listening; the note waiter returns, so the host's drain
// does not wait for it.
func (d *durable) unwatch() {
	if !d.shared || d.unwatched {
		return
	}
	d.unwatched = true
	close(d.stopNotes)
	d.stopWatch()
	<-d.watchDone
	d.l.topicSubs.expireEchoes(time.Time{}, true) // no announcement comes any more
}
