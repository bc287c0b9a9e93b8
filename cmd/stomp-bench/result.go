package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// result is what one run reports. It is printed as one JSON line; fields that
// do not apply to the scenario are left out (pointer fields are set only
// when measured, so that a measured zero still shows).
type result struct {
	Scenario    string  `json:"scenario"`
	Addr        string  `json:"addr"`
	Producers   int     `json:"producers,omitempty"`
	Consumers   int     `json:"consumers,omitempty"`
	Subscribers int     `json:"subscribers,omitempty"`
	Messages    int     `json:"messages,omitempty"` // per producer
	Size        int     `json:"size,omitempty"`
	Ack         string  `json:"ack,omitempty"`
	Prefetch    int     `json:"prefetch,omitempty"`
	Window      int     `json:"window,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Clients     int     `json:"clients,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	Destination string  `json:"destination,omitempty"`
	WorkMs      float64 `json:"work_ms,omitempty"`

	ElapsedS     float64  `json:"elapsed_s"`
	MsgsPerS     float64  `json:"msgs_per_s,omitempty"`
	ConnectsPerS float64  `json:"connects_per_s,omitempty"`
	Delivered    int      `json:"delivered,omitempty"` // distinct ids (summed over subscribers)
	P50Ms        *float64 `json:"p50_ms,omitempty"`
	P90Ms        *float64 `json:"p90_ms,omitempty"`
	P99Ms        *float64 `json:"p99_ms,omitempty"`
	MaxMs        *float64 `json:"max_ms,omitempty"`

	PerConsumer []int    `json:"per_consumer,omitempty"` // fair: messages each consumer read
	MinShare    *float64 `json:"min_share,omitempty"`    // fair: the smallest count over the fair share

	Lost       *int `json:"lost,omitempty"`
	Duplicated *int `json:"duplicated,omitempty"`
	Reordered  *int `json:"reordered,omitempty"`
	Invalid    *int `json:"invalid,omitempty"`

	PssBeforeKiB    *int64   `json:"pss_before_kib,omitempty"`
	PssKiB          *int64   `json:"pss_kib,omitempty"`
	PssPerClientKiB *float64 `json:"pss_per_client_kib,omitempty"`
	BrokerProcs     *int     `json:"broker_procs,omitempty"`

	BrokerCPUMs       *float64 `json:"broker_cpu_ms,omitempty"`         // with --broker-pid: CPU of the broker's process tree during the run
	BrokerCPUUsPerMsg *float64 `json:"broker_cpu_us_per_msg,omitempty"` // the same per message sent

	verdict counts // kept for the exit status
}

// newResult fills the parameters that apply to cfg's scenario.
func newResult(cfg config) *result {
	r := &result{Scenario: cfg.Scenario, Addr: cfg.Addr}
	switch cfg.Scenario {
	case "fair":
		r.Producers, r.Consumers, r.Messages, r.Size, r.Ack, r.Prefetch, r.WorkMs =
			1, cfg.Consumers, cfg.Messages, cfg.Size, cfg.Ack, cfg.Prefetch, float64(cfg.Work)/float64(time.Millisecond)
	case "queue", "persistent":
		r.Producers, r.Consumers, r.Messages, r.Size, r.Ack, r.Prefetch =
			cfg.Producers, cfg.Consumers, cfg.Messages, cfg.Size, cfg.Ack, cfg.Prefetch
		if cfg.Scenario == "persistent" {
			r.Window = cfg.Window
		}
		if cfg.Scenario == "queue" {
			r.Rate = cfg.QueueRate
		}
	case "topic":
		r.Producers, r.Subscribers, r.Messages, r.Size, r.Ack, r.Prefetch =
			1, cfg.Subscribers, cfg.Messages, cfg.Size, cfg.Ack, cfg.Prefetch
	case "latency":
		r.Producers, r.Consumers, r.Messages, r.Size, r.Ack, r.Prefetch, r.Rate =
			1, 1, cfg.Messages, cfg.Size, cfg.Ack, cfg.Prefetch, cfg.Rate
	case "conns":
		r.Clients, r.Concurrency = cfg.Clients, cfg.Concurrency
	}
	return r
}

// setRate records the elapsed time and n/elapsed as msgs_per_s.
func (r *result) setRate(elapsed time.Duration, n int) {
	r.ElapsedS = elapsed.Seconds()
	if elapsed > 0 {
		r.MsgsPerS = float64(n) / elapsed.Seconds()
	}
}

