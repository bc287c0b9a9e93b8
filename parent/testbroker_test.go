package parent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/fakesem"
	"github.com/stomp-broker/stomp-broker/ledger"
)

// testBroker is a Broker with no listener, no processes and fake
// semaphores, for driving the event loop's handlers directly.
type testBroker struct {
	*Broker
	sem *fakesem.Set
	pid int
}

// newTestBroker returns a test broker whose ledger has slots slots and
// maxBytes of memory, reading the time from now (nil: time.Now).
func newTestBroker(t *testing.T, slots int, maxBytes int64, now func() time.Time) *testBroker {
	t.Helper()
	cfg := Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	b := &Broker{cfg: cfg, log: cfg.Log, children: map[int]*childProc{}, topics: map[string]map[*childProc]int{}, idPrefix: "t"}
	sem := fakesem.New(slots)
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
