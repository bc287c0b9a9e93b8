package stompwire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-stomp/stomp/v3/frame"
)

// fr builds an expected frame: command, body, then name/value pairs.
func fr(cmd, body string, kv ...string) *frame.Frame {
	f := frame.New(cmd, kv...)
	if body != "" {
		f.Body = []byte(body)
	}
	return f
}

// frameDiff describes how got differs from want, or returns "" if they are
// equal. A nil and an empty body are equal.
func frameDiff(got, want *frame.Frame) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil || want == nil:
		return fmt.Sprintf("frame = %s, want %s", showFrame(got), showFrame(want))
	}
	if got.Command != want.Command || !sameHeaders(got.Header, want.Header) ||
		!bytes.Equal(got.Body, want.Body) {
		return fmt.Sprintf("frame = %s, want %s", showFrame(got), showFrame(want))
	}
	return ""
}

func sameHeaders(a, b *frame.Header) bool {
	if headerLen(a) != headerLen(b) {
		return false
	}
	for i := 0; i < headerLen(a); i++ {
		ak, av := a.GetAt(i)
		bk, bv := b.GetAt(i)
		if ak != bk || av != bv {
			return false
		}
	}
	return true
}

func headerLen(h *frame.Header) int {
	if h == nil {
		return 0
	}
	return h.Len()
}

// showFrame renders a frame unambiguously for test failure messages.
func showFrame(f *frame.Frame) string {
	if f == nil {
		return "<heart-beat>"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%q{", f.Command)
	for i := 0; i < headerLen(f.Header); i++ {
		k, v := f.Header.GetAt(i)
		fmt.Fprintf(&sb, "%q:%q ", k, v)
	}
	fmt.Fprintf(&sb, "body=%q}", f.Body)
	return sb.String()
}

// parseAll runs Parse over data frame by frame, as a caller holding the
// whole input would. It returns the frames (heart-beats left out) and how the
// input ended: io.EOF if it was used up, io.ErrUnexpectedEOF if it ended
// inside a frame, or the protocol error.
func parseAll(data []byte, v Version, lim Limits) ([]*frame.Frame, error) {
	var frames []*frame.Frame
	for len(data) > 0 {
		f, n, err := Parse(data, v, lim)
		if errors.Is(err, ErrIncomplete) {
			return frames, io.ErrUnexpectedEOF
		}
		if err != nil {
			return frames, err
		}
		if n <= 0 || n > len(data) {
			panic(fmt.Sprintf("Parse consumed %d of %d bytes", n, len(data)))
		}
		if f != nil {
			frames = append(frames, f)
		}
		data = data[n:]
	}
	return frames, io.EOF
}

// sameEnd reports whether two ways of reading the same input ended alike:
// the same io error, or protocol errors with the same sentinel. (Messages
// may differ: an error seen early quotes less of the offending line.)
func sameEnd(a, b error) bool {
	var pa, pb *ProtocolError
	if errors.As(a, &pa) && errors.As(b, &pb) {
		return pa.Err == pb.Err
	}
	return a == b
}
