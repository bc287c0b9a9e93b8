package semaphore

import "golang.org/x/sys/unix"

// semidDS is struct semid64_ds on arm64, the generic 64-bit layout
// (include/uapi/asm-generic/sembuf.h): no padding after the time fields.
type semidDS struct {
	Perm  unix.SysvIpcPerm
	Otime int64
	Ctime int64
	Nsems uint64
	_     uint64
	_     uint64
}
