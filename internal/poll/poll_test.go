package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	var calls atomic.Int32
	if !Within(time.Minute, func() bool { return calls.Add(1) == 3 }) {
		t.Fatal("Within = false for a condition true on the third call")
	}
	if calls.Load() != 3 {
		t.Errorf("cond called %d times, want 3 (stop at the first true)", calls.Load())
	}
	calls.Store(0)
	if Within(30*time.Millisecond, func() bool { calls.Add(1); return false }) {
		t.Fatal("Within = true for a condition that never holds")
	}
	if calls.Load() < 2 {
		t.Errorf("cond called %d times before giving up, want it checked again at the deadline", calls.Load())
	}
}

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestEventually(t *testing.T) {
	var ok fakeTB
	Eventually(&ok, time.Second, "true at once", func() bool { return true })
	if ok.failed != "" {
		t.Errorf("Eventually failed for a true condition")
	}
	var bad fakeTB
	Eventually(&bad, 20*time.Millisecond, "never", func() bool { return false })
	if bad.failed == "" {
		t.Errorf("Eventually did not fail for a condition that never holds")
	}
}
