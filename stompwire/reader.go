package stompwire

import (
	"errors"
	"fmt"
	"io"

	"github.com/go-stomp/stomp/v3/frame"
)

const (
	// initialBufferSize is the Reader's first buffer: enough for most
	// control frames and small messages.
	initialBufferSize = 4096
	// readSlack is how far beyond the largest legal frame the buffer may
	// grow, so that bytes of the next frame that arrive with the end of a
	// maximal one still have room.
	readSlack = 4096
	// releaseThreshold: once empty, a buffer larger than this is dropped so
	// that one big frame does not pin memory for the connection's life.
	releaseThreshold = 64 << 10
	// maxEmptyReads is how many (0, nil) reads in a row are tolerated
	// before giving up with io.ErrNoProgress, as bufio does.
	maxEmptyReads = 100
)

// Reader reads STOMP frames from a byte stream (the client socket, or any
// io.Reader) using [Parse] over its own buffer. The buffer grows only as a
// frame in progress needs it and never beyond the largest frame the
// [Limits] allow plus a few KiB, and Reader remembers how far it has
// checked a partial frame, so a frame that arrives in many small reads is
// still scanned in linear time.
//
// A Reader is not safe for concurrent use; one goroutine owns it.
type Reader struct {
	rd      io.Reader
	lim     Limits
	v       Version
	maxBuf  int
	initial int // size of a new buffer; tests shrink it to exercise growth

	buf        []byte // len(buf) is its capacity in use; nil until first read
	start, end int    // buf[start:end] is read but not yet returned
	scan       scanner

	copied int // bytes moved by compaction and growth; tests check it stays linear

	pending error // error from rd, reported once the buffered bytes are used up
	fatal   error // sticky: protocol error or unexpected EOF
}

// NewReader returns a Reader that reads from r under lim (zero fields take
// their defaults). It parses by V12 rules until [Reader.SetVersion] is
// called; the CONNECT frame that starts a session is read the same way in
// every version.
func NewReader(r io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	return &Reader{
		rd:      r,
		lim:     lim,
		v:       V12,
		maxBuf:  satAdd(lim.maxFrameBytes(), readSlack),
		initial: initialBufferSize,
	}
}

// SetVersion switches the rules for the frames not yet returned, typically
// right after the session negotiated the version in reply to CONNECT.
// Frames the client pipelined behind its CONNECT are still parsed under the
// new version, because the Reader parses a frame only when Read asks for it.
func (r *Reader) SetVersion(v Version) {
	r.v = v
	r.scan.reset() // a partial scan under the old rules is redone
}

// Read returns the next frame, blocking on the underlying reader until a
// whole frame has arrived. It returns:
//   - (nil, nil) for a heart-beat (one or more line ends between frames);
//     callers must check for a nil frame;
//   - (f, nil) for a frame;
//   - (nil, io.EOF) when the stream ends cleanly between frames, and
//     (nil, io.ErrUnexpectedEOF) when it ends inside a frame;
//   - (nil, err) with err a [*ProtocolError] when the peer broke the
//     grammar or a limit; the session should send an ERROR frame with the
//     error's Msg and close, as the stream cannot be resynchronised;
//   - (nil, err) wrapping any other error of the underlying reader (such as
//     a read deadline), after every frame already buffered was returned.
//
// EOF, unexpected EOF and protocol errors are sticky: every later call
// returns them again. Other read errors are not: after a timeout, Read may
// be called again and continues with the partial frame it has buffered.
func (r *Reader) Read() (*frame.Frame, error) {
	if r.fatal != nil {
		return nil, r.fatal
	}
	for {
		if r.start < r.end {
			f, n, err := r.scan.parse(r.buf[r.start:r.end], r.v, r.lim)
			if err == nil {
				r.consume(n)
				return f, nil
			}
			if err != ErrIncomplete {
				r.fatal = err
				return nil, err
			}
		}
		if r.pending != nil {
			return nil, r.takePending()
		}
		if err := r.fill(); err != nil {
			r.fatal = err
			return nil, err
		}
	}
}

// Buffered returns the number of bytes read from the stream but not yet
// returned as frames or heart-beats.
func (r *Reader) Buffered() int { return r.end - r.start }

// consume drops n parsed bytes from the front of the buffer.
func (r *Reader) consume(n int) {
	r.start += n
	if r.start == r.end {
		r.start, r.end = 0, 0
		if len(r.buf) > releaseThreshold {
			r.buf = nil
		}
	}
}

// takePending turns the stored read error into Read's result.
func (r *Reader) takePending() error {
	err := r.pending
	if err == io.EOF {
		if r.start < r.end {
			r.fatal = io.ErrUnexpectedEOF
			return r.fatal
		}
		return io.EOF // stays pending: EOF is sticky
	}
	r.pending = nil
	return fmt.Errorf("stompwire: read: %w", err)
}

// fill makes room in the buffer and reads into it once. A read error is
// stored in r.pending; fill's own error means the buffer would have to
// outgrow the limits, which scan's checks should make impossible.
func (r *Reader) fill() error {
	if err := r.makeRoom(); err != nil {
		return err
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			return errors.New("stompwire: read: reader returned an invalid count")
		}
		r.end += n
		if err != nil {
			r.pending = err
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	r.pending = io.ErrNoProgress
	return nil
}

// makeRoom ensures the buffer has free space after r.end, compacting it or
// growing it within r.maxBuf.
func (r *Reader) makeRoom() error {
	if r.buf == nil {
		r.buf = make([]byte, min(r.initial, r.maxBuf))
	}
	used := r.end - r.start
	want := max(used+1, r.scan.need())
	if r.end < len(r.buf) && want <= len(r.buf)-r.start {
		return nil
	}
	size := len(r.buf)
	if want > size || used == size {
		size = min(max(2*size, want), r.maxBuf)
		if size <= used {
			return protocolError(ErrFrameTooLarge,
				"frame exceeds the %d-byte buffer limit", r.maxBuf)
		}
	}
	if size == len(r.buf) {
		copy(r.buf, r.buf[r.start:r.end]) // the scanner's offsets are relative to start
	} else {
		nb := make([]byte, size)
		copy(nb, r.buf[r.start:r.end])
		r.buf = nb
	}
	r.copied += used
	r.start, r.end = 0, used
	return nil
}
