package parent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	vm "github.com/VictoriaMetrics/metrics"

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

// Metric names. Series with labels are named NAME{label="value"}, the way
// github.com/VictoriaMetrics/metrics keys them.
const (
	metricClients      = "stomp_broker_clients"
	metricSpawns       = "stomp_broker_spawns_total"
	metricSpawnErrors  = "stomp_broker_spawn_errors_total"
	metricRefused      = "stomp_broker_refused_total"
	metricChildCrashes = "stomp_broker_child_crashes_total"
	metricAccepted     = "stomp_broker_clients_accepted_total" // by transport
	metricMessagesIn   = "stomp_broker_messages_in_total"
	metricMessagesOut  = "stomp_broker_messages_out_total"
	metricStoreCommit  = "stomp_broker_store_commit_seconds"
)

// queueGauges are the per-queue gauges refreshQueues sets, labelled queue.
var queueGauges = [...]string{
	"stomp_broker_queue_depth",         // messages waiting for a consumer
	"stomp_broker_queue_consumers",     // subscriptions to the queue
	"stomp_broker_queue_in_flight",     // delivered, not yet acknowledged
	"stomp_broker_queue_stored",        // persistent messages in the store, leased ones included
	"stomp_broker_queue_dead_lettered", // dead-lettered messages stored in a dead-letter queue
}

// metrics are the broker's Prometheus metrics, kept with
// github.com/VictoriaMetrics/metrics rather than the Prometheus client:
// every child is a fresh exec of this binary and runs the initialisers of
// every package linked into it, and the Prometheus client's (protobuf,
// procfs, client_model, yaml) were most of what a child paid at start for
// code it never uses (see README, "Performance").
//
// The counters are updated on the event loop (messages, exits) and in the
// accept loops (spawns, refusals); the library's types are safe for that.
// The destination and queue maps are owned by the event loop. A nil
// *metrics (no --metrics-listen) does nothing, so the message path pays
// nothing for metrics nobody reads.
type metrics struct {
	set *vm.Set

	spawns       *vm.Counter
	spawnErrors  *vm.Counter
	childCrashes *vm.Counter
	refused      map[string]*vm.Counter        // by reason; fixed at start
	accepted     map[ipc.Transport]*vm.Counter // clients given a child, by transport; fixed at start
	storeCommit  *vm.PrometheusHistogram

	escape *strings.Replacer // label value escaping of the text format

	dests  map[string]*destCounters // by destination; event loop only
	queues map[string]bool          // queues with gauges set; event loop only
}

// destCounters caches one destination's counters, so a message costs a map
// lookup and an atomic add, not a label lookup.
type destCounters struct{ in, out *vm.Counter }

func newMetrics(clients func() float64) *metrics {
	vm.ExposeMetadata(true) // # TYPE lines, so scrapers see counters, gauges and the histogram as such
	set := vm.NewSet()
	m := &metrics{
		set:          set,
		spawns:       set.NewCounter(metricSpawns),
		spawnErrors:  set.NewCounter(metricSpawnErrors),
		childCrashes: set.NewCounter(metricChildCrashes),
		refused:      map[string]*vm.Counter{},
		accepted:     map[ipc.Transport]*vm.Counter{},
		// 100µs .. 3.3s
		storeCommit: set.NewPrometheusHistogramExt(metricStoreCommit, vm.ExponentialBuckets(0.0001, 2, 16)),
		escape:      strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`),
		dests:       map[string]*destCounters{},
		queues:      map[string]bool{},
	}
	set.NewGauge(metricClients, clients)
	for _, t := range []ipc.Transport{ipc.TransportTCP, ipc.TransportTLS, ipc.TransportWS, ipc.TransportWSS} {
		m.accepted[t] = set.NewCounter(m.series(metricAccepted, "transport", string(t)))
	}
	for _, r := range []string{refusedMaxClients, refusedPerIP} {
		// every reason shows at 0 from the start
		m.refused[r] = set.NewCounter(m.series(metricRefused, "reason", r))
	}
	return m
}

// series is the name of metric's series with label=value. The value is
// made valid UTF-8 (labelValue) and escaped for the text format.
func (m *metrics) series(metric, label, value string) string {
	return metric + "{" + label + `="` + m.escape.Replace(labelValue(value)) + `"}`
}

// labelValue makes s a valid Prometheus label value: the text format is
// UTF-8, and scrapers refuse a page that is not. The edge (stompwire)
// already refuses such header values, so this is defence in depth against
// a buggy or compromised child: each run of invalid bytes becomes one
// U+FFFD.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// countRefused counts a client refused for reason (refusedMaxClients or
// refusedPerIP).
func (m *metrics) countRefused(reason string) {
	if c := m.refused[reason]; c != nil {
		c.Inc()
	}
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
	dc := &destCounters{
		in:  m.set.GetOrCreateCounter(m.series(metricMessagesIn, "destination", label)),
		out: m.set.GetOrCreateCounter(m.series(metricMessagesOut, "destination", label)),
	}
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
		for j, v := range [len(queueGauges)]int{q.Depth, q.Consumers, q.InFlight, q.Stored, q.DeadLettered} {
			m.set.GetOrCreateGauge(m.series(queueGauges[j], "queue", name), nil).Set(float64(v))
		}
	}
	for name := range m.queues {
		if !seen[name] {
			for _, g := range queueGauges {
				m.set.UnregisterMetric(m.series(g, "queue", name))
			}
		}
	}
	m.queues = seen
}

// serve serves the Prometheus text format on l (any path) until the
// returned server is closed: the broker's metrics, then the parent's Go
// runtime (go_*) and process (process_*) metrics.
func (m *metrics) serve(l net.Listener, log func(msg string, args ...any)) *http.Server {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			m.set.WritePrometheus(w)
			vm.WriteProcessMetrics(w)
		}),
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
		b.metrics.storeCommit.Update(d.Seconds())
	}
}
