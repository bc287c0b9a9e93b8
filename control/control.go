// Package control is the operator's window into a running broker: the
// client side of the parent's unix control socket, and the types both sides
// exchange. `stomp-broker clients` and `stomp-broker queues` use it.
//
// # Where it sits
//
// The control socket is not on the message path at all. The parent serves
// it from a goroutine of its own; every request becomes one event on the
// parent's event loop (which owns the child table and the queue ledger),
// and the loop's answer is written back. A request therefore sees one
// consistent instant of the broker, and a busy loop answers late rather
// than inconsistently.
//
// # Protocol
//
// One request per connection, both ways as text:
//
//  1. The client connects to the socket (mode 0600: only the broker's user
//     and root can).
//  2. It writes the request name and a newline: "clients\n" or "queues\n".
//  3. The broker writes one JSON object, a [Response], and closes the
//     connection.
//
// JSON keeps the socket usable without this package:
// `echo clients | socat - UNIX-CONNECT:/run/stomp-broker/stomp-broker.sock`.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Requests the control socket understands.
const (
	// RequestClients asks for one [Client] per connected client.
	RequestClients = "clients"
	// RequestQueues asks for one [Queue] per queue the ledger knows.
	RequestQueues = "queues"
	// RequestSnapshot asks for everything at one instant: clients, spares,
	// queues and topics (the web console's view).
	RequestSnapshot = "snapshot"
)

// ErrBroker wraps an error the broker itself reported in [Response.Error]
// (for example an unknown request).
var ErrBroker = errors.New("control: broker refused the request")

// maxResponse bounds a response: a broker with 100,000 clients answers
// "clients" in about 20 MB of JSON.
const maxResponse = 64 << 20

// Spare is a spare child: a process started before its client, waiting for
// the parent to hand it one.
type Spare struct {
	// PID is the spare's process.
	PID int `json:"pid"`
	// Since is when it was started.
	Since time.Time `json:"since"`
}

// Client is one connected client, as the parent sees it.
type Client struct {
	// PID is the child process serving the client (`kill PID` disconnects
	// it with ERROR "disconnected by operator").
	PID int `json:"pid"`
	// Addr is the client's remote address.
	Addr string `json:"addr"`
	// TLS is true for a client of a --tls-listen socket.
	TLS bool `json:"tls,omitempty"`
	// Transport is how the client came in: tcp, tls, ws or wss.
	Transport string `json:"transport"`
	// Login is CONNECT's login header; empty for anonymous clients and
	// before CONNECT.
	Login string `json:"login,omitempty"`
	// Version is the negotiated STOMP version ("1.0", "1.1", "1.2"); empty
	// until the client's CONNECT succeeded.
	Version string `json:"version,omitempty"`
	// Subscriptions counts the client's current subscriptions.
	Subscriptions int `json:"subscriptions"`
	// MessagesIn counts the messages (SEND frames) the client published.
	MessagesIn uint64 `json:"messages_in"`
	// MessagesOut counts the messages the parent handed to the client's
	// child for delivery (topic messages, and queue messages granted).
	MessagesOut uint64 `json:"messages_out"`
	// BytesQueued is what waits in the parent for the child to read: the
	// slow-consumer limit applies to it.
	BytesQueued int `json:"bytes_queued"`
	// Since is when the client connected.
	Since time.Time `json:"since"`
}

// Queue is one queue destination in the ledger.
type Queue struct {
	// Name is the destination, "/queue/...".
	Name string `json:"name"`
	// Depth counts messages waiting for a consumer: not yet delivered, in
	// the broker's memory or (persistent ones) in the store and not leased.
	Depth int `json:"depth"`
	// Consumers counts the queue's subscriptions.
	Consumers int `json:"consumers"`
	// InFlight counts messages delivered and not yet acknowledged.
	InFlight int `json:"in_flight"`
	// Stored counts the queue's persistent messages in the durable store,
	// leased ones included (0 without --store).
	Stored int `json:"stored"`
	// DeadLettered counts the stored messages that were moved into this
	// queue after using up their redeliveries: non-zero only for a
	// dead-letter queue (/queue/DLQ.<name>), 0 without --store.
	DeadLettered int `json:"dead_lettered"`
}

// Topic is one topic destination with at least one subscriber.
type Topic struct {
	// Name is the destination, "/topic/...".
	Name string `json:"name"`
	// Subscribers counts the clients subscribed to it.
	Subscribers int `json:"subscribers"`
	// Messages counts the messages published to it since it last gained
	// a subscriber after having none (a rate is the difference of two
	// snapshots over their time apart).
	Messages uint64 `json:"messages"`
}

// Response is the broker's answer to one request. Only the fields the
// request asks for are set ("snapshot" sets all but Error), or Error.
type Response struct {
	Clients []Client `json:"clients,omitempty"`
	// Spares are the spare child processes started and waiting for a
	// client (answer to "clients").
	Spares []Spare `json:"spares,omitempty"`
	Queues []Queue `json:"queues,omitempty"`
	Topics []Topic `json:"topics,omitempty"`
	// Cluster is the broker's link to the other brokers sharing its
	// database (answer to "clients"; nil without a cluster).
	Cluster *Cluster `json:"cluster,omitempty"`
	// StoreError is set by "snapshot" (only) when the durable store could
	// not be asked for its counts: the rest is the broker's own view, and
	// Queues lack Stored and DeadLettered.
	StoreError string `json:"store_error,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Cluster is a broker's link to the brokers sharing its PostgreSQL
// database (see package cluster).
type Cluster struct {
	// Node is the broker's name among them (new at every start).
	Node string `json:"node"`
	// Connected is false while the broker is cut off from the database:
	// it serves its own clients only.
	Connected bool `json:"connected"`
	// Sent, Received and Dropped count messages crossing brokers.
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	Dropped  uint64 `json:"dropped"`
}

// Do sends request to the broker listening on the unix socket path and
// returns its response. It blocks for at most timeout in all (connect,
// write, read). Errors: the socket cannot be reached (no broker there, or
// no permission), the answer is not a Response, or the broker refused the
// request (wrapping [ErrBroker]).
func Do(path, request string, timeout time.Duration) (*Response, error) {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if _, err := io.WriteString(conn, request+"\n"); err != nil {
		return nil, fmt.Errorf("control: send %q: %w", request, err)
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(conn, maxResponse))).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control: read answer to %q: %w", request, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrBroker, resp.Error)
	}
	return &resp, nil
}

// Clients returns the broker's connected clients (see [Do] for errors).
func Clients(path string, timeout time.Duration) ([]Client, error) {
	resp, err := Do(path, RequestClients, timeout)
	if err != nil {
		return nil, err
	}
	return resp.Clients, nil
}

// Queues returns the broker's queues (see [Do] for errors).
func Queues(path string, timeout time.Duration) ([]Queue, error) {
	resp, err := Do(path, RequestQueues, timeout)
	if err != nil {
		return nil, err
	}
	return resp.Queues, nil
}
