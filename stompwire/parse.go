package stompwire

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3/frame"
)

// Parse decodes one frame from the front of b under version v's rules and
// the limits lim (zero fields take their defaults). It never keeps a
// reference to b: the returned frame owns its strings and body.
//
// It returns:
//   - (nil, n, nil) for a heart-beat: b starts with n > 0 bytes of line ends
//     (LF or CR LF, in every version), all of which are consumed;
//   - (f, n, nil) for a complete frame; n counts the bytes consumed, which
//     include the NUL and any line ends right after it that are already in b
//     (so "frame\x00\n\n" is consumed whole);
//   - (nil, 0, [ErrIncomplete]) when b holds only a prefix of a frame that is
//     valid so far: append more input and call Parse again. A prefix that
//     already breaks the grammar or a limit fails at once instead, so a
//     caller never buffers more than the limits allow;
//   - (nil, 0, err) with err a [*ProtocolError] wrapping one of
//     [ErrFrameTooLarge], [ErrTooManyHeaders], [ErrHeaderLineTooLong],
//     [ErrBadHeader], [ErrBadEscape], [ErrInvalidUTF8], [ErrUnknownCommand],
//     [ErrBadContentLength] or [ErrContentLengthMismatch]. Its Receipt
//     is the frame's receipt header if that was read before the error.
//
// The rules:
//   - The command must be one of the 15 STOMP commands.
//   - Lines end with LF. CR LF is accepted (the CR is dropped) when v is V12
//     or the frame is CONNECT or STOMP, whose version is not negotiated yet.
//     Elsewhere (V10 and V11 frames other than CONNECT and STOMP) a CR
//     before the LF is part of the line, so "SEND\r" is an unknown command.
//   - Header lines are split at their first ':'; a line without one, with an
//     empty name or with a NUL is [ErrBadHeader], and so is a value that
//     still ends in CR after the CR LF was removed in a frame that accepts
//     CR LF but is not escaped (CONNECT, STOMP; CONNECTED in V12), because
//     such a value cannot be encoded again. Names and values are not
//     trimmed. Repeated headers are all kept in order, so Header.Get returns
//     the first, which is the one the spec says counts.
//   - Header names and values must be valid UTF-8 (in every version; the
//     check is made on the escaped text, which is UTF-8 exactly when the
//     unescaped text is), else [ErrInvalidUTF8]. Bodies are not checked.
//   - Escapes: none in V10; \n \c \\ in V11; V12 adds \r. Any other escape,
//     or a lone trailing backslash, is [ErrBadEscape]. CONNECT, STOMP and
//     CONNECTED headers are never unescaped.
//   - The first content-length header, if any, must be a non-negative decimal
//     no larger than lim.MaxBodyBytes; exactly that many body bytes (NULs
//     included) and then a NUL must follow. Without content-length the body
//     runs to the first NUL and may be at most lim.MaxBodyBytes long.
//
// The returned frame always has a non-nil Header; its Body is nil when the
// frame has no body bytes.
func Parse(b []byte, v Version, lim Limits) (*frame.Frame, int, error) {
	var s scanner
	return s.parse(b, v, lim.withDefaults())
}

// phase is where the scanner is within the current frame.
type phase uint8

const (
	phaseCommand phase = iota // before the command line is complete
	phaseHeaders              // scanning header lines
	phaseBody                 // headers done, looking for the end of the body
)

// scanner holds how far the scan of the current frame has got, so that a
// [Reader] which calls parse again after appending more bytes does not
// re-scan what it has already checked. All offsets are relative to the start
// of the frame, which the caller keeps at the front of b between calls.
// [Parse] uses a fresh scanner each time.
type scanner struct {
	phase phase

	// Set when the command line is complete.
	cmd      string
	crlf     bool // a CR before LF ends the line
	unescape bool // header names and values are escaped
	crEscape bool // \r is a valid escape

	next    int // phaseHeaders: offset of the next unscanned line
	headers int // header lines accepted so far

	hdrStart  int // offset of the first header line
	hdrEnd    int // offset of the blank line that ends the headers
	bodyStart int
	clen      int // content-length, or -1 when there is none
	searched  int // phaseBody without content-length: body bytes known to hold no NUL

	// receiptStart and receiptEnd delimit the raw value of the first
	// receipt header (receiptEnd is 0 while there is none). Only an error
	// reads them, so a frame that parses costs nothing for them.
	receiptStart, receiptEnd int

	// examined counts the bytes searched for line ends and NULs, summed
	// over every frame this scanner has parsed (a reset keeps it). Only
	// tests read it, to check that a frame arriving in pieces is scanned
	// in linear time.
	examined int
}

