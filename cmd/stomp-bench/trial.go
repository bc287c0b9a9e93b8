package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors of a measurement.
var (
	// errTimeout is wrapped by every error caused by hitting --timeout.
	errTimeout = errors.New("stomp-bench: timeout")
	// errIntegrity is returned (after the result was printed) when a run
	// lost, duplicated or garbled messages.
	errIntegrity = errors.New("stomp-bench: delivery check failed")
)

// pollInterval is how often [trial.wait] looks at the idle clock.
const pollInterval = 20 * time.Millisecond

// trial owns the sessions and goroutines of one message-flow measurement:
// it starts producers and consumers, waits for the end condition and then
// tears everything down. Every blocking operation it starts is bounded by
// the run's context: when the context ends, a watchdog aborts every socket.
type trial struct {
	ctx       context.Context
	timeout   time.Duration
	fl        fleet
	stopWatch func() bool
	wg        sync.WaitGroup
	errs      chan error
	stopping  atomic.Bool

	producersRunning atomic.Int64
	producersDoneAt  atomic.Int64  // time since epoch; 0 while any producer runs
	producersDone    chan struct{} // closed when the last producer succeeded
}

// newTrial returns a trial bound to ctx, whose deadline came from --timeout
// (timeout is only used in messages). The caller must call [trial.close].
func newTrial(ctx context.Context, timeout time.Duration) *trial {
	t := &trial{ctx: ctx, timeout: timeout, errs: make(chan error, 1), producersDone: make(chan struct{})}
	t.stopWatch = context.AfterFunc(ctx, t.fl.abort)
	return t
}

// dial opens a session and registers it with the trial's fleet. Errors
// caused by the run's deadline are reported as errTimeout.
func (t *trial) dial(addr string) (*session, error) {
	s, err := dialSession(t.ctx, addr)
	if err != nil {
		return nil, t.explain(err, "during set-up")
	}
	t.fl.add(s)
	return s, nil
}

// explain turns err into a timeout error with context when the run's
// deadline has passed, and returns it unchanged otherwise.
func (t *trial) explain(err error, what string) error {
	if deadlinePassed(t.ctx) {
		return fmt.Errorf("%w after %s %s: %v", errTimeout, t.timeout, what, err)
	}
	return err
}

// spawn runs fn in a goroutine. The first error it returns ends the
// measurement (see [trial.wait]); errors after [trial.stop] began are the
// expected result of aborting sockets and are dropped.
func (t *trial) spawn(fn func() error) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if err := fn(); err != nil && !t.stopping.Load() {
			select {
			case t.errs <- err:
			default: // an earlier error already ends the run
			}
		}
	}()
}

// spawnProducers is [trial.spawn] for the run's producers, all of them in
// one call: when the last returns successfully the trial notes the time,
// which starts the idle clock, and closes producersDone. They are counted
// before any starts, so a producer that finishes at once cannot bring the
// count to zero while others are still to come.
func (t *trial) spawnProducers(fns ...func() error) {
	t.producersRunning.Add(int64(len(fns)))
	for _, fn := range fns {
		t.spawn(func() error {
			if err := fn(); err != nil {
				return err
			}
			if t.producersRunning.Add(-1) == 0 {
				t.producersDoneAt.Store(int64(sinceEpoch()))
				close(t.producersDone)
			}
			return nil
		})
	}
}

// wait blocks until complete is closed (every expected message arrived),
// a goroutine fails, the run's deadline passes, or - once all producers have
// finished - nothing was delivered for idle. last reports the time (since
// epoch) of the latest delivery, progress describes how far the run got.
// It returns idled=true in the idle case, which is not an error: the caller
// reports the missing messages as lost.
func (t *trial) wait(complete <-chan struct{}, idle time.Duration, last func() time.Duration, progress func() string) (idled bool, err error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-complete:
			return false, nil
		case err := <-t.errs:
			return false, t.explain(err, "("+progress()+")")
		case <-t.ctx.Done():
			return false, fmt.Errorf("%w after %s: %s", errTimeout, t.timeout, progress())
		case <-tick.C:
			doneAt := time.Duration(t.producersDoneAt.Load())
			if doneAt == 0 {
				continue
			}
			if sinceEpoch()-max(doneAt, last()) > idle {
				return true, nil
			}
		}
	}
}

// stop aborts every session and waits for all spawned goroutines to return.
// Safe to call more than once.
func (t *trial) stop() {
	t.stopping.Store(true)
	t.fl.abort()
	t.wg.Wait()
}

// close stops the trial, then disconnects and closes every session.
func (t *trial) close() {
	t.stop()
	t.stopWatch()
	t.fl.close()
}

// deadlinePassed reports whether ctx is done or its deadline has been
// reached. The second test matters because sockets are given ctx's deadline
// and may time out a moment before ctx's own timer fires.
func deadlinePassed(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// allClosed returns a channel closed once every channel in chans is
// closed, or never if ctx ends first (the helper goroutine then exits).
func allClosed(ctx context.Context, chans ...<-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		for _, c := range chans {
			select {
			case <-c:
			case <-ctx.Done():
				return
			}
		}
		close(out)
	}()
	return out
}

// latestDelivery returns the latest delivery time over all receivers.
func latestDelivery(rcvs []*receiver) time.Duration {
	var last time.Duration
	for _, r := range rcvs {
		last = max(last, time.Duration(r.last.Load()))
	}
	return last
}

// awaitDelivery waits until complete is closed or deliveries to rcvs stop
// for idle (t.wait), then stops the trial, and returns when the last
// message arrived: the latest delivery, or led's completion time when the
// run ended by itself.
func (t *trial) awaitDelivery(complete <-chan struct{}, idle time.Duration, led *ledger, rcvs []*receiver) (time.Duration, error) {
	idled, err := t.wait(complete, idle,
		func() time.Duration { return latestDelivery(rcvs) },
		func() string { return fmt.Sprintf("%d of %d messages delivered", led.delivered(), led.expected()) })
	if err != nil {
		return 0, err
	}
	end := latestDelivery(rcvs)
	if !idled {
		end = led.completedAt
	}
	t.stop()
	return end, nil
}
