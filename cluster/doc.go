// Package cluster joins the brokers that share one PostgreSQL database
// into one broker for topics and temporary reply queues, with nothing but
// PostgreSQL's own LISTEN/NOTIFY.
//
// # Contract
//
//   - Each running broker is a node with a fresh name (Bus.Node) and a
//     notification channel of its own, "stomp_bus_" + node. It LISTENs on
//     it and on "stomp_bus_interest".
//   - A node records the topics its clients subscribe to in the table
//     stomp_bus_interest and its liveness in stomp_bus_node (a heartbeat
//     every Config.Heartbeat); it NOTIFYs stomp_bus_interest when its set
//     changes, and every node reloads the interest of the live nodes then
//     and at every heartbeat. A node not seen for 5 heartbeats is ignored,
//     and its rows are deleted.
//   - Publish sends a topic message only to the nodes interested in its
//     topic (none: nothing reaches the database); SendTo sends a message
//     to one node (a reply to a temporary queue it owns). A payload that
//     fits in a NOTIFY (MaxInline bytes) travels inline; a larger one is
//     a row of stomp_bus_payload, the NOTIFY carrying its id, deleted by
//     any node a minute later.
//   - Order: one goroutine sends everything a node publishes, in the
//     order Publish and SendTo were called, and PostgreSQL delivers
//     notifications in commit order; the receiving node hands them to its
//     caller in that order (Received). So a subscriber gets each
//     producer's messages in order.
//   - At most once: a message published while a node is down or cut off
//     from the database, or while the send queue is full, is lost for it
//     (counted in Stats). A subscription reaches the other nodes a moment
//     after it is made (one round trip through the database).
//   - Never blocking the caller: Publish, SendTo and SetInterest only
//     queue work; Received is a channel. A node cut off from the
//     database keeps going (its caller serves its own clients), logs one
//     line when it loses the database and one when it is back, and
//     reconnects with backoff (Connected reports which).
package cluster
