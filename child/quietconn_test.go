package child

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the server end
// wrapped by quiet.
func tcpPair(t *testing.T) (q net.Conn, peer net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	q = quiet(c)
	if _, ok := q.(*quietConn); !ok {
		t.Fatalf("quiet(%T) = %T, want *quietConn", c, q)
	}
	t.Cleanup(func() { q.Close(); peer.Close() })
	return q, peer
}

func TestQuietConn(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, q, peer net.Conn)
	}{
		{"a write larger than the socket buffers arrives whole, in order", func(t *testing.T, q, peer net.Conn) {
			want := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB: the write must wait for room
			got := make(chan []byte)
			go func() { b, _ := io.ReadAll(peer); got <- b }()
			if n, err := q.Write(want); n != len(want) || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
			}
			q.(*quietConn).CloseWrite()
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("peer read %d bytes, not the %d written", len(b), len(want))
			}
		}},
		{"reads what the peer wrote, then io.EOF", func(t *testing.T, q, peer net.Conn) {
			peer.Write([]byte("CONNECT\n\n\x00"))
			peer.Close()
			b, err := io.ReadAll(q) // ReadAll stops at io.EOF only
			if err != nil || string(b) != "CONNECT\n\n\x00" {
				t.Fatalf("ReadAll = %q, %v", b, err)
			}
		}},
		{"a read deadline ends a read with a timeout", func(t *testing.T, q, peer net.Conn) {
			q.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := q.Read(make([]byte, 10))
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("Read after the deadline = %v, want a timeout", err)
			}
		}},
		{"Close ends a blocked read", func(t *testing.T, q, peer net.Conn) {
			done := make(chan error)
			go func() { _, err := q.Read(make([]byte, 10)); done <- err }()
			time.Sleep(20 * time.Millisecond)
			q.Close()
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
			}
		}},
		{"writing to a peer that is gone is an error, not a signal", func(t *testing.T, q, peer net.Conn) {
			peer.(*net.TCPConn).SetLinger(0) // RST
			peer.Close()
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				_, err = q.Write([]byte("MESSAGE\n\n\x00"))
				time.Sleep(time.Millisecond)
			}
			if err == nil {
				t.Fatal("writes to a reset connection kept succeeding")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, peer := tcpPair(t)
			tc.run(t, q, peer)
		})
	}
}
