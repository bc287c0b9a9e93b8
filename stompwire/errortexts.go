package stompwire

import (
	"strconv"
	"time"
)

// The texts of the ERROR frames the broker sends before it closes a
// connection, all defined here. An ErrText is the message header (the line
// client libraries show and users search for); an ErrDetail is the body,
// where a longer explanation helps. [ErrorFrame] builds the frame.
//
// The texts are part of the broker's contract with its users: clients log
// them, operators grep for them, docs/protocol-conformance.md quotes them and
// the integration tests check them byte for byte. Change one only on
// purpose. A text that names a value is a function; values from the peer are
// Go-quoted, so no CR, LF or NUL of theirs reaches the header.
//
// The grammar and limit violations found by [Parse] carry their own text
// in [ProtocolError.Msg].

// ERROR messages about the order of frames, sent by the child.
const (
	// ErrTextNotConnected: the first frame was not CONNECT or STOMP
	// (detail: [ErrDetailNotConnected]).
	ErrTextNotConnected = "expected CONNECT or STOMP frame"
	// ErrTextAlreadyConnected: a second CONNECT or STOMP.
	ErrTextAlreadyConnected = "already connected"
)

// ErrDetailNotConnected explains [ErrTextNotConnected]; command is the
// frame the client sent instead.
func ErrDetailNotConnected(command string) string {
	return "the first frame must be CONNECT (or STOMP), not " + command
}

// ErrTextConnectTimeout: no CONNECT arrived within d (the child's
// --connect-timeout).
func ErrTextConnectTimeout(d time.Duration) string {
	return "no CONNECT frame within " + d.String()
}

// ErrTextHeartBeatTimeout: the client sent nothing, not even a heart-beat,
// within d (twice the negotiated interval plus a second).
func ErrTextHeartBeatTimeout(d time.Duration) string {
	return "heart-beat timeout: no data from the client within " + d.String()
}

// ErrDetailHeartBeatTimeout explains [ErrTextHeartBeatTimeout]: interval
// is how often the client was to send data, as negotiated in CONNECT and
// CONNECTED.
func ErrDetailHeartBeatTimeout(interval time.Duration) string {
	return "the negotiated heart-beat asks the client to send data (a frame or an EOL) at least every " +
		interval.String() + "; the broker waits twice that plus 1s before it closes the connection"
}

// ERROR messages about CONNECT, sent by the child.
const (
	// ErrTextUnsupportedVersion: accept-version names no version the broker
	// speaks. The ERROR carries a version header listing them (the spec's
	// one required ERROR header); detail: [ErrDetailUnsupportedVersion].
	ErrTextUnsupportedVersion = "unsupported protocol version"
	// ErrTextAccessDenied: login and passcode were not accepted (detail:
	// [ErrDetailAuthUnavailable] or [ErrDetailWrongLogin]).
	ErrTextAccessDenied = "access denied"
	// ErrDetailAuthUnavailable: the users file could not be read, so no
	// one gets in.
	ErrDetailAuthUnavailable = "authentication is unavailable"
	// ErrDetailWrongLogin: an unknown login or a wrong passcode (which of
	// the two is not said).
	ErrDetailWrongLogin = "wrong login or passcode"
)

// ErrDetailUnsupportedVersion explains [ErrTextUnsupportedVersion];
// acceptVersion is the client's header value.
func ErrDetailUnsupportedVersion(acceptVersion string) string {
	return "this broker speaks STOMP 1.0, 1.1 and 1.2; the client offered " + strconv.Quote(acceptVersion)
}

// ERROR messages about a frame's command and body, sent by the child.

// ErrTextBodyNotAllowed: a frame other than SEND carried a body.
func ErrTextBodyNotAllowed(command string) string {
	return command + " frame must not have a body"
}

// ErrTextUnsupportedCommand: a command the broker does not take from
// clients (MESSAGE, RECEIPT, ERROR, CONNECTED).
func ErrTextUnsupportedCommand(command string) string {
	return "unsupported command " + command
}

// ERROR messages about destinations, sent by the child.
const (
	// ErrTextNoDestination: SEND or SUBSCRIBE without a destination header.
	ErrTextNoDestination = "missing destination header"
)

// ErrTextUnknownDestination: dest does not start with [TopicPrefix] or
// [QueuePrefix], or is nothing but the prefix.
func ErrTextUnknownDestination(dest string) string {
	return "unknown destination " + strconv.Quote(dest) + ": destinations start with " + TopicPrefix + " (broadcast) or " + QueuePrefix + " (one consumer per message)"
}

// ERROR messages about subscriptions and acknowledgements, sent by the
// child.
const (
	// ErrTextSubscribeWithoutID: a STOMP 1.1 or 1.2 SUBSCRIBE without id
	// (detail: [ErrDetailSubscribeWithoutID]).
	ErrTextSubscribeWithoutID = "SUBSCRIBE without id header"
	// ErrDetailSubscribeWithoutID explains [ErrTextSubscribeWithoutID].
	ErrDetailSubscribeWithoutID = "STOMP 1.1 and 1.2 require an id on SUBSCRIBE"
	// ErrDetailUnknownAckMode explains [ErrTextUnknownAckMode].
	ErrDetailUnknownAckMode = "ack must be auto, client or client-individual"
	// ErrTextUnsubscribeWithoutID: UNSUBSCRIBE without id (nor, in STOMP
	// 1.0, destination).
	ErrTextUnsubscribeWithoutID = "UNSUBSCRIBE without id header"
	// ErrDetailAckWithoutID explains [ErrTextAckWithoutID].
	ErrDetailAckWithoutID = "STOMP 1.2 acknowledges with id (the MESSAGE's ack header); 1.0 and 1.1 with message-id"
)

