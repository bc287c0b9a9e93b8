package console

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/stomp-broker/stomp-broker/control"
)

// Client is a control.Client with the figures of its process from /proc.
type Client struct {
	control.Client
	// CPUSeconds is the child's CPU time so far (user + system).
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPercent is its CPU use over the last sample interval (100 = one
	// core).
	CPUPercent float64 `json:"cpu_percent"`
	// PssKiB is the child's proportional set size.
	PssKiB int64 `json:"pss_kib"`
}

// Topic is a control.Topic with its rate.
type Topic struct {
	control.Topic
	// Rate is messages per second over the last sample interval.
	Rate float64 `json:"rate"`
}

// Point is one sample of the broker-wide rates the page plots.
type Point struct {
	Time time.Time `json:"t"`
	// In and Out are messages per second published by clients and handed
	// to clients over the interval before Time.
	In  float64 `json:"in"`
	Out float64 `json:"out"`
	// Depth is the sum of every queue's depth at Time.
	Depth int `json:"depth"`
	// Clients is the number of connected clients at Time.
	Clients int `json:"clients"`
}

// Sample is what one server-sent "sample" event carries: the broker at one
// instant and the newest point of the plots.
type Sample struct {
	Time    time.Time       `json:"time"`
	Clients []Client        `json:"clients"`
	Spares  []control.Spare `json:"spares"`
	Queues  []control.Queue `json:"queues"`
	Topics  []Topic         `json:"topics"`
	// Cluster is the broker's link to the brokers sharing its database:
	// its node name, and whether it is connected or cut off. Nil (and
	// absent from the JSON) for a broker without a cluster.
	Cluster *control.Cluster `json:"cluster,omitempty"`
	Point   Point            `json:"point"`
	// StoreError says the durable store could not be asked for its
	// counts (the queues lack them); the rest of the sample stands.
	StoreError string `json:"store_error,omitempty"`
	// Error is set, and the rest is empty, when the broker could not be
	// asked (it is stopping, or its event loop did not answer in time).
	Error string `json:"error,omitempty"`
}

// subscriber is one server-sent-events stream. Samples are offered to it
// without waiting; one that has not taken the previous ones is dropped.
type subscriber struct {
	ch      chan []byte
	dropped chan struct{} // closed when the sampler gives up on it
}

// subscriberBuffer is how many samples may wait for a slow stream before it
// is dropped (the browser reconnects and starts afresh).
const subscriberBuffer = 4

// sampler takes a snapshot every interval while at least one stream is
// open, adds /proc figures and rates, keeps the plot history and hands
// each sample, encoded once, to every stream.
type sampler struct {
	src      Source
	interval time.Duration
	procRoot string
	keep     int // points of history kept

	mu      sync.Mutex
	subs    map[*subscriber]bool
	history []Point
	wake    chan struct{} // a first stream arrived

	// previous sample, sampler goroutine only
	prevTime   time.Time
	prevCPU    map[int]float64   // by pid
	prevIn     map[int]uint64    // by pid
	prevOut    map[int]uint64    // by pid
	prevTopics map[string]uint64 // by name
}

func newSampler(src Source, interval time.Duration, keep int, procRoot string) *sampler {
	return &sampler{
		src: src, interval: interval, procRoot: procRoot, keep: keep,
		subs: map[*subscriber]bool{}, wake: make(chan struct{}, 1),
	}
}

// subscribe registers a stream and returns it with the history so far.
func (s *sampler) subscribe() (*subscriber, []Point) {
	sub := &subscriber{ch: make(chan []byte, subscriberBuffer), dropped: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[sub] = true
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return sub, append([]Point(nil), s.history...)
}

// unsubscribe forgets a stream (its handler returned).
func (s *sampler) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
}

// watching reports whether any stream is open.
func (s *sampler) watching() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs) > 0
}

// run samples until ctx is done. With no stream open it sleeps until one
// arrives, so a console nobody looks at costs the broker nothing.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if !s.watching() {
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
		}
		s.publish(s.take(ctx))
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// publish appends the sample's point to the history and offers the sample
// to every stream, dropping the streams whose buffer is full.
func (s *sampler) publish(smp Sample) {
	data, err := json.Marshal(smp)
	if err != nil {
		return // cannot happen: every field marshals
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if smp.Error == "" {
		s.history = append(s.history, smp.Point)
		if len(s.history) > s.keep {
			s.history = append(s.history[:0], s.history[len(s.history)-s.keep:]...)
		}
	}
	for sub := range s.subs {
		select {
		case sub.ch <- data:
		default:
			delete(s.subs, sub)
			close(sub.dropped)
		}
	}
}

// take asks the broker for a snapshot (through its event loop) and adds
// what the loop does not know: each child's CPU and Pss from /proc, read
// here and not in the broker, and the rates since the previous sample.
func (s *sampler) take(ctx context.Context) Sample {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := time.Now()
	snap, err := s.src.Snapshot(ctx)
	if err != nil {
		return Sample{Time: now, Error: err.Error()}
	}
	dt := now.Sub(s.prevTime).Seconds()
	if s.prevTime.IsZero() || dt <= 0 || dt > 3*s.interval.Seconds() {
		// No previous sample, or one from before an idle spell: no rates.
		dt = 0
	}
	perSecond := func(now, before uint64) float64 {
		if dt == 0 || now < before {
			return 0
		}
		return float64(now-before) / dt
	}
	smp := Sample{Time: now, Spares: snap.Spares, Queues: snap.Queues, Cluster: snap.Cluster, StoreError: snap.StoreError, Clients: make([]Client, 0, len(snap.Clients)), Topics: make([]Topic, 0, len(snap.Topics))}
	cpu, in, out := map[int]float64{}, map[int]uint64{}, map[int]uint64{}
	for _, c := range snap.Clients {
		cl := Client{Client: c}
		if st, err := readProc(s.procRoot, c.PID); err == nil {
			cl.CPUSeconds, cl.PssKiB = st.CPUSeconds, st.PssKiB
			if before, ok := s.prevCPU[c.PID]; ok && dt > 0 && st.CPUSeconds >= before {
				cl.CPUPercent = 100 * (st.CPUSeconds - before) / dt
			}
			cpu[c.PID] = st.CPUSeconds
		}
		// A client new since the last sample counted from 0 within it.
		smp.Point.In += perSecond(c.MessagesIn, s.prevIn[c.PID])
		smp.Point.Out += perSecond(c.MessagesOut, s.prevOut[c.PID])
		in[c.PID], out[c.PID] = c.MessagesIn, c.MessagesOut
		smp.Clients = append(smp.Clients, cl)
	}
	topics := map[string]uint64{}
	for _, tp := range snap.Topics {
		smp.Topics = append(smp.Topics, Topic{Topic: tp, Rate: perSecond(tp.Messages, s.prevTopics[tp.Name])})
		topics[tp.Name] = tp.Messages
	}
	for _, q := range snap.Queues {
		smp.Point.Depth += q.Depth
	}
	smp.Point.Time, smp.Point.Clients = now, len(snap.Clients)
	s.prevTime, s.prevCPU, s.prevIn, s.prevOut, s.prevTopics = now, cpu, in, out, topics
	return smp
}
