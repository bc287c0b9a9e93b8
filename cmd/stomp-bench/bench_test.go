package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/server"

	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// testTimeout bounds every scenario run by these tests.
const testTimeout = 30 * time.Second

// startGoStompServer runs go-stomp's reference server in-process on a
// loopback port and returns its address. The listener is closed at the end
// of the test. (go-stomp's request processor goroutine cannot be stopped and
// lives on until the test binary exits; it holds no sockets or files.)
func startGoStompServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := &server.Server{Log: discardLogger{}}
	go srv.Serve(l)
	return l.Addr().String()
}

// baseConfig returns the flag defaults for scenario against addr, with
// go-stomp's subscribe synchronisation.
func baseConfig(addr, scenario string) config {
	return config{
		Addr: addr, Scenario: scenario, Producers: 1, Consumers: 1, Subscribers: 1,
		Messages: 100, Size: 256, Ack: "auto", Window: 1, Clients: 10, Concurrency: 4,
		Rate: 1000, Timeout: testTimeout, Idle: 2 * time.Second, SubscribeSync: syncProbe,
		Settle: 10 * time.Millisecond,
	}
}

func TestScenariosAgainstGoStompServer(t *testing.T) {
	addr := startGoStompServer(t)
	tests := []struct {
		name       string
		cfg        func(config) config
		deliveries int
		latency    bool
	}{
		{
			name: "queue auto 2P→2C",
			cfg: func(c config) config {
				c.Scenario, c.Producers, c.Consumers, c.Messages = "queue", 2, 2, 2000
				return c
			},
			deliveries: 4000,
		},
		{
			name: "queue 2P→2C through go-stomp's client library",
			cfg: func(c config) config {
				c.Scenario, c.Producers, c.Consumers, c.Messages = gostompQueueScenario, 2, 2, 2000
				return c
			},
			deliveries: 4000,
		},
		{
			name: "topic 1→5",
			cfg: func(c config) config {
				c.Scenario, c.Subscribers, c.Messages = "topic", 5, 1000
				return c
			},
			deliveries: 5000,
		},
		{
			name: "persistent window 4",
			cfg: func(c config) config {
				c.Scenario, c.Producers, c.Messages, c.Window = "persistent", 2, 300, 4
				return c
			},
			deliveries: 600,
		},
		{
			name: "latency 2000 msgs/s",
			cfg: func(c config) config {
				c.Scenario, c.Messages, c.Rate = "latency", 400, 2000
				return c
			},
			deliveries: 400,
			latency:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(baseConfig(addr, ""))
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			res, err := run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.verdict.Lost != 0 || res.verdict.Duplicated != 0 || res.verdict.Invalid != 0 {
				t.Errorf("verdict %+v, want no loss, duplication or invalid ids", res.verdict)
			}
			if res.Delivered != tc.deliveries {
				t.Errorf("delivered %d, want %d", res.Delivered, tc.deliveries)
			}
			if res.ElapsedS <= 0 || res.ElapsedS > testTimeout.Seconds() {
				t.Errorf("elapsed_s = %v, want within (0, %v]", res.ElapsedS, testTimeout.Seconds())
			}
			if want := float64(tc.deliveries) / res.ElapsedS; res.MsgsPerS < want*0.99 || res.MsgsPerS > want*1.01 {
				t.Errorf("msgs_per_s = %.0f, want deliveries/elapsed = %.0f", res.MsgsPerS, want)
			}
			if tc.latency {
				if res.P50Ms == nil || *res.P50Ms <= 0 || *res.P50Ms > *res.P99Ms || *res.P99Ms > *res.MaxMs {
					t.Errorf("latencies p50 %v p99 %v max %v, want 0 < p50 <= p99 <= max", res.P50Ms, res.P99Ms, res.MaxMs)
				}
				// Paced at 2000/s, 400 messages take about 0.2 s.
				if res.ElapsedS < 0.19 {
					t.Errorf("elapsed %.3fs: the producer did not keep to --rate", res.ElapsedS)
				}
			}
		})
	}
}

// TestFairAgainstGoStompServer: the fair scenario counts what each
// consumer read, the counts add up to the burst, and min_share is the
// least of them over the fair share.
func TestFairAgainstGoStompServer(t *testing.T) {
	cfg := baseConfig(startGoStompServer(t), "fair")
	cfg.Consumers, cfg.Messages, cfg.Work = 3, 60, time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.verdict.failed() || res.Delivered != 60 {
		t.Fatalf("verdict %+v, delivered %d; want all 60 once", res.verdict, res.Delivered)
	}
	sum, least := 0, 60
	for _, k := range res.PerConsumer {
		sum += k
		least = min(least, k)
	}
	if len(res.PerConsumer) != 3 || sum != 60 {
		t.Fatalf("per_consumer %v, want 3 counts adding up to 60", res.PerConsumer)
	}
	if res.MinShare == nil || *res.MinShare != float64(least)/20 {
		t.Errorf("min_share %v, want %d/20", res.MinShare, least)
	}
	if !strings.Contains(res.human(), "per consumer [") || !strings.Contains(res.json(), `"per_consumer":[`) {
		t.Errorf("counts missing from the output:\n%s\n%s", res.human(), res.json())
	}
}

