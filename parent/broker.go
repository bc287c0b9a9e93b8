package parent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/child"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/semaphore"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Notifier receives the broker's life-cycle events (systemd's sd_notify).
// A nil Notifier is allowed.
type Notifier interface {
	Ready(status string) error
	Stopping() error
}

// Config is everything the parent needs. Zero values get the defaults
// noted on each field.
type Config struct {
	// Listeners are the sockets to accept clients on (from --listen or
	// systemd socket activation). The broker closes them on shutdown.
	Listeners []net.Listener
	// Child is the template of every child's configuration.
	Child child.Config
	// Slots is the number of offer slots in the semaphore set (default 256).
	Slots int
	// OutboxLimit is how many bytes may wait for one child before it is
	// declared a slow consumer and disconnected (default 8 MiB).
	OutboxLimit int
	// MaxClients caps connected clients; over it a new client gets an
	// ERROR frame and is closed without a child being spawned (0 = no cap).
	MaxClients int
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
	c.Child.Limits = limitsWithDefaults(c.Child.Limits)
	c.Child.Trace = c.Trace
}

// Broker is the parent process's broker.
//
// # Ownership
//
// Everything below the "event loop state" line is owned by the goroutine
// running Serve's event loop and touched by no other goroutine. Other
// goroutines (one accept loop per listener, one reader and one writer per
// child) communicate with it only through the events channel and the
// children's outboxes. There are therefore no locks around broker state.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	events chan event
	sem    *semaphore.Set
	// clients counts live children; the accept loops read it to enforce
	// MaxClients before spawning.
	clients  atomic.Int64
	idPrefix string

	// --- event loop state ---
	children map[int]*childProc            // by pid
	topics   map[string]map[*childProc]int // destination → children with n subscriptions to it
	queues   *ledger
	nextMsg  uint64
	stopping bool
	// fatalErr, once set, makes Serve shut down and return it.
	fatalErr error
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
type evTick struct{}

// New checks cfg and returns a broker ready to Serve.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("parent: no listener")
	}
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Log.With("role", "parent", "pid", os.Getpid()),
		events:   make(chan event, 1024),
		children: map[int]*childProc{},
		topics:   map[string]map[*childProc]int{},
		idPrefix: strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	return b, nil
}

// Serve runs the broker until ctx is cancelled, then shuts down: it closes
// the listeners, tells every child to send its client an ERROR
// ("broker shutting down") and close, waits up to ShutdownTimeout for the
// children to exit, SIGKILLs the rest, reaps them all and removes the
// semaphore set. It returns nil after a clean shutdown; an error if the
// broker could not start.
func (b *Broker) Serve(ctx context.Context) error {
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
	b.queues = newLedger(b, sem, b.cfg.MaxQueueBytes)

	var acceptors sync.WaitGroup
	for _, l := range b.cfg.Listeners {
		acceptors.Add(1)
		go func() {
			defer acceptors.Done()
			b.acceptLoop(l)
		}()
	}
	b.log.Info("broker ready", "listen", listenerAddrs(b.cfg.Listeners), "semaphore_set", sem.ID(), "slots", sem.Slots())
	if b.cfg.Notifier != nil {
		_ = b.cfg.Notifier.Ready("accepting clients on " + listenerAddrs(b.cfg.Listeners))
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if b.cfg.Notifier != nil {
				_ = b.cfg.Notifier.Stopping()
			}
			for _, l := range b.cfg.Listeners {
				l.Close()
			}
			b.shutdown()
			acceptors.Wait()
			b.drainStartedAfterStop()
			return nil
		case ev := <-b.events:
			b.handle(ev)
		case <-tick.C:
			b.onTick()
		}
		if b.fatalErr != nil {
			for _, l := range b.cfg.Listeners {
				l.Close()
			}
			b.shutdown()
			acceptors.Wait()
			b.drainStartedAfterStop()
			return b.fatalErr
		}
	}
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

// acceptLoop accepts clients and spawns a child for each. It runs in its
// own goroutine because spawning costs a few milliseconds (fork, exec, Go
// runtime start), which the event loop must not spend.
func (b *Broker) acceptLoop(l net.Listener) {
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
		if max := b.cfg.MaxClients; max > 0 && b.clients.Load() >= int64(max) {
			go refuse(conn, "too many clients (limit "+strconv.Itoa(max)+")")
			continue
		}
		b.clients.Add(1)
		c, err := b.spawn(conn)
		if err != nil {
			b.clients.Add(-1)
			b.log.Error("cannot start a child for a client", "client", conn.RemoteAddr().String(), "err", err)
			continue
		}
		b.events <- evChildStarted{c}
	}
}

// refuse answers a client the broker will not serve with an ERROR frame and
// closes it. No child is spawned.
func refuse(conn net.Conn, message string) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	f := frame.New(frame.ERROR, frame.Message, message)
	_, _ = conn.Write(stompwire.AppendFrame(nil, f, stompwire.V12))
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
	}
}

// handle applies one event. It runs only on the event loop.
func (b *Broker) handle(ev event) {
	switch ev := ev.(type) {
	case evChildStarted:
		c := ev.c
		b.children[c.pid] = c
		go c.out.run(c.conn)
		go b.readChild(c)
		b.log.Debug("client connected", "client", c.addr, "child_pid", c.pid)
		if b.stopping {
			b.tellToClose(c, "broker shutting down")
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
	b.clients.Add(-1)
	b.forgetChild(c)
	lvl := slog.LevelDebug
	if err != nil && c.cmd.ProcessState != nil && !c.cmd.ProcessState.Success() && !c.told {
		lvl = slog.LevelWarn
	}
	b.log.Log(context.Background(), lvl, "client gone", "client", c.addr, "child_pid", c.pid, "exit", exitDescription(c, err))
}

// forgetChild removes a dead child from the children table, the routing
// index and the queue ledger.
func (b *Broker) forgetChild(c *childProc) {
	c.gone = true
	delete(b.children, c.pid)
	for _, sub := range c.subs {
		b.removeSubscription(c, sub)
	}
	b.queues.childGone(c)
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
	b.queues.onTick(now)
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
	for _, c := range b.children {
		b.tellToClose(c, "broker shutting down")
	}
	deadline := time.NewTimer(b.cfg.ShutdownTimeout)
	defer deadline.Stop()
	for len(b.children) > 0 {
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
	l := b.cfg.Child.Limits
	return l.MaxBodyBytes + l.MaxHeaderLines*l.MaxHeaderLineBytes + 4096
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
