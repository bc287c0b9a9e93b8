package parent

import (
	"sync"

	"github.com/stomp-broker/stomp-broker/ipc"
)

// outbox is the bounded queue of records waiting to be written to one
// child. The event loop appends without ever blocking; the child's writer
// goroutine drains it. Everything appended while the writer is busy goes
// out together in the writer's next batch, which is how one system call
// comes to carry many messages under load.
//
// Ownership: the event loop calls push, replace and close; the writer
// goroutine calls run. The mutex guards buf and closed only.
type outbox struct {
	mu     sync.Mutex
	buf    []byte // records not yet taken by the writer
	limit  int    // push refuses to grow buf past this many bytes
	closed bool
	wake   chan struct{} // capacity 1: "there is something to write"
}

func newOutbox(limit int) *outbox {
	return &outbox{limit: limit, wake: make(chan struct{}, 1)}
}

// push appends records unless that would pass the limit; false means the
// child is not keeping up (a slow consumer) and nothing was appended.
func (o *outbox) push(records []byte) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return true // the child is going away; dropping is the same as delivering to a dead socket
	}
	if len(o.buf) > 0 && len(o.buf)+len(records) > o.limit {
		o.mu.Unlock()
		return false
	}
	o.buf = append(o.buf, records...)
	o.mu.Unlock()
	o.signal()
	return true
}

// replace discards whatever is pending and queues records instead, past
// the limit. Used for the one SHUTDOWN record that tells a slow child to
// disconnect its client: what it had not read is of no use to it now.
func (o *outbox) replace(records []byte) {
	o.mu.Lock()
	o.buf = append(o.buf[:0], records...)
	o.mu.Unlock()
	o.signal()
}

// pending returns the number of bytes waiting.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// close makes the writer exit once it has written what is pending; later
// pushes are dropped.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine: it swaps the pending buffer for an empty
// one and writes it, until close or a write error (the child died; its
// reader goroutine reports that).
func (o *outbox) run(conn *ipc.Conn) {
	var spare []byte
	for range o.wake {
		for {
			o.mu.Lock()
			batch := o.buf
			o.buf = spare[:0]
			closed := o.closed
			o.mu.Unlock()
			if len(batch) == 0 {
				spare = batch
				if closed {
					return
				}
				break
			}
			if err := conn.WriteBatch(batch); err != nil {
				o.close()
				return
			}
			spare = batch
		}
	}
}