// parse is [Parse] resuming from s. lim must have its defaults applied.
func (s *scanner) parse(b []byte, v Version, lim Limits) (*frame.Frame, int, error) {
	if s.phase == phaseCommand {
		if n := leadingEOLs(b); n > 0 {
			return nil, n, nil
		}
		if len(b) == 1 && b[0] == '\r' {
			return nil, 0, ErrIncomplete // maybe a CR LF heart-beat
		}
	}
	nul, err := s.scan(b, v, lim)
	if err != nil {
		if pe, ok := err.(*ProtocolError); ok && s.receiptEnd > 0 {
			pe.Receipt = string(b[s.receiptStart:s.receiptEnd])
			if s.unescape {
				pe.Receipt = unescape(pe.Receipt)
			}
		}
		return nil, 0, err
	}
	f := s.build(b, nul)
	n := nul + 1 + leadingEOLs(b[nul+1:])
	s.reset()
	return f, n, nil
}

// reset prepares s for the next frame; only the work counter survives.
func (s *scanner) reset() { *s = scanner{examined: s.examined} }

// need returns the total number of bytes the current frame needs when that
// is already known (content-length has been read), else 0. The Reader uses
// it to size its buffer in one step.
func (s *scanner) need() int {
	if s.phase == phaseBody && s.clen >= 0 {
		return s.bodyStart + s.clen + 1
	}
	return 0
}

// leadingEOLs returns the length of the run of line ends (LF or CR LF) at
// the front of b. A CR that is the last byte of b is not counted: whether it
// starts a CR LF is not known yet.
func leadingEOLs(b []byte) int {
	i := 0
	for i < len(b) {
		switch {
		case b[i] == '\n':
			i++
		case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
			i += 2
		default:
			return i
		}
	}
	return i
}

// scan checks b from where the last call stopped and returns the offset of
// the NUL that ends the frame. Every check is made in input order and only
// looks at bytes up to the point it triggers at, so a longer b (more input)
// never turns an error into success or into a different error: a Reader fed
// in pieces reports exactly what Parse reports on the whole input.
func (s *scanner) scan(b []byte, v Version, lim Limits) (int, error) {
	if s.phase == phaseCommand {
		if err := s.scanCommand(b, v, lim); err != nil {
			return 0, err
		}
	}
	if s.phase == phaseHeaders {
		if err := s.scanHeaders(b, lim); err != nil {
			return 0, err
		}
	}
	return s.scanBody(b, lim)
}

// scanCommand reads the command line and sets the per-frame rules.
func (s *scanner) scanCommand(b []byte, v Version, lim Limits) error {
	window := b[:min(len(b), maxCommandLine+1)]
	s.examined += len(window)
	lf := bytes.IndexByte(window, '\n')
	if lf < 0 {
		// Fail as soon as the line can no longer become a command, so
		// that a peer speaking another protocol (or garbage) is refused
		// after at most 13 bytes.
		if len(window) > maxCommandLine || !isCommandPrefix(window) {
			return protocolError(ErrUnknownCommand, "unknown command %s", quote(window))
		}
		return ErrIncomplete
	}
	line := b[:lf]
	cmd, ok := lookupCommand(line)
	crlf := v.crlf()
	if !ok && lf > 0 && line[lf-1] == '\r' {
		cmd, ok = lookupCommand(line[:lf-1])
		connect := cmd == frame.CONNECT || cmd == frame.STOMP
		if ok && !crlf && !connect {
			return protocolError(ErrUnknownCommand,
				"unknown command %s (CR LF line ends need STOMP 1.2)", quote(line))
		}
		line = line[:lf-1]
	}
	if !ok {
		// (An empty command cannot get here: an empty line is a heart-beat.)
		return protocolError(ErrUnknownCommand, "unknown command %s", quote(line))
	}
	if len(line) > lim.MaxHeaderLineBytes {
		return protocolError(ErrHeaderLineTooLong,
			"command line exceeds %d bytes", lim.MaxHeaderLineBytes)
	}
	connect := cmd == frame.CONNECT || cmd == frame.STOMP
	s.cmd = cmd
	s.crlf = crlf || connect
	// CONNECT and CONNECTED are never escaped, for 1.0 compatibility;
	// STOMP is CONNECT under another name.
	s.unescape = v.escapes() && !connect && cmd != frame.CONNECTED
	s.crEscape = v.crEscape()
	s.hdrStart = lf + 1
	s.next = lf + 1
	s.clen = -1
	s.phase = phaseHeaders
	return nil
}

