package stompwire

// The broker's header vocabulary beyond the STOMP specification. The
// headers the specification defines (destination, message-id, ack,
// receipt, receipt-id, subscription, content-length, id, transaction,
// heart-beat, ...) are named by go-stomp's frame package (frame.Destination
// and so on) and not repeated here; the values of the ack header are
// frame.AckAuto, frame.AckClient and frame.AckClientIndividual.
//
// Where ActiveMQ, RabbitMQ or TheSchwartz has a name for an idea, the broker
// uses the same name, so client code moves between brokers unchanged.
// Header names are case-sensitive on the wire.

// Job headers a producer may put on a SEND to a queue (see
// docs/ARCHITECTURE.md and ledger/jobs.go for what the broker does with
// them). The broker copies them onto the MESSAGE like any user header.
const (
	// HeaderPersistent ("true") asks for the message to be stored durably
	// (with --store sqlite:... or postgres://...) before the RECEIPT. The
	// name and value are ActiveMQ's.
	HeaderPersistent = "persistent"
	// HeaderScheduledDelay hides the message for that many milliseconds.
	// ActiveMQ's name (its scheduler's AMQ_SCHEDULED_DELAY property).
	HeaderScheduledDelay = "AMQ_SCHEDULED_DELAY"
	// HeaderMaxRedeliveries: after the first delivery plus this many
	// redeliveries failed (NACK, consumer lost, ack-timeout), the message
	// moves to the dead-letter queue /queue/DLQ.<name>; -1 means unlimited.
	// The broker's own name, after ActiveMQ's maximumRedeliveries policy.
	HeaderMaxRedeliveries = "max-redeliveries"
	// HeaderRedeliveryDelay is the wait in milliseconds before the first
	// redelivery; it doubles with every further one (exponential backoff).
	// The broker's own name, after ActiveMQ's redeliveryDelay policy.
	HeaderRedeliveryDelay = "redelivery-delay"
	// HeaderUniqKey coalesces a SEND with a message of the same key still
	// pending in the same queue; the RECEIPT then carries
	// [HeaderCoalesced]. TheSchwartz's uniqkey (the job column of that
	// name in the TheSchwartz store).
	HeaderUniqKey = "uniqkey"
	// HeaderPriority orders durable messages within a queue, higher first
	// (a whole number). The name is ActiveMQ's and RabbitMQ's; in the
	// TheSchwartz store it is the job's priority column.
	HeaderPriority = "priority"
	// HeaderReplyTo names where replies should go; a /temp-queue/NAME
	// there gives the sender a temporary queue, and the broker rewrites
	// the header to that queue's /reply-queue/ name.
	HeaderReplyTo = "reply-to"
)

// Headers a consumer may put on a SUBSCRIBE.
const (
	// HeaderAckTimeout is a lease in milliseconds on every client-mode
	// delivery: one not acked in time goes back to the queue and to
	// another consumer; the slow consumer stays connected. The broker's
	// own name. The child forwards it to the parent unchanged.
	HeaderAckTimeout = "ack-timeout"
	// HeaderPrefetchCount bounds the unacknowledged messages a
	// subscription holds (a whole number; 0 keeps the broker's default).
	// RabbitMQ's name. The child also uses it to tell the parent the
	// subscription's resulting credit.
	HeaderPrefetchCount = "prefetch-count"
	// HeaderActiveMQPrefetchSize is ActiveMQ's name for
	// [HeaderPrefetchCount]; prefetch-count wins when both are present.
	HeaderActiveMQPrefetchSize = "activemq.prefetchSize"
)

// Headers the broker adds to MESSAGE frames.
const (
	// HeaderRedelivered is "true" on every delivery of a message after its
	// first (and absent on the first). The name is ActiveMQ's and
	// RabbitMQ's. A SEND's own redelivered header is not copied.
	HeaderRedelivered = "redelivered"
	// HeaderDeliveryCount counts a queue message's deliveries, this one
	// included. The broker's own name (RabbitMQ's quorum queues say
	// x-delivery-count).
	HeaderDeliveryCount = "delivery-count"
	// HeaderDLQOriginalDestination is on a dead-lettered message (one in
	// /queue/DLQ.<name>): the queue it came from. The broker's own name.
	HeaderDLQOriginalDestination = "dlq-original-destination"
	// HeaderDLQDeliveryCount is on a dead-lettered message: how often it
	// was delivered before it was given up. The broker's own name.
	HeaderDLQDeliveryCount = "dlq-delivery-count"
	// HeaderDLQReason is on a dead-lettered message: why its last
	// delivery failed (NACK, ack-timeout, consumer lost, ...). The
	// broker's own name.
	HeaderDLQReason = "dlq-reason"
)

// Headers the broker adds to RECEIPT frames.
const (
	// HeaderCoalesced is "true" on the RECEIPT of a SEND that was merged
	// into a pending message with the same [HeaderUniqKey] instead of being
	// queued. The broker's own name.
	HeaderCoalesced = "coalesced"
)

// MESSAGE headers (in the header block its Lease returns) and SEND headers
// (read by its Put) of the TheSchwartz store (store/theschwartz.go). The
// names are TheSchwartz's job columns, with a theschwartz- prefix where the
// column name alone would be ambiguous.
const (
	// HeaderTheSchwartzJobID carries the job's jobid (MESSAGE).
	HeaderTheSchwartzJobID = "theschwartz-jobid"
	// HeaderTheSchwartzFuncname carries the job's funcname (MESSAGE).
	HeaderTheSchwartzFuncname = "theschwartz-funcname"
	// HeaderTheSchwartzArg says how to read the body (MESSAGE): "storable"
	// when the arg is a Perl Storable image (a Perl client inserted a
	// reference), "bytes" otherwise (store.ArgStorable, store.ArgBytes).
	HeaderTheSchwartzArg = "theschwartz-arg"
	// HeaderTheSchwartzLastError is the message of the job's latest error
	// row (MESSAGE; only on jobs that failed before), truncated.
	HeaderTheSchwartzLastError = "theschwartz-last-error"
	// HeaderRunAfter is the job's run_after column in unix seconds: on SEND,
	// the earliest time the job may run (it wins over
	// [HeaderScheduledDelay]); on MESSAGE, the stored value.
	HeaderRunAfter = "run_after"
	// HeaderCoalesce is the job's coalesce column (SEND and MESSAGE).
	HeaderCoalesce = "coalesce"
	// HeaderInsertTime is the job's insert_time column (MESSAGE).
	HeaderInsertTime = "insert_time"
)
