// Package stompwire is the broker's STOMP codec: it turns bytes into
// go-stomp [frame.Frame] values and frames back into bytes, under size limits
// that a hostile peer cannot talk its way past.
//
// # Where it sits in the data path
//
// Every client frame crosses this package twice. The child process that owns a
// client socket reads it with a [Reader] (which calls [Parse] over its own
// bounded buffer), checks it against the session rules, and forwards it to the
// parent over the ipc socketpair, encoded with [AppendFrame] in STOMP 1.2. The
// parent decodes the forwarded frame with [Parse] again, routes it, and encodes
// the MESSAGE once, in STOMP 1.2 with [AppendFrame], for every child that gets it
// (parent/records.go, encodeMessage). A consumer's child does not re-encode it for
// a 1.2 client: it splices the subscription and ack headers into those bytes
// with [AppendHeader]. For a 1.0 or 1.1 client it decodes them with [Parse] and
// encodes the MESSAGE in the client's version with [AppendFrame]
// (child/session.go, writeMessage).
//
// # What it decides and what it leaves to the session
//
// The codec enforces the wire grammar of STOMP 1.0, 1.1 and 1.2 (command
// names, header lines, escaping, line ends, content-length, the NUL
// terminator) and the [Limits]. It does not trim header values, does not
// reject bodies on frames that must not carry one, does not check required
// headers, and does not add content-length when encoding: those are session
// decisions that depend on the negotiated version and the command.
//
// # Bounded memory
//
// A peer controls every length on the wire, so every allocation is checked
// before it is made: the command and header lines are measured while they
// are scanned, content-length is compared with [Limits.MaxBodyBytes] before
// a body buffer exists, and a body without content-length is cut off as soon
// as it grows past the limit. The [Reader]'s buffer therefore never exceeds
// the header limits plus the body limit plus a small slack. (go-stomp's own
// frame.Reader allocates whatever content-length says, which is why this
// package exists.)
//
// # Errors
//
// Grammar and limit violations are returned as a [*ProtocolError] that wraps
// one of the package's sentinel errors (use [errors.Is]) and carries a short
// human message meant for the `message` header of the ERROR frame the session
// sends before closing the connection. A protocol error desynchronises the
// stream: the caller must not try to parse past it.
//
// # Files
//
//   - parse.go, reader.go: bytes → frames, bounded by limits.go's Limits
//   - encode.go: frames → bytes, escaping per version (version.go)
//   - headers.go, destinations.go, errortexts.go: the broker's vocabulary — header
//     names, destination prefixes, and every ERROR text a client can see
//   - errors.go, errorframe.go: protocol errors and the ERROR frame built from one
package stompwire
