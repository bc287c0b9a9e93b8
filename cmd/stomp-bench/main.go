// Command stomp-bench is a load generator for STOMP brokers. It measures
// one scenario per run against the broker at --addr and prints one
// human-readable line and one JSON line (only the JSON line with --json).
//
// It sits outside the broker's data path: it is the client side that
// scripts/bench-compare points first at our stomp-broker and then at
// go-stomp's reference server, to compare the two under the same load.
//
// # Scenarios
//
//   - queue: P producers each send N messages to one /queue/ destination
//     consumed by C competing consumers that subscribed (and were confirmed)
//     before the first SEND. msgs/s is measured from the first SEND to the
//     last delivery. Every body carries "producer:seq:stamp;" and the run
//     checks each id for loss, duplication and per-producer reordering.
//     With --rate, the producers together send at that steady rate
//     (each at rate/P) and end-to-end latency is reported too.
//   - topic: one producer, K subscribers of one /topic/ destination; the
//     rate is deliveries/s (N*K over the elapsed time), with p50/p99
//     latency over all deliveries; every subscriber must see every message
//     once and in order. --subscriber-addrs spreads the subscribers over
//     several brokers (sharing one database) while the producer stays on
//     --addr; --topic-rate paces the producer (for latency without
//     saturation).
//   - persistent: like queue, but every SEND carries persistent:true and a
//     receipt, with at most --window receipts outstanding per producer;
//     the rate is that of confirmed SENDs.
//   - latency: one producer at a steady --rate to a queue with one
//     consumer; reports p50/p90/p99/max end-to-end latency.
//   - fair: C consumers (--consumers 3) share one burst of --messages from
//     one producer; each spends --work on a message before it ACKs it (or,
//     in auto mode, reads the next). Reports the count per consumer and
//     the smallest as a fraction of the fair share.
//   - conns: opens --clients idle connections with go-stomp's client,
//     --concurrency at a time; reports connects/s and, with --broker-pid,
//     the broker's Pss per client.
//
// # Exit status
//
// 0 on success; 1 on a usage error, a connection failure, an ERROR frame
// or a timeout (with a message on stderr); 2 when the run completed but lost,
// duplicated or garbled messages (after printing the result).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
)

// errUsage is wrapped by errors caused by invalid flags.
var errUsage = errors.New("stomp-bench: invalid usage")

// Exit statuses; see the package documentation.
const (
	exitFailure   = 1
	exitIntegrity = 2
)

func main() {
	// The load generator allocates a few small objects per frame; with the
	// default GOGC it would collect dozens of times a second and steal CPU
	// from the broker it measures on the same machine. A larger heap target
	// costs a few MB. An explicit GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if err := newApp(os.Stdout).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, errIntegrity) {
			os.Exit(exitIntegrity)
		}
		os.Exit(exitFailure)
	}
}

// config holds the parameters of one run, as given on the command line.
type config struct {
	Addr          string
	Scenario      string
	Producers     int
	Consumers     int
	Subscribers   int
	Messages      int
	Size          int
	Ack           string
	Prefetch      int
	Window        int
	Clients       int
	Concurrency   int
	Rate          float64
	QueueRate     float64 // --rate when given for the queue scenario, else 0 (as fast as possible)
	Destination   string
	Timeout       time.Duration
	Idle          time.Duration
	SubscribeSync string
	BrokerPID     int
	Settle        time.Duration
	JSONOnly      bool
	Work          time.Duration
	// SubscriberAddrs spread topic subscribers round-robin (default Addr).
	SubscriberAddrs []string
	// TopicRate paces the topic producer in msgs/s (0: as fast as it can).
	TopicRate float64
}

