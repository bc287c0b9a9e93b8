package stompwire

import "strings"

// Destination prefixes the broker serves. A destination is the prefix
// followed by a non-empty name.
const (
	// TopicPrefix starts a broadcast destination: every subscriber gets
	// every message.
	TopicPrefix = "/topic/"
	// QueuePrefix starts a queue destination: each message goes to exactly
	// one consumer and is kept until one takes it.
	QueuePrefix = "/queue/"
)

// IsQueue reports whether dest names a queue.
func IsQueue(dest string) bool { return strings.HasPrefix(dest, QueuePrefix) }

// Served reports whether dest is a destination the broker serves: a
// prefix above followed by a non-empty name. The child refuses any other
// destination; the parent checks again, since only a broken child would
// forward one.
func Served(dest string) bool {
	for _, p := range [...]string{TopicPrefix, QueuePrefix} {
		if len(dest) > len(p) && strings.HasPrefix(dest, p) {
			return true
		}
	}
	return false
}
