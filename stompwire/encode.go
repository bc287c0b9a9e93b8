package stompwire

import (
	"strings"

	"github.com/go-stomp/stomp/v3/frame"
)

// AppendFrame appends the wire form of f to dst and returns the extended
// slice: the command, one "name:value" line per header in order, a blank
// line, f.Body and the terminating NUL, with LF line ends throughout.
//
// Header names and values are escaped by v's rules (V11: \\ \n \c; V12 adds
// \r), except in V10 and in CONNECT, STOMP and CONNECTED frames, which are
// never escaped; there the caller must not use characters the frame cannot
// carry (LF anywhere, ':' in a name). A V11 frame carries a CR in a value as
// is, since 1.1 has no escape for it.
//
// AppendFrame neither adds nor checks headers: a body containing NUL needs a
// content-length header, and setting it is the caller's business. It
// allocates nothing beyond growing dst, so a caller that reuses dst encodes
// without garbage. A nil f appends a heart-beat, like [AppendHeartBeat].
func AppendFrame(dst []byte, f *frame.Frame, v Version) []byte {
	if f == nil {
		return AppendHeartBeat(dst)
	}
	esc := encodingFor(f.Command, v)
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	if h := f.Header; h != nil {
		for i := 0; i < h.Len(); i++ {
			name, value := h.GetAt(i)
			dst = appendEscaped(dst, name, esc)
			dst = append(dst, ':')
			dst = appendEscaped(dst, value, esc)
			dst = append(dst, '\n')
		}
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0)
}

// AppendHeader appends one header line, name ':' value LF, escaped exactly
// as [AppendFrame] writes it in a cmd frame of version v. It is for a
// caller that splices headers into a frame AppendFrame encoded (the child
// adds subscription and ack to the parent's MESSAGE without re-encoding
// it); [Encodable] says which headers an unescaped frame can carry. Like
// AppendFrame it allocates nothing beyond growing dst.
func AppendHeader(dst []byte, cmd string, v Version, name, value string) []byte {
	esc := encodingFor(cmd, v)
	dst = appendEscaped(dst, name, esc)
	dst = append(dst, ':')
	dst = appendEscaped(dst, value, esc)
	return append(dst, '\n')
}

// AppendHeartBeat appends a heart-beat, a single LF, to dst.
func AppendHeartBeat(dst []byte) []byte {
	return append(dst, '\n')
}

// encoding is how header text is escaped on the wire.
type encoding uint8

const (
	encodeRaw encoding = iota // no escaping (V10; CONNECT, STOMP, CONNECTED)
	encodeV11                 // \\ \n \c
	encodeV12                 // \\ \n \c \r
)

// encodingFor returns the escaping for a frame with command cmd in v.
func encodingFor(cmd string, v Version) encoding {
	switch {
	case !v.escapes(), cmd == frame.CONNECT, cmd == frame.STOMP, cmd == frame.CONNECTED:
		return encodeRaw
	case v.crEscape():
		return encodeV12
	}
	return encodeV11
}

// appendEscaped appends s escaped by esc. Runs of ordinary bytes are copied
// in one append, so the common case (nothing to escape) costs one copy.
func appendEscaped(dst []byte, s string, esc encoding) []byte {
	if esc == encodeRaw {
		return append(dst, s...)
	}
	run := 0 // start of the pending run of ordinary bytes
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '\\':
			rep = `\\`
		case '\n':
			rep = `\n`
		case ':':
			rep = `\c`
		case '\r':
			if esc != encodeV12 {
				continue
			}
			rep = `\r`
		default:
			continue
		}
		dst = append(dst, s[run:i]...)
		dst = append(dst, rep...)
		run = i + 1
	}
	return append(dst, s[run:]...)
}

// Encodable reports whether a header can be written in a cmd frame of
// version v so that [Parse] reads back the same name and value. A caller
// copying headers from one version to another (a STOMP 1.2 producer's
// MESSAGE going to a 1.0 consumer) must leave out the headers for which it
// is false: written anyway, a line feed in a value would end the header
// early and let one client inject headers, or a body, into another
// client's frame.
//
// It is false for an empty name, for a NUL anywhere (no version can carry
// one in a header), and for text an unescaped frame (V10;
// CONNECT, STOMP and CONNECTED in every version) cannot carry: a line feed
// anywhere, a ':' in the name, and a value ending in CR where CR LF ends
// lines (CONNECT and STOMP always; CONNECTED in V12). An escaped frame
// (V11 and V12 otherwise) can carry any text.
func Encodable(cmd string, v Version, name, value string) bool {
	if name == "" || strings.IndexByte(name, 0) >= 0 || strings.IndexByte(value, 0) >= 0 {
		return false
	}
	if encodingFor(cmd, v) != encodeRaw {
		return true
	}
	if strings.IndexByte(name, '\n') >= 0 || strings.IndexByte(value, '\n') >= 0 || strings.IndexByte(name, ':') >= 0 {
		return false
	}
	crlf := v.crlf() || cmd == frame.CONNECT || cmd == frame.STOMP
	return !(crlf && strings.HasSuffix(value, "\r"))
}
