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
