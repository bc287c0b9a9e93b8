package main

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// fakeBroker is a minimal STOMP 1.2 queue broker for tests, written because
// go-stomp's server (v3.1.5) cannot serve client acknowledgements: it never
// records a subscription's message id, so client-individual stalls after
// one message and client mode panics the server. fakeBroker supports
// CONNECT, SUBSCRIBE with receipts and prefetch-count, SEND (queues only,
// receipts honoured), individual ACK by the 1.2 id header, and DISCONNECT.
// It records what it saw so tests can check the bench's frames.
type fakeBroker struct {
	l net.Listener

	mu        sync.Mutex
	queues    map[string][][]byte // destination -> pending bodies
	subs      []*fakeSub
	next      int // round-robin position in subs
	lastID    int
	prefetchs []string // prefetch-count headers seen on SUBSCRIBE
	acksByID  int      // ACKs that carried the 1.2 id header
	sends     int      // SEND frames of any destination
	conns     []net.Conn
}

// fakeSub is one subscription with its remaining credit.
type fakeSub struct {
	c       *fakeConn
	id      string
	dest    string
	auto    bool
	credit  int
	unacked map[string]bool
}

// fakeConn serialises writes to one client.
type fakeConn struct {
	mu sync.Mutex
	w  *frame.Writer
}

func (c *fakeConn) write(f *frame.Frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.w.Write(f)
}

// startFakeBroker listens on a loopback port and serves until the test ends.
func startFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{l: l, queues: map[string][][]byte{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, nc)
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				b.serve(nc)
			}()
		}
	}()
	return b
}

func (b *fakeBroker) addr() string { return b.l.Addr().String() }

// serve handles one client until it disconnects.
func (b *fakeBroker) serve(nc net.Conn) {
	r := frame.NewReader(nc)
	c := &fakeConn{w: frame.NewWriter(nc)}
	defer b.dropSubs(c)
	for {
		f, err := r.Read()
		if err != nil {
			return
		}
		if f == nil {
			continue
		}
		switch f.Command {
		case frame.CONNECT, frame.STOMP:
			c.write(frame.New(frame.CONNECTED, frame.Version, "1.2", frame.HeartBeat, "0,0"))
			continue
		case frame.SUBSCRIBE:
			b.subscribe(c, f)
		case frame.SEND:
			b.enqueue(f)
		case frame.ACK:
			if !b.ack(c, f) {
				c.write(frame.New(frame.ERROR, frame.Message, "unknown ack id "+f.Header.Get(frame.Id)))
				return
			}
		case frame.DISCONNECT:
			return
		}
		if receipt, ok := f.Header.Contains(frame.Receipt); ok {
			c.write(frame.New(frame.RECEIPT, frame.ReceiptId, receipt))
		}
	}
}

func (b *fakeBroker) subscribe(c *fakeConn, f *frame.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &fakeSub{c: c, id: f.Header.Get(frame.Id), dest: f.Header.Get(frame.Destination),
		auto: f.Header.Get(frame.Ack) == "auto" || f.Header.Get(frame.Ack) == "", credit: 1,
		unacked: map[string]bool{}}
	if pf, ok := f.Header.Contains(stompwire.HeaderPrefetchCount); ok {
		b.prefetchs = append(b.prefetchs, pf)
		if n, err := strconv.Atoi(pf); err == nil && n > 0 {
			s.credit = n
		}
	}
	b.subs = append(b.subs, s)
	b.dispatch()
}

func (b *fakeBroker) enqueue(f *frame.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sends++
	dest := f.Header.Get(frame.Destination)
	if !strings.HasPrefix(dest, "/queue/") {
		return // topics are not needed by the tests using this broker
	}
	b.queues[dest] = append(b.queues[dest], f.Body)
	b.dispatch()
}

func (b *fakeBroker) ack(c *fakeConn, f *frame.Frame) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := f.Header.Contains(frame.Id)
	if !ok {
		return false
	}
	b.acksByID++
	for _, s := range b.subs {
		if s.c == c && s.unacked[id] {
			delete(s.unacked, id)
			s.credit++
			b.dispatch()
			return true
		}
	}
	return false
}

func (b *fakeBroker) dropSubs(c *fakeConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.subs[:0]
	for _, s := range b.subs {
		if s.c != c {
			kept = append(kept, s)
		}
	}
	b.subs = kept
}

// dispatch hands pending messages round-robin to subscriptions with credit.
// Called with b.mu held.
func (b *fakeBroker) dispatch() {
	for progress := true; progress; {
		progress = false
		for range b.subs {
			b.next = (b.next + 1) % len(b.subs)
			s := b.subs[b.next]
			q := b.queues[s.dest]
			if len(q) == 0 || (!s.auto && s.credit == 0) {
				continue
			}
			b.queues[s.dest] = q[1:]
			b.lastID++
			id := strconv.Itoa(b.lastID)
			m := frame.New(frame.MESSAGE, frame.Destination, s.dest, frame.Subscription, s.id,
				frame.MessageId, id, frame.ContentLength, strconv.Itoa(len(q[0])))
			if !s.auto {
				m.Header.Add(frame.Ack, "a"+id)
				s.unacked["a"+id] = true
				s.credit--
			}
			m.Body = q[0]
			s.c.write(m)
			progress = true
		}
	}
}

// seen returns the prefetch-count headers and the number of ACKs with an id
// header observed so far.
func (b *fakeBroker) seen() ([]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.prefetchs...), b.acksByID
}

// sendCount returns the number of SEND frames received so far.
func (b *fakeBroker) sendCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sends
}
