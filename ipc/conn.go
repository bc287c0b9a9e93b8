package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxPacket is the largest packet either side writes. It stays below the
// kernel's default AF_UNIX send buffer (212,992 bytes minus overhead), the
// hard limit for one SOCK_SEQPACKET message, so it needs no privilege.
const MaxPacket = 128 << 10

// Packet flag bytes; see the package documentation.
const (
	flagBatch    = 'B'
	flagMore     = 'M'
	flagMoreLast = 'E'
)

var (
	// ErrTruncated reports a packet larger than MaxPacket (MSG_TRUNC).
	ErrTruncated = errors.New("ipc: truncated packet")
	// ErrTooLarge reports a fragmented record larger than the reader's MaxRecord.
	ErrTooLarge = errors.New("ipc: record too large")
)

// Conn is one end of a parent⇄child socketpair.
//
// ReadBatch must be called from one goroutine at a time, and so must
// WriteBatch; the two may run concurrently.
type Conn struct {
	uc *net.UnixConn
	rc syscall.RawConn // uc's, for the raw reads and writes (rawRecv, rawSend)
	// MaxRecord bounds the reassembly of fragmented records.
	MaxRecord int
	rbuf      []byte
	frag      []byte
	wpkt      []byte
}

// Socketpair returns a connected SOCK_SEQPACKET pair, both ends close-on-exec:
// parentEnd for the caller, childEnd to hand to a child via exec.Cmd.ExtraFiles
// (the caller closes its copy after the child started).
func Socketpair() (parentEnd *Conn, childEnd *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc: socketpair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "child-ipc")
	defer pf.Close() // FileConn dups it
	c, err := FileConn(pf)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c, os.NewFile(uintptr(fds[1]), "parent-ipc"), nil
}

// FileConn wraps a SOCK_SEQPACKET socket file. It dups the descriptor: the
// caller still owns and must close f.
func FileConn(f *os.File) (*Conn, error) {
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc: %s: %w", f.Name(), err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("ipc: %s is a %T, not a unix socket", f.Name(), nc)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("ipc: %s: %w", f.Name(), err)
	}
	return &Conn{uc: uc, rc: rc, MaxRecord: 8 << 20}, nil
}

// Close closes the connection; a blocked ReadBatch returns an error.
func (c *Conn) Close() error { return c.uc.Close() }

// CloseWrite shuts down the sending side: the peer reads EOF after
// everything already written.
func (c *Conn) CloseWrite() error { return c.uc.CloseWrite() }

