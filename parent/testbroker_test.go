package parent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/ledger"
)

// fakeSlots stands in for the SysV semaphore set.
type fakeSlots struct{ val []int }

func newFakeSlots(n int) *fakeSlots           { return &fakeSlots{val: make([]int, n+1)} }
func (f *fakeSlots) Arm(n int) error          { f.val[n] = 1; return nil }
func (f *fakeSlots) Disarm(n int) error       { f.val[n] = 0; return nil }
func (f *fakeSlots) Value(n int) (int, error) { return f.val[n], nil }
func (f *fakeSlots) Slots() int               { return len(f.val) - 1 }

// take is a child winning slot n's token.
func (f *fakeSlots) take(n int) bool {
	if f.val[n] > 0 {
		f.val[n]--
		return true
	}
	return false
}

// testBroker is a Broker with no listener, no processes and fake
// semaphores, for driving the event loop's handlers directly.
type testBroker struct {
	*Broker
	sem *fakeSlots
	pid int
}

// newTestBroker returns a test broker whose ledger has slots slots and
// maxBytes of memory, reading the time from now (nil: time.Now).
func newTestBroker(t *testing.T, slots int, maxBytes int64, now func() time.Time) *testBroker {
	t.Helper()
	cfg := Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	b := &Broker{cfg: cfg, log: cfg.Log, children: map[int]*childProc{}, topics: map[string]map[*childProc]int{}, idPrefix: "t"}
	sem := newFakeSlots(slots)
	b.queues = ledger.New(ledgerHost{b}, sem, ledger.Config{
		MaxBytes: maxBytes, Jobs: ledger.JobDefaults{MaxRedeliveries: -1}, Log: cfg.Log, Now: now,
	})
	return &testBroker{Broker: b, sem: sem}
}

// fakeChild is a child process as the event loop sees it, with no process.
func (tb *testBroker) fakeChild() *childProc {
	tb.pid++
	c := &childProc{pid: tb.pid, addr: "test", out: newOutbox(1 << 20), subs: map[string]*subscription{}}
	tb.children[c.pid] = c
	return c
}
