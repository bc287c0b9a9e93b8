package parent

import (
	"testing"

	"github.com/stomp-broker/stomp-broker/control"
)

// TestMetricsLabelsAreNeverInvalidUTF8 checks the defence in depth behind
// issue 17: a destination that is not UTF-8 (which stompwire refuses at
// the edge, so only a broken child could send it) must not panic the
// Prometheus client; its invalid bytes are shown as U+FFFD.
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
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				key := mf.GetName() + "/" + l.GetName() + "=" + l.GetValue()
				switch {
				case s.GetCounter() != nil:
					got[key] = s.GetCounter().GetValue()
				case s.GetGauge() != nil:
					got[key] = s.GetGauge().GetValue()
				}
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
