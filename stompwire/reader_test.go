package stompwire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go-stomp/stomp/v3/frame"
)

// session is a realistic client stream: a CRLF CONNECT, heart-beats, a
// SUBSCRIBE, a SEND whose body holds NULs, a SEND without content-length,
// line ends after frames, and a DISCONNECT.
const session = "CONNECT\r\naccept-version:1.0,1.1,1.2\r\nhost:localhost\r\nheart-beat:10000,10000\r\n\r\n\x00\r\n" +
	"\n\r\n" +
	"SUBSCRIBE\r\nid:0\r\ndestination:/queue/a\\cb\r\nack:client-individual\r\n\r\n\x00" +
	"SEND\ndestination:/queue/a:b\ncontent-length:7\ncontent-type:application/octet-stream\n\n\x00\x01\x00\n\x00\r\n\x00\n\n" +
	"SEND\r\ndestination:/queue/a\\cb\r\n\r\nplain text\x00" +
	"\n" +
	"DISCONNECT\r\nreceipt:77\r\n\r\n\x00\r\n"

var sessionFrames = []*frame.Frame{
	fr("CONNECT", "", "accept-version", "1.0,1.1,1.2", "host", "localhost", "heart-beat", "10000,10000"),
	fr("SUBSCRIBE", "", "id", "0", "destination", "/queue/a:b", "ack", "client-individual"),
	fr("SEND", "\x00\x01\x00\n\x00\r\n", "destination", "/queue/a:b", "content-length", "7", "content-type", "application/octet-stream"),
	fr("SEND", "plain text", "destination", "/queue/a:b"),
	fr("DISCONNECT", "", "receipt", "77"),
}

// readFrames reads until an error, returning the frames (heart-beats left
// out) and the error. It stops after 1000 calls so a bug cannot hang a test.
func readFrames(r *Reader) ([]*frame.Frame, error) {
	var frames []*frame.Frame
	for range 1000 {
		f, err := r.Read()
		if err != nil {
			return frames, err
		}
		if f != nil {
			frames = append(frames, f)
		}
	}
	return frames, errors.New("readFrames: no end after 1000 reads")
}

func checkFrames(t *testing.T, got, want []*frame.Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d frames, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := frameDiff(got[i], want[i]); d != "" {
			t.Errorf("frame %d: %s", i, d)
		}
	}
}

// TestReaderPartialReads reads the session through the testing/iotest
// wrappers, so frames arrive split at every possible point.
func TestReaderPartialReads(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"OneByteReader", iotest.OneByteReader},
		{"HalfReader", iotest.HalfReader},
		{"DataErrReader", iotest.DataErrReader},
		{"DataErrReader+OneByteReader", func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.wrap(strings.NewReader(session)), Limits{})
			frames, err := readFrames(r)
			if err != io.EOF {
				t.Errorf("end = %v, want io.EOF", err)
			}
			checkFrames(t, frames, sessionFrames)
			if r.Buffered() != 0 {
				t.Errorf("Buffered() = %d at EOF", r.Buffered())
			}
			if _, err := r.Read(); err != io.EOF {
				t.Errorf("Read after EOF = %v, want io.EOF again", err)
			}
		})
	}
}

// TestReaderHeartBeats checks that line ends between frames come back as nil
// frames when they arrive on their own.
func TestReaderHeartBeats(t *testing.T) {
	r := NewReader(iotest.OneByteReader(strings.NewReader("\n\r\nSEND\n\n\x00")), Limits{})
	var got []string
	for {
		f, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, showFrame(f))
	}
	want := []string{"<heart-beat>", "<heart-beat>", `"SEND"{body=""}`}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestReaderTimeout checks that a read error such as a deadline is returned
