package store

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// maxBatchPuts bounds how many Put calls one group commit carries, so a
// flood of producers cannot make one transaction (and its latency for the
// first caller) grow without limit.
const maxBatchPuts = 256

// putRequest is one Put call waiting for the group committer.
type putRequest struct {
	ctx     context.Context
	msgs    []*Message
	results []PutResult // filled by commitFunc
	done    chan error  // buffered 1: the committer never blocks on it
}

// commitFunc stores every request of batch in ONE transaction and commits
// it, setting each request's results (a fresh slice, one entry per message;
// it must not write to the messages themselves). It
// returns an error if the transaction did not commit; then no request of the
// batch is stored.
type commitFunc func(ctx context.Context, batch []*putRequest) error

// groupCommitter is the single writer goroutine behind Put for the durable
// stores. Producers hand it requests over an unbuffered channel; it takes
// one, then drains every other request already waiting, and commits them
// together. While that commit's fsync runs, new producers queue up and form
// the next batch, so the number of fsyncs follows the disk's speed, not the
// producers' count. No timer is involved: a lone producer is committed at
// once.
type groupCommitter struct {
	requests chan *putRequest
	commit   commitFunc
	closing  chan struct{} // closed by close: stop taking requests
	stopped  sync.WaitGroup
	once     sync.Once
	commits  atomic.Uint64
	puts     atomic.Uint64
}

// newGroupCommitter starts the writer goroutine. The caller must call close
// before closing the database the commitFunc uses.
func newGroupCommitter(commit commitFunc) *groupCommitter {
	g := &groupCommitter{
		requests: make(chan *putRequest),
		commit:   commit,
		closing:  make(chan struct{}),
	}
	g.stopped.Add(1)
	go g.run()
	return g
}

// put queues msgs for the next group commit and waits for its outcome.
func (g *groupCommitter) put(ctx context.Context, msgs []*Message) ([]PutResult, error) {
	req := &putRequest{ctx: ctx, msgs: msgs, done: make(chan error, 1)}
	select {
	case g.requests <- req:
	case <-g.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-req.done:
		if err != nil {
			return nil, err
		}
		// IDs are copied here, in the caller's goroutine, so a Put that
		// gave up on ctx never has its messages written to later.
		for i, m := range msgs {
			m.ID = req.results[i].ID
		}
		return req.results, nil
	case <-ctx.Done():
		// The committer owns req now; it may still commit it.
		return nil, ctx.Err()
	}
}

// run is the writer goroutine.
func (g *groupCommitter) run() {
	defer g.stopped.Done()
	for {
		var first *putRequest
		select {
		case first = <-g.requests:
		case <-g.closing:
			return
		}
		g.commitBatch(g.drain(first))
	}
}

// drain returns first plus every request whose producer is already blocked
// sending (an unbuffered channel hands over only waiting senders), up to
// maxBatchPuts. Requests whose context already ended are answered at once
// and left out.
func (g *groupCommitter) drain(first *putRequest) []*putRequest {
	batch := make([]*putRequest, 0, 8)
	add := func(r *putRequest) {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			return
		}
		batch = append(batch, r)
	}
	add(first)
	// Producers woken by the previous commit are runnable but may not have
	// run yet (this machine may have fewer cores than producers). Yielding
	// once lets them reach the channel, so they join this batch instead of
	// each forcing an fsync of their own. It costs microseconds, not a
	// timer's worth of latency, and nothing at all to a lone producer
	// beyond one scheduler pass. Measured with 4 producers on 2 cores:
	// about 2 Puts per commit without it, about 3.9 with it.
	runtime.Gosched()
	for len(batch) < maxBatchPuts {
		select {
		case r := <-g.requests:
			add(r)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch commits batch in one transaction. If that fails and the batch
// holds more than one request, each request is retried in its own
// transaction, so one bad request (or a transient conflict) cannot fail the
// producers it happened to share a batch with.
func (g *groupCommitter) commitBatch(batch []*putRequest) {
	if len(batch) == 0 {
		return
	}
	// The transaction serves several callers, so no single caller's
	// context may cancel it.
	ctx := context.Background()
	err := g.commit(ctx, batch)
	if err == nil {
		g.commits.Add(1)
		g.puts.Add(uint64(len(batch)))
		for _, r := range batch {
			r.done <- nil
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- err
		return
	}
	for _, r := range batch {
		g.commitBatch([]*putRequest{r})
	}
}

// close stops taking requests and waits for the batch in progress. Producers
// blocked in put get ErrClosed.
func (g *groupCommitter) close() {
	g.once.Do(func() { close(g.closing) })
	g.stopped.Wait()
}

// counts implements CommitCounter for the stores that embed a committer.
func (g *groupCommitter) counts() (commits, puts uint64) {
	return g.commits.Load(), g.puts.Load()
}
