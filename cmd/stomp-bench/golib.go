package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// runQueueGoStomp is the gostomp-queue scenario: the queue scenario (P
// producers, C competing consumers, auto ack, every message expected
// exactly once) driven by go-stomp's own client library as a Go user runs
// it: stomp.Conn, Conn.Send without receipts, Conn.Subscribe in auto mode
// and its C channel, with the library's default windows and buffers
// (--prefetch, when given, goes on SUBSCRIBE as prefetch-count). The
// lean client of the other scenarios writes and reads frames itself; this
// one measures what a go-stomp application sees. A subscription counts as
// live once a receipted BEGIN+ABORT sent after it comes back (servers that
// do not receipt SUBSCRIBE answer that too).
func runQueueGoStomp(ctx context.Context, cfg config) (*result, error) {
	t := newTrial(ctx, cfg.Timeout)
	defer t.close()
	dest := cfg.destination("/queue/")

	var conns []*stomp.Conn
	var connsMu sync.Mutex
	defer func() {
		connsMu.Lock()
		defer connsMu.Unlock()
		closeClients(context.WithoutCancel(ctx), conns, len(conns)+1)
	}()
	dial := func(role string, i int) (*stomp.Conn, error) {
		c, err := connectClient(ctx, cfg.Addr)
		if err != nil {
			return nil, t.explain(fmt.Errorf("%s %d: %w", role, i, err), "during set-up")
		}
		connsMu.Lock()
		conns = append(conns, c)
		connsMu.Unlock()
		return c, nil
	}

	// --prefetch rides on the library's SUBSCRIBE as a plain header, as a
	// Go user would set it.
	var subOpts []func(*frame.Frame) error
	if cfg.Prefetch > 0 {
		subOpts = append(subOpts, stomp.SubscribeOpt.Header(stompwire.HeaderPrefetchCount, strconv.Itoa(cfg.Prefetch)))
	}
	led := newLedger(cfg.Producers, cfg.Messages)
	rcvs := make([]*receiver, cfg.Consumers)
	for i := range rcvs {
		c, err := dial("consumer", i)
		if err != nil {
			return nil, err
		}
		sub, err := c.Subscribe(dest, stomp.AckAuto, subOpts...)
		if err != nil {
			return nil, fmt.Errorf("consumer %d: SUBSCRIBE: %w", i, err)
		}
		if err := c.Begin().AbortWithReceipt(); err != nil {
			return nil, t.explain(fmt.Errorf("consumer %d: probe after SUBSCRIBE: %w", i, err), "during set-up")
		}
		rcvs[i] = newReceiver(led, cfg.Producers, false)
		t.spawn(func() error {
			// The trial stops only its own sessions: this one notices
			// the stop (or the end of the run) itself.
			tick := time.NewTicker(pollInterval)
			defer tick.Stop()
			for {
				select {
				case m, ok := <-sub.C:
					if !ok {
						return fmt.Errorf("consumer %d: subscription closed", i)
					}
					if m.Err != nil {
						return fmt.Errorf("consumer %d: %w", i, m.Err)
					}
					rcvs[i].deliver(m.Body, sinceEpoch())
				case <-tick.C:
					if t.stopping.Load() {
						return nil
					}
				case <-t.ctx.Done():
					return nil
				}
			}
		})
	}
	producers := make([]*stomp.Conn, cfg.Producers)
	for i := range producers {
		c, err := dial("producer", i)
		if err != nil {
			return nil, err
		}
		producers[i] = c
	}

	cpu := startCPU(cfg.BrokerPID)
	start := sinceEpoch()
	produceFns := make([]func() error, len(producers))
	for i, c := range producers {
		produceFns[i] = func() error {
			body := make([]byte, 0, max(cfg.Size, 64))
			for seq := 0; seq < cfg.Messages; seq++ {
				body = encodePayload(body, i, seq, sinceEpoch(), cfg.Size)
				// Send hands the frame to the library's writer goroutine,
				// which may still hold it: a fresh copy each time.
				if err := c.Send(dest, "text/plain", append([]byte(nil), body...)); err != nil {
					return fmt.Errorf("producer %d: SEND #%d: %w", i, seq, err)
				}
			}
			return nil
		}
	}
	t.spawnProducers(produceFns...)
	end, err := t.awaitDelivery(allClosed(ctx, led.done(), t.producersDone), cfg.Idle, led, rcvs)
	if err != nil {
		return nil, err
	}
	return queueResult(cfg, cpu, dest, led, rcvs, end-start)
}

// gostompQueueScenario names runQueueGoStomp's scenario.
const gostompQueueScenario = "gostomp-queue"