// setCounts records the integrity verdict.
func (r *result) setCounts(c counts) {
	r.verdict = c
	r.Lost, r.Duplicated, r.Reordered, r.Invalid = &c.Lost, &c.Duplicated, &c.Reordered, &c.Invalid
}

// setLatencies records the p50/p90/p99/max of ds (which it sorts in place).
// An empty ds records nothing.
func (r *result) setLatencies(ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	ms := func(d time.Duration) *float64 {
		v := math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
		return &v
	}
	r.P50Ms = ms(percentile(ds, 0.50))
	r.P90Ms = ms(percentile(ds, 0.90))
	r.P99Ms = ms(percentile(ds, 0.99))
	r.MaxMs = ms(ds[len(ds)-1])
}

// setPss records the broker's Pss before and with n clients connected and
// the difference per client.
func (r *result) setPss(before, with pssSample, n int) {
	per := float64(with.KiB-before.KiB) / float64(n)
	per = math.Round(per*10) / 10
	r.PssBeforeKiB, r.PssKiB, r.PssPerClientKiB, r.BrokerProcs = &before.KiB, &with.KiB, &per, &with.Procs
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted,
// which must not be empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// json returns the result as one line of JSON (no trailing newline).
func (r *result) json() string {
	b, err := json.Marshal(r)
	if err != nil { // cannot happen: only plain fields
		panic(err)
	}
	return string(b)
}

// human returns a one-line summary for people.
func (r *result) human() string {
	var b strings.Builder
	switch r.Scenario {
	case "queue", "persistent":
		fmt.Fprintf(&b, "%s %s: %dP×%d → %dC ack=%s size=%d", r.Scenario, r.Destination,
			r.Producers, r.Messages, r.Consumers, r.Ack, r.Size)
		if r.Scenario == "persistent" {
			fmt.Fprintf(&b, " window=%d", r.Window)
		}
		if r.Rate > 0 {
			fmt.Fprintf(&b, " at %.0f msgs/s", r.Rate)
		}
	case "fair":
		fmt.Fprintf(&b, "fair %s: burst of %d → %dC ack=%s work=%gms", r.Destination, r.Messages, r.Consumers, r.Ack, r.WorkMs)
	case "topic":
		fmt.Fprintf(&b, "topic %s: 1×%d → %d subscribers size=%d", r.Destination, r.Messages, r.Subscribers, r.Size)
	case "latency":
		fmt.Fprintf(&b, "latency %s: %d msgs at %.0f msgs/s size=%d", r.Destination, r.Messages, r.Rate, r.Size)
	case "conns":
		fmt.Fprintf(&b, "conns: %d clients, concurrency %d", r.Clients, r.Concurrency)
	}
	if r.Prefetch > 0 {
		fmt.Fprintf(&b, " prefetch=%d", r.Prefetch)
	}
	fmt.Fprintf(&b, "; %.3fs", r.ElapsedS)
	if r.MsgsPerS > 0 {
		fmt.Fprintf(&b, ", %.0f msgs/s", r.MsgsPerS)
	}
	if r.ConnectsPerS > 0 {
		fmt.Fprintf(&b, ", %.0f connects/s", r.ConnectsPerS)
	}
	if r.P50Ms != nil {
		fmt.Fprintf(&b, ", p50 %.3f ms p90 %.3f ms p99 %.3f ms max %.3f ms", *r.P50Ms, *r.P90Ms, *r.P99Ms, *r.MaxMs)
	}
	if r.MinShare != nil {
		fmt.Fprintf(&b, "; per consumer %v, least %.2f of the fair share", r.PerConsumer, *r.MinShare)
	}
	if r.Lost != nil {
		fmt.Fprintf(&b, "; lost %d, duplicated %d, reordered %d, invalid %d", *r.Lost, *r.Duplicated, *r.Reordered, *r.Invalid)
	}
	if r.BrokerCPUUsPerMsg != nil {
		fmt.Fprintf(&b, "; broker CPU %.0f ms, %.1f µs per message", *r.BrokerCPUMs, *r.BrokerCPUUsPerMsg)
	}
	if r.PssPerClientKiB != nil {
		fmt.Fprintf(&b, "; broker Pss %d → %d KiB over %d processes, %.1f KiB per client",
			*r.PssBeforeKiB, *r.PssKiB, *r.BrokerProcs, *r.PssPerClientKiB)
	}
	return b.String()
}
