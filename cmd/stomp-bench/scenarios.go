package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// run executes the scenario named in cfg and returns its result. ctx must
// carry the run's deadline (--timeout). A returned error means no valid
// measurement; integrity failures are not errors here but visible in the
// result's counts.
func run(ctx context.Context, cfg config) (*result, error) {
	switch cfg.Scenario {
	case "queue":
		return runQueue(ctx, cfg, false)
	case "persistent":
		return runQueue(ctx, cfg, true)
	case "topic":
		return runTopic(ctx, cfg)
	case "latency":
		return runLatency(ctx, cfg)
	case "conns":
		return runConns(ctx, cfg)
	case "fair":
		return runFair(ctx, cfg)
	case gostompQueueScenario:
		return runQueueGoStomp(ctx, cfg)
	}
	return nil, fmt.Errorf("%w: unknown scenario %q", errUsage, cfg.Scenario)
}

// subscribeConsumers opens n sessions and subscribes each to dest, with
// subscription ids prefix0, prefix1, ... It returns once the server has
// confirmed every subscription, so that no message is sent too early.
func subscribeConsumers(t *trial, cfg config, dest, prefix string, n int) ([]*session, error) {
	sessions := make([]*session, n)
	for i := range sessions {
		addr := cfg.Addr
		if len(cfg.SubscriberAddrs) > 0 {
			addr = cfg.SubscriberAddrs[i%len(cfg.SubscriberAddrs)]
		}
		s, err := t.dial(addr)
		if err != nil {
			return nil, fmt.Errorf("consumer %d: %w", i, err)
		}
		if err := s.subscribe(dest, prefix+strconv.Itoa(i), cfg.Ack, cfg.Prefetch, cfg.SubscribeSync); err != nil {
			return nil, t.explain(fmt.Errorf("consumer %d: %w", i, err), "during set-up")
		}
		sessions[i] = s
	}
	return sessions, nil
}

// dialProducers opens n producer sessions.
func dialProducers(t *trial, cfg config, n int) ([]*session, error) {
	sessions := make([]*session, n)
	for i := range sessions {
		s, err := t.dial(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("producer %d: %w", i, err)
		}
		sessions[i] = s
	}
	return sessions, nil
}

// runQueue measures the queue scenario (P producers, C competing
// consumers, every message expected exactly once overall) and, with
// persistent set, the persistent scenario (receipted persistent SENDs with
// a window; the rate is that of confirmed sends).
func runQueue(ctx context.Context, cfg config, persistent bool) (*result, error) {
	t := newTrial(ctx, cfg.Timeout)
	defer t.close()
	dest := cfg.destination("/queue/")

	led := newLedger(cfg.Producers, cfg.Messages)
	consumers, err := subscribeConsumers(t, cfg, dest, "c", cfg.Consumers)
	if err != nil {
		return nil, err
	}
	rcvs := make([]*receiver, len(consumers))
	for i, s := range consumers {
		rcvs[i] = newReceiver(led, cfg.Producers, cfg.QueueRate > 0)
		t.spawn(func() error { return consume(s, "c"+strconv.Itoa(i), cfg.Ack, rcvs[i], cfg.Work) })
	}
	producers, err := dialProducers(t, cfg, cfg.Producers)
	if err != nil {
		return nil, err
	}

	lastReceipts := make([]time.Duration, len(producers))
	cpu := startCPU(cfg.BrokerPID)
	start := sinceEpoch()
	produceFns := make([]func() error, len(producers))
	for i, s := range producers {
		produceFns[i] = func() error {
			if !persistent {
				return produce(s, dest, i, cfg.Messages, cfg.Size, cfg.QueueRate/float64(cfg.Producers))
			}
			last, err := produceReceipted(s, dest, i, cfg.Messages, cfg.Size, cfg.Window)
			lastReceipts[i] = last
			return err
		}
	}
	t.spawnProducers(produceFns...)
	// A persistent run also needs every RECEIPT, which may come after the
	// message was already delivered.
	complete := allClosed(ctx, led.done(), t.producersDone)
	end, err := t.awaitDelivery(complete, cfg.Idle, led, rcvs)
	if err != nil {
		return nil, err
	}

	elapsed := end - start
	if persistent {
		elapsed = slices.Max(lastReceipts) - start
	}
	res, err := queueResult(cfg, cpu, dest, led, rcvs, elapsed)
	if err != nil {
		return nil, err
	}
	if cfg.QueueRate > 0 {
		var all []time.Duration
		for _, r := range rcvs {
			all = append(all, r.latencies...)
		}
		res.setLatencies(all)
	}
	return res, nil
}

