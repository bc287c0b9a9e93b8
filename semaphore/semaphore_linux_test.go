//go:build linux && (amd64 || arm64)

package semaphore

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// newSet creates a set for one test and removes it (asserting that it is gone)
// when the test ends.
func newSet(t testing.TB, slots int) *Set {
	t.Helper()
	s, err := Create(slots)
	if err != nil {
		t.Fatalf("Create(%d): %v", slots, err)
	}
	t.Cleanup(func() {
		if err := s.Remove(); err != nil && !errors.Is(err, ErrRemoved) {
			t.Errorf("Remove: %v", err)
		}
		requireGone(t, s.ID())
	})
	return s
}

func TestRetryEINTR(t *testing.T) {
	tests := []struct {
		name   string
		errnos []unix.Errno // returned by successive calls
		want   unix.Errno
		calls  int
	}{
		{"success first time", []unix.Errno{0}, 0, 1},
		{"EINTR twice then success", []unix.Errno{unix.EINTR, unix.EINTR, 0}, 0, 3},
		{"EINTR then EAGAIN", []unix.Errno{unix.EINTR, unix.EAGAIN}, unix.EAGAIN, 2},
		{"other errors are not retried", []unix.Errno{unix.EIDRM, 0}, unix.EIDRM, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			_, got := retryEINTR(func() (uintptr, unix.Errno) {
				e := tc.errnos[calls]
				calls++
				return 0, e
			})
			if got != tc.want || calls != tc.calls {
				t.Errorf("got %v after %d calls, want %v after %d", got, calls, tc.want, tc.calls)
			}
		})
	}
}

func TestWithMarker(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"added", []string{"A=1"}, []string{"A=1", EnvPrivateIPC + "=v"}},
		{"replaced", []string{EnvPrivateIPC + "=old", "A=1"}, []string{"A=1", EnvPrivateIPC + "=v"}},
		{"prefix of another name kept", []string{EnvPrivateIPC + "X=1"}, []string{EnvPrivateIPC + "X=1", EnvPrivateIPC + "=v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := withMarker(tc.env, "v"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCreateBadSlotCounts(t *testing.T) {
	for _, slots := range []int{-1, 0, MaxSlots + 1} {
		if s, err := Create(slots); !errors.Is(err, ErrBadSlot) {
			if s != nil {
				s.Remove()
			}
			t.Errorf("Create(%d): err %v, want ErrBadSlot", slots, err)
		}
	}
}

// TestStatLayout checks semidDS against what the kernel reports for a fresh set,
// and Create's documented properties (private key, mode 0600, refcount 1, slots 0).
func TestStatLayout(t *testing.T) {
	const slots = 37
	s := newSet(t, slots)
	st, err := stat(s.ID())
	if err != nil {
		t.Fatal(err)
	}
	if st.nsems != slots+1 || st.perm.Key != unix.IPC_PRIVATE || st.perm.Mode&0o777 != 0o600 ||
		st.perm.Cuid != uint32(os.Geteuid()) {
		t.Errorf("IPC_STAT: nsems %d key %#x mode %o cuid %d; want %d, 0, 600, %d",
			st.nsems, st.perm.Key, st.perm.Mode&0o777, st.perm.Cuid, slots+1, os.Geteuid())
	}
	if got := sysvSets(t)[s.ID()]; got != slots+1 {
		t.Errorf("/proc/sysvipc/sem: set %d has %d semaphores, want %d", s.ID(), got, slots+1)
	}
	if n, err := s.Refs(); n != 1 || err != nil {
		t.Errorf("Refs = %d, %v; want 1", n, err)
	}
	for slot := 1; slot <= slots; slot++ {
		if v, err := s.Value(slot); v != 0 || err != nil {
			t.Fatalf("Value(%d) = %d, %v; want 0", slot, v, err)
		}
	}
}

// TestSlotOperations runs a script of slot operations in one process and checks
// each result. TryTake uses SEM_UNDO, so every script ends disarmed.
func TestSlotOperations(t *testing.T) {
	type step struct {
		op    string // arm, disarm, take, value
		slot  int
		want  int   // value for "value"; 1/0 for take
		isErr error // expected error, if any
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a new slot has no token", []step{
			{"value", 1, 0, nil}, {"take", 1, 0, nil}, {"value", 1, 0, nil}}},
		{"arm gives exactly one token", []step{
			{"arm", 1, 0, nil}, {"value", 1, 1, nil}, {"take", 1, 1, nil},
			{"value", 1, 0, nil}, {"take", 1, 0, nil}, {"disarm", 1, 0, nil}}},
		{"arm is SETVAL, not +1", []step{
			{"arm", 2, 0, nil}, {"arm", 2, 0, nil}, {"value", 2, 1, nil},
			{"take", 2, 1, nil}, {"take", 2, 0, nil}, {"disarm", 2, 0, nil}}},
		{"disarm withdraws the token", []step{
			{"arm", 3, 0, nil}, {"disarm", 3, 0, nil}, {"value", 3, 0, nil}, {"take", 3, 0, nil}}},
		{"slots are independent", []step{
			{"arm", 1, 0, nil}, {"value", 2, 0, nil}, {"value", 3, 0, nil},
			{"take", 2, 0, nil}, {"value", 1, 1, nil}, {"disarm", 1, 0, nil}}},
		{"slot 0 is the refcount, not a slot", []step{
			{"arm", 0, 0, ErrBadSlot}, {"disarm", 0, 0, ErrBadSlot},
			{"take", 0, 0, ErrBadSlot}, {"value", 0, 0, ErrBadSlot}}},
		{"slot past the end", []step{
			{"arm", 4, 0, ErrBadSlot}, {"take", 4, 0, ErrBadSlot}, {"value", -1, 0, ErrBadSlot}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, 3)
			for i, st := range tc.steps {
				var got int
				var err error
				switch st.op {
				case "arm":
					err = s.Arm(st.slot)
				case "disarm":
					err = s.Disarm(st.slot)
				case "value":
					got, err = s.Value(st.slot)
				case "take":
					var won bool
					won, err = s.TryTake(st.slot)
					if won {
						got = 1
					}
				}
				if st.isErr != nil {
					if !errors.Is(err, st.isErr) {
						t.Fatalf("step %d %s(%d): err %v, want %v", i, st.op, st.slot, err, st.isErr)
					}
					continue
				}
				if err != nil || got != st.want {
					t.Fatalf("step %d %s(%d) = %d, %v; want %d", i, st.op, st.slot, got, err, st.want)
				}
			}
			if n, err := s.Refs(); n != 1 || err != nil {
				t.Errorf("Refs = %d, %v; slot operations must not touch the refcount", n, err)
			}
		})
	}
}

