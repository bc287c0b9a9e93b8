package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// go-stomp's scenarios, written against its public API the way an
// application would use it. Things go-stomp cannot express, and how the
// scenarios work around them:
//   - no receipt on SUBSCRIBE or ACK (a receipt header on SUBSCRIBE would be
//     routed into the subscription's channel and close it): a SEND with a
//     receipt to an unread topic on the same connection is used as the sync
//     point instead (barrier), since a broker handles one connection's
//     frames in order;
//   - no way to omit accept-version or the SUBSCRIBE id in 1.0 mode.

// goStompScenarios maps a scenario name to its implementation.
var goStompScenarios = map[string]func(g *gs) error{
	"topic":           gsTopic,
	"queue":           gsQueue,
	"receipt":         gsReceipt,
	"ack-client":      gsAckClient,
	"nack-redeliver":  gsNackRedeliver,
	"transaction":     gsTransaction,
	"headers":         gsHeaders,
	"v10":             gsV10,
	"tx-send-receipt": gsTxSendReceipt,
}

// runGoStomp is the in-process runner for client "gostomp".
func runGoStomp(ctx context.Context, e scenarioEnv) error {
	fn, ok := goStompScenarios[e.scenario]
	if !ok {
		return fmt.Errorf("%w: go-stomp has no scenario %q", errScenario, e.scenario)
	}
	g := &gs{scenarioEnv: e, ctx: ctx, log: &bufLogger{}}
	err := fn(g)
	g.closeAll()
	for _, l := range g.log.lines() {
		e.logf("go-stomp log: %s", l)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errScenario, err)
	}
	return nil
}

// gs is the state of one go-stomp scenario run: its connections, so that
// every one is closed whatever happens.
type gs struct {
	scenarioEnv
	ctx   context.Context
	log   *bufLogger
	conns []*stomp.Conn
}

func (g *gs) dest(kind string) string {
	return fmt.Sprintf("/%s/interop.gostomp.%s.v%s.%s",
		kind, g.scenario, strings.ReplaceAll(g.version, ".", ""), g.suffix)
}

// dial connects as the scenario's version: 1.0 forced with AcceptVersion,
// 1.2 with go-stomp's default offer (1.0,1.1,1.2), checked to negotiate 1.2.
func (g *gs) dial(name string) (*stomp.Conn, error) {
	opts := []func(*stomp.Conn) error{
		stomp.ConnOpt.RcvReceiptTimeout(g.wait),
		stomp.ConnOpt.DisconnectReceiptTimeout(g.wait),
		stomp.ConnOpt.UnsubscribeReceiptTimeout(g.wait),
		stomp.ConnOpt.MsgSendTimeout(g.wait),
		stomp.ConnOpt.Logger(g.log),
	}
	want := stomp.V12
	if g.version == "1.0" {
		want = stomp.V10
		opts = append(opts, stomp.ConnOpt.AcceptVersion(stomp.V10))
	}
	if vh := os.Getenv("STOMP_INTEROP_VHOST"); vh != "" {
		opts = append(opts, stomp.ConnOpt.Host(vh))
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.wait)
	defer cancel()
	c, err := stomp.DialWithContext(ctx, "tcp", g.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", name, err)
	}
	g.conns = append(g.conns, c)
	if c.Version() != want {
		return nil, fmt.Errorf("%s: negotiated STOMP %s, want %s", name, c.Version(), want)
	}
	return c, nil
}

// disconnect sends DISCONNECT with a receipt and waits for it.
func (g *gs) disconnect(name string, c *stomp.Conn) error {
	g.conns = slices.DeleteFunc(g.conns, func(x *stomp.Conn) bool { return x == c })
	if err := c.Disconnect(); err != nil {
		return fmt.Errorf("%s: disconnect: %w", name, err)
	}
	return nil
}

func (g *gs) closeAll() {
	for _, c := range g.conns {
		_ = c.MustDisconnect() // already failing; just release the socket
	}
	g.conns = nil
}

