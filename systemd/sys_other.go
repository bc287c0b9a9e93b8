//go:build !linux

package systemd

import (
	"errors"
	"fmt"
	"os"
)

// errUnsupportedOS is what the Linux-only system calls below report elsewhere. systemd exists
// only on Linux, so on other systems NOTIFY_SOCKET and LISTEN_PID are never legitimately set and
// these paths are not reached in practice.
var errUnsupportedOS = errors.New("systemd: not supported on this operating system")

func monotonicUsec() (uint64, error) { return 0, errUnsupportedOS }

func setCloseOnExec(fd int) error { return errUnsupportedOS }

func checkListeningStream(f *os.File) error {
	return fmt.Errorf("systemd: %s: %w", f.Name(), errUnsupportedOS)
}