// after the buffered frames, and that Read continues afterwards with the
// partial frame it had.
func TestReaderTimeout(t *testing.T) {
	r := NewReader(iotest.TimeoutReader(iotest.HalfReader(strings.NewReader(session))), Limits{})
	var frames []*frame.Frame
	timeouts := 0
	for range 1000 {
		f, err := r.Read()
		if errors.Is(err, iotest.ErrTimeout) {
			timeouts++
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if f != nil {
			frames = append(frames, f)
		}
	}
	if timeouts != 1 {
		t.Errorf("saw %d timeouts, want 1", timeouts)
	}
	checkFrames(t, frames, sessionFrames)
}

func TestReaderEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		frames int
		err    error
	}{
		{"empty stream", "", 0, io.EOF},
		{"heart-beats only", "\n\n\r\n", 0, io.EOF},
		{"EOF inside headers", "SEND\ndestination:/q\n", 0, io.ErrUnexpectedEOF},
		{"EOF inside body", "SEND\ncontent-length:10\n\nabc", 0, io.ErrUnexpectedEOF},
		{"EOF inside second frame", "SEND\n\n\x00SEN", 1, io.ErrUnexpectedEOF},
		{"EOF after a lone CR", "SEND\n\n\x00\r", 1, io.ErrUnexpectedEOF},
		{"protocol error after a frame", "SEND\n\n\x00FOO\n\n\x00SEND\n\n\x00", 1, ErrUnknownCommand},
		{"too large after a frame", "SEND\n\n\x00SEND\ncontent-length:2000000000\n\n", 1, ErrFrameTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(iotest.HalfReader(strings.NewReader(tc.in)), Limits{})
			frames, err := readFrames(r)
			if len(frames) != tc.frames {
				t.Errorf("got %d frames, want %d", len(frames), tc.frames)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("end = %v, want %v", err, tc.err)
			}
			// Ends are sticky.
			if _, again := r.Read(); again != err {
				t.Errorf("second Read = %v, want %v again", again, err)
			}
		})
	}
}

// TestReaderSetVersion checks that frames pipelined behind CONNECT are
// parsed by the version set after it.
func TestReaderSetVersion(t *testing.T) {
	in := "CONNECT\r\naccept-version:1.0\r\n\r\n\x00SEND\nx:a\\tb\n\n\x00"
	r := NewReader(strings.NewReader(in), Limits{})
	f, err := r.Read()
	if err != nil || f.Command != frame.CONNECT {
		t.Fatalf("Read = %s, %v", showFrame(f), err)
	}
	r.SetVersion(V10)
	f, err = r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if d := frameDiff(f, fr("SEND", "", "x", `a\tb`)); d != "" {
		t.Error(d)
	}

	r = NewReader(strings.NewReader(in), Limits{})
	r.Read()
	r.SetVersion(V11)
	if _, err := r.Read(); !errors.Is(err, ErrBadEscape) {
		t.Errorf("v1.1 Read error = %v, want ErrBadEscape", err)
	}
}

// zeroReader returns (0, nil) forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	r := NewReader(zeroReader{}, Limits{})
	if _, err := r.Read(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("Read = %v, want io.ErrNoProgress", err)
	}
}

// endless yields prefix and then the byte fill forever, counting bytes.
type endless struct {
	prefix []byte
	fill   byte
	n      int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	e.n += len(p)
	return len(p), nil
}

