package integration

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// clusterBroker starts a broker on the shared database dsn, with a
// control socket the test can ask.
func clusterBroker(t *testing.T, dsn, id string, extra ...string) (*brokertest.Broker, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	args := append([]string{"--store", dsn, "--broker-id", id, "--control-socket", sock}, extra...)
	return brokertest.Start(t, args...), sock
}

// topicSub is a go-stomp subscriber whose messages are collected by body
// in arrival order.
type topicSub struct {
	mu   sync.Mutex
	got  []string
	wake chan struct{}
}

func subscribeTopic(t *testing.T, b *brokertest.Broker, dest string) *topicSub {
	t.Helper()
	c := dialClient(t, b)
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	ts := &topicSub{wake: make(chan struct{}, 1)}
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				return
			}
			ts.mu.Lock()
			ts.got = append(ts.got, string(m.Body))
			ts.mu.Unlock()
			select {
			case ts.wake <- struct{}{}:
			default:
			}
		}
	}()
	return ts
}

// since returns the bodies received with the given prefix.
func (s *topicSub) with(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, g := range s.got {
		if strings.HasPrefix(g, prefix) {
			out = append(out, g)
		}
	}
	return out
}

// warmUp publishes probes on producer until every sub has one: the
// brokers have learnt each other's subscriptions (a subscription reaches
// other brokers a moment after its RECEIPT).
func warmUp(t *testing.T, producer *client, dest string, subs ...*topicSub) {
	t.Helper()
	i := 0
	poll.Eventually(t, 15*time.Second, "every subscriber gets a probe", func() bool {
		i++
		if err := producer.Send(dest, "text/plain", []byte("probe-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		for _, s := range subs {
			if len(s.with("probe-")) == 0 {
				return false
			}
		}
		return true
	})
}

// expectInOrder waits until s has all n messages "prefix<i>", in order.
func expectInOrder(t *testing.T, name string, s *topicSub, prefix string, n int) {
	t.Helper()
	ok := poll.Within(30*time.Second, func() bool { return len(s.with(prefix)) >= n })
	got := s.with(prefix)
	if !ok {
		t.Fatalf("%s: %d of %d messages %s*", name, len(got), n, prefix)
	}
	for i, g := range got {
		if want := prefix + strconv.Itoa(i); g != want {
			t.Fatalf("%s: message %d is %q, want %q", name, i, g, want)
		}
	}
	if len(got) != n {
		t.Fatalf("%s: %d messages %s*, want %d", name, len(got), prefix, n)
	}
}

func sendN(t *testing.T, c *client, dest, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := c.Send(dest, "text/plain", []byte(prefix+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterTopicAcrossThreeBrokers: brokers A, B and C on one database;
// what a producer on A publishes reaches the subscribers on B and C, all
// of it, in order; a kill -9 of B does not disturb C; B restarted is back
// in the topic.
func TestClusterTopicAcrossThreeBrokers(t *testing.T) {
	dsn := postgresDSN(t)
	a, _ := clusterBroker(t, dsn, "a")
	b, _ := clusterBroker(t, dsn, "b")
	c, _ := clusterBroker(t, dsn, "c")
	dest := "/topic/cluster-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	onB, onC, onA := subscribeTopic(t, b, dest), subscribeTopic(t, c, dest), subscribeTopic(t, a, dest)
	producer := dialClient(t, a)
	warmUp(t, producer, dest, onB, onC)

	const n = 1000
	sendN(t, producer, dest, "m", n)
	expectInOrder(t, "subscriber on B", onB, "m", n)
	expectInOrder(t, "subscriber on C", onC, "m", n)
	expectInOrder(t, "subscriber on A", onA, "m", n)

	// kill -9 of B, in the middle of a stream C keeps receiving.
	sendN(t, producer, dest, "k", 100)
	b.KillGroup(t)
	for i := 100; i < 200; i++ {
		if err := producer.Send(dest, "text/plain", []byte("k"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	expectInOrder(t, "subscriber on C across B's death", onC, "k", 200)

	// B again (a new node): back in the topic.
	b2, _ := clusterBroker(t, dsn, "b")
	onB2 := subscribeTopic(t, b2, dest)
	warmUp(t, producer, dest, onB2)
	sendN(t, producer, dest, "r", 100)
	expectInOrder(t, "subscriber on restarted B", onB2, "r", 100)
	expectInOrder(t, "subscriber on C", onC, "r", 100)
}

// requester is a raw client that sends requests with a reply-to
// temporary queue and reads the replies.
func rpcRoundTrips(t *testing.T, req *brokertest.Raw, reqDest, temp, wantSub string, n int, extra ...string) {
	t.Helper()
	for i := range n {
		body := "q" + strconv.Itoa(i)
		headers := append([]string{"reply-to", temp}, extra...)
		var reply *frame.Frame
		// The first request may go out before the responder's broker is
		// known to the requester's (topics), so it is repeated until
		// answered; later ones must be answered at once.
		deadline := time.Now().Add(15 * time.Second)
		for reply == nil {
			rawSend(t, req, reqDest, body, headers...)
			f, err := req.Read(500 * time.Millisecond)
			if err == nil {
				reply = f
			} else if i > 0 || time.Now().After(deadline) {
				t.Fatalf("request %d: no reply: %v", i, err)
			}
		}
		if reply.Command != frame.MESSAGE || string(reply.Body) != "re:"+body {
			t.Fatalf("request %d: got %s %q", i, reply.Command, reply.Body)
		}
		if got := reply.Header.Get(frame.Subscription); got != wantSub {
			t.Fatalf("reply on subscription %q, want %q", got, wantSub)
		}
		if d := reply.Header.Get(frame.Destination); !strings.HasPrefix(d, "/reply-queue/") {
			t.Fatalf("reply destination %q, want a /reply-queue/ name", d)
		}
	}
}

// responder answers every request on dest to its reply-to, checking the
// broker rewrote that to a /reply-queue/ name.
func responder(t *testing.T, b *brokertest.Broker, dest string) {
	t.Helper()
	c := dialClient(t, b)
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				return
			}
			rt := m.Header.Get("reply-to")
			if !strings.HasPrefix(rt, "/reply-queue/") {
				errs <- fmt.Errorf("reply-to %q reached the responder unrewritten", rt)
				return
			}
			if err := c.Send(rt, "text/plain", append([]byte("re:"), m.Body...)); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case err := <-errs:
			t.Error(err)
		default:
		}
	})
}

// TestTempQueueRPC: request/response through reply-to:/temp-queue/, with
// requester and responder on one broker without a store and on two
// brokers sharing a database; replies arrive without a SUBSCRIBE
// (RabbitMQ's way) or on the client's SUBSCRIBE to its /temp-queue/
// (ActiveMQ's), and nobody else can subscribe to the queue.
func TestTempQueueRPC(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cluster   bool
		subscribe bool
	}{
		{name: "one broker without store"},
		{name: "one broker, subscribed first", subscribe: true},
		{name: "two brokers", cluster: true},
		{name: "two brokers, subscribed first", cluster: true, subscribe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqB, respB *brokertest.Broker
			dest := "/topic/rpc-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if tc.cluster {
				dsn := postgresDSN(t)
				reqB, _ = clusterBroker(t, dsn, "req")
				respB, _ = clusterBroker(t, dsn, "resp")
			} else {
				reqB = brokertest.Start(t)
				respB = reqB
			}
			responder(t, respB, dest)
			req := reqB.Raw(t)
			req.Connect()
			wantSub := "/temp-queue/answers"
			if tc.subscribe {
				rawSubscribe(t, req, "mine", "/temp-queue/answers", "auto")
				wantSub = "mine"
			}
			rpcRoundTrips(t, req, dest, "/temp-queue/answers", wantSub, 20)

			// Private: another connection cannot subscribe to its name.
			other := reqB.Raw(t)
			other.Connect()
			other.Send("SUBSCRIBE\nid:x\ndestination:/reply-queue/" + "anything.1.answers" + "\n\n\x00")
			other.ExpectError("", "")
		})
	}
}

