package parent

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Limits are the broker's defences against a connection flood ("fork-bomb
// safety"): every client costs a process, so the parent decides before it
// spawns anything. All of them can change on a reload (SIGHUP).
type Limits struct {
	// MaxClients caps connected clients (live children); over it a new
	// client gets an ERROR frame and is closed, no child is spawned
	// (0 = no cap).
	MaxClients int
	// MaxClientsPerIP caps connected clients from one IP address, so one
	// host cannot take every slot (0 = no cap).
	MaxClientsPerIP int
	// AcceptRate is how many children may be started per second, averaged
	// (0 = no limit). Connections beyond it wait in the kernel's listen
	// backlog: nothing is refused, spawning is only spread out.
	AcceptRate float64
	// AcceptBurst is how many children may be started at once before
	// AcceptRate applies (default: AcceptRate rounded up, at least 1).
	AcceptBurst int
}

// burst returns AcceptBurst with its default applied.
func (l Limits) burst() float64 {
	if l.AcceptBurst > 0 {
		return float64(l.AcceptBurst)
	}
	return max(1, float64(int(l.AcceptRate+0.999)))
}

// maxRefusals bounds the refusals in progress (an ERROR frame being written
// to a client over a limit). Each one holds a socket and a goroutine for up
// to refuseTimeout; past this many, further connections over a limit are
// closed at once without an ERROR frame, so a flood cannot turn refusals
// into the resource it exhausts.
const maxRefusals = 64

// refuseTimeout bounds the time spent refusing one client.
const refuseTimeout = 2 * time.Second

// refuseConnectWait bounds the wait for a refused client's CONNECT before
// the broker ends the stream (the ERROR frame is already written).
const refuseConnectWait = time.Second

// refuseReadMax bounds what is read from a refused client.
const refuseReadMax = 64 << 10

// Refusal reasons, as in log lines and the refused_total metric's label.
const (
	refusedMaxClients = "max_clients"
	refusedPerIP      = "per_ip"
)

// admission decides, in the accept loops, whether a new connection gets a
// child, and does the bookkeeping for the decision. It is the only broker
// state that is not owned by the event loop: the accept loops (one per
// listener) consult it before spawning, the event loop releases a slot
// when a child is reaped and installs new limits on a reload, so it is
// guarded by its own mutex.
type admission struct {
	mu      sync.Mutex
	limits  Limits
	clients int                      // admitted and not yet released
	perIP   map[netip.Addr]int       // the same, by client IP
	tokens  float64                  // AcceptRate's token bucket
	filled  time.Time                // when tokens was last topped up
	now     func() time.Time         // time.Now, or a test clock
	sleep   func(time.Duration) bool // sleeps; false if the broker is stopping

	refusing int // refusals in progress (see maxRefusals)
}

func newAdmission(l Limits, stop <-chan struct{}) *admission {
	a := &admission{limits: l, perIP: map[netip.Addr]int{}, now: time.Now}
	a.tokens = l.burst()
	a.filled = a.now()
	a.sleep = func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-stop:
			return false
		}
	}
	return a
}

// setLimits installs new limits (a reload). Clients already connected stay
// connected even if they are now over a limit; the limits apply to new
// clients. The token bucket keeps its tokens, capped at the new burst.
func (a *admission) setLimits(l Limits) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limits = l
	a.tokens = min(a.tokens, l.burst())
}

// current returns the limits in force.
func (a *admission) current() Limits {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limits
}

// admit counts a new client from ip in, or returns why it must be refused
// (a message for the ERROR frame) and the refusal's metric label. A client
// admitted here must be released exactly once: when its child is reaped,
// or at once if no child could be started.
func (a *admission) admit(ip netip.Addr) (message, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if max := a.limits.MaxClients; max > 0 && a.clients >= max {
		return stompwire.ErrTextTooManyClients(max), refusedMaxClients
	}
	if max := a.limits.MaxClientsPerIP; max > 0 && a.perIP[ip] >= max {
		return stompwire.ErrTextTooManyClientsFrom(ip.String(), max), refusedPerIP
	}
	a.clients++
	a.perIP[ip]++
	return "", ""
}

// release gives back the slot of a client admitted from ip.
func (a *admission) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clients--
	if a.perIP[ip]--; a.perIP[ip] <= 0 {
		delete(a.perIP, ip)
	}
}

// count returns the number of admitted clients.
func (a *admission) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clients
}

// waitToSpawn blocks the calling accept loop until AcceptRate allows one
// more child. It returns false if the broker began stopping meanwhile.
func (a *admission) waitToSpawn() bool {
	for {
		wait := a.takeToken()
		if wait == 0 {
			return true
		}
		if !a.sleep(wait) {
			return false
		}
	}
}

// takeToken takes a token and returns 0, or returns how long until one is
// due. Tokens accrue at AcceptRate per second up to the burst.
func (a *admission) takeToken() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	rate := a.limits.AcceptRate
	if rate <= 0 {
		return 0
	}
	now := a.now()
	a.tokens = min(a.limits.burst(), a.tokens+now.Sub(a.filled).Seconds()*rate)
	a.filled = now
	if a.tokens >= 1 {
		a.tokens--
		return 0
	}
	return time.Duration((1 - a.tokens) / rate * float64(time.Second))
}

// startRefusal reserves one of the maxRefusals refusal places; false means
// all are taken and the connection should just be closed.
func (a *admission) startRefusal() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refusing >= maxRefusals {
		return false
	}
	a.refusing++
	return true
}

// endRefusal gives back a refusal place.
func (a *admission) endRefusal() {
	a.mu.Lock()
	a.refusing--
	a.mu.Unlock()
}

// remoteIP returns the IP a connection comes from (IPv4-mapped IPv6
// addresses as IPv4), or the zero Addr if it has none (a unix socket), which
// then counts as one "address" of its own.
func remoteIP(conn net.Conn) netip.Addr {
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// refusalLog rate-limits the WARN lines about refused clients: at most one
// line per second per reason, which counts the refusals of that reason left
// out since the previous line (a flood must not turn into a flood of log
// lines; the refused_total metric counts every one). The accept loops share
// it, so it has its own lock.
type refusalLog struct {
	mu     sync.Mutex
	reason map[string]*refusalCount
	now    func() time.Time // time.Now if nil (tests set a clock)
}

type refusalCount struct {
	last       time.Time
	suppressed int
}

// refusalLogEvery is the shortest interval between two lines of one reason.
const refusalLogEvery = time.Second

// warn logs a refusal of client for reason (with message, the ERROR's
// text), unless a line of that reason was logged within refusalLogEvery.
func (r *refusalLog) warn(log *slog.Logger, reason, client, message string) {
	r.mu.Lock()
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	if r.reason == nil {
		r.reason = map[string]*refusalCount{}
	}
	c := r.reason[reason]
	if c == nil {
		c = &refusalCount{}
		r.reason[reason] = c
	}
	if !c.last.IsZero() && now.Sub(c.last) < refusalLogEvery {
		c.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := c.suppressed
	c.last, c.suppressed = now, 0
	r.mu.Unlock()
	log.Warn("client refused", "client", client, "reason", reason, "message", message, "suppressed", suppressed)
}