// runTopic measures fan-out: one producer, K subscribers of one topic, each
// of which must receive every message once and in order.
func runTopic(ctx context.Context, cfg config) (*result, error) {
	t := newTrial(ctx, cfg.Timeout)
	defer t.close()
	dest := cfg.destination("/topic/")

	subs, err := subscribeConsumers(t, cfg, dest, "s", cfg.Subscribers)
	if err != nil {
		return nil, err
	}
	ledgers := make([]*ledger, len(subs))
	rcvs := make([]*receiver, len(subs))
	for i, s := range subs {
		ledgers[i] = newLedger(1, cfg.Messages)
		rcvs[i] = newReceiver(ledgers[i], 1, true)
		rcvs[i].latencies = make([]time.Duration, 0, cfg.Messages)
		t.spawn(func() error { return consume(s, "s"+strconv.Itoa(i), cfg.Ack, rcvs[i], cfg.Work) })
	}
	producers, err := dialProducers(t, cfg, 1)
	if err != nil {
		return nil, err
	}
	if len(cfg.SubscriberAddrs) > 0 {
		// Other brokers learn of a subscription a moment after its RECEIPT.
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	start := sinceEpoch()
	t.spawnProducers(func() error { return produce(producers[0], dest, 0, cfg.Messages, cfg.Size, cfg.TopicRate) })
	progress := func() string {
		n := 0
		for _, l := range ledgers {
			n += l.delivered()
		}
		return fmt.Sprintf("%d of %d deliveries", n, cfg.Messages*cfg.Subscribers)
	}
	dones := make([]<-chan struct{}, len(ledgers))
	for i, l := range ledgers {
		dones[i] = l.done()
	}
	idled, err := t.wait(allClosed(ctx, dones...), cfg.Idle,
		func() time.Duration { return latestDelivery(rcvs) }, progress)
	if err != nil {
		return nil, err
	}
	end := latestDelivery(rcvs)
	if !idled {
		end = 0
		for _, l := range ledgers {
			end = max(end, l.completedAt)
		}
	}
	t.stop()

	res := newResult(cfg)
	res.Destination = dest
	for _, l := range ledgers {
		res.Delivered += l.delivered()
	}
	res.setRate(end-start, cfg.Messages*cfg.Subscribers)
	var lat []time.Duration
	for _, r := range rcvs {
		lat = append(lat, r.latencies...)
	}
	res.setLatencies(lat)
	res.setCounts(collectCounts(ledgers, rcvs))
	return res, nil
}

// runLatency measures end-to-end latency: one producer sends at a steady
// --rate to a queue with one consumer; each body carries its send time.
func runLatency(ctx context.Context, cfg config) (*result, error) {
	t := newTrial(ctx, cfg.Timeout)
	defer t.close()
	dest := cfg.destination("/queue/")

	led := newLedger(1, cfg.Messages)
	consumers, err := subscribeConsumers(t, cfg, dest, "c", 1)
	if err != nil {
		return nil, err
	}
	rcv := newReceiver(led, 1, true)
	rcv.latencies = make([]time.Duration, 0, cfg.Messages)
	t.spawn(func() error { return consume(consumers[0], "c0", cfg.Ack, rcv, cfg.Work) })
	producers, err := dialProducers(t, cfg, 1)
	if err != nil {
		return nil, err
	}

	cpu := startCPU(cfg.BrokerPID)
	start := sinceEpoch()
	t.spawnProducers(func() error { return produce(producers[0], dest, 0, cfg.Messages, cfg.Size, cfg.Rate) })
	rcvs := []*receiver{rcv}
	end, err := t.awaitDelivery(led.done(), cfg.Idle, led, rcvs) // after this, rcv.latencies is no longer written
	if err != nil {
		return nil, err
	}

	res := newResult(cfg)
	if err := cpu.record(res, cfg.Messages); err != nil {
		return nil, err
	}
	res.Destination = dest
	res.Delivered = led.delivered()
	res.setRate(end-start, cfg.Messages)
	res.setLatencies(rcv.latencies)
	res.setCounts(collectCounts([]*ledger{led}, rcvs))
	return res, nil
}

// queueResult is the result of a queue run of cfg that took elapsed: the
// broker's CPU per message (cpu), what led saw delivered, and the
// exactly-once counts of led and rcvs. Call it only after the trial
// stopped.
func queueResult(cfg config, cpu *cpuMeter, dest string, led *ledger, rcvs []*receiver, elapsed time.Duration) (*result, error) {
	res := newResult(cfg)
	if err := cpu.record(res, cfg.Producers*cfg.Messages); err != nil {
		return nil, err
	}
	res.Destination = dest
	res.Delivered = led.delivered()
	res.setRate(elapsed, cfg.Producers*cfg.Messages)
	res.setCounts(collectCounts([]*ledger{led}, rcvs))
	return res, nil
}

// collectCounts sums the verdicts of all ledgers and receivers. Call it only
// after the trial stopped.
func collectCounts(ledgers []*ledger, rcvs []*receiver) counts {
	var c counts
	for _, l := range ledgers {
		c = c.add(l.tally())
	}
	for _, r := range rcvs {
		c.Reordered += r.order.reordered
	}
	return c
}
