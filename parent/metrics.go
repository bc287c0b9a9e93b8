package parent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/ledger"
)

// maxLabelledDestinations caps the destination label values the metrics
// keep. Destination names come from clients; without a cap, a client
// sending to /topic/<random> would grow the parent's memory and every
// scrape without bound. Destinations past the cap share the label value
// otherDestination.
const maxLabelledDestinations = 1000

// otherDestination is the label value of destinations past the cap.
const otherDestination = "_other"

// metrics are the broker's Prometheus metrics. The counters are updated on
// the event loop (messages, exits) and in the accept loops (spawns,
// refusals); the Prometheus types are safe for that. The destination and
// queue maps are owned by the event loop. A nil *metrics (no
// --metrics-listen) does nothing, so the message path pays nothing for
// metrics nobody reads.
type metrics struct {
	reg *prometheus.Registry

	spawns       prometheus.Counter
	spawnErrors  prometheus.Counter
	refused      *prometheus.CounterVec
	childCrashes prometheus.Counter
	messagesIn   *prometheus.CounterVec
	messagesOut  *prometheus.CounterVec
	queueDepth   *prometheus.GaugeVec
	queueConsume *prometheus.GaugeVec
	queueFlight  *prometheus.GaugeVec
	queueStored  *prometheus.GaugeVec
	queueDead    *prometheus.GaugeVec
	storeCommit  prometheus.Histogram

	dests  map[string]*destCounters // by destination; event loop only
	queues map[string]bool          // queues with gauges set; event loop only
}

// destCounters caches one destination's counters, so a message costs a map
// lookup and an atomic add, not a label hash.
type destCounters struct{ in, out prometheus.Counter }

func newMetrics(clients func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		spawns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stomp_broker_spawns_total", Help: "Child processes started (one per accepted client).",
		}),
		spawnErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stomp_broker_spawn_errors_total", Help: "Accepted clients for which no child process could be started.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stomp_broker_refused_total", Help: "Clients refused before a child was spawned, by the limit they hit.",
		}, []string{"reason"}),
		childCrashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stomp_broker_child_crashes_total",
			Help: "Child processes that died by a signal or a non-zero exit the broker did not ask for.",
		}),
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stomp_broker_messages_in_total", Help: "Messages published (SEND frames applied), by destination.",
		}, []string{"destination"}),
		messagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stomp_broker_messages_out_total",
			Help: "Messages handed to children for delivery (topic copies, queue grants), by destination.",
		}, []string{"destination"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stomp_broker_queue_depth", Help: "Queue messages waiting for a consumer (refreshed every second).",
		}, []string{"queue"}),
		queueConsume: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stomp_broker_queue_consumers", Help: "Subscriptions to the queue (refreshed every second).",
		}, []string{"queue"}),
		queueFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stomp_broker_queue_in_flight", Help: "Queue messages delivered and not yet acknowledged (refreshed every second).",
		}, []string{"queue"}),
		queueStored: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stomp_broker_queue_stored",
			Help: "Persistent queue messages in the durable store, leased ones included (refreshed every " + storeStatsEvery.String() + ").",
		}, []string{"queue"}),
		queueDead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stomp_broker_queue_dead_lettered",
			Help: "Dead-lettered messages stored in a dead-letter queue (refreshed every " + storeStatsEvery.String() + ").",
		}, []string{"queue"}),
		storeCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stomp_broker_store_commit_seconds",
			Help:    "Time to commit one batch of persistent messages to the store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. 3.3s
		}),
		dests:  map[string]*destCounters{},
		queues: map[string]bool{},
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stomp_broker_clients", Help: "Connected clients (live child processes).",
		}, clients),
		m.spawns, m.spawnErrors, m.refused, m.childCrashes, m.messagesIn, m.messagesOut,
		m.queueDepth, m.queueConsume, m.queueFlight, m.queueStored, m.queueDead, m.storeCommit,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, r := range []string{refusedMaxClients, refusedPerIP} {
		m.refused.WithLabelValues(r) // show the series at 0 from the start
	}
	return m
}

