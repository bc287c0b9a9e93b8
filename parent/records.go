package parent

import (
	"fmt"
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/cluster"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/ledger"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// applyRecords applies one batch of records from a child, in order. An
// error means the child broke the protocol (the caller kills it); the
// parent itself is never harmed by what a child sends.
//
// Queue work that many records of one batch may ask for (offers after
// SENDs and ACKs) is done once, after the whole batch (Ledger.Flush).
func (b *Broker) applyRecords(c *childProc, batch []byte) error {
	defer b.queues.Flush()
	noted := false
	for len(batch) > 0 {
		k, body, rest, err := ipc.NextRecord(batch)
		if err != nil {
			return err
		}
		batch = rest
		// Clients' traffic, not their arrival (HELLO) or leaving (SYNC):
		// the spare pool's refill waits for a pause in it.
		if !noted && k != ipc.KindHello && k != ipc.KindSync {
			b.spares.noteTraffic()
			noted = true
		}
		// Records other than FRAME and HELLO are traced at their own hop
		// (CLAIM 6, ACK 10, SYNC R2), where their outcome is known.
		if b.cfg.Trace && k == ipc.KindHello {
			b.log.Info("trace", "hop", ipc.HopParentRead, "record", k.String(), "from_child_pid", c.pid)
		}
		switch k {
		case ipc.KindHello:
			info, err := ipc.DecodeHello(body)
			if err != nil {
				return err
			}
			c.info = info
		case ipc.KindFrame:
			c.framesIn++
			// Relayed limits: the child re-escaped the client's frame for
			// STOMP 1.2, which can make a legal 1.0/1.1 header line longer.
			f, _, err := stompwire.Parse(body, stompwire.V12, b.cfg.Child.Limits.Relayed())
			if err != nil {
				return fmt.Errorf("forwarded frame: %w", err)
			}
			if f == nil {
				return fmt.Errorf("%w: empty frame record", ipc.ErrMalformed)
			}
			if err := b.applyFrame(c, f); err != nil {
				return err
			}
		case ipc.KindSync:
			token, err := ipc.DecodeToken(body)
			if err != nil {
				return err
			}
			b.queues.AfterPending(c, func(coalesced bool) {
				var flags uint64
				if coalesced {
					flags |= ipc.SyncedCoalesced
				}
				if b.cfg.Trace {
					b.log.Info("trace", "hop", ipc.HopSynced, "record", ipc.KindSynced.String(), "token", token, "to_child_pid", c.pid)
				}
				b.send(c, ipc.AppendSynced(nil, token, flags))
			})
		case ipc.KindClaim:
			cl, err := ipc.DecodeClaim(body)
			if err != nil {
				return err
			}
			var sub *ledger.Subscription
			if s := c.subs[cl.SubID]; s != nil {
				sub = s.queue
			}
			b.queues.Claim(c, sub, cl)
		case ipc.KindAck, ipc.KindNack:
			b.queues.Settle(c, string(body), k == ipc.KindAck)
		default:
			return fmt.Errorf("%w: unexpected %s record from a child", ipc.ErrMalformed, k)
		}
	}
	return nil
}

// applyFrame applies a SEND, SUBSCRIBE or UNSUBSCRIBE forwarded by a child.
func (b *Broker) applyFrame(c *childProc, f *frame.Frame) error {
	dest := f.Header.Get(frame.Destination)
	if b.cfg.Trace && f.Command != frame.SEND { // publish traces a SEND, once it has its message-id
		b.log.Info("trace", "hop", ipc.HopParentRead, "record", ipc.KindFrame.String(), "frame", f.Command, "destination", dest, "from_child_pid", c.pid)
	}
	if (f.Command == frame.SEND && !stompwire.Served(dest)) || (f.Command == frame.SUBSCRIBE && !stompwire.Subscribable(dest)) {
		return fmt.Errorf("%w: child forwarded a %s to %q, which is no destination", ipc.ErrMalformed, f.Command, dest)
	}
	switch f.Command {
	case frame.SEND:
		b.publish(c, dest, f)
	case frame.SUBSCRIBE:
		key := f.Header.Get(frame.Id)
		if _, dup := c.subs[key]; dup || key == "" {
			return fmt.Errorf("%w: duplicate or empty subscription key %q", ipc.ErrMalformed, key)
		}
		if topic := f.Header.Get(stompwire.HeaderDurableTopic); topic != "" {
			if !stompwire.IsDurable(dest) || !stompwire.IsTopic(topic) || !stompwire.Served(topic) {
				return fmt.Errorf("%w: child forwarded a durable subscription %q to %q", ipc.ErrMalformed, dest, topic)
			}
			// One active subscriber per durable subscription (on this
			// broker), as ActiveMQ: a second one is refused and closed.
			if b.queues.Consumers(dest) > 0 {
				b.tellToClose(c, stompwire.ErrTextDurableInUse(dest))
				return nil
			}
			b.queues.AddDurable(dest, topic)
		}
		sub := &subscription{key: key, dest: dest}
		if stompwire.IsQueue(dest) {
			sub.queue = ledger.NewSubscription(c, key, dest, f.Header)
		}
		c.subs[key] = sub
		switch {
		case sub.queue != nil:
			b.queues.Subscribe(sub.queue)
		case stompwire.IsTempQueue(dest):
			// The connection's own temporary queue (ActiveMQ's habit): its
			// replies go to this child anyway; the child finds the
			// subscription.
		default:
			if b.topics[dest] == nil {
				b.topics[dest] = map[*childProc]int{}
				if b.cfg.Cluster != nil {
					b.cfg.Cluster.SetInterest(dest, true)
				}
			}
			b.topics[dest][c]++
		}
	case frame.UNSUBSCRIBE:
		// The child checked; an unknown id is a race with its own death,
		// or a durable subscription deleted by name alone.
		if sub := c.subs[f.Header.Get(frame.Id)]; sub != nil {
			b.removeSubscription(c, sub)
		}
		if f.Header.Get(stompwire.HeaderDurableDelete) == "true" && stompwire.IsDurable(dest) {
			b.queues.DeleteDurable(dest)
		}
	default:
		return fmt.Errorf("%w: child forwarded a %s frame", ipc.ErrMalformed, f.Command)
	}
	return nil
}

// removeSubscription takes sub out of the routing index (topics) or the
// ledger (queues, which requeues what the subscription held).
func (b *Broker) removeSubscription(c *childProc, sub *subscription) {
	delete(c.subs, sub.key)
	if sub.queue != nil {
		b.queues.Unsubscribe(sub.queue)
		return
	}
	if m := b.topics[sub.dest]; m != nil {
		if m[c]--; m[c] <= 0 {
			delete(m, c)
		}
		if len(m) == 0 {
			delete(b.topics, sub.dest)
			delete(b.topicMessages, sub.dest)
			if b.cfg.Cluster != nil {
				b.cfg.Cluster.SetInterest(sub.dest, false)
			}
		}
	}
}

// publish routes a SEND. Topic messages go to the children subscribed to
// the destination (each child then delivers to each of its matching
// subscriptions); queue messages go to the ledger.
//
// The original design sent every frame to every child and let each child
// decide. The parent sees every SUBSCRIBE anyway, so it keeps an index and
// writes only to children that want the message: fan-out costs O(subscribers)
// instead of O(clients), and an idle client costs nothing per message.
func (b *Broker) publish(from *childProc, dest string, f *frame.Frame) {
	b.countPublished(from, dest)
	b.nextMsg++
	id := b.idPrefix + "-" + strconv.FormatUint(b.nextMsg, 10)
	if b.cfg.Trace {
		b.log.Info("trace", "hop", ipc.HopParentRead, "record", ipc.KindFrame.String(), "frame", f.Command, "destination", dest, "message-id", id, "from_child_pid", from.pid)
	}
	b.rewriteReplyTo(from, f)
	switch {
	case stompwire.IsQueue(dest):
		b.queues.Publish(from, b.nextMsg, id, dest, f)
	case stompwire.IsTempQueue(dest): // to the sender's own temporary queue
		b.deliverReply(from, dest, id, ledger.EncodeMessage(nil, b.replyName(from, dest), id, f, false, 0))
	case stompwire.IsReplyQueue(dest):
		b.sendReply(dest, id, ledger.EncodeMessage(nil, dest, id, f, false, 0))
	default:
		// Durable subscriptions to the topic keep a copy, like queues
		// (on the broker the message was published on: with a shared
		// store it writes every broker's durable subscriptions).
		b.queues.PublishTopic(from, b.nextMsg, id, dest, f)
		b.publishTopic(dest, id, f)
	}
}

// publishTopic routes a topic message to the children subscribed to it
// and, through the cluster, to the other brokers with subscribers.
func (b *Broker) publishTopic(dest, id string, f *frame.Frame) {
	subs := b.topics[dest]
	remote := b.cfg.Cluster != nil && b.cfg.Cluster.Interested(dest)
	if len(subs) == 0 && !remote {
		if b.cfg.Trace {
			b.log.Info("trace", "hop", ipc.HopTopicRoute, "destination", dest, "message-id", id, "to_children", 0, "note", "no subscriber: dropped")
		}
		return // a topic message nobody listens to is gone, as in every broker
	}
	if len(subs) > 0 { // counted per local topic, dropped with its last subscriber
		if b.topicMessages == nil { // a Broker made without New (the package's tests)
			b.topicMessages = map[string]uint64{}
		}
		b.topicMessages[dest]++
	}
	enc := ledger.EncodeMessage(nil, dest, id, f, false, 0)
	if remote {
		n := b.cfg.Cluster.Publish(cluster.Message{Dest: dest, ID: id, Enc: enc})
		if b.cfg.Trace {
			b.log.Info("trace", "hop", ipc.HopBusOut, "destination", dest, "message-id", id, "to_brokers", n)
		}
	}
	b.deliverTopic(subs, dest, id, enc)
}

// deliverTopic sends a topic message to each of subs.
func (b *Broker) deliverTopic(subs map[*childProc]int, dest, id string, enc []byte) {
	if len(subs) == 0 {
		return
	}
	rec := ipc.AppendMessage(nil, ipc.KindDeliver, dest, id, enc)
	for c := range subs {
		if b.cfg.Trace {
			b.log.Info("trace", "hop", ipc.HopTopicRoute, "record", ipc.KindDeliver.String(), "destination", dest, "message-id", id, "to_child_pid", c.pid)
		}
		c.messagesOut++
		b.send(c, rec)
	}
}
