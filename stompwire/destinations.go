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
	// TempQueuePrefix starts a temporary reply queue, private to one
	// connection: a SEND's reply-to:/temp-queue/NAME gives the sender one
	// (RabbitMQ's and ActiveMQ's spelling). The broker rewrites that
	// reply-to to a ReplyQueuePrefix name routing back to the connection.
	TempQueuePrefix = "/temp-queue/"
	// ReplyQueuePrefix starts the name a temporary queue is known by to
	// others: a responder SENDs to it; nobody can SUBSCRIBE to it.
	ReplyQueuePrefix = "/reply-queue/"
)

// IsTempQueue reports whether dest names a connection's own temporary queue.
func IsTempQueue(dest string) bool { return strings.HasPrefix(dest, TempQueuePrefix) }

// IsReplyQueue reports whether dest is the public name of a temporary queue.
func IsReplyQueue(dest string) bool { return strings.HasPrefix(dest, ReplyQueuePrefix) }

// IsTopic reports whether dest names a topic.
func IsTopic(dest string) bool { return strings.HasPrefix(dest, TopicPrefix) }

// IsQueue reports whether dest names a queue.
func IsQueue(dest string) bool { return strings.HasPrefix(dest, QueuePrefix) }

// Served reports whether dest is a destination the broker serves: a
// prefix above followed by a non-empty name (a SUBSCRIBE also needs
// Subscribable). The child refuses any other
// destination; the parent checks again, since only a broken child would
// forward one.
func Served(dest string) bool {
	for _, p := range [...]string{TopicPrefix, QueuePrefix, TempQueuePrefix, ReplyQueuePrefix} {
		if len(dest) > len(p) && strings.HasPrefix(dest, p) {
			return true
		}
	}
	return false
}

// Subscribable reports whether a client may SUBSCRIBE to dest: a served
// destination other than another connection's temporary queue.
func Subscribable(dest string) bool { return Served(dest) && !IsReplyQueue(dest) }
