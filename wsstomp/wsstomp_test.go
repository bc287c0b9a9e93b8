package wsstomp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/wsstomp"
)

// upgradeResult is what the server side of one test connection got from
// wsstomp.Upgrade.
type upgradeResult struct {
	conn *wsstomp.Conn
	err  error
}

// listen starts an in-process TCP listener whose single accepted
// connection is handed to wsstomp.Upgrade with opts, as a child process
// does with the socket the parent passes it. It returns the listener's
// address and the channel that receives Upgrade's result.
func listen(t *testing.T, opts wsstomp.Options) (string, <-chan upgradeResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	res := make(chan upgradeResult, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			res <- upgradeResult{err: err}
			return
		}
		c, err := wsstomp.Upgrade(raw, opts)
		res <- upgradeResult{conn: c, err: err}
	}()
	return ln.Addr().String(), res
}

// dial connects a WebSocket client to /ws at addr offering protocols and
// returns it with the server's side of the connection.
func dial(t *testing.T, opts wsstomp.Options, protocols ...string) (*websocket.Conn, *wsstomp.Conn) {
	t.Helper()
	addr, res := listen(t, opts)
	ws, _, err := websocket.Dial(context.Background(), "ws://"+addr+wsstomp.Path,
		&websocket.DialOptions{Subprotocols: protocols})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-res
	if r.err != nil {
		ws.CloseNow()
		t.Fatalf("Upgrade: %v", r.err)
	}
	t.Cleanup(func() {
		// Client first: the server's Close then finds the connection gone
		// instead of waiting for a close frame nobody reads.
		ws.CloseNow()
		r.conn.Close()
	})
	return ws, r.conn
}

func TestUpgradeRefusals(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455's sample key
	upgrade := map[string]string{
		"Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key,
	}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range upgrade {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name    string
		origins []string
		path    string
		header  map[string]string
		status  int
	}{
		{"wrong path", nil, "/stomp", with(map[string]string{"Sec-WebSocket-Protocol": "v12.stomp"}), http.StatusNotFound},
		{"plain GET, no upgrade", nil, wsstomp.Path, nil, http.StatusUpgradeRequired},
		{"no subprotocol", nil, wsstomp.Path, with(nil), http.StatusBadRequest},
		{"unknown subprotocol", nil, wsstomp.Path, with(map[string]string{"Sec-WebSocket-Protocol": "mqtt, v13.stomp"}), http.StatusBadRequest},
		{"origin not allowed", []string{"app.example"}, wsstomp.Path,
			with(map[string]string{"Sec-WebSocket-Protocol": "v12.stomp", "Origin": "http://evil.example"}), http.StatusForbidden},
		{"origin allowed", []string{"app.example"}, wsstomp.Path,
			with(map[string]string{"Sec-WebSocket-Protocol": "v12.stomp", "Origin": "http://app.example"}), http.StatusSwitchingProtocols},
		{"any origin without a list", nil, wsstomp.Path,
			with(map[string]string{"Sec-WebSocket-Protocol": "v11.stomp", "Origin": "http://evil.example"}), http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, res := listen(t, wsstomp.Options{AllowedOrigins: tt.origins})
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			r := <-res
			if tt.status == http.StatusSwitchingProtocols {
				if r.err != nil {
					t.Fatalf("Upgrade: %v", r.err)
				}
				r.conn.Close()
				return
			}
			if !errors.Is(r.err, wsstomp.ErrRefused) {
				t.Errorf("Upgrade error %v, want one wrapping ErrRefused", r.err)
			}
			if r.conn != nil {
				t.Errorf("Upgrade returned a connection with its refusal")
			}
		})
	}
}

func TestNegotiatedVersion(t *testing.T) {
	tests := []struct {
		offer []string
		want  string
		max   stompwire.Version
	}{
		{[]string{"v10.stomp"}, "v10.stomp", stompwire.V10},
		{[]string{"v11.stomp"}, "v11.stomp", stompwire.V11},
		{[]string{"v12.stomp"}, "v12.stomp", stompwire.V12},
		{[]string{"v10.stomp", "v11.stomp", "v12.stomp"}, "v12.stomp", stompwire.V12},
		{[]string{"mqtt", "v11.stomp"}, "v11.stomp", stompwire.V11},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.offer, ","), func(t *testing.T) {
			ws, c := dial(t, wsstomp.Options{}, tt.offer...)
			if ws.Subprotocol() != tt.want || c.Subprotocol() != tt.want {
				t.Errorf("subprotocol client %q server %q, want %q", ws.Subprotocol(), c.Subprotocol(), tt.want)
			}
			if c.MaxVersion() != tt.max {
				t.Errorf("MaxVersion %v, want %v", c.MaxVersion(), tt.max)
			}
		})
	}
}

