package parent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/stomp-broker/stomp-broker/cluster"
	"github.com/stomp-broker/stomp-broker/internal/profiling"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/ledger"
	"github.com/stomp-broker/stomp-broker/semaphore"
	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/store"
)

// Notifier receives the broker's life-cycle events (systemd's sd_notify).
// A nil Notifier is allowed. Errors are logged and otherwise ignored: a
// missed notification must not take the broker down.
type Notifier interface {
	// Ready is called once the listeners accept clients.
	Ready(status string) error
	// Stopping is called when shutdown begins.
	Stopping() error
	// Watchdog is called every Config.WatchdogInterval from the event
	// loop, so it stops when the loop is stuck.
	Watchdog() error
}

// Config is everything the parent needs. Zero values get the defaults
// noted on each field.
type Config struct {
	// Listeners are the sockets to accept clients on (from --listen or
	// systemd socket activation). The broker closes them on shutdown.
	Listeners []net.Listener
	// TLSListeners are sockets whose clients speak STOMP over TLS. The
	// parent accepts the TCP connection and hands the raw socket to the
	// child, which does the TLS handshake itself with TLSCertFile and
	// TLSKeyFile: the TLS session state lives in the process that uses it,
	// so a child is still the only process holding its client.
	TLSListeners []net.Listener
	// WSListeners are sockets whose clients speak STOMP over WebSocket,
	// WSSListeners over WebSocket over TLS. As for TLS, the parent only
	// accepts the TCP connection; the child answers the HTTP upgrade
	// (after the TLS handshake, for WSS) itself.
	WSListeners, WSSListeners []net.Listener
	// TLSCertFile and TLSKeyFile are the PEM files every TLS child loads.
	TLSCertFile, TLSKeyFile string
	// TLSConfig is the parent's own TLS configuration, used only to send a
	// TLS client refused by a limit its ERROR frame. Required with
	// TLSListeners.
	TLSConfig *tls.Config
	// ControlListener, if set, serves the control socket (`stomp-broker
	// clients`, `stomp-broker queues`; see package control). The broker
	// closes it on shutdown.
	ControlListener net.Listener
	// MetricsListener, if set, serves Prometheus metrics over HTTP. The
	// broker closes it on shutdown.
	MetricsListener net.Listener
	// WatchdogInterval, if positive, is how often the event loop calls
	// Notifier.Watchdog.
	WatchdogInterval time.Duration
	// Child is the template of every child's configuration.
	Child ipc.ChildConfig
	// Slots is the number of offer slots in the semaphore set (default 256).
	Slots int
	// OutboxLimit is how many bytes may wait for one child before it is
	// declared a slow consumer and disconnected (default 8 MiB).
	OutboxLimit int
	// Limits are the admission limits (max clients, per IP, spawn rate);
	// Reload can change them.
	Limits Limits
	// MaxQueueBytes caps the bytes of queued (not yet acked) messages
	// broker-wide; a SEND over it is refused with an ERROR (default 256 MiB).
	MaxQueueBytes int64
	// ShutdownTimeout bounds how long Serve waits for children after telling
	// them to close (default 5s); stragglers are SIGKILLed.
	ShutdownTimeout time.Duration
	// SlowConsumerGrace is how long a child told to disconnect may take
	// before it is SIGKILLed (default 5s).
	SlowConsumerGrace time.Duration
	// Log receives the parent's log lines (default: discard).
	Log *slog.Logger
	// ChildStderr is the children's stderr (their log lines); default os.Stderr.
	ChildStderr *os.File
	// Notifier, if set, is told when the broker is ready and stopping.
	Notifier Notifier
	// Trace logs every hop of every message.
	Trace bool
	// SemaphoreCreated, if set, is called with the semaphore set's id once
	// it exists (the CLI records it for crash clean-up).
	SemaphoreCreated func(id int)
	// Store, if set, keeps persistent queue messages durably (SQLite,
	// PostgreSQL). The broker closes it on shutdown.
	Store store.Store
	// BrokerID names this broker as the owner of store leases; it must be
	// stable across restarts and unique among brokers sharing a database
	// (default: hostname and first listen port).
	BrokerID string
	// Lease is how long a durable message leased by this broker stays
	// invisible to other brokers without renewal (default 30s).
	Lease time.Duration
	// Jobs are the defaults for job headers (max-redeliveries, backoff).
	Jobs ledger.JobDefaults
	// PersistAll stores every queue message durably, persistent:true or
	// not (for stores such as TheSchwartz where every message is a job).
	PersistAll bool
	// SpareChildren is how many children are kept started and waiting for
	// a client (see spares.go); 0 starts each child when its client
	// connects.
	SpareChildren int
	// Cluster, if set, joins this broker to the others sharing its
	// PostgreSQL database, for topics and temporary reply queues (see
	// package cluster). The broker closes it on shutdown.
	Cluster *cluster.Bus
	// MaxSpareChildren bounds the pool when it grows after a burst found
	// it empty (spares.go); at or below SpareChildren the pool keeps
	// SpareChildren and never grows.
	MaxSpareChildren int
	// SpareIdleTimeout is how long the pool must go without a client
	// finding it empty before it halves what it grew by (retiring the
	// spares above the new size); 0 means one minute.
	SpareIdleTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Slots <= 0 {
		c.Slots = 256
	}
	if c.OutboxLimit <= 0 {
		c.OutboxLimit = 8 << 20
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 256 << 20
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.SlowConsumerGrace <= 0 {
		c.SlowConsumerGrace = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ChildStderr == nil {
		c.ChildStderr = os.Stderr
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.BrokerID == "" {
		host, _ := os.Hostname()
		c.BrokerID = host
		if len(c.Listeners) > 0 {
			c.BrokerID += "|" + c.Listeners[0].Addr().String()
		}
	}
	c.Child.Limits = limitsWithDefaults(c.Child.Limits)
	c.Child.Trace = c.Trace
}

// Broker is the parent process's broker.
//
// # Ownership
//
// Everything below the "event loop state" line is owned by the goroutine
// running Serve's event loop and touched by no other goroutine; that
// includes the queue ledger (package ledger), which the event loop alone
// calls and which calls back only through ledgerHost, on the same
// goroutine. Other
// goroutines (one accept loop per listener, one reader and one writer per
// child, one per control-socket request) communicate with it only through
// the events channel and the children's outboxes: a control request or a
// Reload is an event that carries its reply channel. There are therefore
// no locks around broker state. The two exceptions are shared on purpose
// and have locks of their own: the admission counters (the accept loops
// must decide before spawning, without a round trip through the loop) and
// the children's log level (read by the accept loops when they spawn).
type Broker struct {
	cfg    Config
	log    *slog.Logger
	events chan event
	sem    *semaphore.Set
	// admit is shared by the accept loops and the event loop (it has its
	// own lock): it enforces Limits before anything is spawned.
	admit *admission
	// refusals rate-limits the log lines about refused clients (its own lock).
	refusals refusalLog
	// spares is nil with SpareChildren 0 (its own lock).
	spares *sparePool
	// metrics is nil without a MetricsListener.
	metrics  *metrics
	idPrefix string
	// quit is closed when shutdown begins (accept loops waiting for the
	// spawn rate give up); done when Serve has returned (control requests
	// and Reload stop waiting for the event loop).
	quit, done chan struct{}

	// childLogLevel is the log level of children spawned from now on; the
	// accept loops read it, Reload writes it.
	liveMu        sync.Mutex
	childLogLevel string

	// --- event loop state ---
	children map[int]*childProc            // by pid
	topics   map[string]map[*childProc]int // destination → children with n subscriptions to it
	queues   *ledger.Ledger                // the queue engine; nil until Serve starts
	nextMsg  uint64
	stopping bool
	// topicMessages counts the messages published to each topic of topics
	// (for the web console's rates); a topic's count goes with its last
	// subscriber.
	topicMessages map[string]uint64
	// node names this broker in the names of its temporary queues
	// (/reply-queue/NODE.KEY.NAME): the cluster's node, else a name new at
	// every start. replies finds the connection behind KEY.
	node      string
	replies   map[string]*childProc
	nextReply uint64
	// storeStats is the durable store's last Stats answer (for the queue
	// gauges), refreshed every storeStatsEvery; statsPending is true while
	// a refresh is under way.
	storeStats   []store.QueueStats
	statsPending bool
	ticks        int
	// fatalErr, once set, makes Serve shut down and return it.
	fatalErr error
	// asyncPending counts Broker.async calls whose result has not been
	// applied yet; shutdown waits for them.
	asyncPending int
	// dirty lists the children whose outboxes got records since the last
	// flushOutboxes.
	dirty []*childProc
}

// evApply carries the result of work done off the event loop (a store
// call) back to it, as a function to run there.
type evApply struct{ apply func() }

// async runs work in a goroutine of its own, then applies the function it
// returns on the event loop. This is how the event loop waits for slow
// things (disk, database) without blocking.
func (b *Broker) async(work func() (apply func())) {
	b.asyncPending++
	go func() { b.events <- evApply{work()} }()
}

// event is something that happened outside the event loop.
type event interface{}

type evChildStarted struct{ c *childProc }
type evChildRecords struct {
	c     *childProc
	batch []byte
}
type evChildGone struct {
	c   *childProc
	err error
}

// evReload installs new settings; done is closed once they apply.
type evReload struct {
	s    Settings
	done chan struct{}
}

// Settings are what a reload (SIGHUP) changes while every client stays
// connected.
type Settings struct {
	// Limits replace Config.Limits for clients that connect from now on.
	Limits Limits
	// ChildLogLevel is the log level of children spawned from now on
	// (running children keep theirs). The parent's own level is the
	// caller's: give Config.Log a handler with a slog.LevelVar.
	ChildLogLevel string
}

// New checks cfg and returns a broker ready to Serve.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if len(cfg.Listeners)+len(cfg.TLSListeners)+len(cfg.WSListeners)+len(cfg.WSSListeners) == 0 {
		return nil, errors.New("parent: no listener")
	}
	if len(cfg.TLSListeners)+len(cfg.WSSListeners) > 0 && (cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" || cfg.TLSConfig == nil) {
		return nil, errors.New("parent: TLS listeners need TLSCertFile, TLSKeyFile and TLSConfig")
	}
	b := &Broker{
		cfg:           cfg,
		log:           cfg.Log.With("role", "parent", "pid", os.Getpid()),
		events:        make(chan event, 1024),
		quit:          make(chan struct{}),
		done:          make(chan struct{}),
		childLogLevel: cfg.Child.LogLevel,
		children:      map[int]*childProc{},
		topics:        map[string]map[*childProc]int{},
		topicMessages: map[string]uint64{},
		idPrefix:      strconv.FormatInt(time.Now().UnixNano(), 36),
		replies:       map[string]*childProc{},
	}
	b.node = b.idPrefix
	if cfg.Cluster != nil {
		b.node = cfg.Cluster.Node()
	}
	b.admit = newAdmission(cfg.Limits, b.quit)
	if cfg.SpareChildren > 0 {
		b.spares = newSparePool(b, cfg.SpareChildren, cfg.MaxSpareChildren, cfg.SpareIdleTimeout)
	}
	if cfg.MetricsListener != nil {
		b.metrics = newMetrics(func() float64 { return float64(b.admit.count()) })
		b.registerSpareMetrics()
		b.registerClusterMetrics()
	}
	return b, nil
}

// Serve runs the broker until ctx is cancelled, then shuts down: it closes
// the listeners (client, control and metrics), tells every child to send
// its client an ERROR ("broker shutting down") and close, waits up to
// ShutdownTimeout for the children to exit, SIGKILLs the rest, reaps them
// all and removes the semaphore set. It returns nil after a clean
// shutdown; an error if the broker could not start, or the fatal error
// that stopped it. Serve must be called once.
func (b *Broker) Serve(ctx context.Context) error {
	defer close(b.done)
	profiling.StartFor("parent")
	sem, err := semaphore.Create(b.cfg.Slots)
	if err != nil {
		return fmt.Errorf("parent: create semaphore set: %w", err)
	}
	b.sem = sem
	if b.cfg.SemaphoreCreated != nil {
		b.cfg.SemaphoreCreated(sem.ID())
	}
	defer func() {
		if _, err := sem.Leave(); err != nil {
			b.log.Warn("leaving semaphore set", "err", err)
		}
		if err := sem.Remove(); err != nil && !errors.Is(err, semaphore.ErrRemoved) {
			b.log.Warn("removing semaphore set", "err", err)
		}
	}()
	b.cfg.Child.SemaphoreID = sem.ID()
	b.cfg.Child.Slots = sem.Slots()
	b.queues = ledger.New(ledgerHost{b}, sem, ledger.Config{
		MaxBytes: b.cfg.MaxQueueBytes, Jobs: b.cfg.Jobs, PersistAll: b.cfg.PersistAll,
		Relayed: b.cfg.Child.Limits.Relayed(), Log: b.log, Trace: b.cfg.Trace,
	})
	if b.cfg.Store != nil {
		if err := b.queues.OpenStore(ctx, b.cfg.Store, b.cfg.BrokerID, b.cfg.Lease); err != nil {
			return fmt.Errorf("parent: %w", err)
		}
	}

	var acceptors sync.WaitGroup
	for _, tl := range b.transportListeners() {
		acceptors.Add(1)
		go func() {
			defer acceptors.Done()
			b.acceptLoop(tl.l, tl.t)
		}()
	}
	if b.cfg.ControlListener != nil {
		go b.serveControl(b.cfg.ControlListener)
	}
	if b.spares != nil {
		go b.spares.run()
	}
	var metricsSrv *http.Server
	if b.metrics != nil {
		metricsSrv = b.metrics.serve(b.cfg.MetricsListener, b.log.Error)
	}
	lim := b.admit.current()
	b.log.Info("broker ready", "listen", listenerAddrs(b.cfg.Listeners), "semaphore_set", sem.ID(), "slots", sem.Slots(),
		"tls_listen", listenerAddrs(b.cfg.TLSListeners), "ws_listen", listenerAddrs(b.cfg.WSListeners), "wss_listen", listenerAddrs(b.cfg.WSSListeners), "max_clients", lim.MaxClients,
		"max_clients_per_ip", lim.MaxClientsPerIP, "accept_rate", lim.AcceptRate, "spare_children", b.cfg.SpareChildren, "max_spare_children", b.spares.maxSize())
	if b.cfg.Notifier != nil {
		if err := b.cfg.Notifier.Ready("accepting clients on " + listenerAddrs(b.allListeners())); err != nil {
			b.log.Warn("readiness notification failed", "err", err)
		}
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var remote <-chan cluster.Message // nil (never ready) without a cluster
	if b.cfg.Cluster != nil {
		remote = b.cfg.Cluster.Received()
	}
	var watchdog <-chan time.Time
	if b.cfg.WatchdogInterval > 0 && b.cfg.Notifier != nil {
		t := time.NewTicker(b.cfg.WatchdogInterval)
		defer t.Stop()
		watchdog = t.C
		b.pingWatchdog()
	}
	stop := func() {
		close(b.quit)
		for _, l := range b.allListeners() {
			l.Close()
		}
		if b.cfg.ControlListener != nil {
			b.cfg.ControlListener.Close()
		}
		if metricsSrv != nil {
			metricsSrv.Close()
		}
		if b.spares != nil {
			b.spares.close()
		}
		b.shutdown()
		acceptors.Wait()
		b.drainStartedAfterStop()
		if b.cfg.Cluster != nil {
			b.cfg.Cluster.Close()
		}
	}
	for {
		select {
		case <-ctx.Done():
			if b.cfg.Notifier != nil {
				_ = b.cfg.Notifier.Stopping()
			}
			stop()
			return nil
		case ev := <-b.events:
			b.handle(ev)
		case <-tick.C:
			b.onTick()
		case <-b.queues.WakeC():
			b.queues.OnWake(time.Now())
		case m := <-remote:
			b.onRemote(m)
		case <-watchdog:
			b.pingWatchdog()
		}
		b.flushOutboxes()
		if b.fatalErr != nil {
			stop()
			return b.fatalErr
		}
	}
}

// pingWatchdog tells the service manager the event loop is alive.
func (b *Broker) pingWatchdog() {
	if err := b.cfg.Notifier.Watchdog(); err != nil {
		b.log.Warn("watchdog notification failed", "err", err)
	}
}

// Reload applies s while every client stays connected: new limits and the
// children's log level apply to clients that connect from now on. It
// blocks until the event loop has applied s, and returns an error only if
// the broker is not running (Serve has not started the loop yet, or has
// returned). The caller sends the RELOADING=1/READY=1 notifications around
// it and sets the parent's own log level.
func (b *Broker) Reload(ctx context.Context, s Settings) error {
	ev := evReload{s: s, done: make(chan struct{})}
	select {
	case b.events <- ev:
	case <-b.done:
		return errors.New("parent: reload: broker stopped")
	case <-ctx.Done():
		return fmt.Errorf("parent: reload: %w", ctx.Err())
	}
	select {
	case <-ev.done:
		return nil
	case <-b.done:
		return errors.New("parent: reload: broker stopped")
	case <-ctx.Done():
		return fmt.Errorf("parent: reload: %w", ctx.Err())
	}
}

// applyReload installs reloaded settings. Event loop only.
func (b *Broker) applyReload(s Settings) {
	b.admit.setLimits(s.Limits)
	if b.spares != nil {
		b.spares.refill() // a higher MaxClients may leave room for spares
	}
	if s.ChildLogLevel != "" {
		b.liveMu.Lock()
		b.childLogLevel = s.ChildLogLevel
		b.liveMu.Unlock()
	}
	b.log.Info("reloaded", "max_clients", s.Limits.MaxClients, "max_clients_per_ip", s.Limits.MaxClientsPerIP,
		"accept_rate", s.Limits.AcceptRate, "accept_burst", s.Limits.AcceptBurst, "child_log_level", s.ChildLogLevel,
		"clients", len(b.children))
}

// fatal records an error the broker cannot continue after; Serve shuts
// down and returns it.
func (b *Broker) fatal(err error) {
	if b.fatalErr == nil {
		b.fatalErr = err
	}
}

func listenerAddrs(ls []net.Listener) string {
	s := ""
	for i, l := range ls {
		if i > 0 {
			s += ","
		}
		s += l.Addr().String()
	}
	return s
}

// allListeners returns the client listeners, of every transport.
func (b *Broker) allListeners() []net.Listener {
	var out []net.Listener
	for _, tl := range b.transportListeners() {
		out = append(out, tl.l)
	}
	return out
}

// transportListener is a client listener and the transport of its clients.
type transportListener struct {
	l net.Listener
	t ipc.Transport
}

// transportListeners returns the client listeners with their transports.
func (b *Broker) transportListeners() []transportListener {
	var out []transportListener
	for _, set := range []struct {
		ls []net.Listener
		t  ipc.Transport
	}{{b.cfg.Listeners, ipc.TransportTCP}, {b.cfg.TLSListeners, ipc.TransportTLS}, {b.cfg.WSListeners, ipc.TransportWS}, {b.cfg.WSSListeners, ipc.TransportWSS}} {
		for _, l := range set.ls {
			out = append(out, transportListener{l, set.t})
		}
	}
	return out
}

// acceptLoop accepts clients and spawns a child for each. It runs in its
// own goroutine because spawning costs a few milliseconds (fork, exec, Go
// runtime start), which the event loop must not spend.
//
// Before anything is spawned the admission limits decide (see Limits): a
// client over MaxClients or MaxClientsPerIP gets an ERROR frame and is
// closed; otherwise the client goes to a waiting spare child (spares.go),
// or the loop waits until the spawn rate allows another child. While it waits it accepts nothing, so a flood queues in the
// kernel's listen backlog, where it costs the broker nothing.
func (b *Broker) acceptLoop(l net.Listener, transport ipc.Transport) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				b.log.Warn("accept failed; pausing", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			b.log.Error("accept failed", "err", err)
			return
		}
		ip := remoteIP(conn)
		if msg, reason := b.admit.admit(ip); msg != "" {
			if b.metrics != nil {
				b.metrics.countRefused(reason)
			}
			if !b.admit.startRefusal() {
				// Too many refusals under way: no ERROR frame for this one.
				b.refusals.warn(b.log, reason+"_no_error_frame", conn.RemoteAddr().String(), msg+"; closed without an ERROR frame: too many refusals in progress")
				conn.Close()
				continue
			}
			b.refusals.warn(b.log, reason, conn.RemoteAddr().String(), msg)
			b.refuse(conn, msg, transport)
			continue
		}
		c, err := b.childFor(conn, transport)
		if err != nil {
			b.admit.release(ip)
			if b.metrics != nil {
				b.metrics.spawnErrors.Inc()
			}
			b.log.Error("cannot start a child for a client", "client", conn.RemoteAddr().String(), "err", err)
			continue
		}
		if c == nil { // stopping
			b.admit.release(ip)
			continue
		}
		c.ip = ip
		if b.metrics != nil {
			b.metrics.accepted[transport].Inc()
		}
		b.events <- evChildStarted{c}
	}
}

