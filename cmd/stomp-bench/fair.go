package main

import (
	"context"
	"math"
	"strconv"
)

// runFair measures how evenly a queue shares a burst among its consumers:
// C consumers subscribe (and are confirmed), then one producer sends a
// burst of N messages as fast as it can; each consumer spends --work on a
// message before it acknowledges it (client modes) or reads the next
// (auto). It reports the messages each consumer got and the smallest of
// them as a fraction of the fair share N/C, besides the usual integrity
// counts.
func runFair(ctx context.Context, cfg config) (*result, error) {
	t := newTrial(ctx, cfg.Timeout)
	defer t.close()
	dest := cfg.destination("/queue/")

	led := newLedger(1, cfg.Messages)
	consumers, err := subscribeConsumers(t, cfg, dest, "c", cfg.Consumers)
	if err != nil {
		return nil, err
	}
	rcvs := make([]*receiver, len(consumers))
	for i, s := range consumers {
		rcvs[i] = newReceiver(led, 1, false)
		t.spawn(func() error { return consume(s, "c"+strconv.Itoa(i), cfg.Ack, rcvs[i], cfg.Work) })
	}
	producers, err := dialProducers(t, cfg, 1)
	if err != nil {
		return nil, err
	}
	start := sinceEpoch()
	t.spawnProducers(func() error { return produce(producers[0], dest, 0, cfg.Messages, cfg.Size, 0) })
	complete := allClosed(ctx, led.done(), t.producersDone)
	end, err := t.awaitDelivery(complete, cfg.Idle, led, rcvs)
	if err != nil {
		return nil, err
	}

	res := newResult(cfg)
	res.Destination = dest
	res.Delivered = led.delivered()
	res.setRate(end-start, cfg.Messages)
	res.setCounts(collectCounts([]*ledger{led}, rcvs))
	res.setShares(rcvs, cfg.Messages)
	return res, nil
}

// setShares records the messages each consumer read and the smallest
// count as a fraction of the fair share (n over the consumers).
func (r *result) setShares(rcvs []*receiver, n int) {
	r.PerConsumer = make([]int, len(rcvs))
	least := math.MaxInt
	for i, rcv := range rcvs {
		r.PerConsumer[i] = int(rcv.received.Load())
		least = min(least, r.PerConsumer[i])
	}
	share := math.Round(float64(least)/(float64(n)/float64(len(rcvs)))*1000) / 1000
	r.MinShare = &share
}
