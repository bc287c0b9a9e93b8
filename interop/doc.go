// Package interop checks that real, unmodified STOMP client libraries work
// against a broker: Python stomp.py, Perl Net::Stomp, the Ruby stomp gem,
// stompjs over TCP (Node) and go-stomp. It sits outside the broker's data
// path entirely: it only speaks STOMP to a listening address, so the same
// tests run against our stomp-broker and against RabbitMQ or ActiveMQ
// (scripts/switch-over-check).
//
// The package has no API; everything is in its tests. Each (client,
// STOMP version, scenario) is one subtest, TestInterop/<client>/<version>/<scenario>.
// The Python, Perl, Ruby and Node clients are scripts under clients/ run with
// os/exec; go-stomp's scenarios are written in Go in this package.
//
// # Where the broker comes from
//
// With STOMP_INTEROP_ADDR=host:port set, the tests use that broker
// ("portable mode") and never start one. Otherwise each client group starts
// our ./cmd/stomp-broker on a free loopback port through internal/brokertest.
// Destination names always carry a random per-run suffix so runs never see
// each other's messages.
//
// # Environment
//
//   - STOMP_INTEROP_ADDR: broker address for portable mode.
//   - STOMP_INTEROP_VHOST: value for the CONNECT host header, for the clients
//     that send one (stomp.py 1.2, go-stomp, the Ruby gem and Net::Stomp on
//     1.2; stompjs sends none and gets one only from this variable). Unset,
//     each library does what it does by default, which for stomp.py and
//     go-stomp is the broker's IP address. RabbitMQ reads host as a virtual
//     host name, so the switch-over check runs it a second time with "/".
//   - STOMP_INTEROP_PROFILE: "rabbitmq" or "activemq" when testing those
//     brokers; enables the documented per-broker differences in knownDiffs,
//     only where the STOMP spec leaves the behaviour to the server. Empty
//     (our broker) means every assertion is strict.
//   - STOMP_INTEROP_TRACE=1: put a recording proxy between each client and
//     the broker and t.Log every frame's command and headers (how the
//     client-library quirks in docs/switch-over.md were observed).
//   - STOMP_BROKER_REQUIRE_ALL=1: a missing client library fails the test
//     instead of skipping it (CI sets this after scripts/install-test-deps).
//   - STOMP_INTEROP_WAIT_MS / STOMP_INTEROP_QUIET_MS: how long a client waits
//     for an expected frame (default 5000) and how long it watches for a
//     frame that must not come (default 1000).
//
// # The scenario contract
//
// Every client implements the same scenarios, each a pass/fail check, with
// separate connections for producer and consumers. A client script is run as
// `<script> HOST:PORT SCENARIO VERSION SUFFIX` and prints `OBS <key> <json>`
// observation lines, then exactly one of `OK <scenario>` (exit 0),
// `FAIL <scenario>: <why>` (exit 1) or `UNSUPPORTED <scenario>: <why>` (exit 2).
//
//   - topic: two subscribers subscribe with a receipt; three SENDs; each
//     subscriber gets all three in order, with the right destination (and
//     subscription on 1.1+), and nothing more.
//   - queue: two SENDs with receipts to a fresh /queue/; a consumer with
//     ack:client-individual (ack:client on 1.0) gets both in order and ACKs
//     both; a second consumer connecting afterwards gets nothing.
//   - receipt: receipts come back with the right receipt-id for SUBSCRIBE,
//     SEND, UNSUBSCRIBE, BEGIN, COMMIT and DISCONNECT (where the library can
//     put one on the frame).
//   - ack-client: three messages; ack:client; ACK of the second is cumulative;
//     after disconnecting, a new consumer gets exactly the third.
//   - nack-redeliver (1.2): a NACKed message is delivered again with
//     redelivered:true; after its ACK nobody gets it.
//   - transaction: two open transactions; nothing is visible before COMMIT;
//     after ABORT of one and COMMIT of the other only the committed messages
//     arrive, in order.
//   - headers: a custom header passes through SEND to MESSAGE; on 1.2 its
//     value contains ':', '\n' and '\\' and must round-trip exactly.
//   - v10 (1.0 only): the library's plainest 1.0 usage (no accept-version
//     where the library allows, SUBSCRIBE without id where it allows,
//     UNSUBSCRIBE by destination), CONNECTED must not claim a newer version.
//   - tx-send-receipt (go-stomp only): a receipt on a SEND inside an open
//     transaction arrives before COMMIT; a synchronous client that waits for
//     that receipt before committing deadlocks otherwise.
//   - temp-queue (stomp.py only): a requester SENDs requests with
//     reply-to:/temp-queue/NAME to a responder's /queue/; the responder sees
//     reply-to rewritten and SENDs to it; the requester gets each reply
//     without having subscribed (RabbitMQ's temporary queues).
//   - durable-rabbitmq, durable-activemq (stomp.py only, 1.2): a durable
//     topic subscription in RabbitMQ's spelling (durable:true,
//     auto-delete:false, an id) or ActiveMQ's (CONNECT client-id, SUBSCRIBE
//     activemq.subscriptionName) keeps what is published while its
//     subscriber is away and delivers it in order when it returns; then it
//     is deleted.
package interop
