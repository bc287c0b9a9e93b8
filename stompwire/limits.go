package stompwire

import "math"

// Default limits, used for any [Limits] field that is zero or negative.
const (
	DefaultMaxHeaderLines     = 128
	DefaultMaxHeaderLineBytes = 8192
	DefaultMaxBodyBytes       = 4 << 20 // 4 MiB
)

// Limits bound every allocation a peer can cause. A zero (or negative) field
// means "use the default" (see [DefaultLimits]), so Limits{} is usable.
//
// The same limits apply before and after CONNECT: an unauthenticated peer
// gets no more room than an authenticated one.
type Limits struct {
	// MaxHeaderLines is the number of header lines one frame may carry
	// (the command line and the blank line do not count). Default 128.
	MaxHeaderLines int
	// MaxHeaderLineBytes bounds the command line and each header line,
	// counted before unescaping and without the line end. Default 8192.
	MaxHeaderLineBytes int
	// MaxBodyBytes bounds the body. A content-length above it is refused
	// before any body buffer is allocated; a body without content-length
	// is refused as soon as that many bytes have gone by without a NUL.
	// Default 4 MiB.
	MaxBodyBytes int
}

// DefaultLimits returns the limits used for zero fields: 128 header lines of
// at most 8192 bytes each and a 4 MiB body.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderLines:     DefaultMaxHeaderLines,
		MaxHeaderLineBytes: DefaultMaxHeaderLineBytes,
		MaxBodyBytes:       DefaultMaxBodyBytes,
	}
}

// withDefaults returns lim with every non-positive field replaced by its
// default.
func (lim Limits) withDefaults() Limits {
	if lim.MaxHeaderLines <= 0 {
		lim.MaxHeaderLines = DefaultMaxHeaderLines
	}
	if lim.MaxHeaderLineBytes <= 0 {
		lim.MaxHeaderLineBytes = DefaultMaxHeaderLineBytes
	}
	if lim.MaxBodyBytes <= 0 {
		lim.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return lim
}

// maxCommandLine is the longest command line that can be valid:
// "UNSUBSCRIBE" plus a CR.
const maxCommandLine = len("UNSUBSCRIBE\r")

// maxFrameBytes is the largest wire size (from the first command byte up to
// and including the NUL) of a frame that passes lim, saturating at
// math.MaxInt. lim must already have its defaults applied.
func (lim Limits) maxFrameBytes() int {
	// command line + LF, MaxHeaderLines lines of content + CR LF, the blank
	// CR LF, the body and its NUL.
	n := satAdd(maxCommandLine+1, satMul(lim.MaxHeaderLines, satAdd(lim.MaxHeaderLineBytes, 2)))
	return satAdd(n, satAdd(lim.MaxBodyBytes, 2+1))
}

func satAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func satMul(a, b int) int {
	if a != 0 && b > math.MaxInt/a {
		return math.MaxInt
	}
	return a * b
}

// RelayHeaders is how many headers the broker may add to a client's frame
// on its way through (message-id, subscription, ack, content-length,
// redelivered, delivery-count, ... with room to spare); see [Limits.Relayed].
const RelayHeaders = 16

// Relayed returns the limits for parsing a frame the broker itself encoded
// from a client frame that passed lim: a SEND forwarded from a child to
// the parent, or a MESSAGE on its way to a subscriber. Such a frame may
// legitimately exceed lim: escaping for STOMP 1.2 can double a header
// line (a 1.0 client's raw ':' becomes "\c"), and a MESSAGE carries the
// broker's headers besides the producer's. Relayed allows twice the line
// length and [RelayHeaders] more headers; the body limit stays, as bodies
// are copied unchanged. The client-facing limits are still lim.
func (lim Limits) Relayed() Limits {
	lim = lim.withDefaults()
	lim.MaxHeaderLineBytes = satMul(lim.MaxHeaderLineBytes, 2)
	lim.MaxHeaderLines = satAdd(lim.MaxHeaderLines, RelayHeaders)
	return lim
}
