// Package child is the broker's per-client process: the parent starts one for
// every client connection (`stomp-broker child`, re-executed from /proc/self/exe)
// and it speaks STOMP with that one client for the life of the connection. It is
// the only process that holds the client socket, so it is the process that reads
// every frame the client sends and writes every frame the client receives; `kill`
// it and exactly that client is disconnected.
//
// # Where it sits in the data path
//
//	client → [producer's child] → ipc → [parent] → ipc → [consumer's child] → client
//
// A child plays both end boxes: for its client's SENDs it is the producer's
// child, for its client's subscriptions the consumer's child. docs/ARCHITECTURE.md
// follows a message through numbered hops; the child's are:
//
//	1   client socket → child reader     readClient, run, onClient, handleFrame
//	2   child → ipc packet               handleSend, forward; sent by flush
//	5   semaphore race → CLAIM           handleRecord, onOffer (queue messages)
//	7   ipc packet → child event loop    readParent, onParent, handleRecord, onGrant
//	8   child writer → client socket     writeMessage; written by flush
//	9   ACK → ipc packet                 flush (ack:auto, once written), settle
//	                                     (the client's ACK or NACK)
//	R1  receipt: SYNC → ipc packet       sync
//	R3  receipt: child writer → RECEIPT  handleRecord (SYNCED)
//
// Run the broker with --trace to see each of them logged with the child's pid. A
// child never knows a SEND's message-id: the parent assigns it (hop 3).
//
// # What a child decides, and what it does not
//
// A child applies everything that concerns only its own client: version
// negotiation, authentication, heart-beats, frame limits, subscription ids, ack
// modes, transactions (held back until COMMIT), and which of its subscriptions a
// topic message goes to. It decides nothing about queue messages: winning the
// semaphore only entitles it to CLAIM, and it writes a queue MESSAGE to its client
// only after the parent's ledger has answered GRANT. A RECEIPT is sent only when the
// parent answers the SYNC that followed the frame, so it means "the broker has
// applied this", not "this child has read it".
//
// # Inside a child
//
// Three goroutines: readClient (parses the client's bytes into frames), readParent
// (reads ipc packets), and the session loop (session.run), which owns all session
// state and does all the writing. Each wake-up handles whatever both readers have
// queued, then flushes once: first the client socket, then one batch of records to
// the parent. That order is what makes ack:auto mean "acknowledged once written".
//
// # Descriptors, signals, death
//
// fd 3 is the client ([ipc.FDClient]), fd 4 the socketpair to the parent ([ipc.FDParent]);
// [Run] refuses to start with anything else there. SIGTERM disconnects the client
// with an ERROR ("disconnected by operator"); SIGINT and SIGHUP are ignored, since
// shutting down is the parent's call. If the parent goes away (EOF on fd 4) the
// child sends its client an ERROR ("broker went away") and exits. When a child
// exits for any reason, the parent sees EOF on its end, applies everything the
// child wrote before it, and takes back every queue message the child held.
//
// # Files
//
//   - child.go: Run — adopt fds 3 and 4, join the semaphore set, signals, start the session
//   - session.go: the session loop (client reader, parent reader, one writer), MESSAGE delivery
//   - frames.go: one handler per client frame (CONNECT … DISCONNECT), ack and credit bookkeeping
//   - auth.go: CONNECT's login and passcode against the --users file
package child
