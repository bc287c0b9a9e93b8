package parent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/ledger"
)

// controlTimeout bounds one control request: reading it, waiting for the
// event loop's answer, writing it.
const controlTimeout = 10 * time.Second

// evControl is a control-socket request for the event loop; the loop sends
// exactly one Response on reply (buffered, so it never blocks).
type evControl struct {
	request string
	reply   chan control.Response
}

// serveControl accepts control connections on l until l is closed. Each
// connection is answered in a goroutine of its own, so a client that is slow
// to send its request holds up nobody.
func (b *Broker) serveControl(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				b.log.Error("control socket failed", "err", err)
			}
			return
		}
		go b.answerControl(conn)
	}
}

// answerControl reads one request line, has the event loop answer it and
// writes the answer as JSON (see package control for the protocol).
func (b *Broker) answerControl(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	line, err := bufio.NewReader(io.LimitReader(conn, 256)).ReadString('\n')
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	resp := b.ask(ctx, strings.TrimSpace(line))
	_ = json.NewEncoder(conn).Encode(resp)
}

// ask has the event loop answer request and, for the requests that show
// queues, adds the durable store's counts (the store is safe for concurrent
// use and may block, so it is asked here, not on the event loop). It
// waits for the loop until ctx is done; the control socket and the web
// console both take their figures through it.
func (b *Broker) ask(ctx context.Context, request string) control.Response {
	ev := evControl{request: request, reply: make(chan control.Response, 1)}
	var resp control.Response
	select {
	case b.events <- ev:
		select {
		case resp = <-ev.reply:
		case <-b.done:
			return control.Response{Error: "broker stopped"}
		case <-ctx.Done():
			return control.Response{Error: "the event loop did not answer in time: " + ctx.Err().Error()}
		}
	case <-b.done:
		return control.Response{Error: "broker stopped"}
	case <-ctx.Done():
		return control.Response{Error: "the event loop did not take the request in time: " + ctx.Err().Error()}
	}
	if (request == control.RequestQueues || request == control.RequestSnapshot) && resp.Error == "" && b.cfg.Store != nil {
		stats, err := b.cfg.Store.Stats(ctx)
		if err != nil && request == control.RequestSnapshot {
			// The console still shows the broker (and that it is cut off
			// from a shared database), without the store's counts.
			resp.StoreError = "store statistics: " + err.Error()
			return resp
		}
		if err != nil {
			return control.Response{Error: "store statistics: " + err.Error()}
		}
		resp.Queues = ledger.WithStoreStats(resp.Queues, stats)
	}
	return resp
}

// answer builds the response to a control request. Event loop only.
func (b *Broker) answer(request string) control.Response {
	switch request {
	case control.RequestClients:
		return control.Response{Clients: b.clientTable(), Spares: b.spareTable(), Cluster: b.clusterState()}
	case control.RequestQueues:
		return control.Response{Queues: b.queues.Stats()}
	case control.RequestSnapshot:
		return control.Response{Clients: b.clientTable(), Spares: b.spareTable(), Queues: b.queues.Stats(), Topics: b.topicTable(), Cluster: b.clusterState()}
	default:
		return control.Response{Error: "unknown request " + quote(request) + " (want " + control.RequestClients + ", " + control.RequestQueues + " or " + control.RequestSnapshot + ")"}
	}
}

// clientTable lists the connected clients, oldest first. Event loop only.
func (b *Broker) clientTable() []control.Client {
	out := make([]control.Client, 0, len(b.children))
	for _, c := range b.children {
		out = append(out, control.Client{
			PID:           c.pid,
			Addr:          c.addr,
			TLS:           c.transport.UsesTLS(),
			Transport:     string(c.transport),
			Login:         c.info.Login,
			Version:       c.info.Version,
			Subscriptions: len(c.subs),
			MessagesIn:    c.messagesIn,
			MessagesOut:   c.messagesOut,
			BytesQueued:   c.out.pending(),
			Since:         c.started,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].PID < out[j].PID
	})
	return out
}

// topicTable lists the topics with subscribers, by name. Event loop only.
func (b *Broker) topicTable() []control.Topic {
	out := make([]control.Topic, 0, len(b.topics))
	for name, subs := range b.topics {
		out = append(out, control.Topic{Name: name, Subscribers: len(subs), Messages: b.topicMessages[name]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// spareTable lists the waiting spares, oldest first.
func (b *Broker) spareTable() []control.Spare {
	if b.spares == nil {
		return nil
	}
	var out []control.Spare
	for _, s := range b.spares.list() {
		out = append(out, control.Spare{PID: s.pid, Since: s.started})
	}
	return out
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return `"` + s + `"`
}