// childFor gives an admitted client its child: a waiting spare if there is
// one, else a child started now, when the spawn rate allows. It closes
// conn (the child has its own copy) and returns nil, nil if the broker
// began stopping while it waited.
func (b *Broker) childFor(conn net.Conn, transport ipc.Transport) (*childProc, error) {
	if b.spares != nil {
		if s := b.spares.take(); s != nil {
			c, err := b.handOff(s, conn, transport)
			if err == nil {
				conn.Close()
				return c, nil
			}
			b.log.Warn("handoff to a spare failed; starting a child for the client", "client", conn.RemoteAddr().String(), "err", err)
		}
	}
	if !b.admit.waitToSpawn() {
		conn.Close()
		return nil, nil
	}
	c, err := b.spawn(conn, transport)
	if err == nil && b.metrics != nil {
		b.metrics.spawns.Inc()
	}
	return c, err
}

// refuse answers a client the broker will not serve with an ERROR frame
// and closes it, in a goroutine of its own (at most maxRefusals at once;
// beyond that the accept loop closes the connection without an ERROR). No child is
// spawned. A TLS client gets its ERROR over TLS, so the parent does that
// one handshake itself.
//
// The ERROR is written at once, but the end of the stream only follows
// the client's first frame (its CONNECT; or refuseConnectWait): a client
// library that reads while it writes its CONNECT (stomp.py) would
// otherwise see the connection end before it had sent CONNECT and report
// that instead of the ERROR. What the client sent is read before the
// socket is closed, so the kernel does not answer unread data with a reset
// that could discard the ERROR before the client reads it. Everything is
// bounded by refuseTimeout.
//
// A WebSocket client (ws, wss) gets an HTTP 503 with the message instead:
// it cannot read a STOMP frame before its upgrade.
//
// The caller has reserved a refusal place (admission.startRefusal).
func (b *Broker) refuse(conn net.Conn, message string, transport ipc.Transport) {
	go func() {
		defer b.admit.endRefusal()
		defer conn.Close()
		start := time.Now()
		_ = conn.SetDeadline(start.Add(refuseTimeout))
		tcp, _ := conn.(*net.TCPConn)
		rw := conn
		var tc *tls.Conn
		if transport.UsesTLS() {
			tc = tls.Server(conn, b.cfg.TLSConfig)
			if tc.Handshake() != nil {
				return
			}
			rw = tc
		}
		in := io.LimitReader(rw, refuseReadMax)
		if transport.IsWebSocket() {
			_ = conn.SetReadDeadline(start.Add(refuseConnectWait))
			readRequestHead(in)
			body := message + "\n"
			if _, err := fmt.Fprintf(rw, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body); err != nil {
				return
			}
		} else {
			if _, err := rw.Write(stompwire.AppendFrame(nil, stompwire.ErrorFrame(message, "", ""), stompwire.V12)); err != nil {
				return
			}
			_ = conn.SetReadDeadline(start.Add(refuseConnectWait))
			readFirstFrame(in)
		}
		if tc != nil {
			_ = tc.CloseWrite() // close_notify; the TCP half-close follows
		}
		if tcp != nil {
			_ = tcp.CloseWrite()
		}
		_ = conn.SetReadDeadline(start.Add(refuseTimeout))
		_, _ = io.Copy(io.Discard, in)
	}()
}

