// Package store keeps the broker's persistent queue messages: the ones a
// client SENDs with persistent:true to a /queue/ destination.
//
// # Where it sits in the data path
//
// A child forwards a SEND to the parent. The parent's event loop owns the
// queue ledger; the ledger hands persistent messages to a dedicated store
// goroutine, which calls [Store.Put] and only then lets the child send the
// client's RECEIPT. So an acknowledged SEND is on disk. Delivery goes the
// other way: the ledger [Store.Lease]s a window of messages into RAM, offers
// them to consumers, and on ACK calls [Store.Ack] (the message is deleted),
// on NACK [Store.Release] or [Store.DeadLetter]. A queue larger than memory
// therefore stays on disk; only the leased window is in the ledger.
//
// Every method may block on I/O; none is ever called from the event loop.
//
// # Lifecycle of a message
//
//  1. Put: stored, NotBefore (zero = now), Deliveries 0. A non-empty UniqKey
//     equal to one still stored in the same queue coalesces instead
//     (TheSchwartz's uniqkey: unique only while the message exists).
//  2. Lease: visible (NotBefore <= now) and not leased, or whose lease ran
//     out; leased by an owner until now+lease; Deliveries+1. Deliveries > 1
//     on a leased message means "redelivered".
//  3. Renew: the holder extends its leases while the consumer works (the
//     ack timeout users ask for, without killing the connection).
//  4. Ack: deleted. Or Release: back to the queue, maybe later (retry
//     backoff), with the NACK reason; with notDelivered the lease is not
//     counted. Or DeadLetter: moved to a dead-letter queue, keeping its ID.
//     Or nothing (the broker died): the lease runs out and any broker
//     leases it again; a restarted broker first calls ReleaseOwner with its
//     own id.
//
// # Backends
//
//   - memory ([NewMemory]): RAM only, optional byte budget ([ErrFull]).
//   - SQLite ([OpenSQLite], "sqlite:/path"): pure Go (modernc.org/sqlite, no
//     cgo), WAL with synchronous=FULL, one connection, BEGIN IMMEDIATE.
//   - PostgreSQL ([OpenPostgres], "postgres://..."): several brokers share
//     the queues; rows are claimed with FOR UPDATE SKIP LOCKED and all
//     lease times are on the database server's clock.
//
// # Group commit
//
// The durable backends funnel Put through one writer goroutine. It takes
// the first waiting Put, drains every other Put already waiting, and commits
// them in one transaction; while that fsync runs the next batch gathers.
// N concurrent producers thus cost about one fsync per batch instead of N.
// [CommitCounter] exposes the counts.
package store
