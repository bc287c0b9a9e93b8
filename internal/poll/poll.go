// Package poll is the one way tests wait for a condition that another
// goroutine or process makes true: it asks again every few milliseconds up
// to a timeout, instead of sleeping for a guessed time. Timeouts are
// generous upper bounds; a test that passes waits only as long as the
// condition takes.
package poll

import (
	"testing"
	"time"
)

// Interval is the pause between two checks of a condition.
const Interval = 10 * time.Millisecond

// Within calls cond until it returns true, pausing Interval between calls,
// and reports whether it did before timeout passed. cond is called at
// least once, and once more at the deadline, so a slow last check is not
// lost.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(Interval)
	}
}

// Eventually waits like [Within] and fails tb at once (Fatalf) if cond did
// not become true within timeout; what names the awaited condition in the
// failure.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Within(timeout, cond) {
		tb.Fatalf("not within %v: %s", timeout, what)
	}
}
