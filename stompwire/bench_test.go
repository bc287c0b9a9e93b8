package stompwire

import (
	"bytes"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

// sendFrame256 is a SEND with four headers and a 256-byte body, the shape of
// a typical small application message.
func sendFrame256() *frame.Frame {
	f := frame.New(frame.SEND,
		"destination", "/queue/orders",
		"content-type", "application/json",
		"content-length", "256",
		"receipt", "r-1042",
	)
	f.Body = bytes.Repeat([]byte("x"), 256)
	return f
}

func BenchmarkParseSend(b *testing.B) {
	wire := AppendFrame(nil, sendFrame256(), V12)
	lim := DefaultLimits()
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		f, n, err := Parse(wire, V12, lim)
		if err != nil || f == nil || n != len(wire) {
			b.Fatalf("Parse = %v, %d, %v", f, n, err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	f := sendFrame256()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrame(buf[:0], f, V12)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkReaderSend reads a stream of SEND frames through a Reader, the
// child's hot path.
func BenchmarkReaderSend(b *testing.B) {
	wire := AppendFrame(nil, sendFrame256(), V12)
	stream := bytes.Repeat(wire, 64)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(stream), Limits{})
		for range 64 {
			if f, err := r.Read(); err != nil || f == nil {
				b.Fatalf("Read = %v, %v", f, err)
			}
		}
	}
}

// BenchmarkAppendHeader splices the subscription and ack headers into a
// STOMP 1.2 MESSAGE, as the child does for every message to a 1.2 client.
func BenchmarkAppendHeader(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = append(buf[:0], "MESSAGE\n"...)
		buf = AppendHeader(buf, frame.MESSAGE, V12, frame.Subscription, "sub-17")
		buf = AppendHeader(buf, frame.MESSAGE, V12, frame.Ack, "b1f3c2-104857")
	}
	b.SetBytes(int64(len(buf)))
}
