package semaphore

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// EnvPrivateIPC names the environment variable that [EnterPrivateIPCNamespace] sets
// before re-executing the program. Its presence (any non-empty value) means the
// process already runs in the broker's private IPC namespace. Children inherit it,
// which is accurate: they live in the same namespace.
const EnvPrivateIPC = "STOMP_BROKER_PRIVATE_IPC"

var (
	// ErrRemoved reports that the set no longer exists: the kernel answered EINVAL or
	// EIDRM, or this process removed it. The errno, when there is one, is wrapped too.
	// For a broker process this is fatal-and-restart, never "lost the race": someone
	// (a sweep, logind's RemoveIPC, an operator) deleted the set underneath it.
	ErrRemoved = errors.New("semaphore: set removed")

	// ErrNotSupported is returned by every function on platforms without the Linux
	// implementation.
	ErrNotSupported = errors.New("semaphore: SysV semaphores are not supported on this platform")

	// ErrBadSlot is returned when a slot number is outside 1..Slots(). Slot 0 is the
	// reference count and is not reachable through the slot methods.
	ErrBadSlot = errors.New("semaphore: slot out of range")

	// ErrSizeMismatch is returned by [Join] when the set does not have the number of
	// slots the caller expects (a stale or wrong id in the environment).
	ErrSizeMismatch = errors.New("semaphore: set has a different number of slots")

	// ErrBadRecord is returned by [Sweep] when the runtime record cannot be parsed.
	// The file is left in place for an operator to inspect.
	ErrBadRecord = errors.New("semaphore: malformed runtime record")

	// ErrAlreadyPrivate is returned by [EnterPrivateIPCNamespace] when the marker is
	// already set: re-executing again would loop.
	ErrAlreadyPrivate = errors.New("semaphore: already in the private IPC namespace")

	// ErrNamespaceSplit is returned by [EnterPrivateIPCNamespace] in the one case it
	// cannot clean up after: the exec failed and the calling thread could not be moved
	// back to the original IPC namespace. Threads of the process now disagree about
	// which sets exist; the caller must exit rather than continue.
	ErrNamespaceSplit = errors.New("semaphore: process threads are split across IPC namespaces")
)

// MaxSlots is the largest slot count this package accepts: sem_num is an unsigned
// short and semaphore 0 is the refcount. The kernel's SEMMSL (first field of
// /proc/sys/kernel/sem, 32,000 on current kernels) is usually the tighter limit;
// [Create] reports it as a semget error.
const MaxSlots = 65534

// Set is a SysV semaphore set: semaphore 0 counts live broker processes (refcount),
// semaphores 1..Slots() are offer slots. A Set is one process's handle on the set;
// it is created by [Create] or [Join] and is safe for concurrent use. After
// [Set.Leave] or [Set.Remove] it must not be used for slot operations.
type Set struct {
	id    int
	slots int

	// gone is set once this handle removed the set. Later operations fail with
	// ErrRemoved without a syscall: the kernel may hand the same id to a new set
	// one day, and a stale handle must never touch somebody else's set.
	gone atomic.Bool

	mu   sync.Mutex // serialises Leave and Remove
	left bool       // this handle's refcount contribution has been taken back
}

// ID returns the kernel's identifier of the set, the value children receive in their
// environment and pass to [Join], and the semid that `ipcs -s` shows.
func (s *Set) ID() int { return s.id }

// Slots returns the number of offer slots; valid slot numbers are 1..Slots().
func (s *Set) Slots() int { return s.slots }

// SweepResult describes what [Sweep] found and did.
type SweepResult struct {
	// Removed is true if Sweep removed the recorded semaphore set.
	Removed bool
	// SemID and ParentPID are copied from the record (zero if there was none).
	SemID     int
	ParentPID int
	// Reason is a one-line, human-readable account of the decision, for the log.
	Reason string
	// RecordRemoved is true if Sweep deleted the record file (it does so whenever the
	// recorded parent is gone, whether or not the set still existed).
	RecordRemoved bool
}

// InPrivateIPCNamespace reports whether [EnvPrivateIPC] is set, i.e. whether this
// process (or an ancestor it inherited the environment from) already re-executed
// itself into a private IPC namespace. It does not inspect the namespace itself.
func InPrivateIPCNamespace() bool { return os.Getenv(EnvPrivateIPC) != "" }

// withMarker returns env with every EnvPrivateIPC entry replaced by one carrying
// value, so a re-executed image sees exactly one marker.
func withMarker(env []string, value string) []string {
	out := make([]string, 0, len(env)+1)
	prefix := EnvPrivateIPC + "="
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, prefix+value)
}
