package systemd

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC from <linux/time.h>. Package syscall does not export the
// clock ids, and this one value is not worth a dependency.
const clockMonotonic = 1

// monotonicUsec reads CLOCK_MONOTONIC in microseconds, the clock systemd expects in
// MONOTONIC_USEC. Go's time package keeps a monotonic reading too, but does not expose its
// absolute value, which is what systemd compares against.
func monotonicUsec() (uint64, error) {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", errno)
	}
	return uint64(ts.Nano()) / 1000, nil
}

// setCloseOnExec sets FD_CLOEXEC on fd. Unlike syscall.CloseOnExec it reports failure, so an fd
// that systemd promised but that is not open (EBADF) is noticed instead of handed out.
func setCloseOnExec(fd int) error {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, syscall.FD_CLOEXEC)
	if errno != 0 {
		return fmt.Errorf("fcntl(F_SETFD, FD_CLOEXEC): %w", errno)
	}
	return nil
}

// checkListeningStream returns nil if f is a SOCK_STREAM socket in the listening state, else an
// error wrapping ErrNotListener that names f. It reaches the fd through SyscallConn().Control
// rather than Fd(), which would switch the file to blocking mode.
func checkListeningStream(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("systemd: %s: %w", f.Name(), err)
	}
	var sotype, listening int
	var sockErr error
	err = rc.Control(func(fd uintptr) {
		sotype, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE)
		if sockErr != nil {
			return
		}
		listening, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	})
	switch {
	case err != nil:
		return fmt.Errorf("systemd: %s: %w", f.Name(), err)
	case sockErr != nil:
		// ENOTSOCK for a regular file or a pipe.
		return fmt.Errorf("%w: %s: %w", ErrNotListener, f.Name(), sockErr)
	case sotype != syscall.SOCK_STREAM:
		return fmt.Errorf("%w: %s: socket type %d, want SOCK_STREAM (%d)",
			ErrNotListener, f.Name(), sotype, syscall.SOCK_STREAM)
	case listening == 0:
		return fmt.Errorf("%w: %s: stream socket is not in the listening state", ErrNotListener, f.Name())
	}
	return nil
}