// TestRemovedSet checks that every operation reports ErrRemoved after Remove, both
// through the handle that removed the set (no syscall) and through another handle
// on the same set (the kernel answers EINVAL).
func TestRemovedSet(t *testing.T) {
	s := newSet(t, 2)
	other, err := Join(s.ID(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	requireGone(t, s.ID())
	if err := s.Remove(); err != nil {
		t.Errorf("second Remove on the same handle: %v, want nil", err)
	}
	if err := other.Remove(); !errors.Is(err, ErrRemoved) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("Remove through another handle: %v, want ErrRemoved wrapping EINVAL", err)
	}

	ops := []struct {
		name string
		do   func(*Set) error
	}{
		{"Arm", func(s *Set) error { return s.Arm(1) }},
		{"Disarm", func(s *Set) error { return s.Disarm(2) }},
		{"Value", func(s *Set) error { _, err := s.Value(1); return err }},
		{"Refs", func(s *Set) error { _, err := s.Refs(); return err }},
		{"TryTake", func(s *Set) error { _, err := s.TryTake(1); return err }},
	}
	for _, op := range ops {
		for _, h := range []struct {
			name string
			set  *Set
		}{{"remover", s}, {"kernel", mustJoinHandle(s.ID(), 2)}} {
			t.Run(op.name+"/"+h.name, func(t *testing.T) {
				if err := op.do(h.set); !errors.Is(err, ErrRemoved) {
					t.Errorf("%s after Remove: %v, want ErrRemoved", op.name, err)
				}
			})
		}
	}

	if _, err := Join(s.ID(), 2); !errors.Is(err, ErrRemoved) {
		t.Errorf("Join after Remove: %v, want ErrRemoved", err)
	}
	if removed, err := s.Leave(); removed || err != nil {
		t.Errorf("Leave after own Remove = %v, %v; want false, nil", removed, err)
	}
}

// mustJoinHandle builds a handle on id without joining, to reach the kernel with a
// removed id (Join itself would refuse).
func mustJoinHandle(id, slots int) *Set { return &Set{id: id, slots: slots} }

func TestJoinErrors(t *testing.T) {
	s := newSet(t, 4)
	tests := []struct {
		name  string
		id    int
		slots int
		want  error
	}{
		{"wrong slot count", s.ID(), 5, ErrSizeMismatch},
		{"bad slot count", s.ID(), 0, ErrBadSlot},
		{"no such set", -1, 4, ErrRemoved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Join(tc.id, tc.slots)
			if !errors.Is(err, tc.want) {
				if j != nil {
					j.Leave()
				}
				t.Fatalf("Join(%d, %d): %v, want %v", tc.id, tc.slots, err, tc.want)
			}
		})
	}
	if n, _ := s.Refs(); n != 1 {
		t.Errorf("failed joins changed the refcount to %d", n)
	}
}