// pgProxy is a TCP proxy in front of the test database's unix socket,
// which the test can cut and restore.
type pgProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]bool
}

func newPGProxy(t *testing.T, dsn string) (*pgProxy, string) {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	dir := q.Get("host")
	if dir == "" || !strings.HasPrefix(dir, "/") {
		t.Skip("the test database is not on a unix socket; no proxy")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	p := &pgProxy{t: t, target: filepath.Join(dir, ".s.PGSQL."+port), conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	q.Del("host")
	u.RawQuery = q.Encode()
	u.Host = p.addr
	t.Cleanup(p.cut)
	return p, u.String()
}

func (p *pgProxy) listen(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l, p.addr = l, l.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = true, true
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close(); c.Close() }()
			go func() { io.Copy(c, s); s.Close(); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection through it.
func (p *pgProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.l.Close()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// restore listens again on the same address.
func (p *pgProxy) restore() { p.listen(p.addr) }

func clusterState(t *testing.T, sock string) *control.Cluster {
	t.Helper()
	r, err := control.Do(sock, control.RequestClients, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cluster == nil {
		t.Fatal("clients answer without the cluster's state")
	}
	return r.Cluster
}

// TestClusterCutOff: a broker whose database connection goes (a proxy in
// front of it is cut) keeps serving its own clients, says it is cut off
// (`clients`, the log, once), and is back in the cluster when the
// database is.
func TestClusterCutOff(t *testing.T) {
	dsn := postgresDSN(t)
	proxy, viaProxy := newPGProxy(t, dsn)
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a, sockA := clusterBroker(t, viaProxy, "a", "--metrics-listen", metrics, "--trace")
	b, _ := clusterBroker(t, dsn, "b", "--trace")
	dest := "/topic/cut-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	onA, onB := subscribeTopic(t, a, dest), subscribeTopic(t, b, dest)
	producer := dialClient(t, a)
	warmUp(t, producer, dest, onA, onB)
	if st := clusterState(t, sockA); !st.Connected {
		t.Fatalf("cluster state %+v before the cut", st)
	}
	waitMetric(t, metrics, "stomp_broker_cluster_connected", 1)
	// --trace shows the hop into the database on A and out of it on B.
	a.WaitLog(t, `hop="B1 parent → other brokers \(NOTIFY\)" destination=`+dest+` message-id=\S+ to_brokers=1`, 5*time.Second)
	b.WaitLog(t, `hop="B2 NOTIFY → parent event loop" destination=`+dest+` message-id=\S+ from_broker=`, 5*time.Second)

	proxy.cut()
	poll.Eventually(t, 10*time.Second, "A reports it is cut off", func() bool { return !clusterState(t, sockA).Connected })
	waitMetric(t, metrics, "stomp_broker_cluster_connected", 0)
	sendN(t, producer, dest, "local", 50)
	expectInOrder(t, "local subscriber while cut off", onA, "local", 50)
	out := runBroker(t, "", "clients", "--control-socket", sockA)
	if !strings.Contains(out, "CUT OFF") {
		t.Fatalf("clients output does not say the broker is cut off:\n%s", out)
	}
	time.Sleep(3 * time.Second) // several reconnect attempts
	if n := strings.Count(a.Logs(), "cut off from the database"); n != 1 {
		t.Fatalf("%d log lines about being cut off, want 1:\n%s", n, a.Logs())
	}

	proxy.restore()
	poll.Eventually(t, 20*time.Second, "A reconnects", func() bool { return clusterState(t, sockA).Connected })
	waitMetric(t, metrics, "stomp_broker_cluster_connected", 1)
	warmUp(t, producer, dest, onB)
	sendN(t, producer, dest, "back", 50)
	expectInOrder(t, "subscriber on B after the reconnect", onB, "back", 50)
}

// TestTempQueuePrivate: two connections using the same temporary queue
// name each get their own replies only, and a reply to a connection that
// has gone reaches nobody.
func TestTempQueuePrivate(t *testing.T) {
	b := brokertest.Start(t)
	dest := "/queue/rpc-private"
	resp := b.Raw(t)
	resp.Connect()
	rawSubscribe(t, resp, "rpc", dest, "auto")
	reqs := []*brokertest.Raw{b.RawNamed(t, "req1"), b.RawNamed(t, "req2")}
	replyTo := make([]string, len(reqs))
	for i, r := range reqs {
		r.Connect()
		rawSend(t, r, dest, "from"+strconv.Itoa(i), "reply-to", "/temp-queue/answers")
		m := resp.Expect(frame.MESSAGE)
		replyTo[i] = m.Header.Get("reply-to")
	}
	if replyTo[0] == replyTo[1] || !strings.HasPrefix(replyTo[0], "/reply-queue/") {
		t.Fatalf("reply-to rewritten to %q and %q: want two distinct /reply-queue/ names", replyTo[0], replyTo[1])
	}
	for i := range reqs {
		rawSend(t, resp, replyTo[i], "for"+strconv.Itoa(i))
	}
	for i, r := range reqs {
		if m := r.Expect(frame.MESSAGE); string(m.Body) != "for"+strconv.Itoa(i) {
			t.Fatalf("requester %d got %q", i, m.Body)
		}
		r.ExpectNothing(200 * time.Millisecond)
	}
	reqs[0].Send("DISCONNECT\nreceipt:bye\n\n\x00")
	reqs[0].Expect(frame.RECEIPT)
	poll.Eventually(t, 5*time.Second, "requester 1's child is gone", func() bool { return len(b.Children(t)) == 2 })
	rawSend(t, resp, replyTo[0], "too late")
	reqs[1].ExpectNothing(500 * time.Millisecond)
	resp.ExpectNothing(200 * time.Millisecond)
}
