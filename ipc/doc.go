// Package ipc is the wire protocol between the broker's parent process and its
// child processes (one child per STOMP client).
//
// # Where it sits in the data path
//
//	client socket → child (parses STOMP) → ipc record → parent event loop
//	parent event loop → ipc record → every interested child → client socket
//
// Each child is connected to the parent by one AF_UNIX SOCK_SEQPACKET
// socketpair. SEQPACKET keeps message boundaries: one write is one read, so
// there is no stream reassembly code. The parent holds one end (its
// "child-ipc" socket), the child inherits the other at file descriptor 4.
//
// # Packets
//
// Every packet starts with one flag byte:
//
//	'B'  batch: the rest of the packet is one or more complete records
//	'M'  more:  a fragment of a record too large for one packet; more follow
//	'E'  end:   the last fragment; the reassembled bytes are one batch
//
// Packets are at most [MaxPacket] bytes, which fits the kernel's default
// socket send buffer, so no setsockopt is needed and nothing is ever
// truncated by a well-behaved peer. A reader still checks MSG_TRUNC and
// treats a truncated packet as a protocol error ([ErrTruncated]).
// Fragments exist only for single records larger than a packet (a STOMP frame
// with a body of several MiB); reassembly is bounded by [Conn]'s MaxRecord.
//
// Batching is the point of the format: the parent appends records for a
// child to that child's outbox while the child's writer goroutine is busy,
// and the writer then sends everything pending in as few packets as possible.
// Under load one write system call carries hundreds of messages.
//
// # Records
//
// A record is one byte of [Kind], a uvarint body length, and the body.
// Strings inside bodies are a uvarint length followed by the bytes; numbers
// are uvarints. STOMP frames travel in the STOMP 1.2 wire encoding
// (stompwire.AppendFrame with V12), so a forwarded frame is exactly what a
// STOMP peer would read.
//
// Child to parent:
//
//	KindHello   JSON SessionInfo, once, after the client's CONNECT succeeded
//	KindFrame   a client frame the parent must apply: SEND, SUBSCRIBE, UNSUBSCRIBE
//	KindSync    token; the parent answers KindSynced(token) after applying
//	            (and, for persistent messages, storing) every earlier record
//	KindClaim   slot, generation, subscription id, message id, count: "I
//	            won the semaphore token for this offer; may I deliver the
//	            first count messages of its batch?" (0 = all of them)
//	KindAck     message id: consumed, forget it
//	KindNack    message id: not consumed, redeliver it
//
// Parent to child:
//
//	KindDeliver destination, message id, MESSAGE frame (without
//	            subscription/ack headers): a topic message; the child
//	            delivers it to each of its subscriptions to the destination
//	KindOffer   slot, generation, destination, message id, count: a batch
//	            of count queue messages (the first is message id) is up
//	            for grabs; race for the slot's semaphore token
//	KindGrant   subscription key, message id, MESSAGE frame: one message of
//	            a claim that won; deliver it
//	KindDeny    subscription key, message id, count: count messages of a
//	            claim will not come (all of a claim that lost, or the rest
//	            of one granted only in part); give back their credit
//	KindSynced  token, flags (see KindSync; SyncedCoalesced marks a SEND
//	            that was merged with a pending message of the same uniqkey)
//	KindRevoke  subscription key, message id: the delivery was not acked
//	            within the subscription's ack-timeout and went back to the
//	            queue; forget it (a late ACK for it is ignored)
//	KindShutdown reason: send the client an ERROR with this message and close
//
// # Queue messages travel in batches
//
// One semaphore token stands for a batch of up to 64 messages of one queue,
// one consumer's fair share of what is ready (package ledger, "Fair
// dispatch"), never more than it has credit for. The race, its system calls and
// the CLAIM are per batch, not per message: with the semaphore per message
// the broker moved 16k queue msgs/s, with batches over 100k (README,
// Performance). The ledger still records an owner per message, so a
// winner that dies loses nothing: whatever it was granted is requeued and
// redelivered flagged. A claim is answered with one GRANT per message it
// got and, if it got fewer than it asked for (the consumer's credit
// changed, or the offer went stale), one DENY for the rest; the child
// counts its credit by these answers.
//
// The parent shows a child the current offers again when its credit comes
// back (after an ACK, NACK or DENY), since it may have dropped them while it
// had none; a child skips an offer whose generation it already raced for.
//
// The parent must survive any bytes a child sends: every decoder here
// returns an error instead of panicking, and the parent treats an error as
// "kill that child", never as fatal for itself.
//
// # Files
//
//   - contract.go: how a parent starts a child (command word, fds, environment, ChildConfig)
//   - conn.go: Conn — packets on a SEQPACKET socket: batching, fragments, MSG_TRUNC
//   - record.go: the record framing (kind, length, body) and the record kinds
//   - messages.go: encoders and decoders of each record's body
//   - trace.go: the numbered hops --trace logs
package ipc
