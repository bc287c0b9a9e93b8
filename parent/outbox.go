package parent

import (
	"sync"

	"github.com/stomp-broker/stomp-broker/ipc"
)

// outbox is the bounded queue of records waiting to be written to one
// child. The event loop appends without ever blocking (push), and once it
// has handled an event it flushes what that event queued: it writes it
// itself when the writer goroutine is idle and the socket takes it at
// once, which spares a goroutine wake-up per write; whatever the socket
// does not take at once goes to the child's writer goroutine, which may
// block. Everything appended while a write is under way goes out together
// in the next batch, which is how one system call comes to carry many
// messages under load.
//
// Ownership: the event loop calls push, flush, replace and close; the
// writer goroutine calls run. The mutex guards buf, spare, writing and
// closed only.
type outbox struct {
	mu      sync.Mutex
	buf     []byte // records not yet taken by a writer
	spare   []byte // an empty buffer to swap in for buf
	limit   int    // push refuses to grow buf past this many bytes
	closed  bool
	writing bool          // a batch taken from buf is being written (by flush or run)
	wake    chan struct{} // capacity 1: "there is something to write"
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
	return true
}

// flush writes what push queued. Unless a write is already under way (the
// writer goroutine then takes buf after it), it takes buf and writes it
// without blocking (ipc.Conn.TryWriteBatch); what the socket did not take
// goes back to the front of buf for the writer goroutine. After a write
// error the outbox closes, as run's does.
func (o *outbox) flush(conn *ipc.Conn) {
	o.mu.Lock()
	if o.writing || o.closed || len(o.buf) == 0 {
		o.mu.Unlock()
		return
	}
	batch := o.buf
	o.buf, o.spare = o.spare[:0], nil
	o.writing = true
	o.mu.Unlock()

	n, err := conn.TryWriteBatch(batch)

	o.mu.Lock()
	o.writing = false
	if err == nil && n < len(batch) {
		// Only the event loop pushes, so buf is still empty: the rest
		// keeps its place in front.
		o.buf = append(o.buf[:0], batch[n:]...)
		o.spare = batch[:0]
		o.mu.Unlock()
		o.signal()
		return
	}
	o.spare = batch[:0]
	o.mu.Unlock()
	if err != nil {
		o.close()
	}
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
			if o.writing { // flush is writing; it signals if it leaves a rest
				o.mu.Unlock()
				break
			}
			batch := o.buf
			o.buf = spare[:0]
			closed := o.closed
			o.writing = len(batch) > 0
			o.mu.Unlock()
			if len(batch) == 0 {
				spare = batch
				if closed {
					return
				}
				break
			}
			err := conn.WriteBatch(batch)
			o.mu.Lock()
			o.writing = false
			o.mu.Unlock()
			if err != nil {
				o.close()
				return
			}
			spare = batch
		}
	}
}
