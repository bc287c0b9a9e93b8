package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// disconnectReceiptTimeout bounds the wait for each DISCONNECT receipt at
// the end of the conns scenario.
const disconnectReceiptTimeout = 5 * time.Second

// runConns opens --clients idle STOMP connections with go-stomp's client,
// at most --concurrency at a time, and reports connects/s. With
// --broker-pid it also samples the broker's Pss before and with all clients
// connected. The clients are closed before it returns.
func runConns(ctx context.Context, cfg config) (*result, error) {
	var before, with pssSample
	var err error
	if cfg.BrokerPID > 0 {
		if before, err = treePss(procRoot, cfg.BrokerPID); err != nil {
			return nil, fmt.Errorf("Pss before connecting: %w", err)
		}
	}

	clients := make([]*stomp.Conn, cfg.Clients)
	defer closeClients(ctx, clients, cfg.Concurrency)
	latencies, elapsed, err := connectClients(ctx, cfg, clients)
	if err != nil {
		if deadlinePassed(ctx) {
			return nil, fmt.Errorf("%w after %s: %v", errTimeout, cfg.Timeout, err)
		}
		return nil, err
	}

	res := newResult(cfg)
	res.ElapsedS = elapsed.Seconds()
	res.ConnectsPerS = float64(cfg.Clients) / elapsed.Seconds()
	res.setLatencies(latencies)
	if cfg.BrokerPID > 0 {
		// Let the broker finish per-connection set-up (a forked child
		// may still be faulting in pages) before sampling.
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w after %s: while settling before the Pss sample", errTimeout, cfg.Timeout)
		}
		if with, err = treePss(procRoot, cfg.BrokerPID); err != nil {
			return nil, fmt.Errorf("Pss with %d clients: %w", cfg.Clients, err)
		}
		res.setPss(before, with, cfg.Clients)
	}
	return res, nil
}

// connectClients fills clients[i] using cfg.Concurrency workers and returns
// each CONNECT's round-trip time and the wall time of the whole batch. The
// first failure stops the batch; already opened clients stay in the slice
// for the caller to close.
func connectClients(ctx context.Context, cfg config, clients []*stomp.Conn) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	latencies := make([]time.Duration, len(clients))
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				c, err := connectClient(ctx, cfg.Addr)
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("client %d of %d: %w", i+1, len(clients), err)
						cancel()
					})
					continue
				}
				latencies[i] = time.Since(t0)
				clients[i] = c
			}
		}()
	}
feed:
	for i := range clients {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return latencies, elapsed, firstErr
}

// connectClient dials addr and performs go-stomp's CONNECT with heart-beats
// off. Both steps are bounded by ctx: cancelling it unblocks the handshake.
func connectClient(ctx context.Context, addr string) (*stomp.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	c, err := stomp.ConnectWithContext(ctx, nc,
		stomp.ConnOpt.HeartBeat(0, 0),
		stomp.ConnOpt.DisconnectReceiptTimeout(disconnectReceiptTimeout),
		stomp.ConnOpt.Logger(discardLogger{}))
	if !stop() && err == nil {
		c.MustDisconnect()
		return nil, ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("STOMP CONNECT to %s: %w", addr, err)
	}
	return c, nil
}

// closeClients disconnects every non-nil client, concurrency at a time:
// gracefully (DISCONNECT and its receipt) while ctx lasts, abruptly after.
func closeClients(ctx context.Context, clients []*stomp.Conn, concurrency int) {
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if ctx.Err() != nil || c.Disconnect() != nil {
				c.MustDisconnect()
			}
		}()
	}
	wg.Wait()
}

// discardLogger silences go-stomp's logging. Its client logs expected
// events such as a connection closing after DISCONNECT as errors, which for
// a thousand clients would bury the result; real failures reach us as
// returned errors anyway.
type discardLogger struct{}

func (discardLogger) Debugf(string, ...interface{})   {}
func (discardLogger) Infof(string, ...interface{})    {}
func (discardLogger) Warningf(string, ...interface{}) {}
func (discardLogger) Errorf(string, ...interface{})   {}
func (discardLogger) Debug(string)                    {}
func (discardLogger) Info(string)                     {}
func (discardLogger) Warning(string)                  {}
func (discardLogger) Error(string)                    {}
