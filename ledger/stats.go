package ledger

import (
	"sort"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/store"
)

// Stats reads the ledger for `stomp-broker queues` and the queue gauges,
// sorted by name. It only reads the ledger's maps; like every method it
// runs on the event loop only. A nil ledger has no queues.
//
// A queue's messages in the ledger are in exactly one state: ready
// (waiting), offered (armed in a semaphore slot, not yet claimed) or
// granted (held by a consumer until ACK). Depth is ready plus offered:
// what no consumer has yet. In flight is granted: q.count minus depth.
// Persistent messages still in the store are added by WithStoreStats.
func (l *Ledger) Stats() []control.Queue {
	if l == nil {
		return nil
	}
	out := make([]control.Queue, 0, len(l.queues))
	for name, q := range l.queues {
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

// WithStoreStats adds the durable store's view to a ledger table: a
// queue's stored messages that no broker has leased are waiting too, so
// they count in its depth (leased ones are in some ledger already, this
// broker's or, with a shared database, another's). Queues only the store
// knows (all their messages on disk, no consumer here) get a line of
// their own. Any goroutine may call it; it touches neither argument.
func WithStoreStats(table []control.Queue, stats []store.QueueStats) []control.Queue {
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