// ErrTextSubscriptionInUse: the client already has a subscription with
// this id.
func ErrTextSubscriptionInUse(id string) string {
	return "subscription id " + strconv.Quote(id) + " already in use"
}

// ErrTextTooManySubscriptions: the client has limit subscriptions already
// (--max-subscriptions).
func ErrTextTooManySubscriptions(limit int) string {
	return "too many subscriptions (limit " + strconv.Itoa(limit) + ")"
}

// ErrTextUnknownAckMode: the SUBSCRIBE's ack header (its value) is not a
// STOMP ack mode (detail: [ErrDetailUnknownAckMode]).
func ErrTextUnknownAckMode(mode string) string {
	return "unknown ack mode " + strconv.Quote(mode)
}

// ErrTextBadHeader: the named header's value is not what the broker
// accepts (a prefetch header that is not a whole number of at least 0; see
// also [ErrTextBadWholeNumber]).
func ErrTextBadHeader(name, value string) string {
	return "bad " + name + " header " + strconv.Quote(value)
}

// ErrTextNoSubscription: UNSUBSCRIBE names a subscription the client does
// not have.
func ErrTextNoSubscription(id string) string {
	return "no subscription with id " + strconv.Quote(id)
}

// ErrTextAckWithoutID: an ACK or NACK (command) names no message (detail:
// [ErrDetailAckWithoutID]).
func ErrTextAckWithoutID(command string) string {
	return command + " without id header"
}

// ERROR messages about transactions, sent by the child.
const (
	// ErrTextBeginWithoutTransaction: BEGIN without a transaction header.
	ErrTextBeginWithoutTransaction = "BEGIN without transaction header"
)

// ErrTextUnknownTransaction: a frame names a transaction that was not
// begun (or is already committed or aborted).
func ErrTextUnknownTransaction(tx string) string {
	return "unknown transaction " + strconv.Quote(tx)
}

// ErrTextTransactionBegun: BEGIN of a transaction that is open already.
func ErrTextTransactionBegun(tx string) string {
	return "transaction " + strconv.Quote(tx) + " already begun"
}

// ERROR messages the broker sends on its own account: the child's, or the
// parent's, which reach the client through its child (ipc.KindShutdown) or,
// for a refused connection, directly.
const (
	// ErrTextDisconnectedByOperator: the operator closed this client
	// (control socket, or SIGTERM to its child).
	ErrTextDisconnectedByOperator = "disconnected by operator"
	// ErrTextBrokerWentAway: the child lost its parent.
	ErrTextBrokerWentAway = "broker went away"
	// ErrTextInternal: the parent sent the child something it could not
	// read.
	ErrTextInternal = "internal broker error"
	// ErrTextSemaphoreGone: the queue semaphore set vanished under the
	// child.
	ErrTextSemaphoreGone = "internal broker error (semaphore set gone)"
	// ErrTextShuttingDown: the broker is stopping (parent).
	ErrTextShuttingDown = "broker shutting down"
	// ErrTextSlowConsumer: the client's child had more undelivered output
	// waiting than the parent keeps for it (parent).
	ErrTextSlowConsumer = "slow consumer: the client is not reading its messages fast enough"
)

// ErrTextBadWholeNumber: a job header (name, value) of a SEND is not a
// whole number of at least min (parent).
func ErrTextBadWholeNumber(name, value string, min int64) string {
	return ErrTextBadHeader(name, value) + ": want a whole number of at least " + strconv.FormatInt(min, 10)
}

// ErrTextQueueMemoryLimit: a SEND to dest would take the queued messages
// over the broker's memory budget of limit bytes (parent).
func ErrTextQueueMemoryLimit(limit int64, dest string) string {
	return "queue memory limit reached (" + strconv.FormatInt(limit, 10) + " bytes): message to " + dest + " not accepted"
}

// ErrTextNotStored: the durable store failed to store a persistent
// message; reason is its error (parent).
func ErrTextNotStored(reason string) string {
	return "message not stored: " + reason
}

// ErrTextTooManyClients: a connection refused because limit clients are
// connected (parent, --max-clients).
func ErrTextTooManyClients(limit int) string {
	return "too many clients (limit " + strconv.Itoa(limit) + ")"
}

// ErrTextTooManyClientsFrom: a connection refused because limit clients
// are connected from ip (parent, --max-clients-per-ip).
func ErrTextTooManyClientsFrom(ip string, limit int) string {
	return "too many clients from " + ip + " (limit " + strconv.Itoa(limit) + ")"
}

// ErrTextDurableNeedsClientID is the ERROR for a SUBSCRIBE with
// activemq.subscriptionName on a connection whose CONNECT had no client-id.
const ErrTextDurableNeedsClientID = "a durable subscription (activemq.subscriptionName) needs a client-id header on CONNECT"

// ErrTextDurableInUse is the ERROR for a second SUBSCRIBE to a durable
// subscription that already has an active subscriber on this broker.
func ErrTextDurableInUse(queue string) string {
	return "durable subscription " + strconv.Quote(queue) + " already has an active subscriber"
}
