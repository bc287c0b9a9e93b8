//go:build linux && (amd64 || arm64)

package semaphore

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// selfExe is the running image. Re-executing it, rather than a path on disk, keeps
// the same binary even if the file was replaced by an upgrade.
const selfExe = "/proc/self/exe"

// EnterPrivateIPCNamespace re-executes the current program (same pid, via
// syscall.Exec of /proc/self/exe with the same argv and env plus [EnvPrivateIPC]
// set to markerValue) inside a new IPC namespace, so that every SysV object the
// broker creates dies with its last process (ipc_namespaces(7)). Call it first thing
// in `serve`, before any set exists, and only if [InPrivateIPCNamespace] is false.
//
// Mechanism: runtime.LockOSThread(); unix.Unshare(unix.CLONE_NEWIPC);
// syscall.Exec(...). unshare moves only the calling thread into the new namespace;
// execve from that same thread then replaces the whole process, and the new image
// (with one thread, the one that was in the namespace) keeps the pid. This was
// checked on Linux 6.18 from a Go process with five threads: /proc/self/ns/ipc
// changed across the exec, the pid did not, and a set created afterwards was
// invisible to `ipcs -s` in the original namespace.
//
// It returns only on failure, with an error the caller logs as a warning before
// falling back to refcount + sweep: EPERM from unshare without CAP_SYS_ADMIN, an
// empty marker, [ErrAlreadyPrivate] if the marker is already set. If the exec
// itself fails, the thread is moved back to the original namespace first; should
// that fail too the error wraps [ErrNamespaceSplit] and the caller must exit.
//
// Unprivileged users cannot use this path: a user namespace (CLONE_NEWUSER) cannot
// be unshared by a multi-threaded process, and every Go process is multi-threaded.
// Under systemd, PrivateIPC=yes gives the same guarantee without a re-exec.
func EnterPrivateIPCNamespace(markerValue string) error {
	if markerValue == "" {
		return errors.New("semaphore: enter private IPC namespace: empty marker value")
	}
	if InPrivateIPCNamespace() {
		return ErrAlreadyPrivate
	}
	env := withMarker(os.Environ(), markerValue)

	// Everything from here to the exec must run on one OS thread: namespaces are
	// per thread until the exec makes this thread the whole process.
	runtime.LockOSThread()

	// Keep a handle on the original namespace so a failed exec can be undone.
	orig, err := os.Open("/proc/thread-self/ns/ipc")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("semaphore: enter private IPC namespace: %w", err)
	}
	defer orig.Close()

	if err := unix.Unshare(unix.CLONE_NEWIPC); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("semaphore: enter private IPC namespace: unshare(CLONE_NEWIPC): %w", err)
	}

	execErr := syscall.Exec(selfExe, os.Args, env)

	// Still here: the exec failed and this thread alone is in the new namespace.
	// Move it back before letting other goroutines run on it.
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWIPC); err != nil {
		// Leave the thread locked so no other goroutine lands on it; the caller
		// must exit.
		return fmt.Errorf("semaphore: enter private IPC namespace: exec %s: %w; setns back: %w: %w",
			selfExe, execErr, err, ErrNamespaceSplit)
	}
	runtime.UnlockOSThread()
	return fmt.Errorf("semaphore: enter private IPC namespace: exec %s: %w", selfExe, execErr)
}
