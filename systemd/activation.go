package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// listenFDsStart is the first fd systemd passes; it corresponds to SD_LISTEN_FDS_START in
// sd-daemon.h. Fds 0-2 are stdin, stdout and stderr.
const listenFDsStart = 3

// defaultFDName is the name of every passed fd when LISTEN_FDNAMES is unset, as in
// sd_listen_fds_with_names(3). (A .socket unit without FileDescriptorName= names its fds after
// the unit, e.g. "stomp-broker.socket".)
const defaultFDName = "unknown"

// ErrNotListener reports a passed fd that is not a listening stream socket, so it cannot serve
// STOMP clients (for example a ListenDatagram= socket, or a regular file).
var ErrNotListener = errors.New("systemd: not a listening stream socket")

// ListenFile is one fd passed by socket activation.
type ListenFile struct {
	// Name is the fd's name from LISTEN_FDNAMES (FileDescriptorName= in the .socket unit), or
	// "unknown" when systemd sent no names.
	Name string
	// File owns the fd; it is close-on-exec. Its Name() is "fd N (name)", for error messages.
	File *os.File
}

// NamedListener is a listening socket passed by socket activation, wrapped as a net.Listener.
type NamedListener struct {
	// Name is the fd's name, as in ListenFile.
	Name string
	// Listener is the caller's to Close.
	Listener net.Listener
}

// ListenFiles implements socket activation (sd_listen_fds(3)).
//
// If LISTEN_PID equals os.Getpid(), the variables are addressed to this process: it takes
// LISTEN_FDS fds starting at fd 3, names them from LISTEN_FDNAMES (colon separated; "unknown" for
// each when unset), sets FD_CLOEXEC on each so no child inherits them, and unsets LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES. The caller owns the returned files.
//
// Otherwise (LISTEN_PID unset, malformed, or another process's pid: the variables leaked from an
// ancestor) it returns (nil, nil) and leaves the environment and every fd alone; the caller then
// listens on its configured address. It also returns (nil, nil) for LISTEN_FDS=0.
//
// Errors wrap ErrBadEnvironment (LISTEN_FDS not a number, or a name count that differs from it)
// or come from marking an fd close-on-exec (for example EBADF: systemd promised an fd that is not
// open). On error the variables are still removed and every fd already marked stays open but
// close-on-exec: closing fds that may not be ours could close one the Go runtime uses.
// Call it once; a second call finds no variables and returns (nil, nil).
func ListenFiles() ([]ListenFile, error) {
	pid, err := strconv.Atoi(os.Getenv(envListenPID))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	// From here on the variables are ours. Consume them whatever happens next, so that not even
	// a malformed set leaks into children.
	count, names := os.Getenv(envListenFDs), os.Getenv(envListenFDNames)
	unsetenv(envListenPID, envListenFDs, envListenFDNames)

	n, err := strconv.Atoi(count)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: %s=%q", ErrBadEnvironment, envListenFDs, count)
	}
	// Mark every fd before anything else can fail, for the same reason.
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		if err := setCloseOnExec(fd); err != nil {
			return nil, fmt.Errorf("systemd: %s=%d: fd %d: %w", envListenFDs, n, fd, err)
		}
	}
	if n == 0 {
		return nil, nil
	}
	fdNames, err := splitFDNames(names, n)
	if err != nil {
		return nil, err
	}
	files := make([]ListenFile, n)
	for i, name := range fdNames {
		fd := listenFDsStart + i
		files[i] = ListenFile{
			Name: name,
			File: os.NewFile(uintptr(fd), fmt.Sprintf("fd %d (%s)", fd, name)),
		}
	}
	return files, nil
}

// splitFDNames returns n names from LISTEN_FDNAMES, or n times "unknown" if it is empty. Like
// sd_listen_fds_with_names(3) it refuses a list whose length differs from LISTEN_FDS: guessing
// which name belongs to which fd could serve clients on the wrong socket.
func splitFDNames(names string, n int) ([]string, error) {
	if names == "" {
		out := make([]string, n)
		for i := range out {
			out[i] = defaultFDName
		}
		return out, nil
	}
	out := strings.Split(names, ":")
	if len(out) != n {
		return nil, fmt.Errorf("%w: %s=%q has %d names for %s=%d",
			ErrBadEnvironment, envListenFDNames, names, len(out), envListenFDs, n)
	}
	return out, nil
}

// Listeners is ListenFiles with each fd wrapped by net.FileListener. The *os.File copies are
// closed (net.FileListener works on its own duplicate, which is also close-on-exec), so the
// caller owns only the returned listeners.
//
// It returns (nil, nil) when ListenFiles does. If any passed fd is not a listening stream socket
// it returns an error wrapping ErrNotListener that names the fd, and closes every fd it took,
// since a unit that passes an unexpected socket is misconfigured and should fail to start
// loudly. Other errors are those of ListenFiles or net.FileListener.
func Listeners() ([]NamedListener, error) {
	files, err := ListenFiles()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	listeners := make([]NamedListener, 0, len(files))
	for i, lf := range files {
		ln, err := fileListener(lf.File)
		lf.File.Close()
		if err != nil {
			for _, rest := range files[i+1:] {
				rest.File.Close()
			}
			for _, done := range listeners {
				done.Listener.Close()
			}
			return nil, err
		}
		listeners = append(listeners, NamedListener{Name: lf.Name, Listener: ln})
	}
	return listeners, nil
}

// fileListener checks that f is a listening stream socket and wraps a duplicate of it. The check
// matters because net.FileListener accepts a connected TCP socket too; its Accept would then fail
// at run time instead of at start-up.
func fileListener(f *os.File) (net.Listener, error) {
	if err := checkListeningStream(f); err != nil {
		return nil, err
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("systemd: %s: %w", f.Name(), err)
	}
	return ln, nil
}