// scanHeaders checks header lines from s.next up to the blank line.
func (s *scanner) scanHeaders(b []byte, lim Limits) error {
	limit := lim.MaxHeaderLineBytes
	for {
		start := s.next
		rest := b[start:]
		if len(rest) == 0 {
			return ErrIncomplete
		}
		if eol := s.blankLine(rest); eol > 0 {
			s.hdrEnd = start
			s.bodyStart = start + eol
			s.phase = phaseBody
			return nil
		} else if eol < 0 {
			return ErrIncomplete
		}

		// A header line starts here.
		if s.headers >= lim.MaxHeaderLines {
			return protocolError(ErrTooManyHeaders,
				"frame has more than %d headers", lim.MaxHeaderLines)
		}
		// Look no further than a maximal line plus CR LF: beyond that
		// the line is too long whatever follows.
		window := rest[:min(len(rest), limit+2)]
		s.examined += len(window)
		lf := bytes.IndexByte(window, '\n')
		line := window
		if lf >= 0 {
			line = window[:lf]
		}
		// A NUL inside the headers almost always means the blank line
		// was forgotten; refusing it at once beats waiting for the next
		// frame. Only the first limit bytes are searched so that the
		// choice between this error and "too long" does not depend on
		// how much of the line has arrived.
		if bytes.IndexByte(line[:min(len(line), limit)], 0) >= 0 {
			return protocolError(ErrBadHeader,
				"NUL inside the headers (is the blank line after them missing?)")
		}
		if lf < 0 {
			crPending := len(window) == limit+1 && s.crlf && window[limit] == '\r'
			if len(window) > limit+1 || (len(window) == limit+1 && !crPending) {
				return protocolError(ErrHeaderLineTooLong,
					"header line exceeds %d bytes", limit)
			}
			return ErrIncomplete
		}
		if s.crlf && lf > 0 && line[lf-1] == '\r' {
			line = line[:lf-1]
		}
		if len(line) > limit {
			return protocolError(ErrHeaderLineTooLong, "header line exceeds %d bytes", limit)
		}
		if err := s.checkHeader(line, lim); err != nil {
			return err
		}
		if s.receiptEnd == 0 && bytes.HasPrefix(line, []byte(frame.Receipt+":")) {
			s.receiptStart = start + len(frame.Receipt) + 1
			s.receiptEnd = start + len(line)
		}
		s.headers++
		s.next = start + lf + 1
	}
}

// blankLine reports whether rest starts with the blank line that ends the
// headers: the length of its line end if so, 0 if a header line starts
// here, -1 if that cannot be told yet (a CR that may start a CR LF).
func (s *scanner) blankLine(rest []byte) int {
	switch {
	case rest[0] == '\n':
		return 1
	case rest[0] == '\r' && s.crlf:
		if len(rest) == 1 {
			return -1
		}
		if rest[1] == '\n' {
			return 2
		}
	}
	return 0
}

