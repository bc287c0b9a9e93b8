package parent

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stomp-broker/stomp-broker/control"
)

// exposition parses what the metrics endpoint would serve for m's own
// metrics with the Prometheus reference parser, and returns every sample
// as "name/label=value" (or "name" without labels) → value. A page the
// parser refuses fails the test.
func exposition(t testing.TB, m *metrics) map[string]float64 {
	t.Helper()
	var page bytes.Buffer
	m.set.WritePrometheus(&page)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(&page)
	if err != nil {
		t.Fatalf("the metrics page does not parse: %v\n%s", err, page.String())
	}
	got := map[string]float64{}
	for name, mf := range families {
		for _, s := range mf.GetMetric() {
			var v float64
			switch {
			case s.GetCounter() != nil:
				v = s.GetCounter().GetValue()
			case s.GetGauge() != nil:
				v = s.GetGauge().GetValue()
			case s.GetUntyped() != nil:
				v = s.GetUntyped().GetValue()
			default:
				continue
			}
			key := name
			for _, l := range s.GetLabel() {
				key += "/" + l.GetName() + "=" + l.GetValue()
			}
			got[key] = v
		}
	}
	return got
}

// TestMetricsLabelsAreNeverInvalidUTF8 checks the defence in depth behind
// issue 17: a destination that is not UTF-8 (which stompwire refuses at
// the edge, so only a broken child could send it) must not break the
// metrics page; its invalid bytes are shown as U+FFFD.
func TestMetricsLabelsAreNeverInvalidUTF8(t *testing.T) {
	m := newMetrics(func() float64 { return 0 })
	m.dest("/queue/\xff\xfe").in.Inc()
	m.dest("/queue/\xff\xfe").in.Inc()  // the second time from the cache
	m.dest("/queue/\xfe\xff").out.Inc() // the same label value, other bytes
	m.refreshQueues([]control.Queue{{Name: "/queue/\xc3", Depth: 3}})

	want := map[string]float64{
		"stomp_broker_messages_in_total/destination=/queue/\uFFFD":  2,
		"stomp_broker_messages_out_total/destination=/queue/\uFFFD": 1,
		"stomp_broker_queue_depth/queue=/queue/\uFFFD":              3,
	}
	got := exposition(t, m)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestMetricsPage checks every series the README names, that label values
// with the text format's special characters come back unchanged, and
// that the gauges of a queue that is gone are dropped.
func TestMetricsPage(t *testing.T) {
	m := newMetrics(func() float64 { return 7 })
	m.spawns.Inc()
	m.spawnErrors.Inc()
	m.childCrashes.Inc()
	m.countRefused(refusedPerIP)
	odd := "/topic/a\"b\\c\nd}e,f=g"
	m.dest(odd).in.Inc()
	m.dest("/queue/q").out.Add(2)
	m.storeCommit.Update(0.0003)
	m.refreshQueues([]control.Queue{
		{Name: "/queue/q", Depth: 1, Consumers: 2, InFlight: 3, Stored: 4},
		{Name: "/queue/gone", Depth: 5},
		{Name: "/queue/DLQ.q", DeadLettered: 6},
	})
	m.refreshQueues([]control.Queue{
		{Name: "/queue/q", Depth: 1, Consumers: 2, InFlight: 3, Stored: 4},
		{Name: "/queue/DLQ.q", DeadLettered: 6},
	})

	want := map[string]float64{
		"stomp_broker_clients":                                   7,
		"stomp_broker_spawns_total":                              1,
		"stomp_broker_spawn_errors_total":                        1,
		"stomp_broker_child_crashes_total":                       1,
		"stomp_broker_refused_total/reason=" + refusedPerIP:      1,
		"stomp_broker_refused_total/reason=" + refusedMaxClients: 0,
		"stomp_broker_messages_in_total/destination=" + odd:      1,
		"stomp_broker_messages_out_total/destination=/queue/q":   2,
		"stomp_broker_queue_depth/queue=/queue/q":                1,
		"stomp_broker_queue_consumers/queue=/queue/q":            2,
		"stomp_broker_queue_in_flight/queue=/queue/q":            3,
		"stomp_broker_queue_stored/queue=/queue/q":               4,
		"stomp_broker_queue_dead_lettered/queue=/queue/DLQ.q":    6,
	}
	got := exposition(t, m)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if strings.Contains(k, "/queue/gone") {
			t.Errorf("series %s of a queue that is gone is still served", k)
		}
	}

	var page bytes.Buffer
	m.set.WritePrometheus(&page)
	for _, line := range []string{
		`stomp_broker_store_commit_seconds_bucket{le="0.0002"} 0`,
		`stomp_broker_store_commit_seconds_bucket{le="0.0004"} 1`,
		`stomp_broker_store_commit_seconds_count 1`,
	} {
		if !strings.Contains(page.String(), line+"\n") {
			t.Errorf("metrics page lacks %q:\n%s", line, page.String())
		}
	}
}
