package stompwire

import (
	"strings"

	"github.com/go-stomp/stomp/v3/frame"
)

// Durable topic subscriptions, in the two spellings clients arrive with.
//
// RabbitMQ: SUBSCRIBE to a /topic/ destination with durable:true (or the
// older persistent:true), auto-delete:false (or absent) and an id; the
// subscription is named by that id alone. UNSUBSCRIBE with that id and
// durable:true (or persistent:true) deletes it.
//
// ActiveMQ: CONNECT with client-id, SUBSCRIBE with activemq.subscriptionName;
// the subscription is named by client-id and subscription name.
// UNSUBSCRIBE with activemq.subscriptionName deletes it.
//
// The broker keeps a durable subscription as a queue with an internal name
// under DurablePrefix that every publish to its topic also feeds.
const (
	// HeaderDurable is RabbitMQ's SUBSCRIBE/UNSUBSCRIBE header.
	HeaderDurable = "durable"
	// HeaderAutoDelete is RabbitMQ's SUBSCRIBE header; true makes a
	// subscription not durable.
	HeaderAutoDelete = "auto-delete"
	// HeaderClientID is ActiveMQ's CONNECT header naming the client.
	HeaderClientID = "client-id"
	// HeaderActiveMQSubscriptionName is ActiveMQ's SUBSCRIBE/UNSUBSCRIBE
	// header naming a durable subscription.
	HeaderActiveMQSubscriptionName = "activemq.subscriptionName"

	// HeaderDurableTopic is internal (child → parent, on a forwarded
	// SUBSCRIBE whose destination is a durable subscription's queue): the
	// topic that feeds it.
	HeaderDurableTopic = "x-stomp-broker-durable-topic"
	// HeaderDurableDelete is internal (child → parent, on a forwarded
	// UNSUBSCRIBE whose destination is a durable subscription's queue):
	// delete the subscription and what it kept.
	HeaderDurableDelete = "x-stomp-broker-durable-delete"

	// DurablePrefix starts the internal queue name of a durable
	// subscription: DurablePrefix + id (RabbitMQ's spelling) or
	// DurablePrefix + client-id + "/" + name (ActiveMQ's).
	DurablePrefix = QueuePrefix + "durable-subscription/"
)

// IsDurable reports whether queue is a durable subscription's queue.
func IsDurable(queue string) bool { return strings.HasPrefix(queue, DurablePrefix) }

// DurableQueue returns the queue of the durable subscription a SUBSCRIBE
// or UNSUBSCRIBE frame names, if it names one: RabbitMQ's spelling
// (durable:true or persistent:true, not auto-delete:true, with an id) or
// ActiveMQ's (activemq.subscriptionName, with clientID, the CONNECT's
// client-id). needClientID is true when the frame uses ActiveMQ's
// spelling but the connection gave no client-id (ActiveMQ refuses that).
func DurableQueue(h *frame.Header, clientID string) (queue string, needClientID bool) {
	if name := h.Get(HeaderActiveMQSubscriptionName); name != "" {
		if clientID == "" {
			return "", true
		}
		return DurablePrefix + clientID + "/" + name, false
	}
	durable := h.Get(HeaderDurable) == "true" || h.Get(HeaderPersistent) == "true"
	if durable && h.Get(HeaderAutoDelete) != "true" {
		if id := h.Get(frame.Id); id != "" {
			return DurablePrefix + id, false
		}
	}
	return "", false
}
