package ledger

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/store"
)

// topicSubs are the durable topic subscriptions the ledger feeds. A
// durable subscription is a queue (named stompwire.DurablePrefix + ...)
// that every publish to its topic also feeds: while its subscriber is away
// the queue keeps what is published, and when it comes back it consumes
// the queue like any other, in its own ack mode.
//
// Without a durable store the subscriptions and what they keep live in
// this broker's memory. With a store that implements store.Subscriptions
// the set of subscriptions lives in the store: every broker sharing it
// reads the set (at start and every subsRefresh), and a publish to a topic
// on any broker writes a persistent copy into every subscription's queue.
type topicSubs struct {
	byTopic map[string][]string // topic → its subscriptions' queues, sorted
	topicOf map[string]string   // queue → topic
	// gen counts local changes: a store read that began before one is
	// stale and dropped (the next one sees the change).
	gen         uint64
	lastRefresh time.Time
	refreshing  bool
	// writing counts this broker's subscription changes not yet settled:
	// on their way to the store or, with a store that announces them
	// (store.Watcher), stored and not yet announced back to this broker
	// (echoes). waiters run when none is left (see AfterPending).
	writing int
	waiters []func()
	echoes  []echo
	// early are announcements of this broker's changes that came back
	// before the store call that made them returned to the event loop.
	early []echo
}

// echo is a stored subscription change of this broker awaiting the
// store's announcement of it: the other brokers were sent it at the same
// commit, so once it is back they have (almost surely) applied it too.
type echo struct {
	queue   string
	removed bool
	since   time.Time
}

// apply applies another broker's change announced by the store. It counts
// as a local change: a store read begun before it is dropped.
func (t *topicSubs) apply(c store.SubscriptionChange) {
	if c.Removed {
		t.remove(c.Queue)
	} else {
		t.add(c.Queue, c.Topic)
	}
	t.gen++
}

// startWrite notes a subscription change on its way to the store.
func (t *topicSubs) startWrite() { t.writing++ }

// subsWritten settles a change the store has written (or failed to write)
// unless the store announces it: then it is settled when the announcement
// comes back (echoed), or after subsRefresh without it (expireEchoes).
func (l *Ledger) subsWritten(queue string, removed bool, err error) {
	if err != nil || l.durable == nil || !l.durable.shared || l.durable.unwatched {
		l.topicSubs.endWrite()
		return
	}
	t := &l.topicSubs
	e := echo{queue: queue, removed: removed, since: time.Now()}
	if i := slices.IndexFunc(t.early, e.same); i >= 0 {
		t.early = slices.Delete(t.early, i, i+1)
		t.endWrite()
		return
	}
	t.echoes = append(t.echoes, e)
}

func (e echo) same(o echo) bool { return e.queue == o.queue && e.removed == o.removed }

// echoed settles the oldest awaited change c announces, or keeps c for
// subsWritten if the store call that made it has not returned yet.
func (t *topicSubs) echoed(c store.SubscriptionChange) {
	e := echo{queue: c.Queue, removed: c.Removed, since: time.Now()}
	if i := slices.IndexFunc(t.echoes, e.same); i >= 0 {
		t.echoes = slices.Delete(t.echoes, i, i+1)
		t.endWrite()
		return
	}
	t.early = append(t.early, e)
}

// expireEchoes settles the changes whose announcement has not come back
// within subsRefresh (a lost listening connection; the other brokers'
// poll reads them), or every awaited one when all is true.
func (t *topicSubs) expireEchoes(now time.Time, all bool) {
	before := len(t.echoes)
	t.echoes = slices.DeleteFunc(t.echoes, func(e echo) bool {
		return all || now.Sub(e.since) >= subsRefresh
	})
	for range before - len(t.echoes) {
		t.endWrite()
	}
	t.early = slices.DeleteFunc(t.early, func(e echo) bool {
		return all || now.Sub(e.since) >= subsRefresh
	})
}

// endWrite notes that one reached the store (or failed), and runs the
// waiters when none is left.
func (t *topicSubs) endWrite() {
	t.writing--
	if t.writing > 0 {
		return
	}
	w := t.waiters
	t.waiters = nil
	for _, fn := range w {
		fn()
	}
}

// subsRefresh is how often a broker with a shared store re-reads the set of
// durable subscriptions. A store that announces changes (store.Watcher)
// makes this the fallback for missed announcements: other brokers'
// subscriptions are fed from their announcement on.
const subsRefresh = time.Second

func (t *topicSubs) set(list []store.Subscription) {
	t.byTopic, t.topicOf = map[string][]string{}, map[string]string{}
	for _, s := range list {
		t.add(s.Queue, s.Topic)
	}
}

