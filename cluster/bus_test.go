package cluster

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/pgtest"
)

// testDSN returns a DSN on a schema of the test's own in the test
// database, or skips the test (fails it under STOMP_BROKER_REQUIRE_ALL=1).
func testDSN(t *testing.T) string { return pgtest.FreshSchema(t, "ct_") }

func openBus(t *testing.T, dsn string) *Bus {
	t.Helper()
	b, err := Open(Config{DSN: dsn, Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	deadline := time.Now().Add(10 * time.Second)
	for !b.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("bus did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting: " + what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive(t *testing.T, b *Bus) Message {
	t.Helper()
	select {
	case m := <-b.Received():
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
		return Message{}
	}
}

// TestPublishFollowsInterest: a topic message goes only to a node with
// subscribers for it, in order, inline or through the payload table.
func TestPublishFollowsInterest(t *testing.T) {
	dsn := testDSN(t)
	a, b := openBus(t, dsn), openBus(t, dsn)
	if n := a.Publish(Message{Dest: "/topic/x", ID: "early"}); n != 0 {
		t.Fatalf("published to %d nodes before anyone subscribed", n)
	}
	b.SetInterest("/topic/x", true)
	waitFor(t, "a learns b's interest", func() bool { return a.Interested("/topic/x") })
	if a.Interested("/topic/y") {
		t.Fatal("a thinks b wants /topic/y")
	}
	big := bytes.Repeat([]byte{0, 1, 2, 'x'}, 5000) // binary and past MaxInline
	for i := range 100 {
		enc := []byte("m" + strconv.Itoa(i))
		if i == 50 {
			enc = big
		}
		if n := a.Publish(Message{Dest: "/topic/x", ID: strconv.Itoa(i), Enc: enc}); n != 1 {
			t.Fatalf("message %d published to %d nodes, want 1", i, n)
		}
	}
	for i := range 100 {
		m := receive(t, b)
		if m.ID != strconv.Itoa(i) || m.Origin != a.Node() || m.Dest != "/topic/x" {
			t.Fatalf("message %d: got %+v", i, m)
		}
		if i == 50 && !bytes.Equal(m.Enc, big) {
			t.Fatalf("large payload changed: %d bytes", len(m.Enc))
		}
	}
	b.SetInterest("/topic/x", false)
	waitFor(t, "a forgets b's interest", func() bool { return !a.Interested("/topic/x") })
}

// TestSendToAndDeadNode: SendTo reaches one node; a node that closed is
// forgotten by the others.
func TestSendToAndDeadNode(t *testing.T) {
	dsn := testDSN(t)
	a, b := openBus(t, dsn), openBus(t, dsn)
	a.SendTo(b.Node(), Message{Dest: "/reply-queue/r", ID: "1", Enc: []byte("hi")})
	if m := receive(t, b); m.ID != "1" || string(m.Enc) != "hi" {
		t.Fatalf("got %+v", m)
	}
	b.SetInterest("/topic/z", true)
	waitFor(t, "a learns b's interest", func() bool { return a.Interested("/topic/z") })
	b.Close()
	waitFor(t, "a forgets closed b", func() bool { return !a.Interested("/topic/z") })
}
