//go:build linux && (amd64 || arm64)

package semaphore

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Values from <linux/sem.h>; the same on every Linux architecture. x/sys/unix does
// not define them.
const (
	semUndo = 0x1000 // SEM_UNDO: the kernel reverts this operation when the process exits
	getVal  = 12     // GETVAL
	setVal  = 16     // SETVAL
)

// refSem is the semaphore that counts live broker processes.
const refSem = 0

// sembuf is struct sembuf from <sys/sem.h>: unsigned short sem_num; short sem_op;
// short sem_flg. Six bytes, no padding, identical on every architecture.
type sembuf struct {
	num uint16
	op  int16
	flg int16
}

// retryEINTR calls f until it returns something other than EINTR. semop(2) is
// never restarted after a signal handler (SA_RESTART does not apply to it), and the
// Go runtime delivers signals to arbitrary threads, so any call can see EINTR.
func retryEINTR(f func() (uintptr, unix.Errno)) (uintptr, unix.Errno) {
	for {
		r, e := f()
		if e != unix.EINTR {
			return r, e
		}
	}
}

// errnoErr converts a zero Errno to a nil error.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// semget wraps semget(2).
func semget(key, nsems, flag int) (int, error) {
	r, e := retryEINTR(func() (uintptr, unix.Errno) {
		r, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flag))
		return r, e
	})
	return int(r), errnoErr(e)
}

// semop wraps semtimedop(2) with a nil timeout, which is semop(2): amd64 and arm64
// both have SYS_SEMTIMEDOP, while 386 has no SYS_SEMOP. unix.Syscall (not
// RawSyscall) lets the scheduler run other goroutines should an operation block.
func semop(id int, ops []sembuf) error {
	_, e := retryEINTR(func() (uintptr, unix.Errno) {
		r, _, e := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id),
			uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)), 0, 0, 0)
		return r, e
	})
	return errnoErr(e)
}

// rawSemop is semop for operations that cannot block (IPC_NOWAIT), and
// rawSemctl is semctl for commands that never block (SETVAL, GETVAL): they
// make the system call without telling the Go scheduler (RawSyscall), so a
// process that was idle does not first wake the runtime's monitor thread
// (sysmon), as every scheduler-visible system call after an idle spell
// does. The queue path makes one of them per offer (the race) and two per
// message (arm, disarm).
func rawSemop(id int, ops []sembuf) error {
	_, e := retryEINTR(func() (uintptr, unix.Errno) {
		r, _, e := unix.RawSyscall6(unix.SYS_SEMTIMEDOP, uintptr(id),
			uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)), 0, 0, 0)
		return r, e
	})
	return errnoErr(e)
}

func rawSemctl(id, num, cmd int, arg uintptr) (int, error) {
	r, e := retryEINTR(func() (uintptr, unix.Errno) {
		r, _, e := unix.RawSyscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), arg, 0, 0)
		return r, e
	})
	return int(r), errnoErr(e)
}

// semctl wraps semctl(2). arg is the fourth argument (union semun): an int value for
// SETVAL, a pointer for IPC_STAT, ignored otherwise. On 64-bit Linux the kernel
// always uses the IPC_64 structures, so no version flag is added to cmd.
func semctl(id, num, cmd int, arg uintptr) (int, error) {
	r, e := retryEINTR(func() (uintptr, unix.Errno) {
		r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), arg, 0, 0)
		return r, e
	})
	return int(r), errnoErr(e)
}

// semStat is the part of struct semid64_ds this package reads.
type semStat struct {
	perm  unix.SysvIpcPerm
	nsems int
}

// stat runs IPC_STAT on the set.
func stat(id int) (semStat, error) {
	var ds semidDS // architecture-specific layout, see semid_linux_*.go
	if _, err := semctl(id, 0, unix.IPC_STAT, uintptr(unsafe.Pointer(&ds))); err != nil {
		return semStat{}, err
	}
	return semStat{perm: ds.Perm, nsems: int(ds.Nsems)}, nil
}

// rmid removes the set (IPC_RMID). Blocked waiters, if any, wake with EIDRM.
func rmid(id int) error {
	_, err := semctl(id, 0, unix.IPC_RMID, 0)
	return err
}

// isGone reports whether err means the set does not exist (any more).
func isGone(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM) || errors.Is(err, ErrRemoved)
}

// wrap adds context to a syscall error and, for EINVAL/EIDRM, ErrRemoved as well
// as the errno, so that both errors.Is(err, ErrRemoved) and errors.Is(err, unix.EIDRM)
// hold.
func wrap(what string, id int, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM) {
		return fmt.Errorf("semaphore: %s on set %d: %w (%w)", what, id, ErrRemoved, err)
	}
	return fmt.Errorf("semaphore: %s on set %d: %w", what, id, err)
}