func (t *topicSubs) add(queue, topic string) {
	if t.topicOf == nil {
		t.byTopic, t.topicOf = map[string][]string{}, map[string]string{}
	}
	if t.topicOf[queue] == topic {
		return
	}
	t.remove(queue)
	t.topicOf[queue] = topic
	qs := append(t.byTopic[topic], queue)
	slices.Sort(qs)
	t.byTopic[topic] = qs
}

func (t *topicSubs) remove(queue string) {
	topic, ok := t.topicOf[queue]
	if !ok {
		return
	}
	delete(t.topicOf, queue)
	qs := slices.DeleteFunc(t.byTopic[topic], func(q string) bool { return q == queue })
	if len(qs) == 0 {
		delete(t.byTopic, topic)
	} else {
		t.byTopic[topic] = qs
	}
}

// subStore is the durable store's Subscriptions, or nil.
func (l *Ledger) subStore() store.Subscriptions {
	if l.durable == nil {
		return nil
	}
	ss, _ := l.durable.st.(store.Subscriptions)
	return ss
}

// Consumers returns how many subscriptions consume queue on this broker.
func (l *Ledger) Consumers(queue string) int {
	if q := l.queues[queue]; q != nil {
		return len(q.subs)
	}
	return 0
}

// AddDurable makes queue a durable subscription of topic (or keeps it one):
// from now on every publish to topic also feeds queue. With a store that
// keeps subscriptions it is recorded there too, for every broker.
func (l *Ledger) AddDurable(queue, topic string) {
	if l.topicSubs.topicOf[queue] == topic {
		return
	}
	l.topicSubs.add(queue, topic)
	l.topicSubs.gen++
	if ss := l.subStore(); ss != nil {
		l.topicSubs.startWrite()
		l.host.Async(func() func() {
			err := ss.AddSubscription(context.Background(), queue, topic)
			return func() {
				l.subsWritten(queue, false, err)
				if err != nil {
					l.log.Error("store: recording a durable subscription failed; other brokers will not feed it", "queue", queue, "topic", topic, "err", err)
				}
			}
		})
	}
}

// DeleteDurable deletes the durable subscription of queue and what it
// kept (ready and delayed messages; one granted to a subscriber still
// connected is settled by it). Deleting an unknown one does nothing harmful.
func (l *Ledger) DeleteDurable(queue string) {
	l.topicSubs.remove(queue)
	l.topicSubs.gen++
	if q := l.queues[queue]; q != nil {
		var drop []*qmsg
		for _, m := range l.msgs {
			if m.q == q && (m.state == stateReady || m.state == stateDelayed) {
				drop = append(drop, m)
			}
		}
		q.ready = deque{}
		q.delayed = nil
		for _, m := range drop {
			l.remove(m)
		}
	}
	if ss := l.subStore(); ss != nil {
		l.topicSubs.startWrite()
		l.host.Async(func() func() {
			err := ss.RemoveSubscription(context.Background(), queue)
			return func() {
				l.subsWritten(queue, true, err)
				if err != nil {
					l.log.Error("store: deleting a durable subscription failed", "queue", queue, "err", err)
				}
			}
		})
	}
}

// PublishTopic feeds a topic SEND to every durable subscription of topic:
// each gets its own copy as a queue message (id suffixed, so each copy is
// acked on its own), persistent when the durable store keeps subscriptions
// (store.Subscriptions; otherwise as the SEND's persistent header says).
func (l *Ledger) PublishTopic(from Consumer, seq uint64, id, topic string, f *frame.Frame) {
	subs := l.topicSubs.byTopic[topic]
	if len(subs) == 0 {
		return
	}
	persist := l.subStore() != nil
	for i, queue := range subs {
		l.publish(from, seq, id+"-"+strconv.Itoa(i+1), queue, f, persist)
	}
}

// loadSubscriptions reads the store's durable subscriptions (at start).
func (d *durable) loadSubscriptions(ctx context.Context) error {
	ss, ok := d.st.(store.Subscriptions)
	if !ok {
		return nil
	}
	list, err := ss.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	d.l.topicSubs.set(list)
	d.l.topicSubs.lastRefresh = time.Now()
	return nil
}

// refreshSubscriptions re-reads the store's durable subscriptions every
// subsRefresh, so that subscriptions made on other brokers are fed.
func (d *durable) refreshSubscriptions(now time.Time) {
	ss, ok := d.st.(store.Subscriptions)
	t := &d.l.topicSubs
	t.expireEchoes(now, false)
	if !ok || t.refreshing {
		return
	}
	if now.Sub(t.lastRefresh) < subsRefresh && !d.subsMissed.Swap(false) {
		return
	}
	t.refreshing, t.lastRefresh = true, now
	gen := t.gen
	d.host.Async(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		list, err := ss.ListSubscriptions(ctx)
		return func() {
			t.refreshing = false
			switch {
			case err != nil:
				d.log.Warn("store: reading durable subscriptions", "err", err)
			case gen == t.gen: // no local change since the read began
				t.set(list)
			}
		}
	})
}
