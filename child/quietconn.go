package child

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// quietConn is the client's TCP connection with its reads and writes made
// as raw system calls (RawSyscall, inside the net package's RawConn Read
// and Write, which still wait in the runtime's poller while the socket has
// nothing to read or no room, and honour deadlines and Close). The socket is
// non-blocking, so neither call can block. A scheduler-visible system call
// made after an idle spell first wakes the Go runtime's monitor thread
// (sysmon), which then polls for a while before it sleeps again; at a steady
// few thousand messages a second a child goes idle between messages, and
// every message paid that wake-up (see ipc.rawRecv, which does the same for
// the socketpair). TLS and WebSocket run on top of it unchanged.
type quietConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// quiet returns c as a quietConn if it is a TCP connection, else c.
func quiet(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quietConn{TCPConn: tc, rc: rc}
}

// Read reads what the socket has, up to len(p) bytes; io.EOF at the
// peer's end of stream.
func (c *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr unix.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			n, rerr = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err // a deadline or Close, as a *net.OpError
	case rerr != 0:
		return 0, c.opError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting for room as needed (MSG_NOSIGNAL: a
// closed peer is an EPIPE error, not a signal).
func (c *quietConn) Write(p []byte) (int, error) {
	written := 0
	var werr unix.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written), unix.MSG_NOSIGNAL, 0, 0)
			switch e {
			case 0:
				written += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				werr = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return written, err
	case werr != 0:
		return written, c.opError("write", werr)
	}
	return written, nil
}

func (c *quietConn) opError(op string, e unix.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}