// TestReaderBounded feeds endless input that never completes a frame and
// checks that the Reader gives up at the limits, with a bounded buffer.
func TestReaderBounded(t *testing.T) {
	lim := Limits{MaxHeaderLines: 16, MaxHeaderLineBytes: 1024, MaxBodyBytes: 1 << 20}
	for _, tc := range []struct {
		name   string
		prefix string
		fill   byte
		err    error
	}{
		{"body without NUL", "SEND\n\n", 'x', ErrFrameTooLarge},
		{"endless header line", "SEND\nx:", 'y', ErrHeaderLineTooLong},
		{"blank line then endless LFs", "SEND\n", '\n', ErrFrameTooLarge},
		{"endless command", "", 'S', ErrUnknownCommand},
		{"endless heart-beats", "", '\n', nil}, // never an error, never a growing buffer
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &endless{prefix: []byte(tc.prefix), fill: tc.fill}
			r := NewReader(src, lim)
			var err error
			for i := 0; i < 10000 && err == nil; i++ {
				_, err = r.Read()
				if r.Buffered() > r.maxBuf || len(r.buf) > r.maxBuf {
					t.Fatalf("buffer %d (holding %d) exceeds the bound %d", len(r.buf), r.Buffered(), r.maxBuf)
				}
			}
			if tc.err == nil {
				if err != nil {
					t.Errorf("Read = %v, want only heart-beats", err)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Read = %v, want %v", err, tc.err)
			}
			if max := lim.withDefaults().maxFrameBytes() + 2*readSlack; src.n > max {
				t.Errorf("read %d bytes before refusing, more than the limits allow (%d)", src.n, max)
			}
		})
	}
}

// TestReaderTooLargeAllocatesLittle: a 60-byte frame announcing 2 GB must
// not make the Reader allocate more than its initial buffer.
func TestReaderTooLargeAllocatesLittle(t *testing.T) {
	in := []byte("SEND\ndestination:/queue/a\ncontent-length:2000000000\n\nxxxxxx")
	got := bytesAllocated(20, func() {
		r := NewReader(bytes.NewReader(in), Limits{})
		if _, err := r.Read(); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("Read = %v, want ErrFrameTooLarge", err)
		}
	})
	if got > 2*initialBufferSize {
		t.Errorf("Reader allocated %d bytes for a refused 60-byte frame", got)
	}
}

// TestReaderReleasesBigBuffer checks that a big frame does not pin its
// buffer once it has been returned.
func TestReaderReleasesBigBuffer(t *testing.T) {
	body := bytes.Repeat([]byte("b"), 1<<20)
	wire := AppendFrame(nil, &frame.Frame{Command: "SEND", Header: frame.NewHeader("content-length", "1048576"), Body: body}, V12)
	r := NewReader(bytes.NewReader(wire), Limits{})
	f, err := r.Read()
	if err != nil || len(f.Body) != len(body) {
		t.Fatalf("Read = %v", err)
	}
	if len(r.buf) > releaseThreshold {
		t.Errorf("buffer of %d bytes kept after the big frame", len(r.buf))
	}
}

// chunkReader delivers at most chunk bytes per Read, as a trickling peer
// would.
type chunkReader struct {
	data  []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// TestReaderLinearScan checks that the Reader resumes its scan: a 4 MiB
// frame fed in 16-byte pieces must not be re-scanned or re-copied from its
// start on every read. It counts the work (bytes searched by the scanner,
// bytes moved inside the buffer) rather than timing it: re-scanning from the
// start would search about len²/32 bytes (5·10¹¹ here), linear searching
// about len.
func TestReaderLinearScan(t *testing.T) {
	body := bytes.Repeat([]byte("z"), DefaultMaxBodyBytes)
	manyHeaders := frame.NewHeader()
	for i := range DefaultMaxHeaderLines {
		manyHeaders.Add(fmt.Sprintf("h%d", i), "value")
	}
	for _, tc := range []struct {
		name string
		f    *frame.Frame
	}{
		{"body without content-length", &frame.Frame{Command: "SEND", Header: frame.NewHeader(), Body: body}},
		{"body with content-length", &frame.Frame{Command: "SEND", Header: frame.NewHeader("content-length", strconv.Itoa(len(body))), Body: body}},
		{"many header lines", &frame.Frame{Command: "SEND", Header: manyHeaders}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := AppendFrame(nil, tc.f, V12)
			r := NewReader(&chunkReader{data: wire, chunk: 16}, Limits{})
			f, err := r.Read()
			if err != nil || len(f.Body) != len(tc.f.Body) || f.Header.Len() != tc.f.Header.Len() {
				t.Fatalf("Read = %s, %v", showFrame(f), err)
			}
			// Linear: each byte is searched about once, plus the
			// partial header line re-searched on each read (at most
			// a line); growth by doubling moves each byte fewer than
			// three times on average.
			if max := 2*len(wire) + 1024; r.scan.examined > max {
				t.Errorf("the scanner searched %d bytes for a %d-byte frame (limit %d): it re-scans", r.scan.examined, len(wire), max)
			}
			if max := 3*len(wire) + 1024; r.copied > max {
				t.Errorf("the buffer moved %d bytes for a %d-byte frame (limit %d): it re-copies", r.copied, len(wire), max)
			}
			t.Logf("%d-byte frame in 16-byte pieces: %d bytes searched, %d moved", len(wire), r.scan.examined, r.copied)
		})
	}
}

