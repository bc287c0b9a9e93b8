// Package store keeps the broker's durable queue messages: the ones a
// client SENDs with persistent:true to a /queue/ destination (with
// TheSchwartz, every message SENT to a /queue/).
//
// # Where it sits in the data path
//
// A child forwards a SEND to the parent. The parent's event loop owns the
// queue ledger and never calls the store itself: ledger/durable.go runs
// each store call in a goroutine of its own and hands the result back to
// the event loop, so a slow disk never stalls routing. A persistent SEND's
// RECEIPT waits for its [Store.Put] to commit, so an acknowledged SEND is
// on disk. Delivery goes the other way: the ledger [Store.Lease]s a window
// of messages into RAM, offers them to consumers, and on ACK calls
// [Store.Ack] (the message is deleted), on NACK [Store.Release] or
// [Store.DeadLetter]. A queue larger than memory therefore stays on disk;
// only the leased window is in the ledger.
//
// Every method may block on I/O and is safe for concurrent use.
//
// # Who owns what
//
//   - The database (file or server) owns the messages; a store holds no
//     copy of them, only handles and caches.
//   - Each durable store has ONE writer goroutine for Put, the group
//     committer (groupcommit.go): it takes the first waiting Put, drains
//     every other Put already waiting, and commits them in one
//     transaction; while that fsync runs the next batch gathers. N
//     concurrent producers thus cost about one fsync per batch instead of
//     N. [CommitCounter] exposes the counts. The other methods run on the
//     caller's goroutine.
//   - SQLite: one connection, so Go serialises the callers (SQLite has one
//     writer at a time anyway). PostgreSQL: a connection pool; several
//     brokers may share the database, and every lease time is on the
//     database server's clock.
//   - TheSchwartz: the store remembers in memory which jobs it grabbed and
//     the grabbed_until value it wrote (its fencing token), guarded by one
//     mutex; nothing else of the job queue is in memory.
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
// [ParseSpec] reads a --store value and [Spec.Open] (or [Open]) opens it:
//
//   - "memory" ([NewMemory]): RAM only, optional byte budget ([ErrFull]).
//     The broker itself keeps memory-only queues in its ledger and opens
//     no store for "memory" ([Spec.Durable] is false).
//   - "sqlite:/path" ([OpenSQLite]): pure Go (github.com/ncruces/go-sqlite3,
//     no cgo, no package initialiser cost in the children), WAL with
//     synchronous=FULL, one connection, BEGIN IMMEDIATE.
//   - "postgres://..." ([OpenPostgres]): several brokers share the queues;
//     rows are claimed with FOR UPDATE SKIP LOCKED.
//   - "theschwartz:sqlite:/path" or "theschwartz:postgres://..."
//     ([OpenTheSchwartz]): the queues are the jobs of an existing (or new)
//     TheSchwartz database, shared with Perl clients and workers; see
//     docs/theschwartz.md. [Spec.PersistAll] is true: TheSchwartz has no
//     non-persistent jobs.
//
// SQLite and PostgreSQL keep the same messages table. The statements of
// the same shape in both (Renew, Ack, Release, DeadLetter, ReleaseOwner)
// are written once, with a small dialect for what differs (placeholders,
// time as nanoseconds or as the server's now(), how a set of ids is
// passed); Put, Lease and Stats are each backend's own.
//
// # Files
//
//	store.go                     Message, the Store contract, errors
//	spec.go                      ParseSpec, Spec: --store values
//	memory.go                    the memory store
//	groupcommit.go               the single writer behind every durable Put
//	sqlstore.go                  what the SQL stores share: closed check,
//	                             error wrapping, Put, Close; the messages
//	                             dialect and its shared methods
//	sqlite.go, postgres.go       schema, Put, Lease, Stats per backend
//	theschwartz.go               the TheSchwartz store's methods
//	theschwartz_schema.go        TheSchwartz's tables per SQL dialect
//	theschwartz_job.go           Message <-> job row, MESSAGE headers
//	theschwartz_arg.go           Storable sniffing
//	theschwartz_housekeeping.go  error and exitstatus rows
//	conformance_test.go          the contract, run against every backend
package store
