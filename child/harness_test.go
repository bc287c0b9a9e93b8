package child

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"golang.org/x/sys/unix"

	"github.com/stomp-broker/stomp-broker/internal/logging"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/semaphore"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The session tests run a real session (newSession(...).run(), exactly what
// Run does once it has adopted fds 3 and 4) in the test process, on two
// real socketpairs: a SOCK_STREAM one whose other end the test uses as the
// STOMP client, and a SOCK_SEQPACKET one whose other end the test uses as
// the parent, speaking the ipc package's records. Nothing is exec'd, so no
// seam beyond newSession is needed.

// wait bounds every wait for something the session should do at once. It
// is a failure bound, not a measurement: the tests never pass or fail on
// how fast the session is.
const wait = 10 * time.Second

// record is one record the child sent to the parent.
type record struct {
	kind  ipc.Kind
	body  []byte
	batch int // which batch (one write of the child) it came in, from 1
}

// String describes r compactly, for comparing with a test's expectations:
// "FRAME SEND /queue/a", "SYNC", "ACK m-1", "CLAIM slot 1 gen 1 sub 1 m-1 x3",
// "HELLO 1.2 alice".
func (r record) String() string {
	switch r.kind {
	case ipc.KindFrame:
		f, _, err := stompwire.Parse(r.body, stompwire.V12, stompwire.Limits{})
		if err != nil || f == nil {
			return fmt.Sprintf("FRAME undecodable (%v)", err)
		}
		return "FRAME " + f.Command + " " + f.Header.Get(frame.Destination)
	case ipc.KindSync:
		return "SYNC"
	case ipc.KindAck, ipc.KindNack:
		return r.kind.String() + " " + string(r.body)
	case ipc.KindClaim:
		c, err := ipc.DecodeClaim(r.body)
		if err != nil {
			return "CLAIM undecodable"
		}
		return fmt.Sprintf("CLAIM slot %d gen %d sub %s %s x%d", c.Slot, c.Gen, c.SubID, c.MessageID, c.Count)
	case ipc.KindHello:
		info, err := ipc.DecodeHello(r.body)
		if err != nil {
			return "HELLO undecodable"
		}
		return strings.TrimSpace("HELLO " + info.Version + " " + info.Login)
	}
	return r.kind.String()
}

// frame parses a FRAME record.
func (r record) frame(t *testing.T) *frame.Frame {
	t.Helper()
	if r.kind != ipc.KindFrame {
		t.Fatalf("record %s is not a FRAME", r)
	}
	f, _, err := stompwire.Parse(r.body, stompwire.V12, stompwire.Limits{})
	if err != nil || f == nil {
		t.Fatalf("FRAME record does not parse: %v", err)
	}
	return f
}

// harness is one session under test with the test playing both its client
// and its parent.
type harness struct {
	t      *testing.T
	cfg    ipc.ChildConfig
	client net.Conn          // the test's end of the client socket
	frames chan *frame.Frame // what the child wrote to the client (nil: a heart-beat); closed at EOF
	parent *ipc.Conn         // the test's end of the socketpair
	rawFD  int               // the same socket, for packets ipc.Conn would not write
	recs   chan record       // what the child sent the parent; closed at EOF
	sem    *semaphore.Set    // nil unless cfg.Slots > 0
	term   chan os.Signal
	done   chan struct{} // closed when the session has returned

	barrierSub bool
	barriers   int
}

// testConfig is the ChildConfig the tests start from.
func testConfig() ipc.ChildConfig {
	return ipc.ChildConfig{
		ClientAddr:      "127.0.0.1:40001",
		ConnectTimeout:  wait,
		DefaultPrefetch: 10,
		ServerName:      "stomp-broker/test",
		LogLevel:        "debug",
		Trace:           true, // every trace line runs, to a discarded log
	}
}

// start runs a session with cfg. Everything it opened is closed, and the
// session must have returned, when the test ends.
func start(t *testing.T, cfg ipc.ChildConfig) *harness {
	t.Helper()
	h := &harness{
		t: t, cfg: cfg,
		frames: make(chan *frame.Frame, 256),
		recs:   make(chan record, 256),
		term:   make(chan os.Signal, 1),
		done:   make(chan struct{}),
	}
	childClient, testClient := streamPair(t)
	h.client = testClient
	childParent, testParent, rawFD := seqpacketPair(t)
	h.parent, h.rawFD = testParent, rawFD
	if cfg.Slots > 0 {
		sem, err := semaphore.Create(cfg.Slots)
		if err != nil {
			t.Fatalf("semaphore set: %v", err)
		}
		t.Cleanup(func() { _ = sem.Remove() })
		h.sem = sem
	}

	go h.readClient()
	go h.readParent()
	log := logging.New(io.Discard, cfg.LogLevel).With("role", "child")
	s := newSession(cfg, log, childClient, childParent, h.sem, h.term)
	go func() {
		defer close(h.done)
		s.run()
	}()
	t.Cleanup(func() {
		h.client.Close()
		h.parent.Close()
		_ = unix.Shutdown(h.rawFD, unix.SHUT_RDWR) // the child sees EOF now, not at test end
		select {
		case <-h.done:
		case <-time.After(wait):
			t.Errorf("the session did not end within %v of both its peers closing", wait)
		}
	})
	return h
}

