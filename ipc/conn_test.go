package ipc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// rawPair returns a Conn and the raw descriptor of the other end of a
// SOCK_SEQPACKET socketpair, so a test can see (or forge) the packets
// themselves. Both are closed when the test ends.
func rawPair(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "test-ipc")
	c, err := FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(fds[1])
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		unix.Close(fds[1])
	})
	return c, fds[1]
}

// connPair returns both ends of a socketpair as Conns.
func connPair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, fd := rawPair(t)
	// A copy of its own for the *os.File: rawPair's cleanup closes fd, and
	// an os.File left to the garbage collector closes its descriptor too,
	// whenever the finalizer runs; by then the number may belong to
	// another test's socket (that double close made TestReadBatchPacketRules
	// fail now and then with EBADF or EPIPE).
	peer, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(peer), "test-ipc-peer")
	b, err := FileConn(f) // dups peer again
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// bigRecord returns a FRAME record with a body of n bytes (a pattern, so a
// misplaced fragment shows).
func bigRecord(n int) []byte {
	body := make([]byte, n)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	return AppendRecord(nil, KindFrame, body)
}

// ackRecords returns n ACK records of about size bytes each.
func ackRecords(n, size int) []byte {
	var b []byte
	for i := range n {
		id := fmt.Sprintf("m-%d-", i)
		b = AppendText(b, KindAck, id+strings.Repeat("x", max(0, size-len(id))))
	}
	return b
}

// readPackets reads n packets from fd, each into a buffer larger than any
// packet, and fails the test on a truncated one.
func readPackets(t *testing.T, fd, n int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 2*MaxPacket)
	for range n {
		m, _, flags, _, err := unix.Recvmsg(fd, buf, nil, 0)
		if err != nil {
			t.Fatalf("recvmsg: %v", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			t.Fatalf("packet truncated by the test's own buffer")
		}
		out = append(out, append([]byte(nil), buf[:m]...))
	}
	return out
}

// TestWriteBatchPackets checks the packets WriteBatch makes: whole records
// packed into 'B' packets of at most MaxPacket bytes, and a record larger
// than a packet cut into 'M' fragments ended by one 'E'.
func TestWriteBatchPackets(t *testing.T) {
	small := AppendText(nil, KindAck, "m-1")
	huge := bigRecord(2*MaxPacket + 1000) // three fragments
	cases := []struct {
		name    string
		records []byte
		flags   string // the flag byte of each packet, in order
	}{
		{"one record", small, "B"},
		{"a hundred records in one packet", ackRecords(100, 50), "B"},
		{"records beyond one packet split at record boundaries", ackRecords(5, 40<<10), "BB"},
		// A packet is the flag byte and the records; a record is the kind,
		// a 3-byte length here, and the body.
		{"record exactly filling a packet", AppendRecord(nil, KindFrame, make([]byte, MaxPacket-1-1-3)), "B"},
		{"record one byte over a packet", AppendRecord(nil, KindFrame, make([]byte, MaxPacket-1-1-3+1)), "ME"},
		{"record larger than two packets", huge, "MME"},
		{"small, huge, small", append(append(append([]byte(nil), small...), huge...), small...), "BMMEB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, raw := rawPair(t)
			werr := make(chan error, 1)
			go func() { werr <- c.WriteBatch(tc.records) }() // big batches need a reader
			pkts := readPackets(t, raw, len(tc.flags))
			if err := <-werr; err != nil {
				t.Fatalf("WriteBatch: %v", err)
			}
			var flags string
			var joined []byte
			for i, p := range pkts {
				flags += string(p[0])
				if len(p) > MaxPacket {
					t.Errorf("packet %d is %d bytes, more than MaxPacket", i, len(p))
				}
				if p[0] == flagBatch {
					// A batch packet holds whole records only.
					for rest := p[1:]; len(rest) > 0; {
						var err error
						if _, _, rest, err = NextRecord(rest); err != nil {
							t.Fatalf("packet %d: %v", i, err)
						}
					}
				}
				joined = append(joined, p[1:]...)
			}
			if flags != tc.flags {
				t.Errorf("packet flags %q, want %q", flags, tc.flags)
			}
			if !bytes.Equal(joined, tc.records) {
				t.Errorf("packets carry %d bytes that differ from the %d written", len(joined), len(tc.records))
			}
			// Nothing else was sent.
			if n, _, _, _, err := unix.Recvmsg(raw, make([]byte, 1), nil, unix.MSG_DONTWAIT); err == nil {
				t.Errorf("an extra packet of %d bytes", n)
			}
		})
	}
}