// destination returns --destination, or a fresh name under prefix (unique
// per run, so that messages left over by an aborted run cannot leak in).
func (c config) destination(prefix string) string {
	if c.Destination != "" {
		return c.Destination
	}
	return prefix + "stomp-bench." + c.Scenario + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// validate reports the first flag that makes no sense, wrapped in errUsage.
func (c config) validate() error {
	bad := func(format string, v ...interface{}) error {
		return fmt.Errorf("%w: "+format, append([]interface{}{errUsage}, v...)...)
	}
	switch c.Scenario {
	case "queue", "topic", "persistent", "latency", "conns", "fair", gostompQueueScenario:
	default:
		return bad("--scenario must be queue, topic, persistent, latency, conns, fair or %s, not %q", gostompQueueScenario, c.Scenario)
	}
	if (c.Scenario == "conns" || c.Scenario == gostompQueueScenario) && isWebSocketURL(c.Addr) {
		return bad("--scenario %s opens go-stomp TCP clients; it takes a HOST:PORT --addr, not %q", c.Scenario, c.Addr)
	}
	switch c.Ack {
	case "auto", "client", "client-individual":
	default:
		return bad("--ack must be auto, client or client-individual, not %q", c.Ack)
	}
	switch c.SubscribeSync {
	case syncReceipt, syncProbe:
	default:
		return bad("--subscribe-sync must be %s or %s, not %q", syncReceipt, syncProbe, c.SubscribeSync)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"producers", c.Producers}, {"consumers", c.Consumers}, {"subscribers", c.Subscribers},
		{"messages", c.Messages}, {"window", c.Window}, {"clients", c.Clients}, {"concurrency", c.Concurrency},
	} {
		if f.v < 1 {
			return bad("--%s must be at least 1, not %d", f.name, f.v)
		}
	}
	if c.Size < 0 || c.Prefetch < 0 || c.BrokerPID < 0 {
		return bad("--size, --prefetch and --broker-pid must not be negative")
	}
	if c.Scenario == "latency" && c.Rate <= 0 {
		return bad("--rate must be positive for the latency scenario")
	}
	if c.QueueRate < 0 {
		return bad("--rate must not be negative")
	}
	if c.Work < 0 || c.TopicRate < 0 {
		return bad("--work and --topic-rate must not be negative")
	}
	if c.Timeout <= 0 || c.Idle <= 0 {
		return bad("--timeout and --idle must be positive")
	}
	return nil
}

