package parent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stomp-broker/stomp-broker/ipc"
)

// Spare children (Apache prefork's MinSpareServers): the parent keeps
// Config.SpareChildren children started and waiting for a client, so a
// client does not wait for fork, exec and the Go runtime's start-up. Each
// is still a freshly exec'd process of the broker's own binary that serves
// exactly one client: on accept, the client socket is handed to a spare
// over its socketpair (ipc.Handoff, SCM_RIGHTS) and a replacement is
// started in the background.
//
// Bounds, so that a connection flood cannot turn spares into a fork bomb:
//   - at most one spare is being started at any time (the refiller is one
//     goroutine);
//   - a spare start takes a token of Limits.AcceptRate like any other
//     child start;
//   - spares count against Limits.MaxClients: clients + spares (waiting or
//     being started) never exceed it, and an accept that finds no waiting
//     spare waits for the one being started rather than starting a process
//     past the limit.
//
// The pool adapts to bursts (Apache's MaxSpareServers, turned round for
// processes that serve one client each and are never reused): every client
// that finds no spare waiting, and so waits for a process start, raises the
// pool's size by one, up to Config.MaxSpareChildren, so the next burst of
// that size finds its spares waiting. Once the pool has gone
// Config.SpareIdleTimeout without such a client, it halves what it grew by,
// and again after each further timeout, down to Config.SpareChildren; the
// oldest spares above the new size retire (EOF on their socketpair). The
// refill is the same bounded one-at-a-time refiller whatever the size, so a
// larger pool costs a flood nothing it could not already take.
//
// Replacements keep out of the clients' way: one is started only after a
// pause in connects (spareQuiet) and, while a spare is still waiting, a
// pause in the clients' traffic (spareLull, bounded by spareBusyDefer).
//
// A spare holds nothing but its socketpair end and stdio until the
// handoff. One that dies while waiting is reaped and replaced; spares exit
// when they read EOF on their socketpair, which is what they see when the
// parent stops or dies.

// spareRetry is how long the refiller pauses after a failed spare start.
const spareRetry = time.Second

// defaultSpareIdleTimeout is Config.SpareIdleTimeout's default.
const defaultSpareIdleTimeout = time.Minute

// spareQuiet is how long the refiller waits after the last handoff before
// it starts a replacement: a process start costs several ms of CPU, which
// during a burst of connects would compete with the clients just handed
// to spares (their CONNECTs) and with the children started on accept.
// Measured on 2 cores: 8 clients at once with 8 spares, p50 to CONNECTED
// 8–28 ms with the refill at once, 2–5 ms with this pause (p99 25–29 ms
// and 3.6–5 ms); one at a time, p50 1.5–5 ms and 0.9–1.8 ms.
const spareQuiet = 20 * time.Millisecond

// spareGrowQuiet is how long the refiller waits after the last client
// arrived (handed a spare or not) before it starts a spare above
// Config.SpareChildren, the part the pool grew by: those are for the next
// burst, and started while clients keep arriving they only compete with
// them. Measured with 1,000 clients, 16 at a time, on 2 cores: starting
// them at once (after spareQuiet) cut the sustained connection rate from
// 504–579/s to 317–546/s.
const spareGrowQuiet = time.Second

// spareLull and spareBusyDefer bound how long a refill waits for the
// clients' traffic to pause while spares are still waiting: the refiller
// starts a spare only once the event loop has handled no child's records
// other than HELLO and SYNC (a client's arrival and leaving) for spareLull, or spareBusyDefer after the handoff that called for it,
// whichever comes first; a pool with no spare left waiting refills at once
// (after spareQuiet), so a burst of connects still gets its spares. A spare
// start is an exec and a Go runtime start, several ms of CPU on a box of 2
// cores: started as the clients just handed spares begin their message
// stream, the refill delayed that stream. Measured at a steady 5,000
// msgs/s, 2 producers and 2 consumers on 2 cores: see the commit that
// added it. (Running the start at a lower CPU priority and raising it back
// at the handoff is not open to an unprivileged broker: lowering a nice
// value needs CAP_SYS_NICE or an RLIMIT_NICE above 0, and leaving SCHED_IDLE
// needs the same; the usual hard RLIMIT_NICE is 0.)
const (
	spareLull      = 50 * time.Millisecond
	spareBusyDefer = 10 * time.Second
)

// spare is one waiting spare child. While it waits, a watcher goroutine
// reads its socketpair to notice its death; take stops the watcher before
// handing the spare a client.
type spare struct {
	pid     int
	cmd     *exec.Cmd
	conn    *ipc.Conn
	started time.Time
	watched chan struct{} // closed when the watcher returned
	dead    bool          // the spare died while waiting (set before watched is closed)
}

