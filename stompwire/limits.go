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
