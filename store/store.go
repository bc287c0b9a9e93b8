package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Message is one queue message as stored.
//
// The store treats Headers and Body as opaque byte strings and does not copy
// them: after Put, and for messages returned by Lease, the caller must treat
// both slices as read-only.
type Message struct {
	// ID is assigned by Put. It is unique within one store and increases with
	// every stored message, so ID order is arrival order within a broker.
	ID int64
	// Queue is the destination, e.g. "/queue/jobs". It must not be empty.
	Queue string
	// Headers is the encoded STOMP headers blob the broker gives the store.
	Headers []byte
	// Body is the message body.
	Body []byte
	// UniqKey, when non-empty, makes Put coalesce this message with a message
	// of the same Queue and UniqKey that is still stored (see Store.Put).
	UniqKey string
	// NotBefore hides the message from Lease until that instant (delayed
	// delivery, retry backoff). The zero value means "now". PostgreSQL
	// stores it on the database clock: the delay NotBefore-time.Now() is
	// added to the server's now(), so brokers with skewed clocks agree.
	NotBefore time.Time
	// Deliveries counts how often the message was leased (handed to a
	// consumer) and not released as "not delivered". A value above 1 on a
	// leased message means it is a redelivery.
	Deliveries int
	// MaxRedeliveries is the per-message redelivery limit the broker
	// enforces; -1 means the broker default. The store only keeps it.
	MaxRedeliveries int
	// LastError is the NACK reason of the last failed delivery.
	LastError string
	// Priority orders messages within a queue: higher first, ties by ID.
	Priority int
	// OrigQueue is set on dead-lettered messages: the queue the message was
	// moved from by DeadLetter. Empty otherwise.
	OrigQueue string
	// OrigDeliveries is set on dead-lettered messages: the Deliveries count
	// the message had when it was dead-lettered. Deliveries itself restarts
	// at zero in the dead-letter queue.
	OrigDeliveries int
}

// PutResult reports what Put did with the message at the same index.
type PutResult struct {
	// ID is the stored message's ID: the new one, or the existing message's
	// ID when Coalesced is true.
	ID int64
	// Coalesced is true when the message was not stored because a message
	// with the same Queue and UniqKey is still stored.
	Coalesced bool
}

// QueueStats is one queue's line in Store.Stats.
type QueueStats struct {
	// Queue is the destination name.
	Queue string
	// Stored counts every message stored for the queue: ready, delayed and
	// leased.
	Stored int
	// Leased counts the messages currently under an unexpired lease.
	Leased int
	// DeadLettered counts the stored messages that DeadLetter moved into
	// this queue (non-zero only for dead-letter queues).
	DeadLettered int
}

