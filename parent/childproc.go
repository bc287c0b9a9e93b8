package parent

import (
	"net/netip"
	"os/exec"
	"syscall"
	"time"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/ledger"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// childProc is the parent's view of one child process (one client).
// Owned by the event loop, except conn (reader and writer goroutines) and
// out (see outbox).
type childProc struct {
	pid       int
	addr      string
	ip        netip.Addr    // the client's IP, for the per-IP limit
	transport ipc.Transport // the listener the client came in on
	started   time.Time
	cmd       *exec.Cmd
	conn      *ipc.Conn
	out       *outbox

	info ipc.SessionInfo // from the child's HELLO
	// replyKey names the connection in its temporary queues' public
	// names; "" until its first reply-to:/temp-queue/.
	replyKey string
	subs     map[string]*subscription // by subscription key

	// counters for `stomp-broker clients`
	framesIn, messagesIn, messagesOut uint64

	told   bool      // asked to close its client (shutdown or slow consumer)
	killed bool      // SIGKILLed by the parent (its death is no crash)
	killAt time.Time // when to SIGKILL it if it is still there
	gone   bool      // reaped
	dirty  bool      // in Broker.dirty: records were pushed since the last flush
}

// subscription is one SUBSCRIBE of one child, as the parent's routing
// sees it. A queue subscription's credit and ack mode are the ledger's
// (queue); a topic subscription has none.
type subscription struct {
	key   string // the child's key for it (not the client's id)
	dest  string
	queue *ledger.Subscription // nil for a topic
}

// PID makes a childProc the ledger's handle for its consumer
// (ledger.Consumer).
func (c *childProc) PID() int { return c.pid }

// kill sends SIGKILL. Safe to call on a process that already exited (the
// pidfd Go keeps per process makes this free of pid-reuse races).
func (c *childProc) kill() {
	c.killed = true
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
}

// send queues records for the child. A child whose outbox is full is a slow
// consumer: it is told to disconnect its client.
func (b *Broker) send(c *childProc, records []byte) {
	if c.told || c.gone {
		return
	}
	b.metrics.countOut(c, records)
	if !c.dirty {
		c.dirty = true
		b.dirty = append(b.dirty, c)
	}
	if !c.out.push(records) {
		b.log.Warn("slow consumer: disconnecting client", "client", c.addr, "child_pid", c.pid, "pending_bytes", c.out.pending())
		b.tellToClose(c, stompwire.ErrTextSlowConsumer)
	}
}

// flushOutboxes writes what the event just handled queued for children
// (outbox.flush). The event loop calls it after every event, so records
// wait no longer than they did when every push woke the writer goroutine.
func (b *Broker) flushOutboxes() {
	for _, c := range b.dirty {
		c.dirty = false
		c.out.flush(c.conn)
	}
	clear(b.dirty)
	b.dirty = b.dirty[:0]
}