// labelValue makes s a valid Prometheus label value: the client library
// panics on a value that is not UTF-8. The edge (stompwire) already
// refuses such header values, so this is defence in depth against a buggy
// or compromised child: each run of invalid bytes becomes one U+FFFD.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// dest returns the counters of destination d (or of otherDestination past
// the cap). Event loop only.
func (m *metrics) dest(d string) *destCounters {
	if dc := m.dests[d]; dc != nil {
		return dc
	}
	label := labelValue(d)
	if dc := m.dests[label]; dc != nil {
		return dc
	}
	if len(m.dests) >= maxLabelledDestinations {
		label = otherDestination
		if dc := m.dests[label]; dc != nil {
			return dc
		}
	}
	dc := &destCounters{in: m.messagesIn.WithLabelValues(label), out: m.messagesOut.WithLabelValues(label)}
	m.dests[label] = dc
	return dc
}

// countOut counts a record the event loop hands to child c if it carries a
// message: a topic copy (KindDeliver, keyed by destination) or a queue
// grant (KindGrant, keyed by the child's subscription). Event loop only.
func (m *metrics) countOut(c *childProc, records []byte) {
	if m == nil || len(records) == 0 {
		return
	}
	k, body, _, err := ipc.NextRecord(records)
	if err != nil || (k != ipc.KindDeliver && k != ipc.KindGrant) {
		return
	}
	key, _, _, err := ipc.DecodeMessage(body)
	if err != nil {
		return
	}
	dest := key
	if k == ipc.KindGrant {
		sub := c.subs[key]
		if sub == nil {
			return
		}
		dest = sub.dest
	}
	m.dest(dest).out.Inc()
}

// refreshQueues sets the queue gauges from a ledger snapshot and drops the
// gauges of queues that are gone. Event loop only.
func (m *metrics) refreshQueues(qs []control.Queue) {
	if m == nil {
		return
	}
	seen := make(map[string]bool, len(qs))
	for i, q := range qs {
		if i >= maxLabelledDestinations {
			break
		}
		name := labelValue(q.Name)
		seen[name] = true
		m.queueDepth.WithLabelValues(name).Set(float64(q.Depth))
		m.queueConsume.WithLabelValues(name).Set(float64(q.Consumers))
		m.queueFlight.WithLabelValues(name).Set(float64(q.InFlight))
		m.queueStored.WithLabelValues(name).Set(float64(q.Stored))
		m.queueDead.WithLabelValues(name).Set(float64(q.DeadLettered))
	}
	for name := range m.queues {
		if !seen[name] {
			for _, g := range []*prometheus.GaugeVec{m.queueDepth, m.queueConsume, m.queueFlight, m.queueStored, m.queueDead} {
				g.DeleteLabelValues(name)
			}
		}
	}
	m.queues = seen
}

// serveMetrics serves the Prometheus text format on l (any path) until the
// returned server is closed.
func (m *metrics) serve(l net.Listener, log func(msg string, args ...any)) *http.Server {
	srv := &http.Server{
		Handler:           promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log("metrics listener failed", "err", err)
		}
	}()
	return srv
}

// storeStatsEvery is how often the queue gauges ask the durable store for
// its per-queue counts (a query over the whole store).
const storeStatsEvery = 5 * time.Second

// storeStatsTimeout bounds one such query.
const storeStatsTimeout = 10 * time.Second

// refreshQueueMetrics sets the queue gauges, once a second, from the
// ledger and the store's last counts, and every storeStatsEvery starts a
// new Stats query off the event loop (Broker.async). Event loop only.
func (b *Broker) refreshQueueMetrics() {
	if b.metrics == nil {
		return
	}
	b.ticks++
	if st := b.cfg.Store; st != nil && !b.statsPending && b.ticks%int(storeStatsEvery/time.Second) == 1 {
		b.statsPending = true
		b.async(func() func() {
			ctx, cancel := context.WithTimeout(context.Background(), storeStatsTimeout)
			defer cancel()
			stats, err := st.Stats(ctx)
			return func() {
				b.statsPending = false
				if err != nil {
					b.log.Warn("store statistics for the queue metrics failed", "err", err)
					return
				}
				b.storeStats = stats
			}
		})
	}
	b.metrics.refreshQueues(ledger.WithStoreStats(b.queues.Stats(), b.storeStats))
}

// Event-loop hooks. Each is nil-safe, so the routing code calls them
// unconditionally.

// countPublished counts a SEND that client from published to dest.
func (b *Broker) countPublished(from *childProc, dest string) {
	from.messagesIn++
	if b.metrics != nil {
		b.metrics.dest(dest).in.Inc()
	}
}

// observeStoreCommit records how long one store commit took. The store
// integration in the ledger calls it.
func (b *Broker) observeStoreCommit(d time.Duration) {
	if b.metrics != nil {
		b.metrics.storeCommit.Observe(d.Seconds())
	}
}
