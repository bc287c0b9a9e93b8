package stompwire

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

// parseCase is one Parse call and its expected result. want == nil with
// err == nil means a heart-beat. n == 0 with err == nil means "all of in".
type parseCase struct {
	name string
	in   string
	v    Version
	lim  Limits
	want *frame.Frame
	n    int
	err  error
}

// Small limits used by the limit cases below.
var (
	small     = Limits{MaxHeaderLines: 2, MaxHeaderLineBytes: 8, MaxBodyBytes: 10}
	smallBody = Limits{MaxBodyBytes: 10}
)

var parseCases = []parseCase{
	// Heart-beats and line ends between frames.
	{name: "heart-beat LF", in: "\n", v: V12},
	{name: "heart-beat CRLF v1.2", in: "\r\n", v: V12},
	{name: "heart-beat CRLF v1.1", in: "\r\n", v: V11},
	{name: "heart-beat CRLF v1.0", in: "\r\n", v: V10},
	{name: "heart-beat run", in: "\n\r\n\n", v: V12},
	{name: "heart-beat then lone CR", in: "\n\r", v: V12, n: 1},
	{name: "lone CR is incomplete", in: "\r", v: V12, err: ErrIncomplete},
	{name: "empty input is incomplete", in: "", v: V12, err: ErrIncomplete},
	{name: "leading EOLs before a frame are a heart-beat", in: "\n\r\nSEND\n\n\x00", v: V12, n: 3},

	// Commands.
	{name: "minimal frame", in: "DISCONNECT\n\n\x00", v: V12, want: fr("DISCONNECT", "")},
	{name: "unknown command", in: "FOO\n\n\x00", v: V12, err: ErrUnknownCommand},
	{name: "commands are case-sensitive", in: "send\n\n\x00", v: V12, err: ErrUnknownCommand},
	{name: "command prefix is incomplete", in: "SUBSCR", v: V12, err: ErrIncomplete},
	{name: "not a command prefix fails at once", in: "SENDX", v: V12, err: ErrUnknownCommand},
	{name: "HTTP fails at once", in: "GET / HTTP/1.1\r\nHost: x", v: V12, err: ErrUnknownCommand},
	{name: "long line without LF fails at once", in: "SEND" + strings.Repeat("A", 20), v: V12, err: ErrUnknownCommand},
	{name: "NUL as command", in: "\x00\n", v: V12, err: ErrUnknownCommand},
	{name: "CR then garbage", in: "\rX", v: V12, err: ErrUnknownCommand},
	{name: "command line over a tiny limit", in: "COMMIT\n\n\x00", v: V12, lim: Limits{MaxHeaderLineBytes: 4}, err: ErrHeaderLineTooLong},
	{name: "command line at a tiny limit", in: "SEND\n\n\x00", v: V12, lim: Limits{MaxHeaderLineBytes: 4}, want: fr("SEND", "")},

	// Frame ends.
	{name: "EOLs after NUL are consumed", in: "SEND\na:b\n\nhi\x00\n\r\n\n", v: V12, want: fr("SEND", "hi", "a", "b")},
	{name: "trailing lone CR is left", in: "SEND\n\n\x00\n\r", v: V12, want: fr("SEND", ""), n: 8},
	{name: "next frame is left", in: "SEND\n\n\x00ACK\nid:1\n\n\x00", v: V12, want: fr("SEND", ""), n: 7},
	{name: "body without content-length", in: "SEND\n\nhello world\x00", v: V12, want: fr("SEND", "hello world")},

	// Headers.
	{name: "repeated headers kept in order", in: "SEND\nfoo:1\nbar:x\nfoo:2\n\n\x00", v: V12,
		want: fr("SEND", "", "foo", "1", "bar", "x", "foo", "2")},
	{name: "no trimming v1.2", in: "SEND\n key : value \n\n\x00", v: V12, want: fr("SEND", "", " key ", " value ")},
	{name: "no trimming v1.0", in: "SEND\n key : value \n\n\x00", v: V10, want: fr("SEND", "", " key ", " value ")},
	{name: "split at the first colon", in: "SEND\na:b:c\n\n\x00", v: V10, want: fr("SEND", "", "a", "b:c")},
	{name: "raw colon in a v1.2 value is tolerated", in: "SEND\na:b:c\n\n\x00", v: V12, want: fr("SEND", "", "a", "b:c")},
	{name: "empty value", in: "SEND\na:\n\n\x00", v: V12, want: fr("SEND", "", "a", "")},
	{name: "header without colon", in: "SEND\nnocolon\n\n\x00", v: V12, err: ErrBadHeader},
	{name: "empty header name", in: "SEND\n:v\n\n\x00", v: V12, err: ErrBadHeader},
	{name: "missing blank line fails at once", in: "SEND\ndestination:/q\n\x00", v: V12, err: ErrBadHeader},
	{name: "NUL in a header value", in: "SEND\na:b\x00c\n\n\x00", v: V12, err: ErrBadHeader},

	// UTF-8: header names and values must be text; bodies need not be.
	{name: "UTF-8 header", in: "SEND\nd\u00e9st:/queue/\u00fcber\u2603\n\n\x00", v: V12, want: fr("SEND", "", "d\u00e9st", "/queue/\u00fcber\u2603")},
	{name: "invalid UTF-8 value", in: "SEND\ndestination:/queue/\xff\xfe\n\n\x00", v: V12, err: ErrInvalidUTF8},
	{name: "invalid UTF-8 value v1.0", in: "SEND\ndestination:/queue/\xff\n\n\x00", v: V10, err: ErrInvalidUTF8},
	{name: "truncated UTF-8 sequence", in: "SEND\na:ok\xc3\n\n\x00", v: V12, err: ErrInvalidUTF8},
	{name: "UTF-8 cut by an escape", in: "SEND\na:\xc3\\n\n\n\x00", v: V12, err: ErrInvalidUTF8},
	{name: "overlong encoding", in: "SEND\na:\xc0\xaf\n\n\x00", v: V11, err: ErrInvalidUTF8},
	{name: "surrogate", in: "SEND\na:\xed\xa0\x80\n\n\x00", v: V12, err: ErrInvalidUTF8},
	{name: "invalid UTF-8 name", in: "SEND\n\xfe:v\n\n\x00", v: V12, err: ErrInvalidUTF8},
	{name: "invalid UTF-8 in CONNECT", in: "CONNECT\nlogin:\xff\n\n\x00", v: V12, err: ErrInvalidUTF8},
	{name: "binary body is fine", in: "SEND\ncontent-length:3\n\n\xff\x00\xfe\x00", v: V12, want: fr("SEND", "\xff\x00\xfe", "content-length", "3")},

	// Escapes by version.
	{name: `\n v1.0 literal`, in: "MESSAGE\na:x\\ny\n\n\x00", v: V10, want: fr("MESSAGE", "", "a", `x\ny`)},
	{name: `\n v1.1`, in: "MESSAGE\na:x\\ny\n\n\x00", v: V11, want: fr("MESSAGE", "", "a", "x\ny")},
	{name: `\n v1.2`, in: "MESSAGE\na:x\\ny\n\n\x00", v: V12, want: fr("MESSAGE", "", "a", "x\ny")},
	{name: `\c v1.0 literal`, in: "SEND\na:x\\cy\n\n\x00", v: V10, want: fr("SEND", "", "a", `x\cy`)},
	{name: `\c v1.1`, in: "SEND\na:x\\cy\n\n\x00", v: V11, want: fr("SEND", "", "a", "x:y")},
	{name: `\c v1.2`, in: "SEND\na:x\\cy\n\n\x00", v: V12, want: fr("SEND", "", "a", "x:y")},
	{name: `\\ v1.0 literal`, in: "SEND\na:x\\\\y\n\n\x00", v: V10, want: fr("SEND", "", "a", `x\\y`)},
	{name: `\\ v1.1`, in: "SEND\na:x\\\\y\n\n\x00", v: V11, want: fr("SEND", "", "a", `x\y`)},
	{name: `\\ v1.2`, in: "SEND\na:x\\\\y\n\n\x00", v: V12, want: fr("SEND", "", "a", `x\y`)},
	{name: `\r v1.0 literal`, in: "SEND\na:x\\ry\n\n\x00", v: V10, want: fr("SEND", "", "a", `x\ry`)},
	{name: `\r v1.1 is fatal`, in: "SEND\na:x\\ry\n\n\x00", v: V11, err: ErrBadEscape},
	{name: `\r v1.2`, in: "SEND\na:x\\ry\n\n\x00", v: V12, want: fr("SEND", "", "a", "x\ry")},
	{name: `\t v1.0 literal`, in: "SEND\na:x\\ty\n\n\x00", v: V10, want: fr("SEND", "", "a", `x\ty`)},
	{name: `\t v1.1 is fatal`, in: "SEND\na:x\\ty\n\n\x00", v: V11, err: ErrBadEscape},
	{name: `\t v1.2 is fatal`, in: "SEND\na:x\\ty\n\n\x00", v: V12, err: ErrBadEscape},
	{name: `lone trailing backslash v1.0 literal`, in: "SEND\na:x\\\n\n\x00", v: V10, want: fr("SEND", "", "a", `x\`)},
	{name: `lone trailing backslash v1.1`, in: "SEND\na:x\\\n\n\x00", v: V11, err: ErrBadEscape},
	{name: `lone trailing backslash v1.2`, in: "SEND\na:x\\\n\n\x00", v: V12, err: ErrBadEscape},
	{name: `lone backslash ending a name`, in: "SEND\na\\:x\n\n\x00", v: V12, err: ErrBadEscape},
	{name: `escaped name`, in: "SEND\na\\cb\\\\:\\n\n\n\x00", v: V12, want: fr("SEND", "", `a:b\`, "\n")},
	{name: `all escapes in one value`, in: "SEND\nk:\\\\\\c\\n\\r-\\\\n\n\n\x00", v: V12, want: fr("SEND", "", "k", "\\:\n\r-\\n")},
	{name: `CONNECT is never unescaped`, in: "CONNECT\npasscode:a\\tb\\n\n\n\x00", v: V12, want: fr("CONNECT", "", "passcode", `a\tb\n`)},
	{name: `STOMP is never unescaped`, in: "STOMP\nlogin:a\\c\\\n\n\x00", v: V11, want: fr("STOMP", "", "login", `a\c\`)},
	{name: `CONNECTED is never unescaped`, in: "CONNECTED\nserver:x\\ty\n\n\x00", v: V12, want: fr("CONNECTED", "", "server", `x\ty`)},
	{name: `ERROR is unescaped`, in: "ERROR\nmessage:a\\cb\n\n\x00", v: V12, want: fr("ERROR", "", "message", "a:b")},

	// Line ends.
	{name: "CRLF v1.2", in: "SEND\r\na:b\r\n\r\nbody\x00", v: V12, want: fr("SEND", "body", "a", "b")},
	{name: "mixed LF and CRLF v1.2", in: "SEND\na:b\r\nc:d\n\r\n\x00", v: V12, want: fr("SEND", "", "a", "b", "c", "d")},
	{name: "only one CR is stripped", in: "SEND\na:b\r\r\n\n\x00", v: V12, want: fr("SEND", "", "a", "b\r")},
	{name: "CRLF command v1.1", in: "SEND\r\na:b\r\n\r\n\x00", v: V11, err: ErrUnknownCommand},
	{name: "CRLF command v1.0", in: "SEND\r\n\r\n\x00", v: V10, err: ErrUnknownCommand},
	{name: "CR is value text in v1.1", in: "SEND\na:b\r\n\n\x00", v: V11, want: fr("SEND", "", "a", "b\r")},
	{name: "CRLF blank line v1.1", in: "SEND\na:b\n\r\n\x00", v: V11, err: ErrBadHeader},
	{name: "CRLF CONNECT v1.0", in: "CONNECT\r\naccept-version:1.0\r\nhost:h\r\n\r\n\x00", v: V10,
		want: fr("CONNECT", "", "accept-version", "1.0", "host", "h")},
	{name: "CRLF STOMP v1.1", in: "STOMP\r\naccept-version:1.1\r\n\r\n\x00\r\n", v: V11,
		want: fr("STOMP", "", "accept-version", "1.1")},
	{name: "CONNECT value ending in CR", in: "CONNECT\r\nlogin:x\r\r\n\r\n\x00", v: V12, err: ErrBadHeader},
	{name: "CONNECT value ending in CR v1.0", in: "CONNECT\nlogin:x\r\r\n\n\x00", v: V10, err: ErrBadHeader},
	{name: "CONNECT value with CR inside", in: "CONNECT\nlogin:x\ry\n\n\x00", v: V12, want: fr("CONNECT", "", "login", "x\ry")},
	{name: "escaped value may end in CR v1.2", in: "SEND\na:b\r\r\n\n\x00", v: V12, want: fr("SEND", "", "a", "b\r")},
	{name: "CRLF blank line is incomplete at its CR", in: "SEND\r\na:b\r\n\r", v: V12, err: ErrIncomplete},

	// content-length.
	{name: "embedded NULs with content-length", in: "SEND\ncontent-length:5\n\na\x00b\x00c\x00", v: V12,
		want: fr("SEND", "a\x00b\x00c", "content-length", "5")},
	{name: "content-length 0", in: "SEND\ncontent-length:0\n\n\x00", v: V12, want: fr("SEND", "", "content-length", "0")},
	{name: "content-length with leading zeros", in: "SEND\ncontent-length:003\n\nabc\x00", v: V12, want: fr("SEND", "abc", "content-length", "003")},
	{name: "content-length short body", in: "SEND\ncontent-length:2\n\nabc\x00", v: V12, err: ErrContentLengthMismatch},
	{name: "content-length long body", in: "SEND\ncontent-length:4\n\nabc\x00\n", v: V12, err: ErrContentLengthMismatch},
	{name: "content-length body incomplete", in: "SEND\ncontent-length:5\n\nab", v: V12, err: ErrIncomplete},
	{name: "content-length NUL incomplete", in: "SEND\ncontent-length:2\n\nab", v: V12, err: ErrIncomplete},
	{name: "content-length negative", in: "SEND\ncontent-length:-1\n\n\x00", v: V12, err: ErrBadContentLength},
	{name: "content-length plus sign", in: "SEND\ncontent-length:+1\n\nx\x00", v: V12, err: ErrBadContentLength},
	{name: "content-length empty", in: "SEND\ncontent-length:\n\n\x00", v: V12, err: ErrBadContentLength},
	{name: "content-length leading space", in: "SEND\ncontent-length: 1\n\nx\x00", v: V10, err: ErrBadContentLength},
	{name: "content-length trailing space", in: "SEND\ncontent-length:1 \n\nx\x00", v: V12, err: ErrBadContentLength},
	{name: "content-length hex", in: "SEND\ncontent-length:0x1\n\nx\x00", v: V12, err: ErrBadContentLength},
	{name: "content-length escaped", in: "SEND\ncontent-length:1\\c\n\nx\x00", v: V12, err: ErrBadContentLength},
	{name: "content-length huge digits", in: "SEND\ncontent-length:99999999999999999999999999\n\n", v: V12, err: ErrFrameTooLarge},
	{name: "content-length huge then junk", in: "SEND\ncontent-length:99999999999999999999999999x\n\n", v: V12, err: ErrBadContentLength},
	{name: "first content-length counts", in: "SEND\ncontent-length:3\ncontent-length:junk\n\nabc\x00", v: V12,
		want: fr("SEND", "abc", "content-length", "3", "content-length", "junk")},
	{name: "content-length name is case-sensitive", in: "SEND\nContent-Length:3\n\nab\x00", v: V12,
		want: fr("SEND", "ab", "Content-Length", "3")},

	// Limits.
	{name: "content-length at the body limit", in: "SEND\ncontent-length:10\n\n0123456789\x00", v: V12, lim: smallBody,
		want: fr("SEND", "0123456789", "content-length", "10")},
	{name: "content-length over the body limit", in: "SEND\ncontent-length:11\n\n", v: V12, lim: smallBody, err: ErrFrameTooLarge},
	{name: "content-length 2e9 default limits", in: "SEND\ndestination:/q\ncontent-length:2000000000\n\nxx", v: V12, err: ErrFrameTooLarge},
	{name: "body at the limit", in: "SEND\n\n0123456789\x00", v: V12, lim: small, want: fr("SEND", "0123456789")},
	{name: "body over the limit", in: "SEND\n\n0123456789A\x00", v: V12, lim: small, err: ErrFrameTooLarge},
	{name: "body over the limit fails before its NUL", in: "SEND\n\n0123456789A", v: V12, lim: small, err: ErrFrameTooLarge},
	{name: "body at the limit waits for its NUL", in: "SEND\n\n0123456789", v: V12, lim: small, err: ErrIncomplete},
	{name: "headers at the count limit", in: "SEND\na:1\nb:2\n\n\x00", v: V12, lim: small, want: fr("SEND", "", "a", "1", "b", "2")},
	{name: "headers over the count limit", in: "SEND\na:1\nb:2\nc:3\n\n\x00", v: V12, lim: small, err: ErrTooManyHeaders},
	{name: "headers over the count limit fail at once", in: "SEND\na:1\nb:2\nc", v: V12, lim: small, err: ErrTooManyHeaders},
	{name: "line at the length limit", in: "SEND\nabcd:123\n\n\x00", v: V12, lim: small, want: fr("SEND", "", "abcd", "123")},
	{name: "line at the length limit with CRLF", in: "SEND\r\nabcd:123\r\n\r\n\x00", v: V12, lim: small, want: fr("SEND", "", "abcd", "123")},
	{name: "line over the length limit", in: "SEND\nabcd:1234\n\n\x00", v: V12, lim: small, err: ErrHeaderLineTooLong},
	{name: "line over the length limit fails at once", in: "SEND\nabcd:12345", v: V12, lim: small, err: ErrHeaderLineTooLong},
	{name: "line at the limit plus CR waits for LF", in: "SEND\nabcd:123\r", v: V12, lim: small, err: ErrIncomplete},
	{name: "line at the limit plus CR is too long in v1.1", in: "SEND\nabcd:123\r", v: V11, lim: small, err: ErrHeaderLineTooLong},
	{name: "line length counts escapes", in: "SEND\nab:\\c\\c\\c\n\n\x00", v: V12, lim: small, err: ErrHeaderLineTooLong},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			f, n, err := Parse([]byte(tc.in), tc.v, tc.lim)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Parse(%q) error = %v, want %v", tc.in, err, tc.err)
				}
				if f != nil || n != 0 {
					t.Errorf("Parse(%q) = %s, %d with error, want nil, 0", tc.in, showFrame(f), n)
				}
				checkProtocolError(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tc.in, err)
			}
			wantN := tc.n
			if wantN == 0 {
				wantN = len(tc.in)
			}
			if n != wantN {
				t.Errorf("Parse(%q) consumed %d bytes, want %d", tc.in, n, wantN)
			}
			if d := frameDiff(f, tc.want); d != "" {
				t.Error(d)
			}
			if f != nil && f.Header == nil {
				t.Error("frame has a nil Header")
			}
		})
	}
}

// checkProtocolError checks the shape of an error returned by Parse.
func checkProtocolError(t *testing.T, err, sentinel error) {
	t.Helper()
	if sentinel == ErrIncomplete {
		if err != ErrIncomplete {
			t.Errorf("incomplete error is %#v, want the bare sentinel", err)
		}
		return
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *ProtocolError", err)
	}
	if pe.Err != sentinel {
		t.Errorf("ProtocolError.Err = %v, want %v", pe.Err, sentinel)
	}
	if pe.Msg == "" || strings.ContainsAny(pe.Msg, "\r\n\x00") {
		t.Errorf("ProtocolError.Msg = %q: must be non-empty and fit in a header", pe.Msg)
	}
	if !strings.HasPrefix(err.Error(), "stompwire: ") {
		t.Errorf("Error() = %q, want the package prefix", err.Error())
	}
}

// TestParsePrefixes checks that every proper prefix of a valid frame asks
// for more input, and that every error is already reported on the shortest
// input that shows it (more input never changes the outcome).
func TestParsePrefixes(t *testing.T) {
	for _, tc := range parseCases {
		if !isCommandStart(tc.in) {
			continue // heart-beats: their prefixes are heart-beats too
		}
		t.Run(tc.name, func(t *testing.T) {
			wholeFrame, _, whole := Parse([]byte(tc.in), tc.v, tc.lim)
			for i := 0; i < len(tc.in); i++ {
				f, n, err := Parse([]byte(tc.in[:i]), tc.v, tc.lim)
				if err == nil {
					// Only possible once the prefix holds the whole
					// frame, which must then be the same.
					if d := frameDiff(f, wholeFrame); d != "" || n > i {
						t.Fatalf("prefix %q parsed as %s (%d bytes), whole input as %s",
							tc.in[:i], showFrame(f), n, showFrame(wholeFrame))
					}
					continue
				}
				if err == ErrIncomplete {
					continue
				}
				// An error on a prefix must be the error of the whole input.
				if !sameEnd(err, whole) {
					t.Fatalf("prefix %q fails with %v, whole input with %v", tc.in[:i], err, whole)
				}
				if tc.err == nil {
					t.Fatalf("prefix %q of a valid frame fails with %v", tc.in[:i], err)
				}
				return
			}
		})
	}
}

func isCommandStart(s string) bool {
	return s != "" && s[0] != '\n' && s[0] != '\r'
}

// TestParseManyHeaders covers frames with more headers than build collects
// on the stack.
func TestParseManyHeaders(t *testing.T) {
	var in strings.Builder
	want := frame.New(frame.MESSAGE)
	in.WriteString("MESSAGE\n")
	for i := range 40 {
		name, value := fmt.Sprintf("h%d", i), fmt.Sprintf("v\\c%d", i)
		in.WriteString(name + ":" + value + "\n")
		want.Header.Add(name, fmt.Sprintf("v:%d", i))
	}
	in.WriteString("\n\x00")
	f, _, err := Parse([]byte(in.String()), V12, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d := frameDiff(f, want); d != "" {
		t.Error(d)
	}
}

// TestErrorMessagesQuoteBriefly checks that a long offending line is quoted
// only in part, escaped, in the message.
func TestErrorMessagesQuoteBriefly(t *testing.T) {
	_, _, err := Parse([]byte("SEND\n"+strings.Repeat("\x01", 200)+"\n\n\x00"), V12, Limits{})
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Err != ErrBadHeader {
		t.Fatalf("error = %v, want ErrBadHeader", err)
	}
	if len(pe.Msg) > 300 || !strings.HasSuffix(pe.Msg, "...") || strings.Contains(pe.Msg, "\x01") {
		t.Errorf("message %q: want a short, escaped, truncated quote", pe.Msg)
	}
}

// TestParseEveryCommand checks that each of the 15 commands is accepted.
func TestParseEveryCommand(t *testing.T) {
	for _, cmd := range commands {
		f, _, err := Parse([]byte(cmd+"\n\n\x00"), V12, Limits{})
		if err != nil || f.Command != cmd {
			t.Errorf("Parse(%s) = %s, %v", cmd, showFrame(f), err)
		}
	}
}

// TestParseTooLargeAllocatesLittle checks that a content-length far over the
// limit is refused before anything sized by it is allocated (go-stomp's
// reader allocates 1.9 GB for this 60-byte frame).
func TestParseTooLargeAllocatesLittle(t *testing.T) {
	in := []byte("SEND\ndestination:/queue/a\ncontent-length:2000000000\n\nxxxxxx")
	lim := DefaultLimits()
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := Parse(in, V12, lim); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("Parse error = %v, want ErrFrameTooLarge", err)
		}
	})
	// The *ProtocolError and its message.
	if allocs > 3 {
		t.Errorf("Parse allocated %v times for a refused frame, want <= 3", allocs)
	}
	if got := bytesAllocated(100, func() { Parse(in, V12, lim) }); got > 1024 {
		t.Errorf("Parse allocated %d bytes for a refused frame", got)
	}
}

// bytesAllocated reports how many bytes one call of fn allocates on the
// heap, averaged over runs calls (which hides the runtime's own noise).
func bytesAllocated(runs int, fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestParseAllocations pins the allocation budget of the hot path: the
// frame with its header, the header slice, one string for all header text,
// and the body.
func TestParseAllocations(t *testing.T) {
	wire := AppendFrame(nil, sendFrame256(), V12)
	lim := DefaultLimits()
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := Parse(wire, V12, lim); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("Parse of a 4-header SEND allocated %v times, want <= 4", allocs)
	}
}

// TestParseDoesNotAliasInput checks that the frame stays valid after the
// caller reuses its buffer, as the Reader does.
func TestParseDoesNotAliasInput(t *testing.T) {
	in := []byte("SEND\ndestination:/q\\c1\nx:y\n\nbody\x00")
	f, _, err := Parse(in, V12, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = '#'
	}
	if d := frameDiff(f, fr("SEND", "body", "destination", "/q:1", "x", "y")); d != "" {
		t.Error(d)
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		text string
	}{{V10, "1.0"}, {V11, "1.1"}, {V12, "1.2"}} {
		if got := tc.v.String(); got != tc.text {
			t.Errorf("%d.String() = %q, want %q", tc.v, got, tc.text)
		}
		if v, ok := ParseVersion(tc.text); !ok || v != tc.v {
			t.Errorf("ParseVersion(%q) = %v, %v", tc.text, v, ok)
		}
	}
	for _, bad := range []string{"", "1", "1.3", "2.0", " 1.2", "1.2 "} {
		if _, ok := ParseVersion(bad); ok {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
	if got := Version(7).String(); got != "Version(7)" {
		t.Errorf("Version(7).String() = %q", got)
	}
}

func TestLimitsDefaults(t *testing.T) {
	want := Limits{MaxHeaderLines: 128, MaxHeaderLineBytes: 8192, MaxBodyBytes: 4 << 20}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).withDefaults(); got != want {
		t.Errorf("Limits{}.withDefaults() = %+v, want %+v", got, want)
	}
	huge := Limits{MaxHeaderLines: math.MaxInt, MaxBodyBytes: math.MaxInt}.withDefaults()
	if got := huge.maxFrameBytes(); got != math.MaxInt {
		t.Errorf("maxFrameBytes of huge limits = %d, want it to saturate", got)
	}
	if got := (Limits{MaxHeaderLines: -1, MaxBodyBytes: 7}).withDefaults(); got.MaxHeaderLines != 128 || got.MaxBodyBytes != 7 {
		t.Errorf("withDefaults kept a negative or replaced a set field: %+v", got)
	}
}

// TestProtocolErrorReceipt checks that an error names the receipt of the
// frame it refuses whenever the receipt header was read before the error,
// so the session's ERROR can carry receipt-id; and that the Reader, fed
// byte by byte, reports the same.
func TestProtocolErrorReceipt(t *testing.T) {
	cases := []struct {
		name, in string
		v        Version
		receipt  string
	}{
		{"content-length mismatch", "SEND\nreceipt:r1\ncontent-length:1\n\nab\x00", V12, "r1"},
		{"body too large", "SEND\nreceipt:r2\n\n0123456789ABCDEF\x00", V12, "r2"},
		{"content-length too large", "SEND\nreceipt:r3\ncontent-length:99\n\n", V12, "r3"},
		{"bad header after the receipt", "SEND\nreceipt:r4\nnocolon\n\n\x00", V12, "r4"},
		{"bad escape after the receipt", "SEND\nreceipt:r5\nx:\\t\n\n\x00", V12, "r5"},
		{"too many headers after the receipt", "SEND\nreceipt:r6\na:1\nb:2\nc:3\n\n\x00", V12, "r6"},
		{"escaped receipt is unescaped", "SEND\nreceipt:a\\cb\\\\\nx:\\t\n\n\x00", V12, `a:b\`},
		{"1.0 receipt is raw", "SEND\nreceipt:a\\cb\ncontent-length:x\n\n\x00", V10, `a\cb`},
		{"CR LF receipt", "SEND\r\nreceipt:r7\r\nbad\r\n\r\n\x00", V12, "r7"},
		{"first receipt counts", "SEND\nreceipt:one\nreceipt:two\nbad\n\n\x00", V12, "one"},
		{"empty receipt", "SEND\nreceipt:\nbad\n\n\x00", V12, ""},
		{"bad header before the receipt", "SEND\nbad\nreceipt:r8\n\n\x00", V12, ""},
		{"bad receipt escape", "SEND\nreceipt:\\t\n\n\x00", V12, ""},
		{"unknown command", "SENDX\nreceipt:r9\n\n\x00", V12, ""},
		{"receipt-id is not receipt", "SEND\nreceipt-id:r\nbad\n\n\x00", V12, ""},
	}
	lim := Limits{MaxHeaderLines: 3, MaxBodyBytes: 10}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.in), tc.v, lim)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error = %v, want a *ProtocolError", err)
			}
			if pe.Receipt != tc.receipt {
				t.Errorf("Parse: Receipt = %q, want %q (%v)", pe.Receipt, tc.receipt, err)
			}
			r := NewReader(&splitReader{rest: []byte(tc.in), step: 1}, lim)
			r.SetVersion(tc.v)
			_, err = r.Read()
			if !errors.As(err, &pe) || pe.Receipt != tc.receipt {
				t.Errorf("Reader: error %v, want a *ProtocolError with Receipt %q", err, tc.receipt)
			}
		})
	}
}
