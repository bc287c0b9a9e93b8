package parent

import (
	"strconv"
	"strings"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/cluster"
	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Temporary reply queues.
//
// A SEND with reply-to:/temp-queue/NAME gives its connection a private
// queue NAME. The parent rewrites the header to the queue's public name,
// /reply-queue/NODE.KEY.NAME: NODE is this broker (Broker.node, the
// cluster's node name when there is a cluster), KEY the connection
// (childProc.replyKey, never reused while the broker runs). A SEND to
// that name, on this broker or, through the cluster, on another, comes
// back to the connection as a DELIVER for /temp-queue/NAME; the child
// writes it under the client's own SUBSCRIBE to /temp-queue/NAME if it
// made one (ActiveMQ's habit), else under a subscription named
// /temp-queue/NAME in ack mode auto (RabbitMQ's). Nothing is kept: a
// reply to a connection that is gone is dropped, and a new connection
// never gets another's replies.

// rewriteReplyTo rewrites a reply-to:/temp-queue/NAME header of f to the
// public name of c's temporary queue NAME.
func (b *Broker) rewriteReplyTo(c *childProc, f *frame.Frame) {
	rt := f.Header.Get(stompwire.HeaderReplyTo)
	if len(rt) <= len(stompwire.TempQueuePrefix) || !stompwire.IsTempQueue(rt) {
		return
	}
	f.Header.Set(stompwire.HeaderReplyTo, b.replyName(c, rt))
}

// replyName is the public name of c's temporary queue tempDest
// (/temp-queue/NAME).
func (b *Broker) replyName(c *childProc, tempDest string) string {
	if c.replyKey == "" {
		b.nextReply++
		c.replyKey = strconv.FormatUint(b.nextReply, 36)
		b.replies[c.replyKey] = c
	}
	return stompwire.ReplyQueuePrefix + b.node + "." + c.replyKey + "." + strings.TrimPrefix(tempDest, stompwire.TempQueuePrefix)
}

// parseReplyName splits /reply-queue/NODE.KEY.NAME.
func parseReplyName(dest string) (node, key, tempDest string, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(dest, stompwire.ReplyQueuePrefix), ".", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], stompwire.TempQueuePrefix + parts[2], true
}

// sendReply routes a message sent to a temporary queue's public name: to
// the connection, if it is this broker's, else to the broker that owns it.
func (b *Broker) sendReply(dest, id string, enc []byte) {
	node, key, temp, ok := parseReplyName(dest)
	switch {
	case ok && node == b.node:
		b.deliverReply(b.replies[key], temp, id, enc)
	case ok && b.cfg.Cluster != nil:
		b.cfg.Cluster.SendTo(node, cluster.Message{Dest: dest, ID: id, Enc: enc})
		if b.cfg.Trace {
			b.log.Info("trace", "hop", ipc.HopBusOut, "destination", dest, "message-id", id, "to_broker", node)
		}
	default:
		if b.cfg.Trace {
			b.log.Info("trace", "hop", ipc.HopTopicRoute, "destination", dest, "message-id", id, "to_children", 0, "note", "no such temporary queue: dropped")
		}
	}
}

// deliverReply hands a reply to the connection c (nil: gone) owning the
// temporary queue tempDest.
func (b *Broker) deliverReply(c *childProc, tempDest, id string, enc []byte) {
	if c == nil || c.gone {
		if b.cfg.Trace {
			b.log.Info("trace", "hop", ipc.HopTopicRoute, "destination", tempDest, "message-id", id, "to_children", 0, "note", "temporary queue gone: dropped")
		}
		return
	}
	if b.cfg.Trace {
		b.log.Info("trace", "hop", ipc.HopTopicRoute, "record", ipc.KindDeliver.String(), "destination", tempDest, "message-id", id, "to_child_pid", c.pid)
	}
	c.messagesOut++
	b.send(c, ipc.AppendMessage(nil, ipc.KindDeliver, tempDest, id, enc))
}

// onRemote routes a message another broker sent this one. Event loop only.
func (b *Broker) onRemote(m cluster.Message) {
	if b.cfg.Trace {
		b.log.Info("trace", "hop", ipc.HopBusIn, "destination", m.Dest, "message-id", m.ID, "from_broker", m.Origin)
	}
	if stompwire.IsReplyQueue(m.Dest) {
		if node, key, temp, ok := parseReplyName(m.Dest); ok && node == b.node {
			b.deliverReply(b.replies[key], temp, m.ID, m.Enc)
		}
		return
	}
	if stompwire.IsTopic(m.Dest) {
		b.deliverTopic(b.topics[m.Dest], m.Dest, m.ID, m.Enc)
	}
}

// clusterState is the cluster's line in `stomp-broker clients`.
func (b *Broker) clusterState() *control.Cluster {
	if b.cfg.Cluster == nil {
		return nil
	}
	st := b.cfg.Cluster.Stats()
	return &control.Cluster{Node: b.node, Connected: st.Connected, Sent: st.Sent, Received: st.Received, Dropped: st.Dropped}
}

// registerClusterMetrics adds the cluster's gauges: whether the broker is
// connected to the database the brokers share (1) or cut off (0), and the
// messages it sent, received and dropped.
func (b *Broker) registerClusterMetrics() {
	bus := b.cfg.Cluster
	if bus == nil {
		return
	}
	b.metrics.set.NewGauge("stomp_broker_cluster_connected", func() float64 {
		if bus.Connected() {
			return 1
		}
		return 0
	})
	b.metrics.set.NewGauge("stomp_broker_cluster_messages_sent", func() float64 { return float64(bus.Stats().Sent) })
	b.metrics.set.NewGauge("stomp_broker_cluster_messages_received", func() float64 { return float64(bus.Stats().Received) })
	b.metrics.set.NewGauge("stomp_broker_cluster_messages_dropped", func() float64 { return float64(bus.Stats().Dropped) })
}