// checkHeader validates one complete header line (line end removed).
func (s *scanner) checkHeader(line []byte, lim Limits) error {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		if len(line) == 1 && line[0] == '\r' {
			return protocolError(ErrBadHeader,
				"header line without ':' (CR LF line ends need STOMP 1.2)")
		}
		return protocolError(ErrBadHeader, "header line without ':': %s", quote(line))
	}
	if colon == 0 {
		return protocolError(ErrBadHeader, "empty header name")
	}
	name, value := line[:colon], line[colon+1:]
	if !utf8.Valid(name) {
		return protocolError(ErrInvalidUTF8, "header name %s is not valid UTF-8", quote(name))
	}
	if !utf8.Valid(value) {
		return protocolError(ErrInvalidUTF8, "header %s is not valid UTF-8", quote(name))
	}
	// CONNECT, STOMP and CONNECTED accept CR LF but have no \r escape, so
	// a value ending in CR ("v\r\r\n") could never be written back: the
	// encoder's "v\r\n" would read as "v". Refuse it rather than let a
	// forwarded frame change on the way.
	if s.crlf && !s.unescape && len(value) > 0 && value[len(value)-1] == '\r' {
		return protocolError(ErrBadHeader, "header %s ends with a CR", quote(name))
	}
	if s.unescape {
		if err := checkEscapes(name, s.crEscape); err != nil {
			return err
		}
		if err := checkEscapes(value, s.crEscape); err != nil {
			return err
		}
	}
	// Only the first content-length counts (the first-header rule). An
	// escaped name can never equal "content-length", because every escape
	// stands for a character that name does not contain.
	if s.clen < 0 && string(name) == frame.ContentLength {
		n, err := parseContentLength(value, lim.MaxBodyBytes)
		if err != nil {
			return err
		}
		s.clen = n
	}
	return nil
}

// checkEscapes reports ErrBadEscape for any backslash in raw that does not
// start one of the version's escapes.
func checkEscapes(raw []byte, crEscape bool) error {
	for i := bytes.IndexByte(raw, '\\'); i >= 0; {
		if i+1 == len(raw) {
			return protocolError(ErrBadEscape, "header ends with a lone backslash")
		}
		switch c := raw[i+1]; {
		case c == 'n' || c == 'c' || c == '\\':
		case c == 'r' && crEscape:
		default:
			return protocolError(ErrBadEscape, "invalid escape %s in header", quote(raw[i:i+2]))
		}
		next := bytes.IndexByte(raw[i+2:], '\\')
		if next < 0 {
			break
		}
		i += 2 + next
	}
	return nil
}

// parseContentLength parses a content-length value: ASCII digits only (no
// sign, no spaces). All digits are checked before the size is compared with
// maxBody, so "12x" is ErrBadContentLength however large 12 is.
func parseContentLength(value []byte, maxBody int) (int, error) {
	if len(value) == 0 {
		return 0, protocolError(ErrBadContentLength, "empty content-length")
	}
	n, tooBig := 0, false
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, protocolError(ErrBadContentLength,
				"content-length %s is not a non-negative decimal number", quote(value))
		}
		if !tooBig {
			n = n*10 + int(c-'0')
			tooBig = n > maxBody
		}
	}
	if tooBig {
		return 0, protocolError(ErrFrameTooLarge,
			"content-length exceeds the %d-byte body limit", maxBody)
	}
	return n, nil
}

// scanBody finds the NUL that ends the frame.
func (s *scanner) scanBody(b []byte, lim Limits) (int, error) {
	if s.clen >= 0 {
		end := s.bodyStart + s.clen
		if len(b) <= end {
			return 0, ErrIncomplete
		}
		if b[end] != 0 {
			return 0, protocolError(ErrContentLengthMismatch,
				"no NUL after the %d body bytes given by content-length", s.clen)
		}
		return end, nil
	}
	// The NUL may sit anywhere in the first MaxBodyBytes+1 bytes.
	from := s.bodyStart + s.searched
	to := min(len(b), s.bodyStart+lim.MaxBodyBytes+1)
	if from < to {
		s.examined += to - from
		if i := bytes.IndexByte(b[from:to], 0); i >= 0 {
			return from + i, nil
		}
		s.searched = to - s.bodyStart
	}
	if s.searched > lim.MaxBodyBytes {
		return 0, protocolError(ErrFrameTooLarge, "frame body exceeds %d bytes", lim.MaxBodyBytes)
	}
	return 0, ErrIncomplete
}

// frameAndHeader lets build allocate a frame and its header together.
type frameAndHeader struct {
	f frame.Frame
	h frame.Header
}

