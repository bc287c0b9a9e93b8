// Package fakesem is a stand-in for the broker's SysV semaphore set in unit
// tests of the queue engine (ledger) and the parent's event loop: the
// slots the ledger arms and disarms, and a Take that plays a child winning
// a slot's token. It satisfies ledger's slot-semaphore interface.
package fakesem

// Set is a fake semaphore set with slots 1..n (slot 0, the real set's
// refcount, is unused).
type Set struct{ val []int }

// New returns a set of n slots, all disarmed.
func New(n int) *Set { return &Set{val: make([]int, n+1)} }

// Arm puts one token in slot n.
func (s *Set) Arm(n int) error { s.val[n] = 1; return nil }

// Disarm empties slot n.
func (s *Set) Disarm(n int) error { s.val[n] = 0; return nil }

// Value returns slot n's tokens.
func (s *Set) Value(n int) (int, error) { return s.val[n], nil }

// Slots returns how many slots the set has.
func (s *Set) Slots() int { return len(s.val) - 1 }

// Take is a child winning slot n's token: true if there was one.
func (s *Set) Take(n int) bool {
	if s.val[n] > 0 {
		s.val[n]--
		return true
	}
	return false
}

// Undo gives slot n a token back, as SEM_UNDO does when a process that
// took it dies.
func (s *Set) Undo(n int) { s.val[n]++ }
