package semaphore

import "golang.org/x/sys/unix"

// semidDS is struct semid64_ds on x86-64 (arch/x86/include/uapi/asm/sembuf.h),
// which keeps padding words after each time field.
type semidDS struct {
	Perm  unix.SysvIpcPerm
	Otime int64
	_     uint64
	Ctime int64
	_     uint64
	Nsems uint64
	_     uint64
	_     uint64
}