// held lists the sets this process currently holds a reference on. Sweep refuses
// to remove any of them: a record left by a dead broker can name an id that, after
// a namespace or id has been recycled, is this process's own live set.
var held = struct {
	sync.Mutex
	ids map[int]int
}{ids: map[int]int{}}

func hold(id int) {
	held.Lock()
	held.ids[id]++
	held.Unlock()
}

func release(id int) {
	held.Lock()
	if held.ids[id]--; held.ids[id] <= 0 {
		delete(held.ids, id)
	}
	held.Unlock()
}

func isHeld(id int) bool {
	held.Lock()
	defer held.Unlock()
	return held.ids[id] > 0
}

// checkSlotCount validates the slot count given to Create and Join.
func checkSlotCount(slots int) error {
	if slots < 1 || slots > MaxSlots {
		return fmt.Errorf("semaphore: %d slots: want 1..%d: %w", slots, MaxSlots, ErrBadSlot)
	}
	return nil
}

// Create makes a new private set (IPC_PRIVATE, mode 0600) with `slots` offer slots
// plus the refcount semaphore, and joins it (refcount +1 with SEM_UNDO). Used by the
// parent once at start. All slots start at 0 (Linux zeroes new sets). If joining
// fails the new set is removed again. The caller owns the set: it must eventually
// call [Set.Leave] or [Set.Remove], and should record it with [WriteRecord].
func Create(slots int) (*Set, error) {
	if err := checkSlotCount(slots); err != nil {
		return nil, err
	}
	id, err := semget(unix.IPC_PRIVATE, slots+1, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		return nil, fmt.Errorf("semaphore: semget of %d semaphores: %w", slots+1, err)
	}
	s := &Set{id: id, slots: slots}
	if err := s.addRef(); err != nil {
		_ = rmid(id) // nobody else knows the id yet
		return nil, err
	}
	return s, nil
}

// Join attaches to an existing set by id (child processes get the id in their
// environment) and increments the refcount with SEM_UNDO, so the kernel decrements it
// again if this process dies. It returns an error wrapping [ErrRemoved] (and
// EINVAL/EIDRM) if the set is gone, and one wrapping [ErrSizeMismatch] if the set
// does not have exactly `slots` slots. The caller should call [Set.Leave] on an
// orderly exit.
func Join(id int, slots int) (*Set, error) {
	if err := checkSlotCount(slots); err != nil {
		return nil, err
	}
	st, err := stat(id)
	if err != nil {
		return nil, wrap("join (IPC_STAT)", id, err)
	}
	if st.nsems != slots+1 {
		return nil, fmt.Errorf("semaphore: join set %d: it has %d semaphores, want %d: %w",
			id, st.nsems, slots+1, ErrSizeMismatch)
	}
	s := &Set{id: id, slots: slots}
	if err := s.addRef(); err != nil {
		return nil, err
	}
	return s, nil
}

// addRef adds this process to the refcount. +1 never blocks.
func (s *Set) addRef() error {
	if err := semop(s.id, []sembuf{{num: refSem, op: 1, flg: semUndo}}); err != nil {
		return wrap("join (refcount +1)", s.id, err)
	}
	hold(s.id)
	return nil
}

// checkSlot rejects slot numbers outside 1..Slots() and handles on removed sets.
func (s *Set) checkSlot(what string, slot int) error {
	if slot < 1 || slot > s.slots {
		return fmt.Errorf("semaphore: %s slot %d of set %d (slots 1..%d): %w", what, slot, s.id, s.slots, ErrBadSlot)
	}
	if s.gone.Load() {
		return fmt.Errorf("semaphore: %s slot %d of set %d: %w", what, slot, s.id, ErrRemoved)
	}
	return nil
}

// setSlot runs SETVAL on a slot.
func (s *Set) setSlot(what string, slot, value int) error {
	if err := s.checkSlot(what, slot); err != nil {
		return err
	}
	if _, err := rawSemctl(s.id, slot, setVal, uintptr(value)); err != nil {
		return wrap(fmt.Sprintf("%s slot %d (SETVAL %d)", what, slot, value), s.id, err)
	}
	return nil
}

// Arm sets slot's value to 1 with SETVAL (this also clears every process's undo
// record for it): the slot now carries one token for children to race for. Arming
// an armed slot leaves it at 1. Errors wrap [ErrBadSlot] or [ErrRemoved].
func (s *Set) Arm(slot int) error { return s.setSlot("arm", slot, 1) }

// Disarm sets slot's value to 0 with SETVAL ("commit": clears the winner's undo
// record, so the winner's exit can no longer give the token back). The parent calls
// it when the message is acknowledged or the offer is withdrawn. Errors wrap
// [ErrBadSlot] or [ErrRemoved].
func (s *Set) Disarm(slot int) error { return s.setSlot("disarm", slot, 0) }

