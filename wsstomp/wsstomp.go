// Package wsstomp serves one STOMP client over WebSocket (RFC 6455) on a
// connection its process already holds: it answers the client's HTTP
// upgrade request itself and turns the WebSocket into a byte stream the
// STOMP session reads and writes like a TCP connection.
//
// The URL layout and subprotocols are RabbitMQ Web-STOMP's: the endpoint is
// /ws and the client must offer v10.stomp, v11.stomp or v12.stomp; the
// negotiated one bounds the STOMP versions the session accepts. Text and
// binary WebSocket messages are both read; the stream is their payloads in
// order, so several STOMP frames may share a message and one frame may span
// several. The framing itself is github.com/coder/websocket's.
package wsstomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Path is where the WebSocket endpoint is served.
const Path = "/ws"

// Subprotocols maps each WebSocket subprotocol the broker accepts to the
// highest STOMP version a client that negotiated it may speak, in the
// order of preference.
var Subprotocols = []struct {
	Name string
	Max  stompwire.Version
}{
	{"v12.stomp", stompwire.V12},
	{"v11.stomp", stompwire.V11},
	{"v10.stomp", stompwire.V10},
}

// Options configure Upgrade.
type Options struct {
	// AllowedOrigins, when not empty, are the Origin hosts a browser page
	// may connect from (patterns as path.Match, "scheme://host" patterns
	// match scheme and host); an Origin outside them gets 403. Requests
	// whose Origin is the request's own Host, and requests without Origin
	// (not from a browser), are always allowed. Empty allows every Origin.
	AllowedOrigins []string
	// Timeout bounds the whole upgrade: reading the request and writing
	// the answer. Zero means 10 seconds.
	Timeout time.Duration
}

// ErrRefused is returned (wrapped) when the request was answered with an
// HTTP error instead of an upgrade.
var ErrRefused = errors.New("wsstomp: upgrade refused")

// Upgrade reads one HTTP request from raw and either answers it with an
// error status and returns an error wrapping ErrRefused, or switches raw to
// the WebSocket protocol and returns the STOMP stream over it. It refuses
// a path other than /ws (404), a request that is not a WebSocket upgrade
// (426, with a plain-text hint), a missing or unknown subprotocol (400), a
// disallowed Origin (403) and, by closing raw, a request not complete
// within the timeout. On an error raw is closed.
func Upgrade(raw net.Conn, opts Options) (*Conn, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	_ = raw.SetDeadline(deadline)

	var (
		once    sync.Once
		result  = make(chan upgraded, 1)
		mu      sync.Mutex
		refusal error // why the request was answered with an error status
	)
	finish := func(u upgraded) { once.Do(func() { result <- u }) }
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := accept(w, r, opts)
			if err != nil {
				// The error status is written when the handler returns;
				// Upgrade returns once the server has closed the
				// connection after it (ConnState), not before.
				mu.Lock()
				refusal = err
				mu.Unlock()
				return
			}
			finish(upgraded{ws: ws})
		}),
		ReadHeaderTimeout: timeout,
		ReadTimeout:       timeout,
		WriteTimeout:      timeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				// The end of a refused request (its answer sent), or a
				// request that never came (timeout, garbage, EOF).
				mu.Lock()
				err := refusal
				mu.Unlock()
				if err == nil {
					err = fmt.Errorf("%w: no WebSocket upgrade request completed", ErrRefused)
				}
				finish(upgraded{err: err})
			}
		},
	}
	srv.SetKeepAlivesEnabled(false)
	l := &oneConn{conn: raw, done: make(chan struct{})}
	go srv.Serve(l)
	u := <-result
	l.Close() // Serve returns; a hijacked connection is no longer its
	if u.err != nil {
		raw.Close()
		return nil, u.err
	}
	_ = raw.SetDeadline(time.Time{})
	u.ws.SetReadLimit(-1) // the STOMP reader bounds frames (stompwire.Limits)
	max := stompwire.V12
	for _, p := range Subprotocols {
		if p.Name == u.ws.Subprotocol() {
			max = p.Max
		}
	}
	return &Conn{ws: u.ws, raw: raw, max: max}, nil
}