// inlineHeaders is how many header lines build collects without a heap
// allocation of its own (the frame's header slice is always allocated).
const inlineHeaders = 16

// build makes the frame that scan validated; nul is the offset of its NUL.
//
// All raw header text is turned into one string, and names and values that
// need no unescaping are substrings of it: one allocation for any number of
// headers. Allocations: the frame with its header, the header slice, that
// string, one string per escaped name or value, and the body.
func (s *scanner) build(b []byte, nul int) *frame.Frame {
	fh := &frameAndHeader{}
	fh.f.Command = s.cmd
	fh.f.Header = &fh.h
	if s.headers > 0 {
		var inline [2 * inlineHeaders]string
		entries := inline[:0]
		if s.headers > inlineHeaders {
			entries = make([]string, 0, 2*s.headers)
		}
		block := string(b[s.hdrStart:s.hdrEnd])
		for len(block) > 0 {
			lf := strings.IndexByte(block, '\n')
			line := block[:lf]
			block = block[lf+1:]
			if s.crlf && len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			colon := strings.IndexByte(line, ':')
			name, value := line[:colon], line[colon+1:]
			if s.unescape {
				name, value = unescape(name), unescape(value)
			}
			entries = append(entries, name, value)
		}
		fh.h = *frame.NewHeader(entries...)
	}
	if body := b[s.bodyStart:nul]; len(body) > 0 {
		fh.f.Body = append([]byte(nil), body...)
	}
	return &fh.f
}

// unescape decodes a header name or value that checkEscapes accepted.
// Without a backslash it returns raw itself, allocating nothing.
func unescape(raw string) string {
	i := strings.IndexByte(raw, '\\')
	if i < 0 {
		return raw
	}
	var sb strings.Builder
	sb.Grow(len(raw) - 1)
	sb.WriteString(raw[:i])
	for ; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		i++
		switch raw[i] {
		case 'n':
			sb.WriteByte('\n')
		case 'c':
			sb.WriteByte(':')
		case 'r':
			sb.WriteByte('\r')
		default: // '\\'
			sb.WriteByte('\\')
		}
	}
	return sb.String()
}

// lookupCommand returns the command constant equal to line (so the frame's
// Command needs no allocation) and whether there is one.
func lookupCommand(line []byte) (string, bool) {
	switch string(line) {
	case frame.CONNECT:
		return frame.CONNECT, true
	case frame.STOMP:
		return frame.STOMP, true
	case frame.CONNECTED:
		return frame.CONNECTED, true
	case frame.SEND:
		return frame.SEND, true
	case frame.SUBSCRIBE:
		return frame.SUBSCRIBE, true
	case frame.UNSUBSCRIBE:
		return frame.UNSUBSCRIBE, true
	case frame.ACK:
		return frame.ACK, true
	case frame.NACK:
		return frame.NACK, true
	case frame.BEGIN:
		return frame.BEGIN, true
	case frame.COMMIT:
		return frame.COMMIT, true
	case frame.ABORT:
		return frame.ABORT, true
	case frame.DISCONNECT:
		return frame.DISCONNECT, true
	case frame.MESSAGE:
		return frame.MESSAGE, true
	case frame.RECEIPT:
		return frame.RECEIPT, true
	case frame.ERROR:
		return frame.ERROR, true
	}
	return "", false
}

// commands lists the 15 STOMP commands, for isCommandPrefix.
var commands = [...]string{
	frame.CONNECT, frame.STOMP, frame.CONNECTED, frame.SEND, frame.SUBSCRIBE,
	frame.UNSUBSCRIBE, frame.ACK, frame.NACK, frame.BEGIN, frame.COMMIT,
	frame.ABORT, frame.DISCONNECT, frame.MESSAGE, frame.RECEIPT, frame.ERROR,
}

// isCommandPrefix reports whether p (a command line without its LF) could
// still grow into a command, optionally followed by CR.
func isCommandPrefix(p []byte) bool {
	for _, c := range commands {
		switch {
		case len(p) <= len(c):
			if string(p) == c[:len(p)] {
				return true
			}
		case len(p) == len(c)+1:
			if string(p[:len(c)]) == c && p[len(c)] == '\r' {
				return true
			}
		}
	}
	return false
}
