package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Subscribe synchronisation modes (--subscribe-sync).
const (
	// syncReceipt puts a receipt header on SUBSCRIBE and waits for that
	// RECEIPT. This is the protocol's own answer to "is my subscription
	// live?" and the default.
	syncReceipt = "receipt"
	// syncProbe follows SUBSCRIBE with a receipted BEGIN (and an ABORT of
	// that transaction) and waits for the BEGIN's RECEIPT instead. It is
	// for servers that never answer a SUBSCRIBE receipt (go-stomp's server
	// does not) and relies on the server handling one connection's frames in
	// order. BEGIN/ABORT were chosen because a server handles them inside
	// the connection: a probe SEND would make every subscriber a producer
	// too, and on go-stomp's server that closes a deadlock cycle (the
	// subscriber's connection blocks pushing the probe into the full request
	// channel while the router blocks on that subscriber's full write
	// channel), which a loaded machine hit in practice.
	syncProbe = "probe"
)

// Sentinel errors of the raw session.
var (
	// errServerError is wrapped by every error caused by an ERROR frame.
	errServerError = errors.New("stomp-bench: server sent ERROR")
	// errNotConnected is returned when the server answers CONNECT with
	// anything but CONNECTED.
	errNotConnected = errors.New("stomp-bench: server did not answer CONNECTED")
)

// session is one raw STOMP connection built directly on go-stomp's frame
// codec. go-stomp's Conn cannot be used for the data path: it closes a
// subscription when the SUBSCRIBE's RECEIPT arrives, blocks on every
// receipted SEND (no window), and moves each MESSAGE through three
// goroutines, which would make the load generator compete with the broker
// for the CPU. A session is used by one goroutine at a time, except that
// [session.abort] may be called from anywhere.
type session struct {
	conn    net.Conn
	r       *frame.Reader
	w       *frame.Writer
	version string
	pending []*frame.Frame // MESSAGEs read while waiting for a RECEIPT
}

// dialSession connects to addr, sends CONNECT (STOMP 1.0 to 1.2, heart-beats
// off) and waits for CONNECTED. It blocks until then or until ctx is done;
// on any failure the TCP connection is closed and a wrapped error returned.
//
// An addr of the form ws://HOST:PORT/PATH (or wss://) is dialled as STOMP
// over WebSocket, offering subprotocol v12.stomp, with the CONNECT host
// header "/" (RabbitMQ Web-STOMP takes it as the virtual host).
func dialSession(ctx context.Context, addr string) (*session, error) {
	var nc net.Conn
	if isWebSocketURL(addr) {
		c, _, err := websocket.Dial(ctx, addr, &websocket.DialOptions{Subprotocols: []string{"v12.stomp", "v11.stomp", "v10.stomp"}})
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, err)
		}
		// Each write is one text message: the payloads here are ASCII.
		nc = websocket.NetConn(context.Background(), c, websocket.MessageText)
	} else {
		var d net.Dialer
		var err error
		if nc, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, err)
		}
	}
	s := &session{
		conn: nc,
		r:    frame.NewReaderSize(nc, 64<<10),
		w:    frame.NewWriterSize(nc, 64<<10),
	}
	if err := s.handshake(ctx, addr); err != nil {
		nc.Close()
		return nil, fmt.Errorf("STOMP CONNECT to %s: %w", addr, err)
	}
	return s, nil
}

// isWebSocketURL reports whether addr is a ws:// or wss:// URL.
func isWebSocketURL(addr string) bool {
	return strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://")
}

// handshake performs CONNECT/CONNECTED under ctx's deadline and clears the
// deadline again on success (the run's watchdog bounds the rest).
func (s *session) handshake(ctx context.Context, addr string) error {
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Now()) })
	defer stop()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if isWebSocketURL(addr) {
		host = "/"
	}
	connect := frame.New(frame.CONNECT,
		frame.AcceptVersion, "1.0,1.1,1.2",
		frame.Host, host,
		frame.HeartBeat, "0,0")
	if err := s.w.Write(connect); err != nil {
		return err
	}
	f, err := s.read()
	if err != nil {
		return contextCause(ctx, err)
	}
	if f.Command != frame.CONNECTED {
		return fmt.Errorf("%w: got %s %q", errNotConnected, f.Command, f.Header.Get(frame.Message))
	}
	s.version = f.Header.Get(frame.Version)
	if s.version == "" {
		s.version = "1.0"
	}
	if !stop() {
		return contextCause(ctx, ctx.Err())
	}
	return s.conn.SetDeadline(time.Time{})
}

// contextCause prefers ctx's error over err when ctx is done, so that a read
// unblocked by the watchdog reports "deadline exceeded" instead of an i/o
// timeout on some socket.
func contextCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// read returns the next frame, skipping heart-beats. An ERROR frame is
// returned as an error wrapping errServerError.
func (s *session) read() (*frame.Frame, error) {
	for {
		f, err := s.r.Read()
		if err != nil {
			return nil, err
		}
		if f == nil {
			continue // heart-beat
		}
		if f.Command == frame.ERROR {
			return nil, fmt.Errorf("%w: %s %s", errServerError, f.Header.Get(frame.Message), f.Body)
		}
		return f, nil
	}
}

