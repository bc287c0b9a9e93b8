// Package semaphore is the broker's System V semaphore layer: thin wrappers over
// semget(2), semtimedop(2) and semctl(2) (golang.org/x/sys/unix has none), the
// offer-slot operations the parent and the children use to arbitrate queue delivery,
// the reference count that removes the set when the last broker process leaves, and
// the two safety nets that keep a set from outliving a crashed broker: a runtime
// record that the next start (or `stomp-broker ipc-clean`) sweeps, and a private IPC
// namespace that the kernel destroys together with the broker's last process.
//
// It sits beside the ipc package on the queue path, at hops 4 to 6 of
// docs/ARCHITECTURE.md: the parent arms a slot and sends an OFFER over the
// socketpairs, the children race here for the token, the winner's CLAIM goes back
// over its socketpair, and the parent's GRANT disarms the slot. Topics never touch
// this package.
//
// # Layout of a set
//
// A [Set] has Slots()+1 semaphores:
//
//   - semaphore 0 is the reference count of live broker processes. Every process adds
//     1 with SEM_UNDO when it creates or joins the set ([Create], [Join]), so the
//     kernel takes the 1 back when a process dies, however it dies. [Set.Leave] takes
//     it back explicitly and removes the set when the count reaches 0. Semaphore 0 is
//     never SETVAL'd: SETVAL wipes every process's undo record for that semaphore and
//     the count would stop following deaths.
//   - semaphores 1..Slots() are offer slots, a ring the parent reuses for successive
//     messages.
//
// # The slot protocol
//
//  1. The parent arms a free slot for each offer ([Set.Arm], SETVAL 1) and sends
//     OFFER slot/generation/message-id to the subscribed children with credit. (An
//     offer may stand for a batch of messages of one queue; the token is still one.)
//  2. Children with credit race [Set.TryTake] (semop -1 with IPC_NOWAIT|SEM_UNDO).
//     Exactly one wins; the losers get EAGAIN and drop the offer. SEM_UNDO hands the
//     token back if the winner dies before the parent hears from it.
//  3. The winner sends CLAIM before writing anything to its client. The semaphore is
//     only a contention filter: the parent's ledger is the single source of truth and
//     grants or denies the claim (a slow child may have taken a newer offer's token
//     from a reused slot).
//  4. When it GRANTs the claim the parent commits with [Set.Disarm] (SETVAL 0), which
//     also erases the winner's undo record, so the winner exiting later cannot
//     resurrect the token, and frees the slot for the next offer. From then on only
//     the ledger knows who holds the message: if the winner dies before its client's
//     ACK, the parent requeues the message when it sees the child's socketpair close,
//     and the semaphore plays no part.
//
// Slots are armed and recycled only with SETVAL, never with semop(+1): a +1 leaves
// the previous winner's undo record in place, and when that winner exits the kernel
// adds its 1 back, a phantom token that lets the next message be won twice. For the
// same reason slot values are not binary: a dying holder of an old token can push a
// re-armed slot to 2, so "is there a token" is Value > 0, not Value == 1.
//
// # Ownership
//
// Only the parent's event loop arms, disarms and removes; children only join, take
// and leave. A *Set is safe for concurrent use, but the protocol above assumes one
// writer.
//
// # Inspecting sets
//
// `ipcs -s` lists the sets of the caller's IPC namespace (key 0x00000000, mode 600,
// Slots()+1 semaphores); `ipcs -s -i <semid>` shows each value and the pid of the last
// operation. When the broker runs in its private IPC namespace (see
// [EnterPrivateIPCNamespace]) the host's `ipcs -s` shows nothing; use
// `nsenter -t <parent-pid> -i ipcs -s`. The runtime record written by [WriteRecord]
// is one JSON line naming the set, the parent pid and the boot it belongs to.
//
// # Platforms
//
// The implementation is Linux-only and built for amd64 and arm64, the two
// architectures whose semid64_ds layout and syscall numbers it was checked against.
// Elsewhere every function returns [ErrNotSupported].
//
// # Files
//
//   - semaphore.go: the portable API (Set, errors); semaphore_linux.go: semget,
//     semtimedop and semctl through unix.Syscall; semaphore_other.go: stubs
//   - semid_linux_*.go: struct semid64_ds per architecture
//   - record_linux.go: the crash record and the start-up sweep (ipc-clean)
//   - namespace_linux.go: re-exec into a private IPC namespace
package semaphore
