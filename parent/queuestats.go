package parent

import (
	"sort"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/store"
)

// queueTable reads the queue ledger for `stomp-broker queues` and the
// queue gauges, sorted by name. It only reads the ledger's maps; like the
// ledger itself it runs on the event loop only.
//
// A queue's messages in the ledger are in exactly one state: ready
// (waiting), offered (armed in a semaphore slot, not yet claimed) or
// granted (held by a consumer until ACK). Depth is ready plus offered:
// what no consumer has yet. In flight is granted: q.count minus depth.
// Persistent messages still in the store are added by withStoreStats.
func (b *Broker) queueTable() []control.Queue {
	if b.queues == nil {
		return nil
	}
	out := make([]control.Queue, 0, len(b.queues.queues))
	for name, q := range b.queues.queues {
		depth := q.ready.len() + len(q.offered)
		out = append(out, control.Queue{
			Name:      name,
			Depth:     depth,
			Consumers: len(q.subs),
			InFlight:  q.count - depth,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// withStoreStats adds the durable store's view to a ledger table: a
// queue's stored messages that no broker has leased are waiting too, so
// they count in its depth (leased ones are in some ledger already, this
// broker's or, with a shared database, another's). Queues only the store
// knows (all their messages on disk, no consumer here) get a line of
// their own. Any goroutine may call it; it touches neither argument.
func withStoreStats(table []control.Queue, stats []store.QueueStats) []control.Queue {
	out := append([]control.Queue(nil), table...)
	index := make(map[string]int, len(out))
	for i, q := range out {
		index[q.Name] = i
	}
	for _, st := range stats {
		i, ok := index[st.Queue]
		if !ok {
			out = append(out, control.Queue{Name: st.Queue})
			i = len(out) - 1
		}
		out[i].Stored = st.Stored
		out[i].DeadLettered = st.DeadLettered
		out[i].Depth += max(0, st.Stored-st.Leased)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
