package main

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	// Keep main() on the process's main thread until setProcessName ran:
	// the kernel keeps the name per thread, and ps shows the main thread's.
	if len(os.Args) < 2 || os.Args[1] != "child" {
		runtime.LockOSThread()
	}
}

// setProcessName names the parent "stomp-broker" in ps, top and ss -p. It
// matters after the re-exec of /proc/self/exe into a private IPC
// namespace, which would otherwise leave every broker called "exe".
func setProcessName() {
	name := []byte("stomp-broker\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	runtime.UnlockOSThread()
}