// readFirstFrame reads r up to the end of the first STOMP frame (its NUL
// byte), the end of the stream or a read error (a deadline).
func readFirstFrame(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if bytes.IndexByte(buf[:n], 0) >= 0 || err != nil {
			return
		}
	}
}

// readRequestHead reads r up to the end of an HTTP request head (an empty
// line), the end of the stream or a read error (a deadline).
func readRequestHead(r io.Reader) {
	var seen []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		seen = append(seen, buf[:n]...)
		if bytes.Contains(seen, []byte("\r\n\r\n")) || err != nil {
			return
		}
	}
}

// handle applies one event and writes the records it queued for children.
// It runs only on the event loop.
func (b *Broker) handle(ev event) {
	defer b.flushOutboxes()
	switch ev := ev.(type) {
	case evChildStarted:
		c := ev.c
		b.children[c.pid] = c
		go c.out.run(c.conn)
		go b.readChild(c)
		b.log.Debug("client connected", "client", c.addr, "child_pid", c.pid)
		if b.stopping {
			b.tellToClose(c, stompwire.ErrTextShuttingDown)
		}
	case evChildRecords:
		if ev.c.gone {
			return
		}
		if err := b.applyRecords(ev.c, ev.batch); err != nil {
			b.log.Error("child broke the ipc protocol; killing it", "child_pid", ev.c.pid, "client", ev.c.addr, "err", err)
			ev.c.kill()
		}
	case evChildGone:
		b.childGone(ev.c, ev.err)
	case evApply:
		b.asyncPending--
		ev.apply()
	case evControl:
		ev.reply <- b.answer(ev.request)
	case evDisconnect:
		ev.reply <- b.disconnect(ev.pid)
	case evReload:
		b.applyReload(ev.s)
		close(ev.done)
	}
}