// barrier returns once the broker has processed every frame c sent before
// it: a receipted SEND to a topic nobody reads.
func (g *gs) barrier(name string, c *stomp.Conn) error {
	syncDest := fmt.Sprintf("/topic/interop.gostomp.sync.%s", g.suffix)
	if err := c.Send(syncDest, "text/plain", []byte("sync"), stomp.SendOpt.Receipt); err != nil {
		return fmt.Errorf("%s: barrier SEND with receipt: %w", name, err)
	}
	return nil
}

// produce sends each body to dest with a receipt from a fresh connection.
func (g *gs) produce(dest string, bodies []string, opts ...func(*frame.Frame) error) error {
	p, err := g.dial("producer")
	if err != nil {
		return err
	}
	for _, b := range bodies {
		o := append([]func(*frame.Frame) error{stomp.SendOpt.Receipt}, opts...)
		if err := p.Send(dest, "text/plain", []byte(b), o...); err != nil {
			return fmt.Errorf("producer: SEND %s with receipt: %w", b, err)
		}
	}
	return g.disconnect("producer", p)
}

// next returns the next message on sub, or nil when d passes first.
func (g *gs) next(name string, sub *stomp.Subscription, d time.Duration) (*stomp.Message, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m, ok := <-sub.C:
		if !ok {
			return nil, fmt.Errorf("%s: subscription channel closed", name)
		}
		if m.Err != nil {
			return nil, fmt.Errorf("%s: %w", name, m.Err)
		}
		return m, nil
	case <-t.C:
		return nil, nil
	case <-g.ctx.Done():
		return nil, g.ctx.Err()
	}
}

func (g *gs) expectBodies(name string, sub *stomp.Subscription, want ...string) ([]*stomp.Message, error) {
	var got []string
	var msgs []*stomp.Message
	for _, w := range want {
		m, err := g.next(name, sub, g.wait)
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("%s: got %q, still waiting for %q", name, got, w)
		}
		got = append(got, string(m.Body))
		msgs = append(msgs, m)
	}
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("%s: got %q, want %q in that order", name, got, want)
	}
	return msgs, nil
}

func (g *gs) expectNone(name string, sub *stomp.Subscription) error {
	m, err := g.next(name, sub, g.quiet)
	if err != nil {
		return err
	}
	if m != nil {
		return fmt.Errorf("%s: unexpected MESSAGE %q (headers %v)", name, m.Body, headerMap(m))
	}
	return nil
}

// consume dials, subscribes to dest with the given ack mode and id, and
// waits until the broker has processed the SUBSCRIBE.
func (g *gs) consume(name, dest string, ack stomp.AckMode) (*stomp.Conn, *stomp.Subscription, error) {
	c, err := g.dial(name)
	if err != nil {
		return nil, nil, err
	}
	sub, err := c.Subscribe(dest, ack, stomp.SubscribeOpt.Id(name))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: subscribe: %w", name, err)
	}
	if err := g.barrier(name, c); err != nil {
		return nil, nil, err
	}
	return c, sub, nil
}

func individualAck(ver string) stomp.AckMode {
	if ver == "1.0" {
		return stomp.AckClient
	}
	return stomp.AckClientIndividual
}

func headerMap(m *stomp.Message) map[string]string {
	h := map[string]string{}
	for i := 0; i < m.Header.Len(); i++ {
		k, v := m.Header.GetAt(i)
		if _, dup := h[k]; !dup {
			h[k] = v
		}
	}
	return h
}