// TestLeaveInProcess follows the refcount through joins and leaves of handles in
// this process; the last Leave removes the set, and repeated Leaves are no-ops.
func TestLeaveInProcess(t *testing.T) {
	s, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	removeOnCleanup(t, id)
	j1, err1 := Join(id, 1)
	j2, err2 := Join(id, 1)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	steps := []struct {
		set         *Set
		wantRemoved bool
		wantRefs    int // after the Leave; -1 = set gone
	}{
		{j1, false, 2},
		{j1, false, 2}, // second Leave on the same handle changes nothing
		{s, false, 1},  // the creator is not special
		{j2, true, -1},
		{j2, false, -1},
		{s, false, -1},
	}
	for i, st := range steps {
		removed, err := st.set.Leave()
		if err != nil || removed != st.wantRemoved {
			t.Fatalf("step %d: Leave = %v, %v; want %v, nil", i, removed, err, st.wantRemoved)
		}
		if st.wantRefs < 0 {
			requireGone(t, id)
			continue
		}
		if n := rawValue(t, id, refSem); n != st.wantRefs {
			t.Fatalf("step %d: refcount %d, want %d", i, n, st.wantRefs)
		}
	}
}

// TestRaceOneWinner: 8 helper processes race TryTake for one armed slot, round
// after round; every round must have exactly one winner.
func TestRaceOneWinner(t *testing.T) {
	const racers = 8
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	s := newSet(t, 1)
	var hs []*helperProc
	for range racers {
		h := startHelper(t, "join", strconv.Itoa(s.ID()), "1")
		h.expectLine("joined")
		hs = append(hs, h)
	}
	if n, _ := s.Refs(); n != racers+1 {
		t.Fatalf("refcount %d with %d racers joined, want %d", n, racers, racers+1)
	}

	wins := make([]int, racers)
	for round := range rounds {
		if err := s.Arm(1); err != nil {
			t.Fatal(err)
		}
		// Release all racers before reading any answer, so they really race.
		for i := range hs {
			hs[(round+i)%racers].send("take 1")
		}
		winners := 0
		for i, h := range hs {
			switch line := h.expect(); line {
			case "won":
				winners++
				wins[i]++
			case "lost":
			default:
				t.Fatalf("round %d racer %d: %q", round, i, line)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, winners)
		}
		if v, _ := s.Value(1); v != 0 {
			t.Fatalf("round %d: slot value %d after the race, want 0", round, v)
		}
		// Commit: clears the winner's undo, so its exit cannot bring the token back.
		if err := s.Disarm(1); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wins per racer over %d rounds: %v", rounds, wins)

	for _, h := range hs {
		h.send("leave")
		h.expectLine("left false")
		h.exit()
	}
	if n, _ := s.Refs(); n != 1 {
		t.Errorf("refcount %d after all racers left, want 1", n)
	}
	if v, _ := s.Value(1); v != 0 {
		t.Errorf("slot value %d after the racers exited, want 0 (committed tokens must stay spent)", v)
	}
}

// TestUndo covers what happens to a token when its winner exits or dies: SEM_UNDO
// gives it back unless the parent committed (SETVAL) first, and recycling a slot
// with semop(+1) instead of SETVAL creates a phantom token.
func TestUndo(t *testing.T) {
	tests := []struct {
		name    string
		commit  bool   // parent Disarms after the helper wins
		recycle string // "", "SETVAL" or "semop+1": re-offer the slot, and this process wins it
		kill    bool   // SIGKILL the helper instead of letting it exit
		want    int    // slot value after the helper is reaped
	}{
		{name: "SIGKILLed winner's token comes back", kill: true, want: 1},
		{name: "exiting winner's token comes back", want: 1},
		{name: "Disarm commits, exit keeps 0", commit: true, want: 0},
		{name: "Disarm commits, SIGKILL keeps 0", commit: true, kill: true, want: 0},
		{name: "recycle with SETVAL: no phantom token", recycle: "SETVAL", kill: true, want: 0},
		{name: "recycle with semop+1: phantom token", recycle: "semop+1", kill: true, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, 1)
			if err := s.Arm(1); err != nil {
				t.Fatal(err)
			}
			h := startHelper(t, "join", strconv.Itoa(s.ID()), "1")
			h.expectLine("joined")
			h.send("take 1")
			h.expectLine("won")
			if v, _ := s.Value(1); v != 0 {
				t.Fatalf("value %d after the helper won, want 0", v)
			}

			if tc.commit {
				if err := s.Disarm(1); err != nil {
					t.Fatal(err)
				}
			}
			switch tc.recycle {
			case "SETVAL":
				if err := s.Arm(1); err != nil {
					t.Fatal(err)
				}
			case "semop+1": // what the protocol forbids, done by hand
				if err := semop(s.ID(), []sembuf{{num: 1, op: 1}}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.recycle != "" {
				if won, err := s.TryTake(1); !won || err != nil {
					t.Fatalf("this process could not win the recycled slot: %v, %v", won, err)
				}
			}

			if tc.kill {
				h.kill()
			} else {
				h.exit()
			}
			if v, _ := s.Value(1); v != tc.want {
				t.Errorf("slot value %d after the helper was reaped, want %d", v, tc.want)
			}
			if n, _ := s.Refs(); n != 1 {
				t.Errorf("refcount %d after the helper was reaped, want 1 (kernel undo of its join)", n)
			}
			// Clear this process's own undo record before the set goes.
			if err := s.Disarm(1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRefcountLastLeaveRemoves: a helper creates the set and is SIGKILLed (the
// kernel takes its reference back); three joiners then leave one by one and the
// last Leave removes the set.
func TestRefcountLastLeaveRemoves(t *testing.T) {
	creator := startHelper(t, "create", "2")
	var id int
	if _, err := fmt.Sscanf(creator.expect(), "id %d", &id); err != nil {
		t.Fatalf("creator: %v", err)
	}
	removeOnCleanup(t, id)

	var joiners []*helperProc
	for range 3 {
		h := startHelper(t, "join", strconv.Itoa(id), "2")
		h.expectLine("joined")
		joiners = append(joiners, h)
	}
	if n := rawValue(t, id, refSem); n != 4 {
		t.Fatalf("refcount %d with creator and 3 joiners, want 4", n)
	}

	creator.kill()
	if n := rawValue(t, id, refSem); n != 3 {
		t.Fatalf("refcount %d after the creator was SIGKILLed and reaped, want 3", n)
	}

	for i, h := range joiners {
		last := i == len(joiners)-1
		h.send("leave")
		h.expectLine(fmt.Sprintf("left %v", last))
		h.exit()
		if !last {
			if n := rawValue(t, id, refSem); n != len(joiners)-1-i {
				t.Fatalf("refcount %d after %d leaves, want %d", n, i+1, len(joiners)-1-i)
			}
		}
	}
	requireGone(t, id)
}

// BenchmarkArmTryTake measures one offer in the uncontended case: SETVAL 1 followed
// by a winning semop(-1, IPC_NOWAIT|SEM_UNDO).
func BenchmarkArmTryTake(b *testing.B) {
	s := newSet(b, 1)
	for b.Loop() {
		if err := s.Arm(1); err != nil {
			b.Fatal(err)
		}
		if won, err := s.TryTake(1); !won || err != nil {
			b.Fatalf("TryTake = %v, %v", won, err)
		}
	}
	if err := s.Disarm(1); err != nil {
		b.Fatal(err)
	}
}
