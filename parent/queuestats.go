package parent

import (
	"sort"

	"github.com/stomp-broker/stomp-broker/control"
)

// queueTable reads the queue ledger for `stomp-broker queues` and the
// queue gauges, sorted by name. It only reads the ledger's maps; like the
// ledger itself it runs on the event loop only.
//
// A queue's messages are in exactly one ledger state: ready (waiting),
// offered (armed in a semaphore slot, not yet claimed) or granted (held by
// a consumer until ACK). Depth is ready plus offered: what no consumer has
// yet. In flight is granted: q.count minus depth.
func (b *Broker) queueTable() []control.Queue {
	if b.queues == nil {
		return nil
	}
	out := make([]control.Queue, 0, len(b.queues.queues))
	for name, q := range b.queues.queues {
		depth := q.ready.len() + len(q.offered)
		out = append(out, control.Queue{
			Name:         name,
			Depth:        depth,
			Consumers:    len(q.subs),
			InFlight:     q.count - depth,
			DeadLettered: b.deadLettered[name],
		})
	}
	// A queue the ledger forgot (empty, no consumer) still had messages
	// dead-lettered; keep showing the count.
	for name, n := range b.deadLettered {
		if b.queues.queues[name] == nil {
			out = append(out, control.Queue{Name: name, DeadLettered: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// countDeadLetter records that a message of queue was moved to a
// dead-letter queue. The ledger calls it when it gives up on a message.
func (b *Broker) countDeadLetter(queue string) {
	b.deadLettered[queue]++
}
