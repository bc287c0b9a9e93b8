package main

import (
	"time"

	"github.com/urfave/cli/v2"
)

// Flag names, used by serve to read them.
const (
	flagListen           = "listen"
	flagDaemonize        = "daemonize"
	flagPidfile          = "pidfile"
	flagLogFile          = "log-file"
	flagLogLevel         = "log-level"
	flagTrace            = "trace"
	flagMaxClients       = "max-clients"
	flagMaxFrameSize     = "max-frame-size"
	flagMaxHeaders       = "max-headers"
	flagMaxHeaderLine    = "max-header-line"
	flagMaxSubscriptions = "max-subscriptions"
	flagConnectTimeout   = "connect-timeout"
	flagHeartBeat        = "heart-beat"
	flagHeartBeatMin     = "heart-beat-min"
	flagOutboxLimit      = "slow-consumer-limit"
	flagMaxQueueMemory   = "max-queue-memory"
	flagPrefetch         = "default-prefetch"
	flagSlots            = "semaphore-slots"
	flagIPCNamespace     = "ipc-namespace"
	flagRuntimeDir       = "runtime-dir"
	flagUsers            = "users"
	flagShutdownTimeout  = "shutdown-timeout"
	flagStore            = "store"
	flagBrokerID         = "broker-id"
	flagLease            = "lease"
	flagMaxRedeliveries  = "max-redeliveries"
	flagRedeliveryDelay  = "redelivery-delay"
	flagRedeliveryMax    = "redelivery-delay-max"
)

// Flag names of the operating features (limits, TLS, control, metrics,
// config file).
const (
	flagMaxClientsPerIP = "max-clients-per-ip"
	flagAcceptRate      = "accept-rate"
	flagAcceptBurst     = "accept-burst"
	flagTLSListen       = "tls-listen"
	flagTLSCert         = "tls-cert"
	flagTLSKey          = "tls-key"
	flagControlSocket   = "control-socket"
	flagMetricsListen   = "metrics-listen"
	flagConfig          = "config"
	flagSpareChildren   = "spare-children"
	flagConsoleListen   = "console-listen"
	flagMaxSpares       = "max-spare-children"
	flagSpareIdle       = "spare-idle-timeout"
)

// Flag names of STOMP over WebSocket (see README.md, "Browsers").
const (
	flagWSListen         = "ws-listen"
	flagWSSListen        = "wss-listen"
	flagWSAllowedOrigins = "ws-allowed-origins"
)

// Defaults of the admission limits and the spare pool. They keep a 2-core,
// 2 GiB machine responsive under a connection flood and let 200 clients
// from one host connect at once; README.md ("Limits against connection
// floods") has the measurements and the arithmetic behind them.
const (
	defaultMaxClients      = 500 // processes, spares included: 500 × ~1.25 MiB Pss ≈ 625 MiB
	defaultMaxClientsPerIP = 250 // half the broker for one host; 200 clients from one host fit
	defaultAcceptRate      = 100 // × ~5 ms of CPU per client (parent and child) ≈ half of one core, sustained
	defaultAcceptBurst     = 200 // 200 clients arriving at once are all started at once
	defaultSpareChildren   = 8   // 8 × ~1.25 MiB = 10 MiB kept ready; a burst beyond waits for starts
	defaultMaxSpares       = 64  // after bursts: 64 × ~1.25 MiB = 80 MiB at most, until a quiet minute halves it
)

func env(name string) []string { return []string{"STOMP_BROKER_" + name} }