// ReadBatch blocks until the next complete batch of records arrives and
// returns it. The slice is valid until the next ReadBatch. It returns
// io.EOF when the peer closed its end, ErrTruncated or ErrTooLarge when
// the peer broke the packet rules.
func (c *Conn) ReadBatch() ([]byte, error) {
	if c.rbuf == nil {
		c.rbuf = make([]byte, MaxPacket+1)
	}
	c.frag = c.frag[:0]
	for {
		var n int
		var rerr error
		if err := c.rc.Read(func(fd uintptr) bool {
			n, rerr = rawRecv(fd, c.rbuf)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, os.NewSyscallError("recvfrom", rerr)
		}
		if n == 0 {
			// A zero-length read on SEQPACKET means the peer closed.
			return nil, io.EOF
		}
		if n > len(c.rbuf) || n > MaxPacket {
			return nil, ErrTruncated
		}
		if batch, done, err := c.takePacket(c.rbuf[:n]); done || err != nil {
			return batch, err
		}
	}
}

// takePacket applies one received packet (at least one byte) to the batch
// being read: done reports that batch is complete (a 'B' packet, or the 'E'
// fragment that ends a record); otherwise the packet was an 'M' fragment
// and the next packet continues it. It never reads past pkt and never
// panics, whatever the peer sent.
func (c *Conn) takePacket(pkt []byte) (batch []byte, done bool, err error) {
	switch pkt[0] {
	case flagBatch:
		if len(c.frag) != 0 {
			return nil, false, fmt.Errorf("%w: batch inside a fragmented record", ErrMalformed)
		}
		return pkt[1:], true, nil
	case flagMore, flagMoreLast:
		if len(c.frag)+len(pkt)-1 > c.MaxRecord {
			return nil, false, ErrTooLarge
		}
		c.frag = append(c.frag, pkt[1:]...)
		if pkt[0] == flagMoreLast {
			return c.frag, true, nil
		}
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("%w: packet flag %#x", ErrMalformed, pkt[0])
	}
}

// WriteBatch sends records (a concatenation of complete records) in as few
// packets as possible: consecutive records are packed together up to
// MaxPacket, and a single record larger than a packet is fragmented. It
// blocks until the kernel took every packet.
func (c *Conn) WriteBatch(records []byte) error {
	for len(records) > 0 {
		n, err := packedLen(records)
		if err != nil {
			return err
		}
		if n == 0 { // the first record alone is larger than a packet
			size, _ := recordSize(records)
			if err := c.writeFragments(records[:size]); err != nil {
				return err
			}
			records = records[size:]
			continue
		}
		c.wpkt = append(append(c.wpkt[:0], flagBatch), records[:n]...)
		if err := c.write(c.wpkt); err != nil {
			return err
		}
		records = records[n:]
	}
	return nil
}

func (c *Conn) writeFragments(rec []byte) error {
	for len(rec) > 0 {
		n := min(len(rec), MaxPacket-1)
		flag := byte(flagMore)
		if n == len(rec) {
			flag = flagMoreLast
		}
		c.wpkt = append(append(c.wpkt[:0], flag), rec[:n]...)
		if err := c.write(c.wpkt); err != nil {
			return err
		}
		rec = rec[n:]
	}
	return nil
}

// packedLen returns how many bytes of whole records at the front of
// records fit in one packet together (behind its flag byte); 0 when the
// first record alone is larger than a packet.
func packedLen(records []byte) (int, error) {
	n := 0
	for n < len(records) {
		size, err := recordSize(records[n:])
		if err != nil {
			return 0, err
		}
		if n+size > MaxPacket-1 {
			break
		}
		n += size
	}
	return n, nil
}

// recordSize returns the encoded size of the record at the front of b.
func recordSize(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: stray bytes", ErrMalformed)
	}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || n > uint64(len(b)-1-w) {
		return 0, fmt.Errorf("%w: bad record length", ErrMalformed)
	}
	return 1 + w + int(n), nil
}

// TryWriteBatch is WriteBatch that never blocks: it writes packed packets
// of whole records while the socket takes them without waiting, and
// returns how many bytes of records went out (always a whole number of
// records). It stops early, with a nil error, when the socket's buffer is
// full or at a record that needs fragmenting; the caller hands the rest to
// WriteBatch. It must not run concurrently with WriteBatch.
func (c *Conn) TryWriteBatch(records []byte) (int, error) {
	written := 0
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(records) {
			rest := records[written:]
			n, err := packedLen(rest)
			if err != nil {
				werr = err
				return true
			}
			if n == 0 {
				return true // a record for WriteBatch to fragment
			}
			c.wpkt = append(append(c.wpkt[:0], flagBatch), rest[:n]...)
			if err := rawSend(fd, c.wpkt); err != nil {
				if err != unix.EAGAIN && err != unix.EINTR {
					werr = err
				}
				return true // one attempt only: never wait for room
			}
			written += n
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return written, err
}

// write sends one packet, waiting (in the runtime's poller) while the
// socket's buffer is full.
func (c *Conn) write(pkt []byte) error {
	var werr error
	if err := c.rc.Write(func(fd uintptr) bool {
		werr = rawSend(fd, pkt)
		return werr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if werr != nil {
		return os.NewSyscallError("sendto", werr)
	}
	return nil
}

// rawRecv reads one packet from the non-blocking socket fd into buf and
// returns its full length, which is more than len(buf) for a packet that
// did not fit (MSG_TRUNC).
//
// rawRecv and rawSend make the system call without telling the Go
// scheduler (RawSyscall): the socket is non-blocking, so the call cannot
// block, and a process that was idle is not made to wake the runtime's
// monitor thread (sysmon) first, as every scheduler-visible system call
// after an idle spell does. Measured at a steady 5,000 msgs/s: see the
// commit that added them.
func rawRecv(fd uintptr, buf []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), unix.MSG_TRUNC, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// rawSend writes one packet to the non-blocking socket fd (see rawRecv).
func rawSend(fd uintptr, pkt []byte) error {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)), unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}