// streamPair returns both ends of a unix stream socketpair as net.Conns
// (the child's client socket is a TCP or unix stream socket).
func streamPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "client")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		t.Cleanup(func() { c.Close() })
	}
	return conns[0], conns[1]
}

// seqpacketPair returns both ends of a SOCK_SEQPACKET socketpair as ipc
// Conns, as the parent's Socketpair makes them, and a descriptor of the
// second end's socket.
func seqpacketPair(t *testing.T) (*ipc.Conn, *ipc.Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*ipc.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "ipc")
		c, err := ipc.FileConn(f) // a dup
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.Close() // the child's end: only its Conn may hold it open
		}
		conns[i] = c
		t.Cleanup(func() { c.Close(); f.Close() })
	}
	return conns[0], conns[1], fds[1]
}

func (h *harness) readClient() {
	defer close(h.frames)
	r := stompwire.NewReader(h.client, stompwire.Limits{MaxBodyBytes: 64 << 20})
	for {
		f, err := r.Read()
		if err != nil {
			return
		}
		h.frames <- f
	}
}

func (h *harness) readParent() {
	defer close(h.recs)
	for n := 1; ; n++ {
		b, err := h.parent.ReadBatch()
		if err != nil {
			return
		}
		for len(b) > 0 {
			k, body, rest, err := ipc.NextRecord(b)
			if err != nil {
				// Shows as "KIND(0)" in whatever the test expected next.
				h.recs <- record{}
				return
			}
			h.recs <- record{kind: k, body: append([]byte(nil), body...), batch: n}
			b = rest
		}
	}
}

// send writes a frame to the session as its client would, in STOMP 1.2
// encoding: command, body, then header name/value pairs.
func (h *harness) send(cmd, body string, kv ...string) {
	h.t.Helper()
	f := frame.New(cmd, kv...)
	if body != "" {
		f.Body = []byte(body)
	}
	h.sendRaw(string(stompwire.AppendFrame(nil, f, stompwire.V12)))
}

// sendRaw writes bytes to the session as its client.
func (h *harness) sendRaw(s string) {
	h.t.Helper()
	if _, err := h.client.Write([]byte(s)); err != nil {
		h.t.Fatalf("client write: %v", err)
	}
}

// toChild sends records to the session as its parent, as one batch.
func (h *harness) toChild(records []byte) {
	h.t.Helper()
	if err := h.parent.WriteBatch(records); err != nil {
		h.t.Fatalf("parent write: %v", err)
	}
}

// rawToChild sends one packet, as is, to the child (ipc.Conn refuses to
// write bytes that are not whole records).
func (h *harness) rawToChild(pkt []byte) {
	h.t.Helper()
	if _, err := unix.Write(h.rawFD, pkt); err != nil {
		h.t.Fatalf("parent write: %v", err)
	}
}

// nextFrame returns the next frame (not heart-beat) the client got.
func (h *harness) nextFrame() *frame.Frame {
	h.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case f, ok := <-h.frames:
			if !ok {
				h.t.Fatalf("the client connection closed; a frame was expected")
			}
			if f != nil {
				return f
			}
		case <-timeout:
			h.t.Fatalf("no frame for the client within %v", wait)
		}
	}
}

// expectFrame returns the next frame the client got, which must be cmd.
func (h *harness) expectFrame(cmd string) *frame.Frame {
	h.t.Helper()
	f := h.nextFrame()
	if f.Command != cmd {
		h.t.Fatalf("client got %s (%s), want %s", f.Command, headers(f), cmd)
	}
	return f
}

// expectError returns the next frame, which must be an ERROR whose message
// header contains msg, and checks the session then closes both sockets.
func (h *harness) expectError(msg string) *frame.Frame {
	h.t.Helper()
	f := h.expectFrame(frame.ERROR)
	if got := f.Header.Get(frame.Message); !strings.Contains(got, msg) {
		h.t.Fatalf("ERROR message %q, want it to contain %q", got, msg)
	}
	// As a client does on ERROR: stop sending, so the session's drain of
	// what the client still sends ends at once.
	_ = h.client.(interface{ CloseWrite() error }).CloseWrite()
	h.expectClientEOF()
	return f
}

// expectClientEOF checks the session closes the client connection without
// sending another frame.
func (h *harness) expectClientEOF() {
	h.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case f, ok := <-h.frames:
			if !ok {
				return
			}
			if f != nil {
				h.t.Fatalf("client got %s (%s), want the connection closed", f.Command, headers(f))
			}
		case <-timeout:
			h.t.Fatalf("the client connection is still open after %v", wait)
		}
	}
}

// nextRecord returns the next record the parent got.
func (h *harness) nextRecord() record {
	h.t.Helper()
	select {
	case r, ok := <-h.recs:
		if !ok {
			h.t.Fatalf("the socketpair closed; a record was expected")
		}
		return r
	case <-time.After(wait):
		h.t.Fatalf("no record for the parent within %v", wait)
	}
	panic("unreachable")
}

