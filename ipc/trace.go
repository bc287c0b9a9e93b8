package ipc

// Hops of a message through the broker's processes, as --trace names them.
//
// With --trace every process logs one line per hop a message takes through
// it, at level INFO, with msg=trace, the process's role (parent or child)
// and pid, the hop, the ipc record kind, the destination and the message id
// where that process knows them. The names live here, beside the records
// they follow, so the parent, the children, the tests and
// docs/ARCHITECTURE.md all use the same ones.
//
// The numbers give the order along the whole path. Hop 0 happens once per
// connection, when a spare child takes over the client. A topic message takes
// hops 1, 2, 3, 4 (routing), 7 and 8; a queue message takes 1, 2, 3, 4
// (offer), 5, 6, 7 and 8, and then 9 and 10 when it is acknowledged. A frame
// with a receipt header adds R1, R2 and R3 on the sender's side.
const (
	// HopHandoff: before any frame, a spare child (started before its
	// client connected) received the client socket from the parent's accept
	// loop over its socketpair (SCM_RIGHTS) and became that client's child
	// (parent, Broker.handOff; child, Run). Children started on accept
	// (--spare-children 0) skip it.
	HopHandoff = "0 accept → client socket handed to a spare child"
	// HopWSUpgrade: a WebSocket client's child answered its HTTP upgrade
	// (after the TLS handshake, for wss) and serves STOMP over it.
	HopWSUpgrade = "0w HTTP upgrade → WebSocket, in the child"
	// HopClientRead: the client's child read a frame from the client socket
	// (child, session.onClient).
	HopClientRead = "1 client socket → child reader"
	// HopChildToIPC: the child appended the frame as a FRAME record to its
	// batch for the parent; the batch leaves at the end of this wake-up
	// (child, session.forward, then session.flush).
	HopChildToIPC = "2 child → ipc packet"
	// HopParentRead: the parent's event loop applies a record from a child;
	// a SEND gets its message-id here (parent, applyRecords, applyFrame,
	// publish).
	HopParentRead = "3 ipc packet → parent event loop"
	// HopTopicRoute: a topic message goes, as a DELIVER record, into the
	// outbox of each child subscribed to its destination (parent, publish).
	HopTopicRoute = "4 topic routing → DELIVER to child outbox"
	// HopQueueOffer: the ledger armed a semaphore slot for a batch of queue
	// messages and puts an OFFER into the outbox of each consumer child with credit
	// (parent, package ledger: pump, arm, offer).
	HopQueueOffer = "4 ledger arms slot → OFFER to child outbox"
	// HopRace: a consumer child that got an OFFER raced for the slot's
	// token; the winner appends a CLAIM (child, session.onOffer).
	HopRace = "5 semaphore race → CLAIM"
	// HopGrant: the ledger checked a CLAIM and answers GRANT (with the
	// MESSAGE) or DENY (parent, Ledger.Claim, grant).
	HopGrant = "6 CLAIM → ledger GRANT or DENY"
	// HopChildRead: a child's event loop took a DELIVER, GRANT or DENY
	// record from the parent (child, session.handleRecord).
	HopChildRead = "7 ipc packet → child event loop"
	// HopClientWrite: the child wrote a MESSAGE to its client; the bytes
	// leave at the end of this wake-up (child, session.writeMessage, then
	// session.flush).
	HopClientWrite = "8 child writer → client socket"
	// HopAck: the consumer's child sends an ACK or NACK record: for ack
	// mode auto right after the MESSAGE was written, else when the client
	// acknowledged (child, session.flush, settle).
	HopAck = "9 ACK → ipc packet"
	// HopSettle: the ledger applied an ACK (the message is gone) or NACK (it
	// is requeued) (parent, Ledger.Settle).
	HopSettle = "10 ACK → ledger settles"
	// HopSync: the child asks the parent to confirm everything it sent so
	// far, to answer a receipt header (child, session.sync).
	HopSync = "R1 receipt: SYNC → ipc packet"
	// HopSynced: the parent applied (and, for persistent messages, stored)
	// everything before the SYNC and answers SYNCED (parent, applyRecords).
	HopSynced = "R2 receipt: parent → SYNCED"
	// HopReceipt: the child writes the RECEIPT to its client (child,
	// session.handleRecord).
	HopReceipt = "R3 receipt: child writer → RECEIPT"
	// HopBusOut: with brokers sharing a PostgreSQL store, a topic message
	// that other brokers have subscribers for, or a reply to a temporary
	// queue another broker owns, is handed to the cluster bus, which
	// NOTIFYs those brokers (parent, publish; package cluster).
	HopBusOut = "B1 parent → other brokers (NOTIFY)"
	// HopBusIn: a message another broker published arrives as a
	// notification and goes on from hop 4, as DELIVER records (parent,
	// onRemote).
	HopBusIn = "B2 NOTIFY → parent event loop"
)
