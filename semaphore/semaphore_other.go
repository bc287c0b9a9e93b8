//go:build !linux || !(amd64 || arm64)

package semaphore

// On platforms without the Linux implementation every operation fails with
// ErrNotSupported; the broker cannot arbitrate queues there.

// Create returns [ErrNotSupported].
func Create(slots int) (*Set, error) { return nil, ErrNotSupported }

// Join returns [ErrNotSupported].
func Join(id int, slots int) (*Set, error) { return nil, ErrNotSupported }

// Arm returns [ErrNotSupported].
func (s *Set) Arm(slot int) error { return ErrNotSupported }

// Disarm returns [ErrNotSupported].
func (s *Set) Disarm(slot int) error { return ErrNotSupported }

// Value returns [ErrNotSupported].
func (s *Set) Value(slot int) (int, error) { return 0, ErrNotSupported }

// Refs returns [ErrNotSupported].
func (s *Set) Refs() (int, error) { return 0, ErrNotSupported }

// TryTake returns [ErrNotSupported].
func (s *Set) TryTake(slot int) (bool, error) { return false, ErrNotSupported }

// Leave returns [ErrNotSupported].
func (s *Set) Leave() (removed bool, err error) { return false, ErrNotSupported }

// Remove returns [ErrNotSupported].
func (s *Set) Remove() error { return ErrNotSupported }

// WriteRecord returns [ErrNotSupported].
func WriteRecord(path string, semid int) error { return ErrNotSupported }

// Sweep returns [ErrNotSupported].
func Sweep(path string) (SweepResult, error) { return SweepResult{}, ErrNotSupported }

// EnterPrivateIPCNamespace returns [ErrNotSupported].
func EnterPrivateIPCNamespace(markerValue string) error { return ErrNotSupported }