func gsTopic(g *gs) error {
	dest := g.dest("topic")
	type subscriber struct {
		name string
		conn *stomp.Conn
		sub  *stomp.Subscription
	}
	var subs []subscriber
	for _, n := range []string{"sub-a", "sub-b"} {
		c, sub, err := g.consume(n, dest, stomp.AckAuto)
		if err != nil {
			return err
		}
		subs = append(subs, subscriber{n, c, sub})
	}
	bodies := []string{"t1", "t2", "t3"}
	if err := g.produce(dest, bodies); err != nil {
		return err
	}
	for _, s := range subs {
		msgs, err := g.expectBodies(s.name, s.sub, bodies...)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Destination != dest {
				return fmt.Errorf("%s: MESSAGE destination %q, want %q", s.name, m.Destination, dest)
			}
			if got := m.Header.Get("subscription"); g.version != "1.0" && got != s.name {
				return fmt.Errorf("%s: MESSAGE subscription %q", s.name, got)
			}
		}
		if err := g.expectNone(s.name, s.sub); err != nil {
			return err
		}
		if err := g.disconnect(s.name, s.conn); err != nil {
			return err
		}
	}
	return nil
}

func gsQueue(g *gs) error {
	dest := g.dest("queue")
	if err := g.produce(dest, []string{"q1", "q2"}); err != nil {
		return err
	}
	c, sub, err := g.consume("consumer-1", dest, individualAck(g.version))
	if err != nil {
		return err
	}
	msgs, err := g.expectBodies("consumer-1", sub, "q1", "q2")
	if err != nil {
		return err
	}
	g.logf("OBS message-headers %v", headerMap(msgs[0]))
	for _, m := range msgs {
		if err := c.Ack(m); err != nil {
			return fmt.Errorf("consumer-1: ACK: %w", err)
		}
	}
	if err := g.disconnect("consumer-1", c); err != nil { // its receipt covers the ACKs
		return err
	}
	c2, sub2, err := g.consume("consumer-2", dest, stomp.AckAuto)
	if err != nil {
		return err
	}
	if err := g.expectNone("consumer-2", sub2); err != nil {
		return err
	}
	return g.disconnect("consumer-2", c2)
}

func gsReceipt(g *gs) error {
	dest := g.dest("queue")
	c, err := g.dial("client")
	if err != nil {
		return err
	}
	sub, err := c.Subscribe(dest, stomp.AckAuto, stomp.SubscribeOpt.Id("s1"))
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	g.logf("OBS not-expressible %q", "go-stomp cannot put a receipt on SUBSCRIBE or BEGIN")
	// go-stomp matches the RECEIPT by receipt-id and times out otherwise.
	if err := c.Send(dest, "text/plain", []byte("r1"), stomp.SendOpt.Receipt); err != nil {
		return fmt.Errorf("SEND receipt: %w", err)
	}
	if _, err := g.expectBodies("client", sub, "r1"); err != nil {
		return err
	}
	// go-stomp sets receipt = the subscription id on UNSUBSCRIBE and waits.
	if err := sub.Unsubscribe(); err != nil {
		return fmt.Errorf("UNSUBSCRIBE receipt: %w", err)
	}
	if err := c.Begin().CommitWithReceipt(); err != nil {
		return fmt.Errorf("COMMIT receipt: %w", err)
	}
	if err := c.Begin().AbortWithReceipt(); err != nil {
		return fmt.Errorf("ABORT receipt: %w", err)
	}
	return g.disconnect("client", c) // DISCONNECT receipt
}

func gsAckClient(g *gs) error {
	dest := g.dest("queue")
	if err := g.produce(dest, []string{"a1", "a2", "a3"}); err != nil {
		return err
	}
	c, sub, err := g.consume("consumer-1", dest, stomp.AckClient)
	if err != nil {
		return err
	}
	msgs, err := g.expectBodies("consumer-1", sub, "a1", "a2", "a3")
	if err != nil {
		return err
	}
	if err := c.Ack(msgs[1]); err != nil { // cumulative: a1 and a2
		return fmt.Errorf("consumer-1: ACK: %w", err)
	}
	if err := g.disconnect("consumer-1", c); err != nil { // a3 stays unacknowledged
		return err
	}
	c2, sub2, err := g.consume("consumer-2", dest, stomp.AckClient)
	if err != nil {
		return err
	}
	again, err := g.expectBodies("consumer-2", sub2, "a3")
	if err != nil {
		return err
	}
	g.logf("OBS redelivered %q", again[0].Header.Get(stompwire.HeaderRedelivered))
	if err := c2.Ack(again[0]); err != nil {
		return fmt.Errorf("consumer-2: ACK: %w", err)
	}
	if err := g.expectNone("consumer-2", sub2); err != nil {
		return err
	}
	return g.disconnect("consumer-2", c2)
}

