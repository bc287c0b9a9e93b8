package main

import (
	"bytes"
	"strconv"
	"time"
)

// epoch is the process-wide origin of the send stamps carried in message
// bodies. Producers and consumers live in the same process, so a monotonic
// offset from one shared instant is a better clock than wall time: it cannot
// jump when NTP adjusts the system clock in the middle of a run.
var epoch = time.Now()

// sinceEpoch returns the monotonic time elapsed since [epoch].
func sinceEpoch() time.Duration { return time.Since(epoch) }

// payloadTerminator ends the identity prefix of a body; everything after it
// is padding.
const payloadTerminator = ';'

// encodePayload builds a message body into dst (reusing its storage) and
// returns it. The body starts with the identity prefix
// "<producer>:<seq>:<stamp-ns>;" and is padded with 'x' up to size bytes.
// When size is smaller than the prefix the body is just the prefix: the
// identity is never truncated, because the checker needs it.
func encodePayload(dst []byte, producer, seq int, stamp time.Duration, size int) []byte {
	b := dst[:0]
	b = strconv.AppendInt(b, int64(producer), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(stamp), 10)
	b = append(b, payloadTerminator)
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

// decodePayload parses the identity prefix written by [encodePayload]. It
// returns ok=false for a body that does not start with a well-formed prefix
// (for example a message left in the destination by some other program).
func decodePayload(body []byte) (producer, seq int, stamp time.Duration, ok bool) {
	end := bytes.IndexByte(body, payloadTerminator)
	if end < 0 {
		return 0, 0, 0, false
	}
	fields := bytes.Split(body[:end], []byte{':'})
	if len(fields) != 3 {
		return 0, 0, 0, false
	}
	var nums [3]int64
	for i, f := range fields {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		nums[i] = n
	}
	return int(nums[0]), int(nums[1]), time.Duration(nums[2]), true
}
