package stompwire

import "strconv"

// Version is a STOMP protocol version. It selects the header escaping and
// line-end rules used by [Parse], [Reader] and [AppendFrame].
//
// Values above V12 are treated like V12 and values below V10 like V10.
type Version int

// The STOMP versions the broker speaks.
const (
	V10 Version = iota // STOMP 1.0: no header escaping, LF line ends.
	V11                // STOMP 1.1: escapes \n \c \\, LF line ends.
	V12                // STOMP 1.2: adds the \r escape and CR LF line ends.
)

// String returns the version as it appears in the accept-version and
// version headers ("1.0", "1.1", "1.2"), or "Version(n)" for other values.
func (v Version) String() string {
	switch v {
	case V10:
		return "1.0"
	case V11:
		return "1.1"
	case V12:
		return "1.2"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// ParseVersion maps a version token from an accept-version or version header
// ("1.0", "1.1", "1.2", exactly, no spaces) to a Version. ok is false for any
// other string; the caller decides what an unknown token means.
func ParseVersion(s string) (v Version, ok bool) {
	switch s {
	case "1.0":
		return V10, true
	case "1.1":
		return V11, true
	case "1.2":
		return V12, true
	}
	return 0, false
}

// escapes reports whether header names and values are escaped in v.
func (v Version) escapes() bool { return v >= V11 }

// crEscape reports whether v knows the \r escape.
func (v Version) crEscape() bool { return v >= V12 }

// crlf reports whether v allows CR LF as a line end in every frame.
func (v Version) crlf() bool { return v >= V12 }