func gsNackRedeliver(g *gs) error {
	dest := g.dest("queue")
	if err := g.produce(dest, []string{"n1"}); err != nil {
		return err
	}
	c, sub, err := g.consume("consumer", dest, stomp.AckClientIndividual)
	if err != nil {
		return err
	}
	first, err := g.expectBodies("consumer", sub, "n1")
	if err != nil {
		return err
	}
	if err := c.Nack(first[0]); err != nil {
		return fmt.Errorf("NACK: %w", err)
	}
	again, err := g.next("consumer", sub, g.wait)
	if err != nil {
		return err
	}
	if again == nil {
		return fmt.Errorf("NACKed message was not delivered again within %v", g.wait)
	}
	g.logf("OBS second-headers %v", headerMap(again))
	if string(again.Body) != "n1" {
		return fmt.Errorf("redelivered body %q, want n1", again.Body)
	}
	if r := again.Header.Get(stompwire.HeaderRedelivered); r != "true" {
		return fmt.Errorf("redelivered header %q, want \"true\"", r)
	}
	if err := c.Ack(again); err != nil {
		return fmt.Errorf("ACK: %w", err)
	}
	if err := g.disconnect("consumer", c); err != nil {
		return err
	}
	c2, sub2, err := g.consume("consumer-2", dest, stomp.AckAuto)
	if err != nil {
		return err
	}
	if err := g.expectNone("consumer-2", sub2); err != nil {
		return err
	}
	return g.disconnect("consumer-2", c2)
}

func gsTransaction(g *gs) error {
	dest := g.dest("queue")
	c, sub, err := g.consume("consumer", dest, stomp.AckAuto)
	if err != nil {
		return err
	}
	p, err := g.dial("producer")
	if err != nil {
		return err
	}
	txAbort, txCommit := p.Begin(), p.Begin()
	for _, s := range []struct {
		tx   *stomp.Transaction
		body string
	}{{txCommit, "x1"}, {txAbort, "y1"}, {txCommit, "x2"}, {txAbort, "y2"}} {
		if err := s.tx.Send(dest, "text/plain", []byte(s.body)); err != nil {
			return fmt.Errorf("producer: SEND %s in %s: %w", s.body, s.tx.Id(), err)
		}
	}
	if err := g.barrier("producer", p); err != nil {
		return err
	}
	if err := g.expectNone("consumer", sub); err != nil { // nothing before COMMIT
		return err
	}
	if err := txAbort.Abort(); err != nil {
		return fmt.Errorf("ABORT: %w", err)
	}
	if err := txCommit.CommitWithReceipt(); err != nil {
		return fmt.Errorf("COMMIT: %w", err)
	}
	if _, err := g.expectBodies("consumer", sub, "x1", "x2"); err != nil {
		return err
	}
	if err := g.expectNone("consumer", sub); err != nil {
		return err
	}
	if err := g.disconnect("producer", p); err != nil {
		return err
	}
	return g.disconnect("consumer", c)
}

// trickyValue needs every 1.2 header escape except \r.
const trickyValue = "a:b\nc\\d"