// readChild reads a child's batches until EOF, then reaps the child, and
// reports both to the event loop in that order. Because the socket is read
// to EOF first, everything the child wrote before dying is applied before
// its death is.
func (b *Broker) readChild(c *childProc) {
	var readErr error
	for {
		batch, err := c.conn.ReadBatch()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
				c.kill()
			}
			break
		}
		b.events <- evChildRecords{c: c, batch: append([]byte(nil), batch...)}
	}
	c.out.close()
	waitErr := c.cmd.Wait()
	c.conn.Close()
	if readErr == nil {
		readErr = waitErr
	}
	b.events <- evChildGone{c: c, err: readErr}
}

// childGone forgets a dead child: its subscriptions leave the routing
// index and the queue ledger takes back every message it held.
func (b *Broker) childGone(c *childProc, err error) {
	b.admit.release(c.ip)
	if b.spares != nil {
		b.spares.refill() // its slot under MaxClients may now hold a spare
	}
	b.forgetChild(c)
	lvl := slog.LevelDebug
	if err != nil && c.cmd.ProcessState != nil && !c.cmd.ProcessState.Success() && !c.told {
		lvl = slog.LevelWarn
		if !c.killed && b.metrics != nil {
			b.metrics.childCrashes.Inc()
		}
	}
	b.log.Log(context.Background(), lvl, "client gone", "client", c.addr, "child_pid", c.pid, "exit", exitDescription(c, err))
}

