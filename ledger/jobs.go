package ledger

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Job-queue headers a producer may put on a SEND to a /queue/. Where
// ActiveMQ or RabbitMQ has a name for the idea, the same name is used, so
// client code moves between brokers unchanged.
const (
	// HeaderPersistent ("true") asks for the message to be stored durably
	// (with --store sqlite:... or postgres://...) before the RECEIPT.
	HeaderPersistent = "persistent"
	// HeaderScheduledDelay (ActiveMQ) hides the message for that many
	// milliseconds.
	HeaderScheduledDelay = "AMQ_SCHEDULED_DELAY"
	// HeaderMaxRedeliveries: after the first delivery plus this many
	// redeliveries failed (NACK, consumer lost, ack-timeout), the message
	// moves to the dead-letter queue /queue/DLQ.<name>.
	HeaderMaxRedeliveries = "max-redeliveries"
	// HeaderRedeliveryDelay is the wait in milliseconds before the first
	// redelivery; it doubles with every further one (exponential backoff).
	HeaderRedeliveryDelay = "redelivery-delay"
	// HeaderUniqKey coalesces a SEND with a message of the same key still
	// pending in the same queue (TheSchwartz's uniqkey).
	HeaderUniqKey = "uniqkey"
	// HeaderPriority orders durable messages within a queue (higher first).
	HeaderPriority = "priority"
	// HeaderAckTimeout (on SUBSCRIBE) is a lease in milliseconds on every
	// client-mode delivery: one not acked in time goes back to the queue
	// and to another consumer; the slow consumer stays connected.
	HeaderAckTimeout = "ack-timeout"
)

// Headers the broker adds to MESSAGE frames.
const (
	// HeaderRedelivered is "true" on every delivery after a message's first.
	HeaderRedelivered = "redelivered"
	// HeaderDeliveryCount counts deliveries, this one included.
	HeaderDeliveryCount = "delivery-count"
	// Dead-lettered messages say where they came from and why.
	HeaderDLQOriginalDestination = "dlq-original-destination"
	HeaderDLQDeliveryCount       = "dlq-delivery-count"
	HeaderDLQReason              = "dlq-reason"
)

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
		persistent:      f.Header.Get(HeaderPersistent) == "true",
		maxRedeliveries: d.MaxRedeliveries,
		redeliveryDelay: d.RedeliveryDelay,
		uniqKey:         f.Header.Get(HeaderUniqKey),
	}
	num := func(name string, min int64) (int64, bool, error) {
		v, ok := f.Header.Contains(name)
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < min {
			return 0, false, fmt.Errorf("bad %s header %q: want a whole number of at least %d", name, v, min)
		}
		return n, true, nil
	}
	if ms, ok, err := num(HeaderScheduledDelay, 0); err != nil {
		return j, err
	} else if ok && ms > 0 {
		j.notBefore = now.Add(time.Duration(ms) * time.Millisecond)
	}
	if n, ok, err := num(HeaderMaxRedeliveries, -1); err != nil {
		return j, err
	} else if ok {
		j.maxRedeliveries = int(n)
	}
	if ms, ok, err := num(HeaderRedeliveryDelay, 0); err != nil {
		return j, err
	} else if ok {
		j.redeliveryDelay = time.Duration(ms) * time.Millisecond
	}
	if n, ok, err := num(HeaderPriority, -1<<31); err != nil {
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
		HeaderDLQOriginalDestination, queue,
		HeaderDLQDeliveryCount, strconv.Itoa(deliveries),
		HeaderDLQReason, reason)
	for i := 0; i < send.Header.Len(); i++ {
		k, v := send.Header.GetAt(i)
		switch k {
		case HeaderDLQOriginalDestination, HeaderDLQDeliveryCount, HeaderDLQReason, HeaderUniqKey, HeaderScheduledDelay:
			continue
		}
		f.Header.Add(k, v)
	}
	f.Body = send.Body
	return f
}
