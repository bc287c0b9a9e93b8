package stompwire

import (
	"io"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

// seedFrames are real frames as clients and brokers send them. The fuzz
// targets start from these (and `go test` runs them as plain tests).
var seedFrames = []string{
	// stomp.py 1.2 (STOMP command, CR LF) and 1.1 (CONNECT).
	"STOMP\naccept-version:1.2\nhost:localhost\nlogin:guest\npasscode:guest\nheart-beat:0,0\n\n\x00",
	"CONNECT\naccept-version:1.1\nhost:localhost\nheart-beat:10000,10000\n\n\x00",
	// Net::Stomp 1.0: no accept-version, body-less CONNECT with a trailing LF.
	"CONNECT\nlogin:hello\npasscode:there\n\n\x00\n",
	// RabbitMQ's test client: a CONNECT whose body is a lone LF.
	"CONNECT\nlogin:guest\npasscode:guest\n\n\n\x00",
	// ActiveMQ's telnet-style 1.2 frames.
	"CONNECT\r\naccept-version:1.2\r\nlogin:system\r\npasscode:manager\r\n\r\n\x00\r\n",
	"SUBSCRIBE\r\nid:1\r\ndestination:/queue/test\r\nreceipt:1\r\n\r\n\x00\r\n",
	// SEND with content-length and embedded NULs; SEND without.
	"SEND\ndestination:/queue/a\ncontent-type:application/octet-stream\ncontent-length:5\n\na\x00b\x00c\x00",
	"SEND\ndestination:/topic/news\nreceipt:r-7\n\nhello world\x00\n\n",
	"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client-individual\n\n\x00",
	"ACK\nid:m-1\ntransaction:tx1\n\n\x00",
	"BEGIN\ntransaction:tx1\n\n\x00COMMIT\ntransaction:tx1\n\n\x00",
	"MESSAGE\ndestination:/queue/a\\cb\nmessage-id:1\nsubscription:0\nack:42\nx:line\\nbreak\\\\\n\nbody\x00",
	"ERROR\nmessage:bad frame\\r\ncontent-length:3\n\nxyz\x00",
	"DISCONNECT\nreceipt:77\n\n\x00",
	// Heart-beats.
	"\n",
	"\r\n\n\r\n",
}

// fuzzLimits maps a fuzzer byte to small limits, so inputs of a few hundred
// bytes reach every limit.
func fuzzLimits(sel uint8) Limits {
	return Limits{
		MaxHeaderLines:     1 + int(sel&7),
		MaxHeaderLineBytes: 8 + 8*int(sel>>3&7),
		MaxBodyBytes:       16 << (sel >> 6),
	}
}

// splitReader returns first on its first Read and then at most step bytes
// per Read, so the fuzzer chooses where frames are cut.
type splitReader struct {
	first, rest []byte
	step        int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.first) > 0 {
		n := copy(p, s.first)
		s.first = s.first[n:]
		return n, nil
	}
	if len(s.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

// FuzzReader feeds arbitrary bytes to a Reader in fuzzer-chosen pieces. The
// Reader must not panic, must stay within the limits, and must return the
// same frames and the same ending as Parse over the whole input.
func FuzzReader(f *testing.F) {
	for i, s := range seedFrames {
		f.Add([]byte(s), uint16(i), uint8(i), uint8(i), uint8(i*37))
		f.Add([]byte(s+seedFrames[(i+1)%len(seedFrames)]), uint16(len(s)/2), uint8(0), uint8(2), uint8(255))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16, step, ver, limSel uint8) {
		v := Version(ver % 3)
		lim := fuzzLimits(limSel)
		want, wantEnd := parseAll(data, v, lim)

		cut := int(split) % (len(data) + 1)
		r := NewReader(&splitReader{first: data[:cut], rest: data[cut:], step: 1 + int(step)}, lim)
		r.SetVersion(v)
		r.initial = 1 + int(step)%64 // small, so growth and compaction happen
		var got []*frame.Frame
		var end error
		for range len(data) + 2 { // each Read consumes a byte or ends
			var fr *frame.Frame
			fr, end = r.Read()
			if r.Buffered() > r.maxBuf || len(r.buf) > r.maxBuf {
				t.Fatalf("buffer %d (holding %d) exceeds the bound %d", len(r.buf), r.Buffered(), r.maxBuf)
			}
			if end != nil {
				break
			}
			if fr != nil {
				if fr.Header.Len() > lim.MaxHeaderLines || len(fr.Body) > lim.MaxBodyBytes {
					t.Fatalf("frame beyond the limits %+v: %s", lim, showFrame(fr))
				}
				got = append(got, fr)
			}
		}
		if !sameEnd(end, wantEnd) {
			t.Fatalf("Reader ended with %v, Parse with %v", end, wantEnd)
		}
		if len(got) != len(want) {
			t.Fatalf("Reader returned %d frames, Parse %d", len(got), len(want))
		}
		for i := range got {
			if d := frameDiff(got[i], want[i]); d != "" {
				t.Fatalf("frame %d: %s", i, d)
			}
		}
	})
}

// FuzzRoundTrip checks that whatever Parse accepts, AppendFrame encodes so
// that Parse gives the same frame back, and that encoding is then stable.
func FuzzRoundTrip(f *testing.F) {
	for i, s := range seedFrames {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, ver uint8) {
		v := Version(ver % 3)
		lim := Limits{MaxHeaderLines: 32, MaxHeaderLineBytes: 256, MaxBodyBytes: 4096}
		frames, _ := parseAll(data, v, lim)
		// Escaping a raw ':' the parser tolerated in a value makes a
		// line longer, up to twice as long.
		relaxed := lim
		relaxed.MaxHeaderLineBytes *= 2
		for _, f1 := range frames {
			wire := AppendFrame(nil, f1, v)
			f2, n, err := Parse(wire, v, relaxed)
			if err != nil {
				t.Fatalf("Parse(AppendFrame(%s)) = %v; wire %q", showFrame(f1), err, wire)
			}
			if n != len(wire) {
				t.Fatalf("Parse consumed %d of %d bytes of %q", n, len(wire), wire)
			}
			if d := frameDiff(f2, f1); d != "" {
				t.Fatalf("round trip through %q: %s", wire, d)
			}
			if again := AppendFrame(nil, f2, v); string(again) != string(wire) {
				t.Fatalf("encoding not stable: %q then %q", wire, again)
			}
		}
	})
}