// TestWriteReadRoundTrip sends batches through a real socketpair and checks
// ReadBatch returns each packet's records, and each fragmented record
// reassembled, byte for byte.
func TestWriteReadRoundTrip(t *testing.T) {
	small := AppendText(nil, KindAck, "m-1")
	huge := bigRecord(3*MaxPacket + 17)
	many := ackRecords(5, 40<<10)
	cases := []struct {
		name    string
		records []byte
		want    [][]byte // the batches ReadBatch returns
	}{
		{"one record", small, [][]byte{small}},
		{"fragmented record", huge, [][]byte{huge}},
		{"batch, fragments, batch", append(append(append([]byte(nil), small...), huge...), small...), [][]byte{small, huge, small}},
		{"records over two packets", many, nil}, // checked by concatenation below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, r := connPair(t)
			werr := make(chan error, 1)
			go func() { werr <- w.WriteBatch(tc.records) }()
			var got [][]byte
			var total int
			for total < len(tc.records) {
				b, err := r.ReadBatch()
				if err != nil {
					t.Fatalf("ReadBatch after %d bytes: %v", total, err)
				}
				got = append(got, append([]byte(nil), b...))
				total += len(b)
			}
			if err := <-werr; err != nil {
				t.Fatalf("WriteBatch: %v", err)
			}
			if tc.want != nil {
				if len(got) != len(tc.want) {
					t.Fatalf("%d batches, want %d", len(got), len(tc.want))
				}
				for i := range got {
					if !bytes.Equal(got[i], tc.want[i]) {
						t.Errorf("batch %d: %d bytes differ from the %d sent", i, len(got[i]), len(tc.want[i]))
					}
				}
			}
			if joined := bytes.Join(got, nil); !bytes.Equal(joined, tc.records) {
				t.Errorf("read %d bytes that differ from the %d written", len(joined), len(tc.records))
			}
		})
	}
}