// TestClientAcksAgainstFakeBroker covers what go-stomp's server cannot
// serve: client and client-individual acknowledgement, the prefetch-count
// header and the default subscribe synchronisation (RECEIPT for SUBSCRIBE).
func TestClientAcksAgainstFakeBroker(t *testing.T) {
	tests := []struct {
		name         string
		ack          string
		prefetch     int
		wantPrefetch []string
	}{
		{name: "client-individual, broker default prefetch", ack: "client-individual"},
		{name: "client-individual, prefetch 8", ack: "client-individual", prefetch: 8, wantPrefetch: []string{"8", "8"}},
		{name: "client, prefetch 1", ack: "client", prefetch: 1, wantPrefetch: []string{"1", "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := startFakeBroker(t)
			cfg := baseConfig(b.addr(), "queue")
			cfg.Producers, cfg.Consumers, cfg.Messages = 2, 2, 500
			cfg.Ack, cfg.Prefetch, cfg.SubscribeSync = tc.ack, tc.prefetch, syncReceipt
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			res, err := run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.verdict != (counts{}) || res.Delivered != 1000 {
				t.Errorf("verdict %+v, delivered %d; want a clean run of 1000", res.verdict, res.Delivered)
			}
			prefetchs, acks := b.seen()
			if !slices.Equal(prefetchs, tc.wantPrefetch) {
				t.Errorf("prefetch-count headers %q, want %q", prefetchs, tc.wantPrefetch)
			}
			// Every ACK was written before the run ended; give the
			// broker's connection goroutines a moment to read them.
			poll.Within(10*time.Second, func() bool { _, acks = b.seen(); return acks >= 1000 })
			if acks != 1000 {
				t.Errorf("broker saw %d ACKs with an id header, want one per message (1000)", acks)
			}
		})
	}
}

// TestPersistentAgainstFakeBroker runs the persistent scenario with the
// default subscribe synchronisation and a receipt window.
func TestPersistentAgainstFakeBroker(t *testing.T) {
	b := startFakeBroker(t)
	cfg := baseConfig(b.addr(), "persistent")
	cfg.Producers, cfg.Messages, cfg.Window, cfg.SubscribeSync = 3, 200, 8, syncReceipt
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.verdict != (counts{}) || res.Delivered != 600 || res.MsgsPerS <= 0 || res.Window != 8 {
		t.Errorf("result %+v; want a clean run of 600 with a rate", res)
	}
}

// TestProbeSyncSendsNoMessages checks that the probe synchronisation used
// for go-stomp adds no SEND frames: a subscriber that also produces can
// deadlock go-stomp's router (see syncProbe).
func TestProbeSyncSendsNoMessages(t *testing.T) {
	b := startFakeBroker(t)
	cfg := baseConfig(b.addr(), "queue")
	cfg.Producers, cfg.Consumers, cfg.Messages, cfg.SubscribeSync = 2, 3, 100, syncProbe
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.verdict != (counts{}) || res.Delivered != 200 {
		t.Errorf("verdict %+v, delivered %d; want a clean run of 200", res.verdict, res.Delivered)
	}
	if n := b.sendCount(); n != 200 {
		t.Errorf("broker received %d SEND frames, want exactly the 200 messages", n)
	}
}

// TestLossIsReported runs client-individual against go-stomp's server,
// which delivers one message per consumer and never another (its ACK
// matching is broken): the run must end after --idle, report the rest as
// lost and fail with errIntegrity.
func TestLossIsReported(t *testing.T) {
	addr := startGoStompServer(t)
	cfg := baseConfig(addr, "queue")
	cfg.Ack, cfg.Messages, cfg.Idle = "client-individual", 50, 300*time.Millisecond
	var out bytes.Buffer
	err := runAndReport(context.Background(), cfg, &out)
	if !errors.Is(err, errIntegrity) {
		t.Fatalf("err = %v, want errIntegrity", err)
	}
	if !strings.Contains(out.String(), `"lost":49`) {
		t.Errorf("output does not report 49 lost messages:\n%s", out.String())
	}
}

func TestConnsAgainstGoStompServer(t *testing.T) {
	addr := startGoStompServer(t)
	cfg := baseConfig(addr, "conns")
	cfg.Clients, cfg.Concurrency, cfg.BrokerPID = 50, 8, os.Getpid() // the server runs in this process
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConnectsPerS <= 0 || res.P99Ms == nil {
		t.Errorf("connects_per_s %v, p99 %v: want a rate and connect latencies", res.ConnectsPerS, res.P99Ms)
	}
	if res.PssKiB == nil || *res.PssKiB <= 0 || *res.BrokerProcs < 1 {
		t.Errorf("Pss fields %v / %v: want a positive sample of at least one process", res.PssKiB, res.BrokerProcs)
	}
}

