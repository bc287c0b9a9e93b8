package main

import (
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// consume is a consumer's loop: it reads MESSAGE frames from s (subscription
// sub), accounts for each in rcv and, unless ack is "auto", acknowledges
// every message individually. work > 0 plays a worker that spends that
// long on each message before acknowledging it (or, in auto mode, before
// reading the next). It returns only on a read/write error, which is how
// [trial.stop] ends it.
//
// The ACK is written before the message is accounted for, so that by the
// time the last missing message completes the ledger every ACK of the run
// has been handed to the kernel: stopping then leaves nothing unacknowledged
// in the broker (which would otherwise keep it, or redeliver it).
func consume(s *session, sub, ack string, rcv *receiver, work time.Duration) error {
	needAck := ack != "auto"
	for {
		f, err := s.next()
		if err != nil {
			return fmt.Errorf("consumer %s: read: %w", sub, err)
		}
		if f.Command != frame.MESSAGE {
			continue // a stray RECEIPT, for example
		}
		now := sinceEpoch()
		rcv.received.Add(1)
		if work > 0 {
			time.Sleep(work)
		}
		if needAck {
			if err := s.ack(f, sub); err != nil {
				return fmt.Errorf("consumer %s: ACK: %w", sub, err)
			}
		}
		rcv.deliver(f.Body, now)
	}
}

// produce sends n messages of the given size from producer id to dest,
// paced at rate messages/s when rate > 0 and as fast as possible otherwise.
// It blocks until the last SEND is written to the socket.
func produce(s *session, dest string, producer, n, size int, rate float64) error {
	body := make([]byte, 0, max(size, 64))
	start := time.Now()
	for seq := 0; seq < n; seq++ {
		if rate > 0 {
			sleepUntil(start.Add(time.Duration(float64(seq) / rate * float64(time.Second))))
		}
		body = encodePayload(body, producer, seq, sinceEpoch(), size)
		if err := s.sendMessage(dest, body); err != nil {
			return fmt.Errorf("producer %d: SEND #%d: %w", producer, seq, err)
		}
	}
	return nil
}

// produceReceipted sends n persistent messages, each with a receipt header,
// keeping at most window of them unconfirmed. A second goroutine reads the
// RECEIPTs. It returns the time (since epoch) at which the last RECEIPT
// arrived, or the first error of either direction.
func produceReceipted(s *session, dest string, producer, n, size, window int) (time.Duration, error) {
	slots := make(chan struct{}, window)
	readerDone := make(chan error, 1)
	var lastReceipt time.Duration
	go func() {
		for got := 0; got < n; {
			f, err := s.read()
			if err != nil {
				readerDone <- fmt.Errorf("producer %d: read RECEIPT (%d of %d confirmed): %w", producer, got, n, err)
				return
			}
			if f.Command == frame.RECEIPT {
				got++
				<-slots
			}
		}
		lastReceipt = sinceEpoch()
		readerDone <- nil
	}()

	body := make([]byte, 0, max(size, 64))
	for seq := 0; seq < n; seq++ {
		select {
		case slots <- struct{}{}:
		case err := <-readerDone:
			return 0, err // the reader can only finish early by failing
		}
		body = encodePayload(body, producer, seq, sinceEpoch(), size)
		err := s.sendMessage(dest, body, stompwire.HeaderPersistent, "true", frame.Receipt, strconv.Itoa(seq))
		if err != nil {
			s.abort() // unblock the reader before leaving
			<-readerDone
			return 0, fmt.Errorf("producer %d: SEND #%d: %w", producer, seq, err)
		}
	}
	if err := <-readerDone; err != nil {
		return 0, err
	}
	return lastReceipt, nil
}

// sleepUntil sleeps until t. It uses nanosleep(2) directly because the Go
// runtime rounds short timer sleeps up to its poller's millisecond
// granularity, which would turn a steady 5k msgs/s into bursts of five and
// distort the latency measurement.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		if err := syscall.Nanosleep(&ts, nil); err != nil && err != syscall.EINTR {
			time.Sleep(d)
			return
		}
	}
}