// Value returns GETVAL of slot (values are not binary: SEM_UNDO can push it to 2).
// A value > 0 means a token is available. Errors wrap [ErrBadSlot] or [ErrRemoved].
func (s *Set) Value(slot int) (int, error) {
	if err := s.checkSlot("value of", slot); err != nil {
		return 0, err
	}
	v, err := semctl(s.id, slot, getVal, 0)
	if err != nil {
		return 0, wrap(fmt.Sprintf("value of slot %d (GETVAL)", slot), s.id, err)
	}
	return v, nil
}

// Refs returns the refcount (GETVAL of semaphore 0): the number of live processes
// that created or joined the set and have not left it. Errors wrap [ErrRemoved].
func (s *Set) Refs() (int, error) {
	if s.gone.Load() {
		return 0, fmt.Errorf("semaphore: refcount of set %d: %w", s.id, ErrRemoved)
	}
	v, err := semctl(s.id, refSem, getVal, 0)
	if err != nil {
		return 0, wrap("refcount (GETVAL)", s.id, err)
	}
	return v, nil
}

// TryTake decrements slot by one with IPC_NOWAIT|SEM_UNDO. It never blocks.
// (true,nil) = this process won the token; (false,nil) = someone else has it
// (EAGAIN); (false, err) = the set is gone or broken (errors.Is(err, ErrRemoved)
// for EINVAL/EIDRM; ErrBadSlot for a bad slot). A winner must report its claim to
// the parent before acting on it: winning the token is not being granted the message.
func (s *Set) TryTake(slot int) (bool, error) {
	if err := s.checkSlot("take", slot); err != nil {
		return false, err
	}
	err := rawSemop(s.id, []sembuf{{num: uint16(slot), op: -1, flg: unix.IPC_NOWAIT | semUndo}})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EAGAIN):
		return false, nil
	default:
		return false, wrap(fmt.Sprintf("take slot %d", slot), s.id, err)
	}
}

// Leave decrements the refcount (cancelling this process's undo for it) and, if it
// reached 0, removes the set (IPC_RMID). Returns whether this call removed the set.
// Safe to call twice: later calls, and calls after [Set.Remove] on this handle,
// return (false, nil). If the set had already been removed by someone else it
// returns (false, err) with err wrapping [ErrRemoved], which a leaving process can
// usually ignore. Two processes leaving at the same moment may both see 0; one
// removes the set and the other gets (false, nil).
func (s *Set) Leave() (removed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left || s.gone.Load() {
		return false, nil
	}
	// Taking our 1 back with SEM_UNDO also adds 1 to our undo adjustment, which
	// cancels the -1 registered by Create/Join: the kernel will not decrement again
	// when this process exits.
	err = semop(s.id, []sembuf{{num: refSem, op: -1, flg: unix.IPC_NOWAIT | semUndo}})
	switch {
	case err == nil:
	case errors.Is(err, unix.EAGAIN):
		// The count is 0 although we hold a reference: someone SETVAL'd semaphore 0,
		// which also erased our undo record. There is nothing of ours left to drop.
		s.left = true
		release(s.id)
		return false, fmt.Errorf("semaphore: leave set %d: refcount already 0 (was semaphore 0 SETVAL'd?): %w", s.id, err)
	default:
		if isGone(err) {
			s.left = true
			release(s.id)
		}
		return false, wrap("leave (refcount -1)", s.id, err)
	}
	s.left = true
	release(s.id)

	// Whoever made the last decrement sees 0 here, unless a new process joined in
	// between, in which case that process is now responsible for the set.
	n, err := semctl(s.id, refSem, getVal, 0)
	if err != nil {
		if isGone(err) {
			return false, nil // another last leaver removed it first
		}
		return false, wrap("leave (GETVAL refcount)", s.id, err)
	}
	if n > 0 {
		return false, nil
	}
	if err := rmid(s.id); err != nil {
		if isGone(err) {
			return false, nil
		}
		return false, wrap("leave (IPC_RMID)", s.id, err)
	}
	s.gone.Store(true)
	return true, nil
}

// Remove removes the set unconditionally (IPC_RMID). Used by the parent on shutdown
// after its children are gone, and by the sweep. Processes still using the set get
// ErrRemoved from their next operation. Calling Remove again on the same handle
// returns nil without a syscall (the id may already belong to a new set); if someone
// else removed the set first, the error wraps [ErrRemoved].
func (s *Set) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone.Load() {
		return nil
	}
	err := rmid(s.id)
	if err != nil && !isGone(err) {
		return wrap("remove (IPC_RMID)", s.id, err)
	}
	s.gone.Store(true)
	if !s.left {
		s.left = true
		release(s.id)
	}
	return wrap("remove (IPC_RMID)", s.id, err)
}