// sparePool holds the waiting spares. The accept loops take from it, its
// refiller goroutine adds to it, the watchers remove dead ones; the control
// socket lists it. It has its own lock; it takes the admission lock inside
// its own, never the other way round.
type sparePool struct {
	b           *Broker
	min, max    int           // the pool's size ranges over [min, max]
	idleTimeout time.Duration // without a miss for this long, the pool shrinks

	mu       sync.Mutex
	want     int       // the pool's size now: spares waiting or being started
	lastMiss time.Time // when a client last found no spare waiting (or the last shrink)
	filled   bool      // the pool has held want spares once: misses before that do not count
	idle     []*spare
	starting int           // spares being started (0 or 1)
	changed  chan struct{} // closed and replaced whenever idle or starting changes
	closed   bool
	kick     chan struct{} // wakes the refiller (buffered, 1)
	lastTake time.Time     // when take last handed out a spare
	watchers sync.WaitGroup

	traffic atomic.Uint64 // batches of clients' traffic the event loop handled (noteTraffic)
}

// newSparePool returns a pool of lo spares that may grow to hi (no growth
// if hi <= lo) and shrinks back after idleTimeout (0: the default).
func newSparePool(b *Broker, lo, hi int, idleTimeout time.Duration) *sparePool {
	if idleTimeout <= 0 {
		idleTimeout = defaultSpareIdleTimeout
	}
	return &sparePool{b: b, min: lo, max: max(lo, hi), idleTimeout: idleTimeout, want: lo,
		changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// maxSize returns the most spares the pool may grow to; 0 for a nil pool.
func (p *sparePool) maxSize() int {
	if p == nil {
		return 0
	}
	return p.max
}

// size returns the number of spares the pool keeps now.
func (p *sparePool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.want
}

// missLocked records a client that found no spare waiting: the pool grows
// by one, up to max. A client that arrives while the pool is still being
// filled for the first time (the broker has just started) does not count.
// p.mu held.
func (p *sparePool) missLocked() {
	if !p.filled {
		return
	}
	p.lastMiss = time.Now()
	if p.want < p.max {
		p.want++
	}
}

// shrink halves what the pool grew by once idleTimeout has passed since the
// last miss (or the last shrink) and retires the oldest waiting spares above
// the new size. It returns how long to wait before it is due again.
func (p *sparePool) shrink() time.Duration {
	p.mu.Lock()
	if p.closed || p.want <= p.min {
		p.mu.Unlock()
		return p.idleTimeout
	}
	if wait := time.Until(p.lastMiss.Add(p.idleTimeout)); wait > 0 {
		p.mu.Unlock()
		return wait
	}
	from := p.want
	p.want = p.min + (p.want-p.min)/2
	p.lastMiss = time.Now()
	var retire []*spare
	if n := len(p.idle) + p.starting - p.want; n > 0 {
		n = min(n, len(p.idle))
		// take hands out the newest, so the oldest retire.
		slices.SortFunc(p.idle, func(a, b *spare) int { return a.started.Compare(b.started) })
		retire = slices.Clone(p.idle[:n])
		p.idle = slices.Delete(p.idle, 0, n)
		p.changedLocked()
	}
	to := p.want
	p.mu.Unlock()
	for _, s := range retire {
		s.conn.Close() // EOF: the spare exits; its watcher reaps it
	}
	p.b.log.Info("spare pool shrinks after a quiet spell", "from", from, "to", to, "retired", len(retire), "quiet_for", p.idleTimeout)
	return p.idleTimeout
}

// refill wakes the refiller.
func (p *sparePool) refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// changedLocked wakes accept loops waiting in take. p.mu held.
func (p *sparePool) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// run is the refiller: it starts spares, one at a time, until the pool's
// size are waiting or the limits forbid more, and shrinks the pool when it
// is due. It returns when the broker stops.
func (p *sparePool) run() {
	p.refill()
	shrink := time.NewTimer(p.idleTimeout)
	defer shrink.Stop()
	for {
		select {
		case <-p.kick:
		case <-shrink.C:
			shrink.Reset(p.shrink())
			continue
		case <-p.b.quit:
			return
		}
		for p.reserve() {
			if !p.waitQuiet() || !p.waitLull() || !p.b.admit.waitToSpawn() {
				p.unreserve()
				return
			}
			s, err := p.b.startSpare()
			p.mu.Lock()
			p.starting--
			if err == nil && !p.closed {
				p.idle = append(p.idle, s)
				p.filled = p.filled || len(p.idle) >= p.want
				p.watchers.Add(1)
				go p.watch(s)
			}
			p.changedLocked()
			closed := p.closed
			p.mu.Unlock()
			if err == nil && closed {
				s.conn.Close() // EOF: the spare exits
				_ = s.cmd.Wait()
			}
			if err != nil {
				if p.b.metrics != nil {
					p.b.metrics.spawnErrors.Inc()
				}
				p.b.log.Error("cannot start a spare child", "err", err)
				select {
				case <-time.After(spareRetry):
				case <-p.b.quit:
					return
				}
			}
		}
	}
}

// waitQuiet waits until spareQuiet has passed since the last handoff, or,
// for a spare above the base size, spareGrowQuiet since the last client
// arrived; false if the broker began stopping meanwhile. The spare being
// started is already counted in p.starting.
func (p *sparePool) waitQuiet() bool {
	for {
		p.mu.Lock()
		wait := time.Until(p.lastTake.Add(spareQuiet))
		if len(p.idle)+p.starting > p.min {
			last := p.lastTake
			if p.lastMiss.After(last) {
				last = p.lastMiss
			}
			wait = time.Until(last.Add(spareGrowQuiet))
		}
		p.mu.Unlock()
		if wait <= 0 {
			return true
		}
		select {
		case <-time.After(wait):
		case <-p.b.quit:
			return false
		}
	}
}

// noteTraffic counts one batch of a child's records with clients' traffic
// in it (frames, CLAIMs, ACKs, NACKs: not just HELLO or SYNC), handled by
// the event loop; waitLull watches the count. Safe on a nil pool.
func (p *sparePool) noteTraffic() {
	if p != nil {
		p.traffic.Add(1)
	}
}

// waitLull waits, while at least one spare is waiting, until the event
// loop has handled no child's records for spareLull or spareBusyDefer has
// passed since the last handoff (see spareLull); it returns at once when
// no spare is left waiting, and false if the broker began stopping.
func (p *sparePool) waitLull() bool {
	lull := time.NewTimer(spareLull)
	defer lull.Stop()
	seen := p.traffic.Load()
	for {
		p.mu.Lock()
		empty := len(p.idle) == 0
		deadline := p.lastTake.Add(spareBusyDefer)
		ch := p.changed
		p.mu.Unlock()
		if empty || !time.Now().Before(deadline) {
			return true
		}
		select {
		case <-ch: // a take may have emptied the pool
		case <-lull.C:
			n := p.traffic.Load()
			if n == seen {
				return true
			}
			seen = n
			lull.Reset(min(spareLull, time.Until(deadline)))
		case <-p.b.quit:
			return false
		}
	}
}

// reserve counts one more spare as being started if one is needed and the
// limits allow it.
func (p *sparePool) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.starting > 0 || len(p.idle)+p.starting >= p.want {
		return false
	}
	if max := p.b.admit.current().MaxClients; max > 0 && p.b.admit.count()+len(p.idle)+p.starting >= max {
		return false
	}
	p.starting++
	return true
}

func (p *sparePool) unreserve() {
	p.mu.Lock()
	p.starting--
	p.changedLocked()
	p.mu.Unlock()
}

// take returns a waiting spare, its watcher stopped, for a client already
// admitted; nil if there is none and the caller may start a child itself.
// If none waits but one is being started and a child started now would
// take clients plus spares past MaxClients, take waits for that spare.
func (p *sparePool) take() *spare {
	for {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			s := p.idle[n-1] // the newest: its pages are the likeliest in cache
			p.idle = p.idle[:n-1]
			p.lastTake = time.Now()
			p.changedLocked()
			p.mu.Unlock()
			p.refill()
			if p.claim(s) {
				return s
			}
			continue
		}
		max := p.b.admit.current().MaxClients
		if p.closed || p.starting == 0 || max <= 0 || p.b.admit.count()+p.starting <= max {
			if !p.closed {
				p.missLocked()
			}
			p.mu.Unlock()
			p.refill()
			return nil
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.b.quit:
			return nil
		}
	}
}