// expectRecords checks the next records the parent got, described as
// record.String does.
func (h *harness) expectRecords(want ...string) []record {
	h.t.Helper()
	var got []record
	for i, w := range want {
		r := h.nextRecord()
		got = append(got, r)
		if r.String() != w {
			h.t.Fatalf("record %d is %q, want %q (records so far %v)", i, r, w, got)
		}
	}
	return got
}

// recordsUntilEOF returns every record the parent gets until the child
// closes its end.
func (h *harness) recordsUntilEOF() []string {
	h.t.Helper()
	var got []string
	timeout := time.After(wait)
	for {
		select {
		case r, ok := <-h.recs:
			if !ok {
				return got
			}
			got = append(got, r.String())
		case <-timeout:
			h.t.Fatalf("the socketpair is still open after %v (records %v)", wait, got)
		}
	}
}

// answerSync takes the next record, which must be a SYNC, and answers it
// with SYNCED as the parent does once it has applied what came before.
func (h *harness) answerSync(flags uint64) {
	h.t.Helper()
	r := h.nextRecord()
	if r.kind != ipc.KindSync {
		h.t.Fatalf("record %s, want SYNC", r)
	}
	token, err := ipc.DecodeToken(r.body)
	if err != nil {
		h.t.Fatal(err)
	}
	h.toChild(ipc.AppendSynced(nil, token, flags))
}

// connect logs in with accept-version versions and checks CONNECTED and
// the HELLO record.
func (h *harness) connect(versions string) *frame.Frame {
	h.t.Helper()
	h.send(frame.CONNECT, "", frame.AcceptVersion, versions, frame.Host, "test")
	f := h.expectFrame(frame.CONNECTED)
	if r := h.nextRecord(); r.kind != ipc.KindHello {
		h.t.Fatalf("first record %s, want HELLO", r)
	}
	return f
}

// subscribe subscribes (with a receipt, answered), and returns the
// subscription key the parent knows it by.
func (h *harness) subscribe(id, dest string, kv ...string) string {
	h.t.Helper()
	receipt := "sub-" + id
	h.send(frame.SUBSCRIBE, "", append([]string{frame.Id, id, frame.Destination, dest, frame.Receipt, receipt}, kv...)...)
	r := h.nextRecord()
	f := r.frame(h.t)
	if f.Command != frame.SUBSCRIBE {
		h.t.Fatalf("record %s, want the SUBSCRIBE", r)
	}
	h.answerSync(0)
	if got := h.expectFrame(frame.RECEIPT).Header.Get(frame.ReceiptId); got != receipt {
		h.t.Fatalf("RECEIPT for %q, want %q", got, receipt)
	}
	return f.Header.Get(frame.Id)
}

// barrier waits until the session has handled everything the test sent
// before it, from both sides, and returns the frames the client got and
// the records the parent got meanwhile. It uses a topic subscription of
// its own ("barrier", made on first use): a DELIVER to it shows the
// parent's earlier records were handled, and a BEGIN with a receipt shows
// the client's earlier frames were, and flushes what they produced.
func (h *harness) barrier() (frames []*frame.Frame, records []string) {
	h.t.Helper()
	if !h.barrierSub {
		h.barrierSub = true
		h.subscribe("barrier", "/topic/barrier")
	}
	h.barriers++
	mark := fmt.Sprintf("barrier-%d", h.barriers)
	h.toChild(ipc.AppendMessage(nil, ipc.KindDeliver, "/topic/barrier", mark, message("/topic/barrier", mark, "")))
	for {
		f := h.nextFrame()
		if f.Command == frame.MESSAGE && f.Header.Get(frame.MessageId) == mark {
			break
		}
		frames = append(frames, f)
	}
	h.send(frame.BEGIN, "", frame.Transaction, mark, frame.Receipt, mark)
	for {
		r := h.nextRecord()
		if r.kind == ipc.KindSync {
			token, _ := ipc.DecodeToken(r.body)
			h.toChild(ipc.AppendSynced(nil, token, 0))
			break
		}
		records = append(records, r.String())
	}
	for {
		f := h.nextFrame()
		if f.Command == frame.RECEIPT && f.Header.Get(frame.ReceiptId) == mark {
			return frames, records
		}
		frames = append(frames, f)
	}
}

// message encodes a MESSAGE as the parent does (parent/records.go,
// encodeMessage): STOMP 1.2, its own headers first, no subscription or ack.
func message(dest, id, body string, kv ...string) []byte {
	f := frame.New(frame.MESSAGE, append([]string{frame.Destination, dest, frame.MessageId, id}, kv...)...)
	f.Header.Add(frame.ContentLength, fmt.Sprint(len(body)))
	f.Body = []byte(body)
	return stompwire.AppendFrame(nil, f, stompwire.V12)
}

// headers renders a frame's headers for failure messages.
func headers(f *frame.Frame) string {
	var b strings.Builder
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		fmt.Fprintf(&b, "%s:%q ", k, v)
	}
	return strings.TrimSpace(b.String())
}

// commands lists the commands of frames, for comparisons.
func commands(fs []*frame.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Command)
	}
	return out
}