// message is one WebSocket message a test client sends.
type message struct {
	typ  websocket.MessageType
	data string
}

func TestReadIsOneByteStream(t *testing.T) {
	const connect = "CONNECT\naccept-version:1.2\nhost:/\n\n\x00"
	const send = "SEND\ndestination:/queue/a\ncontent-length:5\n\nhello\x00"
	tests := []struct {
		name string
		msgs []message
	}{
		{"one text message, one frame", []message{{websocket.MessageText, connect}}},
		{"one binary message, one frame", []message{{websocket.MessageBinary, connect}}},
		{"two frames in one message", []message{{websocket.MessageText, connect + send}}},
		{"a frame split over three messages", []message{
			{websocket.MessageText, connect[:5]},
			{websocket.MessageText, connect[5:20]},
			{websocket.MessageText, connect[20:]},
		}},
		{"text and binary mixed, split inside a body", []message{
			{websocket.MessageBinary, connect + send[:40]},
			{websocket.MessageText, send[40:]},
		}},
		{"heart-beat newlines between frames", []message{
			{websocket.MessageText, connect},
			{websocket.MessageText, "\n"},
			{websocket.MessageBinary, "\n" + send},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, c := dial(t, wsstomp.Options{}, "v12.stomp")
			var all bytes.Buffer
			for _, m := range tt.msgs {
				all.WriteString(m.data)
				if err := ws.Write(context.Background(), m.typ, []byte(m.data)); err != nil {
					t.Fatalf("client write: %v", err)
				}
			}
			// The stream is exactly the payloads in order ...
			got := make([]byte, all.Len())
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != all.String() {
				t.Fatalf("stream %q, want %q", got, all.String())
			}
			// ... and a STOMP reader finds the frames in it.
			r := stompwire.NewReader(bytes.NewReader(got), stompwire.Limits{})
			f, err := r.Read()
			if err != nil || f == nil || f.Command != "CONNECT" {
				t.Fatalf("first frame %v, %v; want CONNECT", f, err)
			}
		})
	}
}

func TestReadCloseIsEOF(t *testing.T) {
	ws, c := dial(t, wsstomp.Options{}, "v12.stomp")
	if err := ws.Write(context.Background(), websocket.MessageText, []byte("x")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ws.Close(websocket.StatusNormalClosure, "bye") }()
	b := make([]byte, 8)
	n, err := c.Read(b)
	if n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("first read %d %q %v, want the payload", n, b[:n], err)
	}
	if _, err := c.Read(b); err != io.EOF {
		t.Fatalf("read after the client's close: %v, want io.EOF", err)
	}
	c.Close() // answers the close handshake
	<-done
}

func TestWriteMessageType(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want websocket.MessageType
	}{
		{"ASCII frame", []byte("MESSAGE\ndestination:/topic/a\n\nhi\x00"), websocket.MessageText},
		{"UTF-8 body", []byte("MESSAGE\ndestination:/topic/a\n\nGrüße ✓\x00"), websocket.MessageText},
		{"heart-beat", []byte("\n"), websocket.MessageText},
		{"binary body", []byte("MESSAGE\ncontent-length:3\n\n\xff\x00\xfe\x00"), websocket.MessageBinary},
		{"truncated UTF-8 sequence", []byte("MESSAGE\n\n\xc3\x00"), websocket.MessageBinary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, c := dial(t, wsstomp.Options{}, "v12.stomp")
			errc := make(chan error, 1)
			go func() {
				n, err := c.Write(tt.data)
				if err == nil && n != len(tt.data) {
					err = io.ErrShortWrite
				}
				errc <- err
			}()
			typ, got, err := ws.Read(context.Background())
			if err != nil {
				t.Fatalf("client read: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("Write: %v", err)
			}
			if typ != tt.want {
				t.Errorf("message type %v, want %v", typ, tt.want)
			}
			if !bytes.Equal(got, tt.data) {
				t.Errorf("payload %q, want %q (one Write is one message)", got, tt.data)
			}
		})
	}
}