// claim stops s's watcher; false if s died meanwhile (the watcher reaped it).
func (p *sparePool) claim(s *spare) bool {
	_ = s.conn.SetReadDeadline(time.Unix(1, 0))
	<-s.watched
	if s.dead {
		return false
	}
	_ = s.conn.SetReadDeadline(time.Time{})
	return true
}

// watch waits for a spare's death while it waits for a client: a spare
// sends nothing before its handoff, so a read returns only at its EOF (it
// died), on a protocol breach (it is killed), or at the deadline claim sets.
func (p *sparePool) watch(s *spare) {
	defer p.watchers.Done()
	_, err := s.conn.ReadBatch()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		close(s.watched)
		return
	}
	if err == nil || !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
	}
	p.mu.Lock()
	wasIdle := slices.Contains(p.idle, s)
	p.idle = slices.DeleteFunc(p.idle, func(x *spare) bool { return x == s })
	p.changedLocked()
	closed := p.closed
	p.mu.Unlock()
	waitErr := s.cmd.Wait()
	s.conn.Close()
	s.dead = true
	close(s.watched)
	if !closed && wasIdle {
		p.b.log.Warn("spare child died while waiting; starting another", "child_pid", s.pid, "exit", describeExit(s.cmd, waitErr))
		p.refill()
	}
}

