// Package parent is the broker's parent process: it accepts clients, starts one
// child process per client, and is the hub every message passes through on its way
// from the producer's child to the consumers' children. It never reads from or
// writes to a client socket after handing it over: it talks only to its children,
// over one SOCK_SEQPACKET socketpair each (package ipc).
//
// # Where it sits in the data path
//
//	client → [producer's child] → ipc → [parent] → ipc → [consumer's child] → client
//
// The parent is the middle box. docs/ARCHITECTURE.md follows a message through
// numbered hops; the parent's are:
//
//	3   ipc packet → parent event loop  readChild, handle, applyRecords, applyFrame,
//	                                    publish (a SEND gets its message-id here)
//	4   topic routing → DELIVER         publish: the children subscribed to the
//	                                    destination (the topics index)
//	4   ledger arms slot → OFFER        Ledger.Publish, Flush (package ledger)
//	6   CLAIM → ledger GRANT or DENY    Ledger.Claim
//	10  ACK → ledger settles            Ledger.Settle
//	R2  receipt: parent → SYNCED        applyRecords, Ledger.AfterPending (after the
//	                                    store's commit for persistent messages)
//
// Run the broker with --trace to see each of them logged with the parent's pid.
//
// The queue engine (messages, offers, claims, grants, acks, redelivery, the
// durable store, job headers) is package ledger. The event loop owns the
// one Ledger (Broker.queues) and is its only caller; the ledger calls back
// through ledgerHost (host.go) and knows a child only as a ledger.Consumer.
// The parent keeps the topic routing and the table of each child's
// subscriptions; a queue subscription's credit is the ledger's.
//
// # Goroutines
//
//   - one accept loop per listener (broker.go acceptLoop): admission limits, then
//     spawn (spawn.go), which re-executes /proc/self/exe with the client socket as
//     fd 3 and the child's end of a fresh socketpair as fd 4, then closes its own
//     copies;
//   - the event loop (Broker.Serve, Broker.handle): the only goroutine that reads or
//     changes broker state;
//   - per child, a reader (Broker.readChild) that turns packets into events, in
//     order, and reports the child's death only after everything it wrote;
//   - per child, a writer (outbox.run) that drains the child's bounded outbox, so
//     the event loop never blocks on a slow child.
//
// Everything else (store calls, control requests, reloads) reaches the event loop
// as an event too. See the Ownership section of [Broker].
//
// # Files
//
//   - broker.go: configuration, the event loop, accept, child death, shutdown
//   - spawn.go, childproc.go: starting a child; the parent's view of one;
//     profile.go: what makes a child profile itself
//   - outbox.go: the bounded per-child queue and its writer
//   - records.go: applying a child's records; topic routing; queue records
//     handed to the ledger
//   - host.go: ledgerHost, the broker as the ledger sees it (ledger.Host)
//   - storehooks.go: the store-commit hook (metrics, log)
//   - limits.go: admission limits; control.go, metrics.go: operators
package parent