type upgraded struct {
	ws  *websocket.Conn
	err error
}

// accept checks the request and upgrades it, or answers it with an error.
func accept(w http.ResponseWriter, r *http.Request, opts Options) (*websocket.Conn, error) {
	refuse := func(status int, msg string) (*websocket.Conn, error) {
		w.Header().Set("Connection", "close")
		http.Error(w, msg, status)
		return nil, fmt.Errorf("%w: %d %s", ErrRefused, status, msg)
	}
	if r.URL.Path != Path {
		return refuse(http.StatusNotFound, "not found: stomp-broker serves STOMP over WebSocket at "+Path)
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") || !headerHasToken(r.Header, "Connection", "upgrade") {
		w.Header().Set("Upgrade", "websocket")
		return refuse(http.StatusUpgradeRequired,
			"this is a STOMP-over-WebSocket endpoint: connect a WebSocket client (e.g. @stomp/stompjs with brokerURL ws://HOST:PORT"+Path+") offering subprotocol v12.stomp, v11.stomp or v10.stomp")
	}
	if !offersKnownSubprotocol(r) {
		return refuse(http.StatusBadRequest, "no supported WebSocket subprotocol offered (Sec-WebSocket-Protocol: want v12.stomp, v11.stomp or v10.stomp)")
	}
	names := make([]string, len(Subprotocols))
	for i, p := range Subprotocols {
		names[i] = p.Name
	}
	aopts := &websocket.AcceptOptions{Subprotocols: names, OriginPatterns: opts.AllowedOrigins}
	if len(opts.AllowedOrigins) == 0 {
		aopts.InsecureSkipVerify = true // no --ws-allowed-origins: any page may connect
	}
	// Accept answers 403 (Origin), 426/400 (a malformed handshake) itself.
	ws, err := websocket.Accept(w, r, aopts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return ws, nil
}

// offersKnownSubprotocol reports whether the client offered one of
// Subprotocols.
func offersKnownSubprotocol(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			for _, known := range Subprotocols {
				if strings.EqualFold(strings.TrimSpace(p), known.Name) {
					return true
				}
			}
		}
	}
	return false
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// oneConn is a net.Listener that yields one connection, then blocks until
// closed; it lets http.Server serve a connection this process already has.
type oneConn struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConn) Addr() net.Addr { return dummyAddr{} }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tcp" }
func (dummyAddr) String() string  { return "wsstomp" }

// Conn is the STOMP byte stream over an upgraded WebSocket. Read returns
// the payloads of the client's messages, text or binary, in order. Each
// Write is one message: text when it is valid UTF-8 (what browsers'
// STOMP libraries expect), binary otherwise. Deadlines apply to the
// underlying connection, so an expired read deadline fails the read
// without closing the WebSocket: the session can still send its ERROR.
type Conn struct {
	ws  *websocket.Conn
	raw net.Conn
	max stompwire.Version
	r   io.Reader // the message being read; nil between messages
}

// MaxVersion is the highest STOMP version the negotiated subprotocol
// allows.
func (c *Conn) MaxVersion() stompwire.Version { return c.max }

// Subprotocol is the negotiated WebSocket subprotocol.
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// Read implements net.Conn. A close frame from the client reads as io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.Reader(context.Background())
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
					return 0, io.EOF
				}
				if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
					return 0, io.EOF
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return 0, ne // keep it recognisable as a timeout
				}
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// Write implements net.Conn: p is sent as one WebSocket message.
func (c *Conn) Write(p []byte) (int, error) {
	typ := websocket.MessageText
	if !utf8.Valid(p) {
		typ = websocket.MessageBinary
	}
	if err := c.ws.Write(context.Background(), typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close sends a close frame and waits (at most a second) for the
// client's, then closes the connection.
func (c *Conn) Close() error {
	_ = c.raw.SetDeadline(time.Now().Add(time.Second))
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	c.raw.Close()
	return err
}

func (c *Conn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
