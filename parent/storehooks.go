package parent

import "time"

// storeCommitted is called on the event loop after every Put to the
// durable store, with how long it took; observability hooks in here.
func (b *Broker) storeCommitted(took time.Duration, err error) {
	b.observeStoreCommit(took)
	if err == nil {
		b.log.Debug("store commit", "took", took)
	}
}
