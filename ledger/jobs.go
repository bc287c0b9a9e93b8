package ledger

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The job headers a producer may put on a SEND to a queue, and the headers
// the broker adds to a MESSAGE, are named in stompwire (headers.go):
// stompwire.HeaderPersistent, stompwire.HeaderScheduledDelay, ...

// JobDefaults are the broker-wide defaults for messages whose SEND does not
// say otherwise.
type JobDefaults struct {
	// MaxRedeliveries is the default for max-redeliveries; -1 = unlimited.
	MaxRedeliveries int
	// RedeliveryDelay is the default first redelivery delay; 0 = at once.
	RedeliveryDelay time.Duration
	// RedeliveryDelayMax caps the exponential backoff.
	RedeliveryDelayMax time.Duration
}

// jobSpec is what a SEND's headers ask of its message.
type jobSpec struct {
	persistent      bool
	notBefore       time.Time // zero = now
	maxRedeliveries int       // -1 = unlimited
	redeliveryDelay time.Duration
	uniqKey         string
	priority        int
}

// parseJobSpec reads the job headers of a SEND; the error is the text of
// the ERROR frame the producer gets for a malformed one.
func parseJobSpec(f *frame.Frame, d JobDefaults, now time.Time) (jobSpec, error) {
	j := jobSpec{
		persistent:      f.Header.Get(stompwire.HeaderPersistent) == "true",
		maxRedeliveries: d.MaxRedeliveries,
		redeliveryDelay: d.RedeliveryDelay,
		uniqKey:         f.Header.Get(stompwire.HeaderUniqKey),
	}
	num := func(name string, min int64) (int64, bool, error) {
		v, ok := f.Header.Contains(name)
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < min {
			return 0, false, errors.New(stompwire.ErrTextBadWholeNumber(name, v, min))
		}
		return n, true, nil
	}
	if ms, ok, err := num(stompwire.HeaderScheduledDelay, 0); err != nil {
		return j, err
	} else if ok && ms > 0 {
		j.notBefore = now.Add(time.Duration(ms) * time.Millisecond)
	}
	if n, ok, err := num(stompwire.HeaderMaxRedeliveries, -1); err != nil {
		return j, err
	} else if ok {
		j.maxRedeliveries = int(n)
	}
	if ms, ok, err := num(stompwire.HeaderRedeliveryDelay, 0); err != nil {
		return j, err
	} else if ok {
		j.redeliveryDelay = time.Duration(ms) * time.Millisecond
	}
	if n, ok, err := num(stompwire.HeaderPriority, -1<<31); err != nil {
		return j, err
	} else if ok {
		j.priority = int(n)
	}
	return j, nil
}

// backoff is the wait before the next delivery of a message that has
// failed `deliveries` times: first, then doubling, capped.
func backoff(first time.Duration, deliveries int, max time.Duration) time.Duration {
	if first <= 0 {
		return 0
	}
	d := first
	for i := 1; i < deliveries && d < max; i++ {
		d *= 2
	}
	if max > 0 && d > max {
		d = max
	}
	return d
}

// exhausted reports whether a message that failed its deliveries-th
// delivery has used up its redeliveries.
func exhausted(maxRedeliveries, deliveries int) bool {
	return maxRedeliveries >= 0 && deliveries > maxRedeliveries
}

// dlqName is the dead-letter queue of a queue: /queue/jobs → /queue/DLQ.jobs.
func dlqName(queue string) string {
	return stompwire.QueuePrefix + "DLQ." + strings.TrimPrefix(queue, stompwire.QueuePrefix)
}

// deadLetterFrame is the SEND frame a message is re-published as in its
// dead-letter queue: the original headers, plus where it came from, how
// often it was delivered and why it failed.
func deadLetterFrame(send *frame.Frame, queue string, deliveries int, reason string) *frame.Frame {
	f := frame.New(frame.SEND,
		stompwire.HeaderDLQOriginalDestination, queue,
		stompwire.HeaderDLQDeliveryCount, strconv.Itoa(deliveries),
		stompwire.HeaderDLQReason, reason)
	for i := 0; i < send.Header.Len(); i++ {
		k, v := send.Header.GetAt(i)
		switch k {
		case stompwire.HeaderDLQOriginalDestination, stompwire.HeaderDLQDeliveryCount, stompwire.HeaderDLQReason, stompwire.HeaderUniqKey, stompwire.HeaderScheduledDelay:
			continue
		}
		f.Header.Add(k, v)
	}
	f.Body = send.Body
	return f
}
