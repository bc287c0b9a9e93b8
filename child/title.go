package child

import (
	"os"
	"unsafe"
)

// setTitle rewrites the args line ps shows for this process
// (/proc/PID/cmdline) to title, in place: Go's os.Args strings point into
// the argv block the kernel put on the process's stack (the runtime does
// not copy them), and the kernel reads cmdline from that block. The block
// cannot grow, so title is cut to fit; the parent pads a spare's argv[0]
// to ipc.TitleRoom bytes to leave room for the client's address.
//
// The kernel returns the whole block, NULs included, while its last byte
// is a NUL; once that byte is not, it treats the block as a
// setproctitle(3) title and returns it up to the first NUL. setTitle
// writes title, a NUL, NUL padding and a final space, so ps shows exactly
// title. It does nothing if argv is not one contiguous block.
//
// Nothing else in the child may read os.Args afterwards: the strings
// change under it.
func setTitle(title string) {
	if len(os.Args) == 0 || len(os.Args[0]) == 0 {
		return
	}
	start := unsafe.StringData(os.Args[0])
	size := 0
	for _, a := range os.Args {
		if len(a) == 0 || unsafe.StringData(a) != (*byte)(unsafe.Add(unsafe.Pointer(start), size)) {
			return // not laid out as the kernel does it; leave it alone
		}
		size += len(a) + 1 // and its NUL
	}
	block := unsafe.Slice(start, size)
	if len(title) > size-2 {
		title = title[:size-2]
	}
	n := copy(block, title)
	clear(block[n:])
	block[size-1] = ' '
}