// next returns a MESSAGE stashed by awaitReceipt first, then reads.
func (s *session) next() (*frame.Frame, error) {
	if len(s.pending) > 0 {
		f := s.pending[0]
		s.pending = s.pending[1:]
		return f, nil
	}
	return s.read()
}

// awaitReceipt reads until the RECEIPT for id arrives. MESSAGE frames read
// meanwhile are kept for [session.next]; other RECEIPTs are ignored.
func (s *session) awaitReceipt(id string) error {
	for {
		f, err := s.read()
		if err != nil {
			return err
		}
		switch f.Command {
		case frame.RECEIPT:
			if f.Header.Get(frame.ReceiptId) == id {
				return nil
			}
		case frame.MESSAGE:
			s.pending = append(s.pending, f)
		}
	}
}

// subscribe sends SUBSCRIBE for dest with subscription id and ack mode, plus
// a prefetch-count header when prefetch > 0, and blocks until the server
// confirms it in the given sync mode (see syncReceipt, syncProbe).
func (s *session) subscribe(dest, id, ack string, prefetch int, sync string) error {
	sub := frame.New(frame.SUBSCRIBE, frame.Destination, dest, frame.Id, id, frame.Ack, ack)
	if prefetch > 0 {
		sub.Header.Add(stompwire.HeaderPrefetchCount, strconv.Itoa(prefetch))
	}
	receipt := "sub-" + id
	if sync == syncReceipt {
		sub.Header.Add(frame.Receipt, receipt)
	}
	if err := s.w.Write(sub); err != nil {
		return fmt.Errorf("SUBSCRIBE %s: %w", dest, err)
	}
	if sync == syncProbe {
		tx := "stomp-bench-probe-" + id
		if err := s.w.Write(frame.New(frame.BEGIN, frame.Transaction, tx, frame.Receipt, receipt)); err != nil {
			return fmt.Errorf("BEGIN probe after SUBSCRIBE %s: %w", dest, err)
		}
		if err := s.w.Write(frame.New(frame.ABORT, frame.Transaction, tx)); err != nil {
			return fmt.Errorf("ABORT probe after SUBSCRIBE %s: %w", dest, err)
		}
	}
	if err := s.awaitReceipt(receipt); err != nil {
		return fmt.Errorf("wait for receipt of SUBSCRIBE %s: %w", dest, err)
	}
	return nil
}

// ack acknowledges MESSAGE m of subscription sub. It sends the STOMP 1.2
// spelling (id = the MESSAGE's ack header) together with the 1.1 spelling
// (message-id and subscription): brokers ignore headers they do not use, and
// go-stomp's server reads only message-id even on 1.2 connections.
func (s *session) ack(m *frame.Frame, sub string) error {
	f := frame.New(frame.ACK, frame.Subscription, sub)
	if id, ok := m.Header.Contains(frame.MessageId); ok {
		f.Header.Add(frame.MessageId, id)
	}
	if id, ok := m.Header.Contains(frame.Ack); ok {
		f.Header.Add(frame.Id, id)
	}
	return s.w.Write(f)
}

// sendMessage writes one SEND frame with a content-length header. body may be
// reused by the caller as soon as sendMessage returns. extra holds additional
// header name/value pairs.
func (s *session) sendMessage(dest string, body []byte, extra ...string) error {
	f := frame.New(frame.SEND, frame.Destination, dest, frame.ContentLength, strconv.Itoa(len(body)))
	for i := 0; i+1 < len(extra); i += 2 {
		f.Header.Add(extra[i], extra[i+1])
	}
	f.Body = body
	return s.w.Write(f)
}

// abort makes every pending and future read or write on the session fail at
// once. It is the watchdog's way to unblock goroutines; safe to call from any
// goroutine and more than once.
func (s *session) abort() { s.conn.SetDeadline(time.Now()) }

// close sends DISCONNECT (best effort, bounded by a short write deadline) and
// closes the socket. Call it only after the goroutine using the session
// stopped.
func (s *session) close() {
	s.conn.SetDeadline(time.Now().Add(time.Second))
	_ = s.w.Write(frame.New(frame.DISCONNECT))
	s.conn.Close()
}

// fleet tracks every session of a run, so that a timeout or the end of the
// measurement can unblock all of them at once and close them afterwards.
type fleet struct {
	mu       sync.Mutex
	sessions []*session
	aborted  bool
}

// add registers s. If the fleet was already aborted, s is aborted at once.
func (f *fleet) add(s *session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = append(f.sessions, s)
	if f.aborted {
		s.abort()
	}
}

// abort unblocks every registered session (see [session.abort]).
func (f *fleet) abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborted = true
	for _, s := range f.sessions {
		s.abort()
	}
}

// close disconnects and closes every registered session. Call it after the
// goroutines using them have returned.
func (f *fleet) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		s.close()
	}
	f.sessions = nil
}
