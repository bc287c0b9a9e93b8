package stompwire

import (
	"errors"
	"fmt"
	"strconv"
)

var (
	// ErrIncomplete means the input holds only a prefix of a frame that is
	// valid so far: read more bytes and call [Parse] again with them
	// appended. It is returned bare, never inside a [ProtocolError].
	ErrIncomplete = errors.New("stompwire: incomplete frame")

	// ErrFrameTooLarge means the body (announced by content-length or
	// seen so far without a NUL) exceeds [Limits.MaxBodyBytes].
	ErrFrameTooLarge = errors.New("stompwire: frame too large")

	// ErrTooManyHeaders means a frame has more than
	// [Limits.MaxHeaderLines] header lines.
	ErrTooManyHeaders = errors.New("stompwire: too many headers")

	// ErrHeaderLineTooLong means the command line or a header line is
	// longer than [Limits.MaxHeaderLineBytes].
	ErrHeaderLineTooLong = errors.New("stompwire: header line too long")

	// ErrBadHeader means a header line has no ':', an empty name, or a
	// NUL (usually a frame whose blank line after the headers is missing).
	ErrBadHeader = errors.New("stompwire: malformed header")

	// ErrBadEscape means a header uses an escape sequence the negotiated
	// version does not define (the spec makes this fatal).
	ErrBadEscape = errors.New("stompwire: invalid header escape")

	// ErrInvalidUTF8 means a header name or value is not valid UTF-8. STOMP
	// frames carry UTF-8 text in their command and headers (bodies are
	// binary and are never checked); the broker refuses anything else at
	// the edge, so no other part of it ever sees a header that is not text.
	ErrInvalidUTF8 = errors.New("stompwire: header not valid UTF-8")

	// ErrUnknownCommand means the command line is not one of the 15 STOMP
	// commands (commands are case-sensitive). An empty line where a command
	// is expected is not an error but a heart-beat.
	ErrUnknownCommand = errors.New("stompwire: unknown command")

	// ErrBadContentLength means the content-length header is not a
	// non-negative decimal number.
	ErrBadContentLength = errors.New("stompwire: invalid content-length")

	// ErrContentLengthMismatch means the byte after content-length body
	// bytes is not the NUL that must end the frame.
	ErrContentLengthMismatch = errors.New("stompwire: content-length mismatch")
)

// ProtocolError is a violation of the STOMP grammar or of the [Limits] by
// the peer. Err is one of the package's sentinel errors, so errors.Is works
// on it. Msg is a short human sentence without line breaks, suitable as the
// `message` header of the ERROR frame the session sends before it closes
// the connection (for example "frame body exceeds 4194304 bytes").
//
// Receipt is the value (unescaped) of the frame's first receipt header when
// that header was read and accepted before the error was found, else "".
// The spec asks an ERROR to carry receipt-id when the frame that caused it
// asked for a receipt; a frame whose body is too long, whose content-length
// does not match, or whose later header is malformed still names one.
type ProtocolError struct {
	Err     error
	Msg     string
	Receipt string
}

// Error returns the message prefixed with the package name.
func (e *ProtocolError) Error() string { return "stompwire: " + e.Msg }

// Unwrap returns the sentinel error.
func (e *ProtocolError) Unwrap() error { return e.Err }

// protocolError builds a *ProtocolError for sentinel with a formatted Msg.
func protocolError(sentinel error, format string, args ...any) error {
	return &ProtocolError{Err: sentinel, Msg: fmt.Sprintf(format, args...)}
}

// maxQuoted is how many peer bytes an error message quotes at most.
const maxQuoted = 40

// quote renders peer bytes for an error message: Go-quoted (so CR, LF and
// NUL cannot break the ERROR frame they end up in) and truncated.
func quote(b []byte) string {
	if len(b) > maxQuoted {
		return strconv.Quote(string(b[:maxQuoted])) + "..."
	}
	return strconv.Quote(string(b))
}