// TestCommandLineJSON runs the whole command (flags, run, output) and
// checks the JSON line.
func TestCommandLineJSON(t *testing.T) {
	addr := startGoStompServer(t)
	var out bytes.Buffer
	err := newApp(&out).Run([]string{"stomp-bench", "--addr", addr, "--scenario", "queue",
		"--producers", "2", "--consumers", "3", "--messages", "200", "--subscribe-sync", "probe", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("--json printed %d lines, want 1:\n%s", len(lines), out.String())
	}
	var got map[string]interface{}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, lines[0])
	}
	for key, want := range map[string]interface{}{
		"scenario": "queue", "producers": 2.0, "consumers": 3.0, "messages": 200.0,
		"lost": 0.0, "duplicated": 0.0, "delivered": 400.0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if v, ok := got["msgs_per_s"].(float64); !ok || v <= 0 {
		t.Errorf("msgs_per_s = %v, want a positive number", got["msgs_per_s"])
	}
}

// TestFailuresAreBoundedAndClear checks that a dead address and a server
// that never answers both end the run with an error well within bounds.
func TestFailuresAreBoundedAndClear(t *testing.T) {
	// A port with nobody listening: take one and release it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()

	// A server that accepts TCP and never says a word.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		accepted []net.Conn
		wg       sync.WaitGroup
	)
	t.Cleanup(func() {
		mute.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()

	tests := []struct {
		name     string
		addr     string
		scenario string
		want     error
		wantText string
	}{
		{"connection refused", deadAddr, "queue", nil, "connection refused"},
		{"mute server, queue", mute.Addr().String(), "queue", errTimeout, "timeout after 300ms"},
		{"mute server, conns", mute.Addr().String(), "conns", errTimeout, "timeout after 300ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(tc.addr, tc.scenario)
			cfg.Timeout = 300 * time.Millisecond
			start := time.Now()
			err := runAndReport(context.Background(), cfg, io.Discard)
			if err == nil {
				t.Fatal("run succeeded against a broken server")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %q, want it to mention %q", err, tc.wantText)
			}
			if d, limit := time.Since(start), 3*cfg.Timeout+5*time.Second; d > limit {
				t.Errorf("failure took %v, want it bounded by the %v timeout (limit %v)", d, cfg.Timeout, limit)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := baseConfig("127.0.0.1:1", "queue")
	if err := good.validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*config)
	}{
		{"unknown scenario", func(c *config) { c.Scenario = "fanout" }},
		{"unknown ack", func(c *config) { c.Ack = "none" }},
		{"unknown sync", func(c *config) { c.SubscribeSync = "hope" }},
		{"no producers", func(c *config) { c.Producers = 0 }},
		{"no messages", func(c *config) { c.Messages = 0 }},
		{"zero window", func(c *config) { c.Window = 0 }},
		{"negative prefetch", func(c *config) { c.Prefetch = -1 }},
		{"latency without rate", func(c *config) { c.Scenario, c.Rate = "latency", 0 }},
		{"no timeout", func(c *config) { c.Timeout = 0 }},
		{"negative work", func(c *config) { c.Work = -time.Millisecond }},
		{"conns over WebSocket", func(c *config) { c.Scenario, c.Addr = "conns", "ws://127.0.0.1:1/ws" }},
	}
	for _, tc := range tests {
		c := good
		tc.mutate(&c)
		if err := c.validate(); !errors.Is(err, errUsage) {
			t.Errorf("%s: validate() = %v, want errUsage", tc.name, err)
		}
	}
}

// TestGoStompQueuePrefetchAgainstFakeBroker: the gostomp-queue scenario
// sends --prefetch as prefetch-count on its library SUBSCRIBEs (and nothing
// without it), so credit can be varied with go-stomp's client (issue 13).
func TestGoStompQueuePrefetchAgainstFakeBroker(t *testing.T) {
	tests := []struct {
		name         string
		prefetch     int
		wantPrefetch []string
	}{
		{name: "broker default", prefetch: 0},
		{name: "prefetch 64", prefetch: 64, wantPrefetch: []string{"64", "64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := startFakeBroker(t)
			cfg := baseConfig(b.addr(), gostompQueueScenario)
			cfg.Producers, cfg.Consumers, cfg.Messages, cfg.Prefetch = 2, 2, 300, tc.prefetch
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			res, err := run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.verdict != (counts{}) || res.Delivered != 600 {
				t.Errorf("verdict %+v, delivered %d; want a clean run of 600", res.verdict, res.Delivered)
			}
			if prefetchs, _ := b.seen(); !slices.Equal(prefetchs, tc.wantPrefetch) {
				t.Errorf("prefetch-count headers %q, want %q", prefetchs, tc.wantPrefetch)
			}
		})
	}
}
