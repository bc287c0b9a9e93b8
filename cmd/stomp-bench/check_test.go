package main

import (
	"testing"
	"time"
)

// delivery is one MESSAGE as the checker sees it: which consumer got
// which (producer, seq).
type delivery struct{ consumer, producer, seq int }

func TestCheckerDetectsLossDuplicationReordering(t *testing.T) {
	tests := []struct {
		name       string
		producers  int
		perProd    int
		consumers  int
		deliveries []delivery
		want       counts
		complete   bool
	}{
		{
			name: "all once in order", producers: 2, perProd: 3, consumers: 1,
			deliveries: []delivery{{0, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 1, 1}, {0, 0, 2}, {0, 1, 2}},
			complete:   true,
		},
		{
			name: "one lost", producers: 1, perProd: 4, consumers: 1,
			deliveries: []delivery{{0, 0, 0}, {0, 0, 1}, {0, 0, 3}},
			want:       counts{Lost: 1},
		},
		{
			name: "everything lost", producers: 2, perProd: 2, consumers: 1,
			want: counts{Lost: 4},
		},
		{
			name: "one duplicated on the same consumer", producers: 1, perProd: 3, consumers: 1,
			deliveries: []delivery{{0, 0, 0}, {0, 0, 1}, {0, 0, 1}, {0, 0, 2}},
			want:       counts{Duplicated: 1}, complete: true,
		},
		{
			name: "duplicated across consumers", producers: 1, perProd: 2, consumers: 2,
			deliveries: []delivery{{0, 0, 0}, {1, 0, 0}, {1, 0, 1}},
			want:       counts{Duplicated: 1}, complete: true,
		},
		{
			name: "swapped on one consumer", producers: 1, perProd: 3, consumers: 1,
			deliveries: []delivery{{0, 0, 1}, {0, 0, 0}, {0, 0, 2}},
			want:       counts{Reordered: 1}, complete: true,
		},
		{
			name: "late redelivery is both duplicate and reordered", producers: 1, perProd: 3, consumers: 1,
			deliveries: []delivery{{0, 0, 0}, {0, 0, 1}, {0, 0, 2}, {0, 0, 0}},
			want:       counts{Duplicated: 1, Reordered: 1}, complete: true,
		},
		{
			name: "competing consumers see gaps, not reordering", producers: 1, perProd: 4, consumers: 2,
			deliveries: []delivery{{0, 0, 0}, {1, 0, 1}, {0, 0, 2}, {1, 0, 3}},
			complete:   true,
		},
		{
			name: "order across consumers is not checked", producers: 1, perProd: 2, consumers: 2,
			deliveries: []delivery{{1, 0, 1}, {0, 0, 0}},
			complete:   true,
		},
		{
			name: "order is per producer", producers: 2, perProd: 2, consumers: 1,
			deliveries: []delivery{{0, 1, 0}, {0, 1, 1}, {0, 0, 0}, {0, 0, 1}},
			complete:   true,
		},
		{
			name: "ids out of range are invalid", producers: 1, perProd: 2, consumers: 1,
			deliveries: []delivery{{0, 0, 0}, {0, 0, 1}, {0, 0, 2}, {0, 1, 0}, {0, -1, 0}},
			want:       counts{Invalid: 3}, complete: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			led := newLedger(tc.producers, tc.perProd)
			rcvs := make([]*receiver, tc.consumers)
			for i := range rcvs {
				rcvs[i] = newReceiver(led, tc.producers, false)
			}
			for i, d := range tc.deliveries {
				rcvs[d.consumer].record(d.producer, d.seq, time.Duration(i+1))
			}
			if got := collectCounts([]*ledger{led}, rcvs); got != tc.want {
				t.Errorf("counts = %+v, want %+v", got, tc.want)
			}
			select {
			case <-led.done():
				if !tc.complete {
					t.Errorf("ledger reports complete although messages are missing")
				}
			default:
				if tc.complete {
					t.Errorf("ledger not complete although every message arrived")
				}
			}
		})
	}
}

func TestCountsFailed(t *testing.T) {
	tests := []struct {
		c    counts
		want bool
	}{
		{counts{}, false},
		{counts{Reordered: 5}, false},
		{counts{Lost: 1}, true},
		{counts{Duplicated: 1}, true},
		{counts{Invalid: 1}, true},
	}
	for _, tc := range tests {
		if got := tc.c.failed(); got != tc.want {
			t.Errorf("%+v.failed() = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		producer, seq int
		stamp         time.Duration
		size          int
		wantLen       int
	}{
		{0, 0, 0, 256, 256},
		{7, 123456, 987654321, 64, 64},
		{12, 99999, 1 << 40, 4, len("12:99999:1099511627776;")}, // never truncated
	}
	for _, tc := range tests {
		body := encodePayload(nil, tc.producer, tc.seq, tc.stamp, tc.size)
		if len(body) != tc.wantLen {
			t.Errorf("encodePayload(%d, %d, size %d): len %d, want %d", tc.producer, tc.seq, tc.size, len(body), tc.wantLen)
		}
		p, s, st, ok := decodePayload(body)
		if !ok || p != tc.producer || s != tc.seq || st != tc.stamp {
			t.Errorf("decodePayload(%q) = %d, %d, %d, %v", body, p, s, st, ok)
		}
	}
	for _, bad := range []string{"", "xxxx", "1:2;", "1:2:3", "a:2:3;", "1:2:3:4;", "-1:2:3;"} {
		if _, _, _, ok := decodePayload([]byte(bad)); ok {
			t.Errorf("decodePayload(%q) accepted a malformed body", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(i + 1)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}, {0.001, 1}}
	for _, tc := range tests {
		if got := percentile(ds, tc.q); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if got := percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("percentile of one sample = %d, want 7", got)
	}
}
