package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is the first byte of a record and says what its body holds.
type Kind byte

// Record kinds. The package documentation describes each one.
const (
	KindHello    Kind = 'H'
	KindFrame    Kind = 'F'
	KindSync     Kind = 'S'
	KindClaim    Kind = 'C'
	KindAck      Kind = 'A'
	KindNack     Kind = 'N'
	KindDeliver  Kind = 'D'
	KindOffer    Kind = 'O'
	KindGrant    Kind = 'G'
	KindDeny     Kind = 'X'
	KindSynced   Kind = 's'
	KindShutdown Kind = 'Q'
	KindRevoke   Kind = 'R'
)

// String returns the kind's name, as used in --trace output.
func (k Kind) String() string {
	switch k {
	case KindHello:
		return "HELLO"
	case KindFrame:
		return "FRAME"
	case KindSync:
		return "SYNC"
	case KindClaim:
		return "CLAIM"
	case KindAck:
		return "ACK"
	case KindNack:
		return "NACK"
	case KindDeliver:
		return "DELIVER"
	case KindOffer:
		return "OFFER"
	case KindGrant:
		return "GRANT"
	case KindDeny:
		return "DENY"
	case KindSynced:
		return "SYNCED"
	case KindShutdown:
		return "SHUTDOWN"
	case KindRevoke:
		return "REVOKE"
	}
	return fmt.Sprintf("KIND(%#x)", byte(k))
}

// ErrMalformed reports a record or body that does not decode. The parent
// treats it as a broken child and kills that child.
var ErrMalformed = errors.New("ipc: malformed record")

// AppendRecord appends a record of kind k whose body is body.
func AppendRecord(dst []byte, k Kind, body []byte) []byte {
	dst = append(dst, byte(k))
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// BeginRecord starts a record whose body the caller appends next, without
// copying it through a temporary buffer; FinishRecord completes it. The
// returned mark must be passed to FinishRecord.
//
// The length prefix is reserved at its largest size (binary.MaxVarintLen32
// bytes, a padded uvarint) so the body can be appended in place.
func BeginRecord(dst []byte, k Kind) (out []byte, mark int) {
	dst = append(dst, byte(k))
	mark = len(dst)
	return append(dst, 0x80, 0x80, 0x80, 0x80, 0x00), mark
}

// FinishRecord writes the body length of the record started at mark.
// Bodies are limited to 2^28-1 bytes (256 MiB), far beyond any frame limit.
func FinishRecord(dst []byte, mark int) []byte {
	n := uint32(len(dst) - mark - 5)
	// A padded uvarint: four 7-bit groups with the continuation bit, then the top bits.
	dst[mark] = byte(n) | 0x80
	dst[mark+1] = byte(n>>7) | 0x80
	dst[mark+2] = byte(n>>14) | 0x80
	dst[mark+3] = byte(n>>21) | 0x80
	dst[mark+4] = byte(n >> 28)
	return dst
}

// NextRecord splits the first record off batch. It returns the kind, the
// body (aliasing batch) and the remaining bytes.
func NextRecord(batch []byte) (k Kind, body, rest []byte, err error) {
	if len(batch) < 2 {
		return 0, nil, nil, fmt.Errorf("%w: %d stray bytes", ErrMalformed, len(batch))
	}
	k = Kind(batch[0])
	n, w := binary.Uvarint(batch[1:])
	if w <= 0 || n > uint64(len(batch)-1-w) {
		return 0, nil, nil, fmt.Errorf("%w: bad length in %s record", ErrMalformed, k)
	}
	start := 1 + w
	end := start + int(n)
	return k, batch[start:end:end], batch[end:], nil
}

// AppendString appends a uvarint-length-prefixed string.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendUint appends a uvarint.
func AppendUint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// BodyReader decodes the fields of one record body in order. The first
// failure sticks: later calls return zero values and Err reports it, so a
// decoder reads all fields and checks Err once.
type BodyReader struct {
	b   []byte
	err error
}

// NewBodyReader returns a reader over body.
func NewBodyReader(body []byte) *BodyReader { return &BodyReader{b: body} }

// Uint reads a uvarint.
func (r *BodyReader) Uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, w := binary.Uvarint(r.b)
	if w <= 0 {
		r.err = fmt.Errorf("%w: bad number", ErrMalformed)
		return 0
	}
	r.b = r.b[w:]
	return v
}

// Int reads a uvarint that must fit a non-negative int (a count or an
// index); a larger one is a decoding error.
func (r *BodyReader) Int() int {
	v := r.Uint()
	if v > 1<<31-1 {
		if r.err == nil {
			r.err = fmt.Errorf("%w: number out of range", ErrMalformed)
		}
		return 0
	}
	return int(v)
}

// String reads a length-prefixed string (copied, so it outlives the body).
func (r *BodyReader) String() string {
	n := r.Uint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: string longer than record", ErrMalformed)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// Rest returns the unread remainder (aliasing the body).
func (r *BodyReader) Rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// Err returns the first decoding error, or nil.
func (r *BodyReader) Err() error { return r.err }

// Done returns the first decoding error, or ErrMalformed if bytes are left over.
func (r *BodyReader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	return r.err
}
