// Package ledger is the broker's queue engine: the single source of truth
// for /queue/ messages. It decides who gets which message (offers through
// a semaphore slot, claims, GRANT or DENY), remembers who holds it until
// the ACK, and redelivers what a NACK, an ack-timeout, an unsubscribe or a
// dead consumer gives back: after a backoff, or to a dead-letter queue
// once the message's redeliveries are used up. Persistent messages go to
// a durable store (package store) and pass through the ledger only while
// leased. The name is the one docs/ARCHITECTURE.md uses for it.
//
// # Single owner
//
// A Ledger is owned by one goroutine, the parent's event loop: every
// method is called from it, and the ledger calls its Host back only on
// that goroutine, so it has no locks. Work that must not block the loop
// (store calls) goes through Host.Async, whose result comes back to the
// loop as a function to run there. The loop also selects on WakeC for
// delayed messages coming due and calls OnTick once a second.
//
// # What it knows of the broker
//
// Only the Host interface, which the ledger defines and the parent
// implements (send records to a consumer, tell one to close, the next
// message number, async work, the store-commit hook, fatal errors; log and
// trace come in Config), the Semaphores (the slot semaphore set, or a fake
// in tests) and a Consumer handle per child (its pid for traces; the
// handle's identity is the consumer's). The broker keeps topic routing and
// its table of each child's subscriptions; a queue subscription's credit
// and ack mode (prefetch, in flight, client ack, ack-timeout) are the
// ledger's Subscription. It never sees a process, a socket or an outbox.
//
// # Fair dispatch
//
// The child that wakes first wins a slot's token, so left alone one child
// takes batch after batch. The ledger shapes the race without replacing
// it (fair.go): a batch is the fair share of the ready messages,
// ceil(ready / consumers with credit), at most what one least-served
// consumer can take and maxOfferBatch; and it is offered only to the
// least-served consumers with credit (each queue counts what it granted
// to each consumer, relative to the least-served one, within
// ±maxOfferBatch), so a winner steps back from the next race until the
// others have had theirs. Ties race (a batch of one message goes to one
// of them only, so the others do not wake to lose); the token, the CLAIM and the GRANT
// still commit every win, and one batch of a queue at a time keeps
// per-producer order per consumer.
//
// # Files
//
//   - doc.go: this overview
//   - host.go: Host, Consumer, Semaphores, Config, Subscription
//   - ledger.go: queue messages and their states, offers, claims, grants,
//     acks, redelivery, dead-lettering, consumers coming and going, the tick
//   - fair.go: fair dispatch, the size of a batch and who is offered it
//   - durable.go: the bridge to the durable store (Put, Lease, Ack,
//     Release, DeadLetter, lease renewal)
//   - jobs.go: reading the job headers, named in stompwire (persistent,
//     scheduling, redelivery limits, backoff, uniqkey, priority),
//     JobDefaults, dead-letter queue naming
//   - wake.go: the wake-up timer for delayed messages and the store's due
//     times
//   - encode.go: the MESSAGE frame a GRANT (and a topic DELIVER) carries
//   - stats.go: the queue table for `stomp-broker queues` and the metrics
package ledger