// TestReadBatchPacketRules forges packet sequences and checks what
// ReadBatch makes of them: broken ones are errors, never a silently wrong
// batch.
func TestReadBatchPacketRules(t *testing.T) {
	rec := AppendText(nil, KindAck, "m-1")
	pkt := func(flag byte, b []byte) []byte { return append([]byte{flag}, b...) }
	cases := []struct {
		name       string
		maxRecord  int
		packets    [][]byte
		closeAfter bool
		want       []byte // the batch, if no error
		wantErr    error
	}{
		{name: "batch", packets: [][]byte{pkt('B', rec)}, want: rec},
		{name: "fragments reassembled", packets: [][]byte{pkt('M', rec[:2]), pkt('M', rec[2:3]), pkt('E', rec[3:])}, want: rec},
		{name: "a lone end fragment is a whole record", packets: [][]byte{pkt('E', rec)}, want: rec},
		{name: "unknown flag", packets: [][]byte{pkt('Z', rec)}, wantErr: ErrMalformed},
		{name: "batch between fragments", packets: [][]byte{pkt('M', rec[:2]), pkt('B', rec)}, wantErr: ErrMalformed},
		{name: "reassembly beyond MaxRecord", maxRecord: 10, packets: [][]byte{pkt('M', make([]byte, 8)), pkt('E', make([]byte, 8))}, wantErr: ErrTooLarge},
		{name: "reassembly at MaxRecord", maxRecord: 16, packets: [][]byte{pkt('M', make([]byte, 8)), pkt('E', make([]byte, 8))}, want: make([]byte, 16)},
		{name: "packet one byte over MaxPacket", packets: [][]byte{pkt('B', make([]byte, MaxPacket))}, wantErr: ErrTruncated},
		{name: "packet larger than the read buffer (MSG_TRUNC)", packets: [][]byte{pkt('B', make([]byte, MaxPacket+100))}, wantErr: ErrTruncated},
		{name: "peer closed", closeAfter: true, wantErr: io.EOF},
		{name: "peer closed inside a fragmented record", packets: [][]byte{pkt('M', rec[:2])}, closeAfter: true, wantErr: io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, raw := rawPair(t)
			if tc.maxRecord > 0 {
				c.MaxRecord = tc.maxRecord
			}
			for _, p := range tc.packets {
				if _, err := unix.Write(raw, p); err != nil {
					t.Fatalf("write %d bytes: %v", len(p), err)
				}
			}
			if tc.closeAfter {
				if err := unix.Shutdown(raw, unix.SHUT_WR); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.ReadBatch()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ReadBatch = %d bytes, %v; want error %v", len(got), err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("ReadBatch = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestReadBatchDetectsTruncation gives ReadBatch a read buffer smaller than
// an ordinary packet: the kernel cuts the packet and flags MSG_TRUNC, and
// ReadBatch must report that rather than return the cut-off bytes.
func TestReadBatchDetectsTruncation(t *testing.T) {
	c, raw := rawPair(t)
	c.rbuf = make([]byte, 16) // ReadBatch keeps a buffer it already has
	if _, err := unix.Write(raw, append([]byte{flagBatch}, ackRecords(3, 20)...)); err != nil {
		t.Fatal(err)
	}
	if b, err := c.ReadBatch(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ReadBatch = %q, %v; want ErrTruncated", b, err)
	}
}

// TestWriteBatchRejectsBrokenRecords: WriteBatch refuses bytes that are not
// whole records instead of sending a packet the reader would misparse.
func TestWriteBatchRejectsBrokenRecords(t *testing.T) {
	good := AppendText(nil, KindAck, "m-1")
	for name, records := range map[string][]byte{
		"stray byte":           {byte(KindAck)},
		"length past the end":  good[:len(good)-1],
		"good then stray byte": append(append([]byte(nil), good...), 'A'),
	} {
		t.Run(name, func(t *testing.T) {
			c, raw := rawPair(t)
			if err := c.WriteBatch(records); !errors.Is(err, ErrMalformed) {
				t.Fatalf("WriteBatch = %v, want ErrMalformed", err)
			}
			if _, _, _, _, err := unix.Recvmsg(raw, make([]byte, 64), nil, unix.MSG_DONTWAIT); err == nil {
				t.Fatalf("a packet was sent")
			}
		})
	}
}

// TestTryWriteBatchNeverBlocks fills a socket nobody reads: TryWriteBatch
// must return, having written a whole number of records, and WriteBatch
// of the rest must complete the stream in order once the reader drains it.
// A record that needs fragmenting is left to WriteBatch.
func TestTryWriteBatchNeverBlocks(t *testing.T) {
	records := ackRecords(40, 40<<10) // far more than a socket buffer
	records = append(records, bigRecord(MaxPacket+5)...)
	w, r := connPair(t)
	n, err := w.TryWriteBatch(records)
	if err != nil {
		t.Fatalf("TryWriteBatch: %v", err)
	}
	if n == 0 || n >= len(records) {
		t.Fatalf("TryWriteBatch wrote %d of %d bytes, want some but not all", n, len(records))
	}
	if _, err := recordSize(records[n:]); err != nil {
		t.Fatalf("TryWriteBatch stopped inside a record at %d: %v", n, err)
	}
	werr := make(chan error, 1)
	go func() { werr <- w.WriteBatch(records[n:]) }()
	var got []byte
	for len(got) < len(records) {
		b, err := r.ReadBatch()
		if err != nil {
			t.Fatalf("ReadBatch after %d bytes: %v", len(got), err)
		}
		got = append(got, b...)
	}
	if err := <-werr; err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	if !bytes.Equal(got, records) {
		t.Errorf("read %d bytes that differ from the %d written", len(got), len(records))
	}

	// Only a fragmented record: nothing for TryWriteBatch to do.
	if n, err := w.TryWriteBatch(bigRecord(MaxPacket + 5)); n != 0 || err != nil {
		t.Errorf("TryWriteBatch of one oversized record = %d, %v; want 0, nil", n, err)
	}
}