func gsHeaders(g *gs) error {
	dest := g.dest("topic")
	c, sub, err := g.consume("consumer", dest, stomp.AckAuto)
	if err != nil {
		return err
	}
	want := map[string]string{"x-interop-plain": "plain-value"}
	if g.version != "1.0" {
		want["x-interop-tricky"] = trickyValue
	}
	var opts []func(*frame.Frame) error
	for k, v := range want {
		opts = append(opts, stomp.SendOpt.Header(k, v))
	}
	if err := g.produce(dest, []string{"h1"}, opts...); err != nil {
		return err
	}
	msgs, err := g.expectBodies("consumer", sub, "h1")
	if err != nil {
		return err
	}
	got := headerMap(msgs[0])
	g.logf("OBS message-headers %q", got)
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("header %s: got %q, want %q", k, got[k], v)
		}
	}
	return g.disconnect("consumer", c)
}

func gsV10(g *gs) error {
	dest := g.dest("queue")
	g.logf("OBS not-expressible %q", "go-stomp always sends accept-version and a SUBSCRIBE id")
	c, sub, err := g.consume("consumer", dest, stomp.AckClient)
	if err != nil {
		return err
	}
	g.logf("OBS server %q session %q", c.Server(), c.Session())
	if err := g.produce(dest, []string{"v1"}); err != nil {
		return err
	}
	msgs, err := g.expectBodies("consumer", sub, "v1")
	if err != nil {
		return err
	}
	g.logf("OBS message-headers %v", headerMap(msgs[0]))
	if err := c.Ack(msgs[0]); err != nil {
		return fmt.Errorf("ACK: %w", err)
	}
	if err := sub.Unsubscribe(); err != nil {
		return fmt.Errorf("UNSUBSCRIBE: %w", err)
	}
	return g.disconnect("consumer", c)
}

func gsTxSendReceipt(g *gs) error {
	dest := g.dest("queue")
	c, sub, err := g.consume("consumer", dest, stomp.AckAuto)
	if err != nil {
		return err
	}
	p, err := g.dial("producer")
	if err != nil {
		return err
	}
	tx := p.Begin()
	// Transaction.Send blocks until the RECEIPT arrives, bounded only by the
	// heart-beat interval (60 s by default; then it reports "connection closed
	// unexpectedly"), so bound the wait here. On timeout the goroutine is
	// released when closeAll closes the connection.
	sent := make(chan error, 1)
	go func() { sent <- tx.Send(dest, "text/plain", []byte("tx1"), stomp.SendOpt.Receipt) }()
	select {
	case err := <-sent:
		if err != nil {
			return fmt.Errorf("SEND in transaction: %w", err)
		}
	case <-time.After(g.wait):
		return errors.New("no RECEIPT for a SEND inside an open transaction within " + g.wait.String())
	}
	if err := tx.AbortWithReceipt(); err != nil {
		return fmt.Errorf("ABORT: %w", err)
	}
	if err := g.expectNone("consumer", sub); err != nil {
		return err
	}
	if err := g.disconnect("producer", p); err != nil {
		return err
	}
	return g.disconnect("consumer", c)
}

// bufLogger keeps go-stomp's log lines so they can be reported through the
// test's log after the run (go-stomp logs from its own goroutines, possibly
// after the test body returned, when t.Log would panic).
type bufLogger struct {
	mu  sync.Mutex
	buf []string
}

func (l *bufLogger) add(level, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, level+": "+s)
}

func (l *bufLogger) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.buf)
}

func (l *bufLogger) Debugf(f string, v ...interface{})   { l.add("debug", fmt.Sprintf(f, v...)) }
func (l *bufLogger) Infof(f string, v ...interface{})    { l.add("info", fmt.Sprintf(f, v...)) }
func (l *bufLogger) Warningf(f string, v ...interface{}) { l.add("warning", fmt.Sprintf(f, v...)) }
func (l *bufLogger) Errorf(f string, v ...interface{})   { l.add("error", fmt.Sprintf(f, v...)) }
func (l *bufLogger) Debug(m string)                      { l.add("debug", m) }
func (l *bufLogger) Info(m string)                       { l.add("info", m) }
func (l *bufLogger) Warning(m string)                    { l.add("warning", m) }
func (l *bufLogger) Error(m string)                      { l.add("error", m) }
