package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// dial connects a go-stomp client (STOMP 1.2) to the broker.
func dial(t *testing.T, b *brokertest.Broker, opts ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	opts = append([]func(*stomp.Conn) error{stomp.ConnOpt.HeartBeat(0, 0)}, opts...)
	c, err := stomp.Dial("tcp", b.Addr, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.MustDisconnect() })
	return c
}

// subscribe subscribes with a receipt, so the subscription is live when it returns.
func subscribe(t *testing.T, c *stomp.Conn, dest string, ack stomp.AckMode, opts ...func(*frame.Frame) error) *stomp.Subscription {
	t.Helper()
	// (go-stomp's client must not get a receipt header on SUBSCRIBE: it
	// closes the subscription's channel when the RECEIPT arrives.)
	sub, err := c.Subscribe(dest, ack, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	// go-stomp's client waits for nothing on SUBSCRIBE; a receipted SEND to
	// a throw-away topic on the same connection flushes the subscription
	// through the broker (the parent applies one connection's frames in order).
	if err := c.Send("/topic/sync-"+strconv.Itoa(os.Getpid()), "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("sync after subscribe: %v", err)
	}
	return sub
}

// receive reads one message or fails after timeout.
func receive(t *testing.T, sub *stomp.Subscription, timeout time.Duration) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription %s closed", sub.Destination())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s: %v", sub.Destination(), m.Err)
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message on %s within %v", sub.Destination(), timeout)
		return nil
	}
}

func TestTopicFanOutCompleteAndInOrder(t *testing.T) {
	b := brokertest.Start(t)
	const n = 500
	var subs []*stomp.Subscription
	for i := 0; i < 3; i++ {
		subs = append(subs, subscribe(t, dial(t, b), "/topic/fan", stomp.AckAuto))
	}
	pub := dial(t, b)
	for i := 0; i < n; i++ {
		if err := pub.Send("/topic/fan", "text/plain", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for si, sub := range subs {
		for i := 0; i < n; i++ {
			m := receive(t, sub, 10*time.Second)
			if got := string(m.Body); got != strconv.Itoa(i) {
				t.Fatalf("subscriber %d: message %d is %q (out of order or lost)", si, i, got)
			}
		}
	}
}

func TestEachClientHasItsOwnChildProcess(t *testing.T) {
	b := brokertest.Start(t)
	var conns []*stomp.Conn
	for i := 0; i < 3; i++ {
		conns = append(conns, dial(t, b))
	}
	pids := b.WaitChildren(t, 3, 5*time.Second)
	seen := map[int]bool{}
	for _, pid := range pids {
		if seen[pid] {
			t.Fatalf("pid %d listed twice", pid)
		}
		seen[pid] = true
		args, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(args), "stomp-broker: client 127.0.0.1:") {
			t.Errorf("child %d command line %q does not name its client", pid, args)
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "stomp-client" {
			t.Errorf("child %d comm is %q, want stomp-client", pid, comm)
		}
		// The child, and not the parent, holds the client's socket.
		if n := countTCPSockets(t, pid); n != 1 {
			t.Errorf("child %d holds %d TCP sockets, want 1", pid, n)
		}
	}
	if n := countTCPSockets(t, b.PID); n != 1 { // the listener only
		t.Errorf("parent holds %d TCP sockets, want 1 (its listener)", n)
	}
	_ = conns
}

// countTCPSockets counts the TCP sockets among pid's fds.
func countTCPSockets(t *testing.T, pid int) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 {
				inodes[f[9]] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") && inodes[strings.Trim(target[7:], "[]")] {
			n++
		}
	}
	return n
}

func TestKillingOneChildTouchesNobodyElse(t *testing.T) {
	b := brokertest.Start(t)
	victim := dial(t, b, stomp.ConnOpt.HeartBeat(0, 0))
	victimSub := subscribe(t, victim, "/topic/iso", stomp.AckAuto)
	victimPID := b.WaitChildren(t, 1, 5*time.Second)[0]
	var survivors []*stomp.Subscription
	for i := 0; i < 2; i++ {
		survivors = append(survivors, subscribe(t, dial(t, b), "/topic/iso", stomp.AckAuto))
	}
	pub := dial(t, b)
	b.WaitChildren(t, 4, 5*time.Second)

	if err := syscall.Kill(victimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The victim's client sees its connection end.
	select {
	case _, ok := <-victimSub.C:
		_ = ok
	case <-time.After(5 * time.Second):
		t.Fatal("the killed child's client never noticed")
	}
	b.WaitChildren(t, 3, 5*time.Second)

	for i := 0; i < 100; i++ {
		if err := pub.Send("/topic/iso", "text/plain", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range survivors {
		for i := 0; i < 100; i++ {
			if m := receive(t, sub, 10*time.Second); string(m.Body) != strconv.Itoa(i) {
				t.Fatalf("survivor got %q, want %d", m.Body, i)
			}
		}
	}
	// New clients are still served.
	late := subscribe(t, dial(t, b), "/topic/iso", stomp.AckAuto)
	if err := pub.Send("/topic/iso", "text/plain", []byte("late")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, late, 10*time.Second); string(m.Body) != "late" {
		t.Fatalf("late subscriber got %q", m.Body)
	}
	victim.Disconnect()
}

func TestSIGTERMClosesClientsWithErrorAndLeavesNothing(t *testing.T) {
	b := brokertest.Start(t)
	var raws []*brokertest.Raw
	for i := 0; i < 3; i++ {
		r := b.Raw(t)
		r.Connect()
		raws = append(raws, r)
	}
	children := b.WaitChildren(t, 3, 5*time.Second)
	b.Signal(t, syscall.SIGTERM)
	for _, r := range raws {
		r.ExpectError("broker shutting down", "")
	}
	if err := b.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("broker exit after SIGTERM: %v", err)
	}
	for _, pid := range children {
		if brokertest.Alive(pid) {
			t.Errorf("child %d still running after the parent exited", pid)
		}
	}
}

func TestParentSIGKILLMakesEveryChildExit(t *testing.T) {
	b := brokertest.Start(t)
	var raws []*brokertest.Raw
	for i := 0; i < 3; i++ {
		r := b.Raw(t)
		r.Connect()
		raws = append(raws, r)
	}
	children := b.WaitChildren(t, 3, 5*time.Second)
	b.Signal(t, syscall.SIGKILL)
	b.WaitExit(t, 5*time.Second)
	waitGone(t, children, 2*time.Second)
	for _, r := range raws {
		r.ExpectError("broker went away", "")
	}
}

func TestManyProducersKeepPerProducerOrder(t *testing.T) {
	b := brokertest.Start(t)
	sub := subscribe(t, dial(t, b), "/topic/order", stomp.AckAuto)
	const producers, n = 4, 200
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		c := dial(t, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				c.Send("/topic/order", "text/plain", []byte(fmt.Sprintf("%d:%d", p, i)))
			}
		}()
	}
	wg.Wait()
	next := make([]int, producers)
	for i := 0; i < producers*n; i++ {
		m := receive(t, sub, 10*time.Second)
		var p, seq int
		fmt.Sscanf(string(m.Body), "%d:%d", &p, &seq)
		if seq != next[p] {
			t.Fatalf("producer %d: got %d, want %d", p, seq, next[p])
		}
		next[p]++
	}
}
