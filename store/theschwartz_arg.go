package store

// Telling a Perl Storable arg from plain bytes.

// Values of stompwire.HeaderTheSchwartzArg.
const (
	// ArgStorable: the body is a Perl Storable image (Storable::nfreeze or
	// freeze output), which TheSchwartz thaws before a Perl worker sees it.
	ArgStorable = "storable"
	// ArgBytes: the body is the arg exactly as stored.
	ArgBytes = "bytes"
)

// argKind is stompwire.HeaderTheSchwartzArg's value for arg.
func argKind(arg []byte) string {
	if looksLikeStorable(arg) {
		return ArgStorable
	}
	return ArgBytes
}

// looksLikeStorable applies the test TheSchwartz::Job's _cond_thaw makes
// before it thaws an arg: Storable::read_magic must accept the start of an
// in-memory image (freeze/nfreeze output) with a major version of 2 to 4
// (read_magic refuses above 4; _cond_thaw allows 2 to 5). The first byte is
// major<<1 | netorder, the second the minor version; a native-order image
// then names its byte order (4 or 8 bytes) and int, long, pointer and, from
// version 2.2 on, NV sizes. TheSchwartz also requires the thaw to succeed,
// which only Perl can try, so a non-Storable arg that happens to start like
// one is reported as storable here and still handed to Perl workers as is.
func looksLikeStorable(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	major, netorder, minor := int(b[0]>>1), b[0]&1 == 1, int(b[1])
	if major < 2 || major > 4 {
		return false
	}
	if netorder {
		return true
	}
	if len(b) < 3 {
		return false
	}
	n := int(b[2])
	if n != 4 && n != 8 {
		return false
	}
	need := 3 + n + 3 // byte order, then int, long and pointer sizes
	if major > 2 || minor >= 2 {
		need++ // NV size
	}
	return len(b) >= need
}