// newApp returns the command-line application; results go to stdout.
func newApp(stdout io.Writer) *cli.App {
	return &cli.App{
		Name:  "stomp-bench",
		Usage: "measure a STOMP broker: throughput, fan-out, latency, connections, memory",
		Description: "Runs one scenario and prints a summary line plus one JSON line.\n" +
			"Exit status 1: usage, connection, ERROR frame or timeout; 2: messages lost, duplicated or garbled.",
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:61613", Usage: "broker `HOST:PORT`, or ws://HOST:PORT/ws for STOMP over WebSocket (not with conns)"},
			&cli.StringFlag{Name: "scenario", Value: "queue", Usage: "queue, topic, persistent, latency, conns, fair or gostomp-queue (queue, auto ack, driven by go-stomp's client library)"},
			&cli.IntFlag{Name: "producers", Value: 1, Usage: "producers (queue, persistent)"},
			&cli.IntFlag{Name: "consumers", Value: 1, Usage: "competing consumers (queue, persistent)"},
			&cli.IntFlag{Name: "subscribers", Value: 10, Usage: "topic subscribers (topic)"},
			&cli.IntFlag{Name: "messages", Value: 10000, Usage: "messages per producer"},
			&cli.IntFlag{Name: "size", Value: 256, Usage: "message body size in `BYTES` (at least the id prefix)"},
			&cli.StringFlag{Name: "ack", Value: "auto", Usage: "subscription ack mode: auto, client or client-individual (client modes ACK every message)"},
			&cli.IntFlag{Name: "prefetch", Usage: "send prefetch-count:`N` on SUBSCRIBE (0: do not send)"},
			&cli.IntFlag{Name: "window", Value: 1, Usage: "outstanding receipts per producer (persistent)"},
			&cli.IntFlag{Name: "clients", Value: 100, Usage: "idle clients to open (conns)"},
			&cli.IntFlag{Name: "concurrency", Value: 16, Usage: "connects in flight at once (conns)"},
			&cli.Float64Flag{Name: "rate", Value: 1000, Usage: "send rate in msgs/s (latency; queue when given: over all producers, which then also reports latency)"},
			&cli.StringFlag{Name: "destination", Usage: "destination (default: a fresh /queue/ or /topic/ name per run)"},
			&cli.DurationFlag{Name: "timeout", Value: 120 * time.Second, Usage: "bound on the whole run"},
			&cli.DurationFlag{Name: "idle", Value: 5 * time.Second, Usage: "after the producers finish, stop waiting for missing messages when none arrived for this long (they count as lost)"},
			&cli.StringFlag{Name: "subscribe-sync", Value: syncReceipt, Usage: "how to learn a subscription is live: receipt (RECEIPT for SUBSCRIBE) or probe (a receipted BEGIN+ABORT after it, for servers that do not receipt SUBSCRIBE, e.g. go-stomp)"},
			&cli.IntFlag{Name: "broker-pid", Usage: "broker `PID` whose process tree's Pss (conns) or CPU per message (queue, latency) is sampled"},
			&cli.DurationFlag{Name: "settle", Value: 500 * time.Millisecond, Usage: "pause before the Pss sample with all clients connected (conns)"},
			&cli.BoolFlag{Name: "json", Usage: "print only the JSON line"},
			&cli.StringSliceFlag{Name: "subscriber-addrs", Usage: "topic: spread the subscribers round-robin over these brokers' `HOST:PORT`s (default --addr); the run waits --settle after subscribing, for brokers to learn each other's subscriptions"},
			&cli.Float64Flag{Name: "topic-rate", Usage: "topic: the producer's send rate in msgs/s (default: as fast as it can)"},
			&cli.DurationFlag{Name: "work", Usage: "time a consumer spends on each message before it ACKs it or, in auto mode, reads the next (fair: e.g. 2ms)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("%w: unexpected argument %q", errUsage, c.Args().First())
			}
			cfg := config{
				Addr: c.String("addr"), Scenario: c.String("scenario"),
				Producers: c.Int("producers"), Consumers: c.Int("consumers"), Subscribers: c.Int("subscribers"),
				Messages: c.Int("messages"), Size: c.Int("size"), Ack: c.String("ack"),
				Prefetch: c.Int("prefetch"), Window: c.Int("window"),
				Clients: c.Int("clients"), Concurrency: c.Int("concurrency"), Rate: c.Float64("rate"),
				Destination: c.String("destination"), Timeout: c.Duration("timeout"), Idle: c.Duration("idle"),
				SubscribeSync: c.String("subscribe-sync"), BrokerPID: c.Int("broker-pid"),
				Settle: c.Duration("settle"), JSONOnly: c.Bool("json"), Work: c.Duration("work"),
				SubscriberAddrs: c.StringSlice("subscriber-addrs"), TopicRate: c.Float64("topic-rate"),
			}
			if cfg.Scenario == "queue" && c.IsSet("rate") {
				cfg.QueueRate = cfg.Rate
			}
			return runAndReport(c.Context, cfg, stdout)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main decides the exit status
	}
}

// runAndReport validates cfg, runs it under --timeout and prints the
// result. It returns an error wrapping errIntegrity if the run lost,
// duplicated or garbled messages (the result is printed first).
func runAndReport(ctx context.Context, cfg config, stdout io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		if deadlinePassed(ctx) && !errors.Is(err, errTimeout) {
			err = fmt.Errorf("%w after %s: %v", errTimeout, cfg.Timeout, err)
		}
		return fmt.Errorf("stomp-bench: %s against %s: %w", cfg.Scenario, cfg.Addr, err)
	}
	if !cfg.JSONOnly {
		fmt.Fprintln(stdout, res.human())
	}
	fmt.Fprintln(stdout, res.json())
	if v := res.verdict; v.failed() {
		return fmt.Errorf("%w: %d lost, %d duplicated, %d invalid", errIntegrity, v.Lost, v.Duplicated, v.Invalid)
	}
	return nil
}