// Store is the durable home of persistent queue messages. The broker calls
// it from goroutines of its own, never from the event loop; every method
// may block on disk or network I/O and is safe for concurrent use.
type Store interface {
	// Put stores msgs durably and fills in their IDs. It returns only after
	// the data is committed: fsync'd for SQLite (WAL, synchronous=FULL),
	// committed for PostgreSQL. The messages of one call are stored all or
	// none. Concurrent Put calls share one commit (group commit: a single
	// writer goroutine drains every pending Put into one transaction), so N
	// concurrent producers cost about one fsync per batch.
	//
	// A message whose UniqKey is non-empty and equals the UniqKey of a
	// message still stored in the same queue is not stored: its ID is set to
	// the existing message's ID and the result at the same index reports
	// Coalesced=true.
	//
	// Errors: ErrBadMessage for an empty Queue, ErrFull (memory store) when
	// the byte budget would be exceeded, ErrClosed after Close. If ctx ends
	// while the request is already queued for commit, Put returns ctx.Err()
	// and the messages may or may not have been stored.
	Put(ctx context.Context, msgs []*Message) ([]PutResult, error)

	// Lease hands out up to n messages of queue that are visible
	// (NotBefore <= now) and not leased, or whose lease expired; highest
	// Priority first, then by ID. It marks them leased by owner until
	// now+lease and increments Deliveries; the returned messages carry the
	// incremented count. An empty result and nil error means nothing is
	// ready.
	Lease(ctx context.Context, queue, owner string, n int, lease time.Duration) ([]*Message, error)

	// Renew extends to now+lease the leases of ids that owner still holds.
	// If some ids are no longer held by owner (acked, released, or their
	// lease expired and another owner took them), the others are renewed
	// and the error is a *LeaseLostError (matching ErrLeaseLost) naming the
	// lost ids: the broker must stop treating them as its own.
	Renew(ctx context.Context, owner string, ids []int64, lease time.Duration) error

	// Ack deletes ids (consumed). Deleting an id that no longer exists is
	// not an error.
	Ack(ctx context.Context, ids []int64) error

	// Release gives ids back: the lease is cleared; if notDelivered,
	// Deliveries is decremented (the broker leased the message but never
	// handed it to a client); NotBefore is set to notBefore (zero = now) and
	// LastError to lastError. Unknown ids are ignored.
	Release(ctx context.Context, ids []int64, notDelivered bool, notBefore time.Time, lastError string) error

	// DeadLetter moves id to queue dlq in one transaction, keeping its ID,
	// Headers, Body, Priority and LastError. The moved message has OrigQueue
	// set to its former queue, OrigDeliveries to its Deliveries, Deliveries
	// reset to 0, no lease, NotBefore now, and no UniqKey (so the original
	// queue accepts a new message with that key). It returns a wrapped
	// ErrNotFound if id is not stored.
	DeadLetter(ctx context.Context, id int64, dlq string) error

	// ReleaseOwner releases every lease held by owner. The broker calls it
	// at start with its own owner id, since a restarted broker's previous
	// leases are dead. Deliveries are kept, so the redelivery is flagged.
	ReleaseOwner(ctx context.Context, owner string) error

	// Stats returns one line per queue that has stored messages, sorted by
	// queue name.
	Stats(ctx context.Context) ([]QueueStats, error)

	// Close waits for an in-flight group commit to finish, then releases the
	// store's resources. Calls after Close return ErrClosed. Close is safe to
	// call more than once.
	Close() error
}

// CommitCounter is implemented by the stores that group-commit Put calls
// (SQLite and PostgreSQL). It exists for tests and benchmarks, to show that
// concurrent Puts share commits.
type CommitCounter interface {
	// PutCommits returns how many transactions the group committer has
	// committed and how many Put calls they carried.
	PutCommits() (commits, puts uint64)
}

var (
	// ErrFull is returned (wrapped) by the memory store's Put when the
	// Headers+Body bytes of stored messages would exceed its budget.
	ErrFull = errors.New("store: full")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
	// ErrNotFound is returned (wrapped) by DeadLetter when the id is not
	// stored.
	ErrNotFound = errors.New("store: message not found")
	// ErrBadMessage is returned (wrapped) by Put for a message that cannot be
	// stored, such as one without a Queue.
	ErrBadMessage = errors.New("store: bad message")
	// ErrLeaseLost is matched (errors.Is) by the *LeaseLostError Renew
	// returns when some ids are no longer held by the owner.
	ErrLeaseLost = errors.New("store: lease lost")
	// ErrBadSpec is returned (wrapped) by ParseSpec and Open for a --store
	// value they do not understand.
	ErrBadSpec = errors.New("store: bad --store value")
)

// LeaseLostError lists the ids Renew could not renew because the owner no
// longer holds them. It matches ErrLeaseLost with errors.Is.
type LeaseLostError struct {
	// IDs are the ids whose lease is lost, in ascending order.
	IDs []int64
}

// Error implements error.
func (e *LeaseLostError) Error() string {
	return fmt.Sprintf("store: lease lost for %d message(s): %v", len(e.IDs), e.IDs)
}

// Is reports whether target is ErrLeaseLost.
func (e *LeaseLostError) Is(target error) bool { return target == ErrLeaseLost }

// validate checks what every backend requires of a message given to Put.
func validate(msgs []*Message) error {
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: message %d is nil", ErrBadMessage, i)
		}
		if m.Queue == "" {
			return fmt.Errorf("%w: message %d has no queue", ErrBadMessage, i)
		}
	}
	return nil
}