// TestScannerResumes checks the bookkeeping behind the linear scan: after an
// incomplete parse the scanner remembers the header lines and body bytes it
// has already checked.
func TestScannerResumes(t *testing.T) {
	var s scanner
	lim := DefaultLimits()
	in := []byte("SEND\na:1\nb:2\n\n" + strings.Repeat("x", 1000))
	if _, _, err := s.parse(in[:12], V12, lim); err != ErrIncomplete {
		t.Fatalf("parse = %v, want ErrIncomplete", err)
	}
	if s.phase != phaseHeaders || s.headers != 1 || s.next != len("SEND\na:1\n") {
		t.Errorf("after the first header: phase %d, %d headers, next %d", s.phase, s.headers, s.next)
	}
	if _, _, err := s.parse(in, V12, lim); err != ErrIncomplete {
		t.Fatalf("parse = %v, want ErrIncomplete", err)
	}
	if s.phase != phaseBody || s.searched != 1000 {
		t.Errorf("in the body: phase %d, searched %d, want 1000", s.phase, s.searched)
	}
	f, n, err := s.parse(append(in, 0), V12, lim)
	if err != nil || n != len(in)+1 || len(f.Body) != 1000 {
		t.Fatalf("parse = %s, %d, %v", showFrame(f), n, err)
	}
	if s != (scanner{examined: s.examined}) {
		t.Errorf("scanner not reset after a frame: %+v", s)
	}
}

// TestReaderSmallBuffer reads the session with a buffer that starts at every
// size from 1 byte, so compaction and growth happen at every offset.
func TestReaderSmallBuffer(t *testing.T) {
	for size := 1; size <= 64; size++ {
		for _, wrap := range []func(io.Reader) io.Reader{
			func(r io.Reader) io.Reader { return r },
			iotest.HalfReader,
		} {
			r := NewReader(wrap(strings.NewReader(session+session)), Limits{})
			r.initial = size
			frames, err := readFrames(r)
			if err != io.EOF {
				t.Fatalf("initial buffer %d: end = %v", size, err)
			}
			checkFrames(t, frames, append(sessionFrames[:len(sessionFrames):len(sessionFrames)], sessionFrames...))
		}
	}
}

// TestReaderCompacts checks that pipelined frames left at the end of a full
// buffer are moved to its front rather than making it grow.
func TestReaderCompacts(t *testing.T) {
	one := AppendFrame(nil, fr("SEND", strings.Repeat("b", 900), "destination", "/queue/a"), V12)
	stream := bytes.Repeat(one, 20) // about 18 KiB, frames straddle 4 KiB boundaries
	r := NewReader(bytes.NewReader(stream), Limits{})
	frames, err := readFrames(r)
	if err != io.EOF || len(frames) != 20 {
		t.Fatalf("read %d frames, end %v", len(frames), err)
	}
	if len(r.buf) > initialBufferSize {
		t.Errorf("buffer grew to %d for frames of %d bytes", len(r.buf), len(one))
	}
}
