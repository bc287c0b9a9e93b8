package ledger

import "fmt"

// CheckBooks checks that the ledger's books add up: no negative byte count
// or credit, the queues' message counts sum to the messages held, every
// granted message has a subscription and an owner for which alive is true,
// and every delivery under an ack-timeout lease is such a granted message.
// It is for tests and fuzzing (the parent's record fuzzer calls it after
// every step); like every method, it runs on the owner's goroutine.
func (l *Ledger) CheckBooks(alive func(Consumer) bool) error {
	if l.bytes < 0 {
		return fmt.Errorf("ledger: %d bytes held", l.bytes)
	}
	count := 0
	for _, q := range l.queues {
		count += q.count
		for sub := range q.subs {
			if sub.inflight < 0 {
				return fmt.Errorf("ledger: subscription %q to %s has %d in flight", sub.key, q.name, sub.inflight)
			}
		}
	}
	if count != len(l.msgs) {
		return fmt.Errorf("ledger: queues count %d messages, the ledger holds %d", count, len(l.msgs))
	}
	for _, m := range l.msgs {
		if m.state == stateGranted && (m.owner == nil || !alive(m.owner) || m.sub == nil) {
			return fmt.Errorf("ledger: message %s granted to a consumer that is gone", m.id)
		}
	}
	for m := range l.leased {
		if m.state != stateGranted || m.owner == nil || !alive(m.owner) {
			return fmt.Errorf("ledger: message %s leased but not granted to a live consumer", m.id)
		}
	}
	return nil
}