// close stops the pool when the broker stops: every waiting spare gets EOF
// on its socketpair and exits; close waits until they are reaped.
func (p *sparePool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.changedLocked()
	p.mu.Unlock()
	for _, s := range idle {
		s.conn.Close() // the watcher reaps it
	}
	p.watchers.Wait()
}

// list returns the waiting spares, oldest first.
func (p *sparePool) list() []*spare {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.idle)
	slices.SortFunc(out, func(a, b *spare) int { return a.started.Compare(b.started) })
	return out
}

// count returns the number of spares waiting or being started.
func (p *sparePool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) + p.starting
}

// startSpare starts one spare child.
func (b *Broker) startSpare() (*spare, error) {
	cfg := b.cfg.Child
	cfg.Spare = true
	cfg.LogLevel = b.currentChildLogLevel()
	if len(b.cfg.TLSListeners)+len(b.cfg.WSSListeners) > 0 {
		// Used only if its client turns out to be a TLS one (ipc.Handoff.Apply).
		cfg.TLSCertFile, cfg.TLSKeyFile = b.cfg.TLSCertFile, b.cfg.TLSKeyFile
	}
	cmd, conn, err := b.startChild(cfg, spareTitle(), nil)
	if err != nil {
		return nil, fmt.Errorf("spare: %w", err)
	}
	if b.metrics != nil {
		b.metrics.spawns.Inc()
	}
	return &spare{pid: cmd.Process.Pid, cmd: cmd, conn: conn, started: time.Now(), watched: make(chan struct{})}, nil
}

// handOff gives an accepted client to spare s: the client socket and the
// per-client settings travel over s's socketpair in one packet, after which
// s is that client's child. The caller closes conn. On an error s is
// killed and reaped, and the caller can still start a child for conn.
func (b *Broker) handOff(s *spare, conn net.Conn, transport ipc.Transport) (*childProc, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("handoff: %T has no file descriptor", conn)
	}
	f, err := fileOf(sc)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	defer f.Close()
	addr := conn.RemoteAddr().String()
	now := time.Now()
	h := ipc.Handoff{ClientAddr: addr, Transport: transport, LogLevel: b.currentChildLogLevel(), Accepted: now}
	if err := s.conn.SendHandoff(h, f); err != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		go func() {
			_ = s.cmd.Wait()
			s.conn.Close()
		}()
		return nil, fmt.Errorf("handoff to spare %d: %w", s.pid, err)
	}
	if b.cfg.Trace {
		b.log.Info("trace", "hop", ipc.HopHandoff, "client", addr, "transport", string(transport), "to_child_pid", s.pid, "spare_since", s.started)
	}
	return &childProc{
		pid:       s.pid,
		addr:      addr,
		transport: transport,
		started:   now,
		cmd:       s.cmd,
		conn:      s.conn,
		out:       newOutbox(b.cfg.OutboxLimit),
		subs:      map[string]*subscription{},
	}, nil
}

func describeExit(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "unknown"
}

// registerSpareMetrics adds the spare gauges to the metrics: spare child
// processes started and waiting for a client (or being started), and how
// many the pool keeps now (it grows after bursts and shrinks when quiet).
func (b *Broker) registerSpareMetrics() {
	b.metrics.set.NewGauge("stomp_broker_spare_children", func() float64 {
		if b.spares == nil {
			return 0
		}
		return float64(b.spares.count())
	})
	b.metrics.set.NewGauge("stomp_broker_spare_pool_size", func() float64 {
		if b.spares == nil {
			return 0
		}
		return float64(b.spares.size())
	})
}