// serveFlags are the broker's flags. Every one can also be set through the
// environment variable named in its help.
func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: flagListen, Aliases: []string{"l"}, Value: cli.NewStringSlice("127.0.0.1:61613"), EnvVars: env("LISTEN"),
			Usage: "`ADDR` to accept STOMP clients on (repeatable); when not given and systemd passes sockets (LISTEN_FDS), those are used instead"},
		&cli.StringSliceFlag{Name: flagTLSListen, EnvVars: env("TLS_LISTEN"),
			Usage: "`ADDR` to accept STOMP-over-TLS clients on (repeatable; needs --tls-cert and --tls-key)"},
		&cli.StringSliceFlag{Name: flagWSListen, EnvVars: env("WS_LISTEN"),
			Usage: "`ADDR` to accept STOMP-over-WebSocket clients on, at path /ws with subprotocols v10.stomp, v11.stomp, v12.stomp (repeatable; browsers: ws://ADDR/ws)"},
		&cli.StringSliceFlag{Name: flagWSSListen, EnvVars: env("WSS_LISTEN"),
			Usage: "`ADDR` to accept STOMP-over-WebSocket-over-TLS clients on (wss://ADDR/ws; repeatable; needs --tls-cert and --tls-key)"},
		&cli.StringSliceFlag{Name: flagWSAllowedOrigins, EnvVars: env("WS_ALLOWED_ORIGINS"),
			Usage: "`PATTERN` of a web page origin allowed to open a WebSocket (host or scheme://host, path.Match wildcards; repeatable); others get 403 (default: any origin)"},
		&cli.StringFlag{Name: flagTLSCert, EnvVars: env("TLS_CERT"), Usage: "`FILE` with the PEM certificate (chain) for TLS clients"},
		&cli.StringFlag{Name: flagTLSKey, EnvVars: env("TLS_KEY"), Usage: "`FILE` with the PEM private key for TLS clients"},
		&cli.StringFlag{Name: flagConfig, EnvVars: env("CONFIG"),
			Usage: "`FILE` of \"flag-name = value\" lines for every setting not given on the command line; SIGHUP re-reads it and applies log-level and the client limits live"},
		&cli.StringFlag{Name: flagControlSocket, EnvVars: env("CONTROL_SOCKET"),
			Usage: "unix socket `PATH` for `stomp-broker clients` and `queues` (mode 0600; default $RUNTIME_DIRECTORY/stomp-broker.sock, else /tmp/stomp-broker-PORT.sock; \"off\" for none)"},
		&cli.StringFlag{Name: flagMetricsListen, EnvVars: env("METRICS_LISTEN"), Usage: "`ADDR` to serve Prometheus metrics on over HTTP (default: none)"},
		&cli.StringFlag{Name: flagConsoleListen, EnvVars: env("CONSOLE_LISTEN"),
			Usage: "`ADDR` to serve the live web console on over HTTP (default: none); without --users only a loopback address, and the page is read-only; with --users it asks for a login, and disconnecting a client needs a user marked admin"},
		&cli.BoolFlag{Name: flagDaemonize, Aliases: []string{"d"}, EnvVars: env("DAEMONIZE"),
			Usage: "run in the background; the command returns once the broker is listening"},
		&cli.StringFlag{Name: flagPidfile, EnvVars: env("PIDFILE"), Usage: "write the parent's pid to `PATH` (removed on a clean stop)"},
		&cli.StringFlag{Name: flagLogFile, EnvVars: env("LOG_FILE"), Usage: "append logs to `PATH` instead of stderr (with --daemonize: default /dev/null)"},
		&cli.StringFlag{Name: flagLogLevel, Value: "info", EnvVars: env("LOG_LEVEL"), Usage: "`LEVEL`: debug, info, warn or error"},
		&cli.BoolFlag{Name: flagTrace, EnvVars: env("TRACE"), Usage: "log every hop of every message through the processes (for learning and debugging)"},
		&cli.IntFlag{Name: flagMaxClients, Value: defaultMaxClients, EnvVars: env("MAX_CLIENTS"),
			Usage: "most client processes at once, spares included (--spare-children); more clients get an ERROR and are closed, no process is started (0 = no limit)"},
		&cli.IntFlag{Name: flagMaxClientsPerIP, Value: defaultMaxClientsPerIP, EnvVars: env("MAX_CLIENTS_PER_IP"),
			Usage: "most clients at once from one IP address; more get an ERROR and are closed (0 = no limit)"},
		&cli.Float64Flag{Name: flagAcceptRate, Value: defaultAcceptRate, EnvVars: env("ACCEPT_RATE"),
			Usage: "most client processes started per second, averaged; faster connections wait in the listen backlog (0 = no limit)"},
		&cli.IntFlag{Name: flagAcceptBurst, Value: defaultAcceptBurst, EnvVars: env("ACCEPT_BURST"),
			Usage: "client processes that may start at once before --accept-rate applies"},
		&cli.IntFlag{Name: flagSpareChildren, Value: defaultSpareChildren, EnvVars: env("SPARE_CHILDREN"),
			Usage: "client processes kept started and waiting, so a new client does not wait for one to start; they count against --max-clients (0 = start each on connect)"},
		&cli.IntFlag{Name: flagMaxSpares, Value: defaultMaxSpares, EnvVars: env("MAX_SPARE_CHILDREN"),
			Usage: "most spare processes the pool grows to: each client that finds no spare waiting adds one, so the next burst of that size finds them (at or below --spare-children: no growth)"},
		&cli.DurationFlag{Name: flagSpareIdle, Value: time.Minute, EnvVars: env("SPARE_IDLE_TIMEOUT"),
			Usage: "after this long with no client finding the spare pool empty, the pool halves what it grew by, retiring the oldest spares, and again after each further quiet spell"},
		&cli.IntFlag{Name: flagMaxFrameSize, Value: 4 << 20, EnvVars: env("MAX_FRAME_SIZE"), Usage: "largest frame body in `BYTES` a client may send"},
		&cli.IntFlag{Name: flagMaxHeaders, Value: 128, EnvVars: env("MAX_HEADERS"), Usage: "most headers in one frame"},
		&cli.IntFlag{Name: flagMaxHeaderLine, Value: 8192, EnvVars: env("MAX_HEADER_LINE"), Usage: "longest command or header line in `BYTES`"},
		&cli.IntFlag{Name: flagMaxSubscriptions, Value: 1000, EnvVars: env("MAX_SUBSCRIPTIONS"), Usage: "most subscriptions per connection"},
		&cli.DurationFlag{Name: flagConnectTimeout, Value: 10 * time.Second, EnvVars: env("CONNECT_TIMEOUT"), Usage: "how long a new client may take to send CONNECT"},
		&cli.DurationFlag{Name: flagHeartBeat, Value: 10 * time.Second, EnvVars: env("HEART_BEAT"),
			Usage: "longest heart-beat interval the broker offers and asks for, and its proposal to clients that ask for none; a client asking for a shorter interval gets it, down to --heart-beat-min (0 = no heart-beating at all); a silent client is closed after twice the negotiated interval plus 1s"},
		&cli.DurationFlag{Name: flagHeartBeatMin, Value: 100 * time.Millisecond, EnvVars: env("HEART_BEAT_MIN"),
			Usage: "shortest heart-beat interval the broker offers; a client asking for beats more often gets them this often (0 = no floor)"},
		&cli.IntFlag{Name: flagOutboxLimit, Value: 8 << 20, EnvVars: env("SLOW_CONSUMER_LIMIT"),
			Usage: "`BYTES` of messages that may wait for one client before it is disconnected as a slow consumer"},
		&cli.Int64Flag{Name: flagMaxQueueMemory, Value: 256 << 20, EnvVars: env("MAX_QUEUE_MEMORY"),
			Usage: "`BYTES` of unacknowledged queue messages the broker holds; a SEND beyond it gets an ERROR"},
		&cli.IntFlag{Name: flagPrefetch, Value: 32, EnvVars: env("DEFAULT_PREFETCH"),
			Usage: "unacknowledged queue messages one subscription may hold (an ack:auto one twice this), unless SUBSCRIBE says prefetch-count or activemq.prefetchSize"},
		&cli.IntFlag{Name: flagSlots, Value: 256, EnvVars: env("SEMAPHORE_SLOTS"), Usage: "semaphores in the set used to offer queue messages (messages on offer at once)"},
		&cli.StringFlag{Name: flagIPCNamespace, Value: "auto", EnvVars: env("IPC_NAMESPACE"),
			Usage: "`MODE` auto|on|off: run in a private IPC namespace so no semaphore set can outlive the broker (auto: when permitted)"},
		&cli.StringFlag{Name: flagRuntimeDir, EnvVars: []string{"STOMP_BROKER_RUNTIME_DIR", "RUNTIME_DIRECTORY"},
			Usage: "`DIR` for the semaphore record swept after a crash (default $XDG_RUNTIME_DIR or /tmp)"},
		&cli.StringFlag{Name: flagUsers, EnvVars: env("USERS"), Usage: "`FILE` of login:bcrypt-hash lines; when set, CONNECT must carry a valid login and passcode"},
		&cli.StringFlag{Name: flagStore, Value: "memory", EnvVars: env("STORE"),
			Usage: "`SPEC` where persistent:true queue messages live: memory (lost on restart), sqlite:/path/file.db, postgres://user@host/db (shared by several brokers), or theschwartz:sqlite:/path | theschwartz:postgres://... (an existing TheSchwartz job database; every queue SEND becomes a job)"},
		&cli.StringFlag{Name: flagBrokerID, EnvVars: env("BROKER_ID"),
			Usage: "`ID` owning this broker's leases in a shared store; stable across restarts, unique per broker (default hostname|listen address)"},
		&cli.DurationFlag{Name: flagLease, Value: 30 * time.Second, EnvVars: env("LEASE"),
			Usage: "how long a durable message this broker holds stays hidden from other brokers if this one dies"},
		&cli.IntFlag{Name: flagMaxRedeliveries, Value: -1, EnvVars: env("MAX_REDELIVERIES"),
			Usage: "default for the max-redeliveries header: failed redeliveries before a message moves to /queue/DLQ.<name> (-1 = unlimited)"},
		&cli.DurationFlag{Name: flagRedeliveryDelay, Value: 0, EnvVars: env("REDELIVERY_DELAY"),
			Usage: "default for the redelivery-delay header: wait before the first redelivery, doubling after each further failure (0 = at once)"},
		&cli.DurationFlag{Name: flagRedeliveryMax, Value: time.Hour, EnvVars: env("REDELIVERY_DELAY_MAX"), Usage: "longest redelivery backoff"},
		&cli.DurationFlag{Name: flagShutdownTimeout, Value: 5 * time.Second, EnvVars: env("SHUTDOWN_TIMEOUT"),
			Usage: "on SIGTERM, how long clients get to be closed cleanly before their processes are killed"},
	}
}