// forgetChild removes a dead child from the children table, the routing
// index and the queue ledger.
func (b *Broker) forgetChild(c *childProc) {
	c.gone = true
	delete(b.children, c.pid)
	if c.replyKey != "" {
		delete(b.replies, c.replyKey) // its temporary queues go with it
	}
	// First the offers the child may have won but not claimed (their
	// tokens came back through SEM_UNDO), then what it held: re-offering
	// in the other order would re-arm the fresh offers of its requeued
	// messages a second time.
	b.queues.ChildGone(c)
	for _, sub := range c.subs {
		b.removeSubscription(c, sub)
	}
}

func exitDescription(c *childProc, err error) string {
	if c.cmd.ProcessState != nil {
		return c.cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "unknown"
}

func (b *Broker) onTick() {
	now := time.Now()
	for _, c := range b.children {
		if !c.killAt.IsZero() && now.After(c.killAt) {
			b.log.Warn("child did not close its client in time; killing it", "child_pid", c.pid, "client", c.addr)
			c.kill()
			c.killAt = time.Time{}
		}
	}
	b.queues.OnTick(now)
	b.refreshQueueMetrics()
}

// tellToClose asks a child to send its client an ERROR with reason and
// close; it is SIGKILLed if it has not exited after the grace period.
func (b *Broker) tellToClose(c *childProc, reason string) {
	if c.told {
		return
	}
	c.told = true
	c.out.replace(ipc.AppendText(nil, ipc.KindShutdown, reason))
	c.killAt = time.Now().Add(b.cfg.SlowConsumerGrace)
}

// shutdown tells every child to close and waits for all of them, SIGKILLing
// the ones that outstay ShutdownTimeout.
func (b *Broker) shutdown() {
	b.stopping = true
	b.log.Info("shutting down", "clients", len(b.children))
	b.queues.StopNotifications() // its waiter is an async call the loop below would wait for
	for _, c := range b.children {
		b.tellToClose(c, stompwire.ErrTextShuttingDown)
	}
	deadline := time.NewTimer(b.cfg.ShutdownTimeout)
	defer deadline.Stop()
	for len(b.children) > 0 || b.asyncPending > 0 {
		select {
		case ev := <-b.events:
			b.handle(ev)
		case <-deadline.C:
			for _, c := range b.children {
				b.log.Warn("child still running at shutdown; killing it", "child_pid", c.pid)
				c.kill()
			}
			deadline.Reset(time.Hour)
		}
	}
	b.queues.Close(func() {
		for b.asyncPending > 0 {
			b.handle(<-b.events)
		}
	})
}

// drainStartedAfterStop handles children that an accept loop started while
// the broker was shutting down: they are told to close and reaped.
func (b *Broker) drainStartedAfterStop() {
	for {
		select {
		case ev := <-b.events:
			b.handle(ev)
		default:
			if len(b.children) == 0 {
				return
			}
			b.handle(<-b.events)
		}
	}
}

// maxRecord bounds the size of one ipc record from a child: the largest
// frame a client may send, plus room for the record header.
func (b *Broker) maxRecord() int {
	return ipc.MaxRecordFor(b.cfg.Child.Limits)
}

// limitsWithDefaults fills zero fields of l with stompwire's defaults.
func limitsWithDefaults(l stompwire.Limits) stompwire.Limits {
	d := stompwire.DefaultLimits()
	if l.MaxHeaderLines <= 0 {
		l.MaxHeaderLines = d.MaxHeaderLines
	}
	if l.MaxHeaderLineBytes <= 0 {
		l.MaxHeaderLineBytes = d.MaxHeaderLineBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	return l
}
