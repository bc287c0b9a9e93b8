package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/ipc"
)

// waitSpares waits until the broker has n spare children and returns them.
func waitSpares(t *testing.T, b *brokertest.Broker, n int) []int {
	t.Helper()
	var pids []int
	poll.Eventually(t, 20*time.Second, fmt.Sprintf("%d spare children", n), func() bool {
		pids = b.Spares(t)
		return len(pids) == n
	})
	return pids
}

// startTime returns when pid started, from field 22 of /proc/PID/stat
// (clock ticks after boot) and btime in /proc/stat. Ticks are 1/100 s on
// Linux (USER_HZ).
func startTime(t *testing.T, pid int) time.Time {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; count from after it.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ticks, err := strconv.ParseInt(fields[22-3], 10, 64)
	if err != nil {
		t.Fatalf("stat of %d: %v", pid, err)
	}
	sys, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^btime (\d+)$`).FindSubmatch(sys)
	if m == nil {
		t.Fatal("no btime in /proc/stat")
	}
	btime, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return time.Unix(btime, 0).Add(time.Duration(ticks) * 10 * time.Millisecond)
}

// TestSpareServesAClientStartedBeforeIt: with spares, the process that
// serves a client was started before the client connected, renames itself
// in ps, and a replacement spare is started; --trace shows the handoff hop
// and `clients` lists the spares.
func TestSpareServesAClientStartedBeforeIt(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--spare-children", "2", "--trace", "--control-socket", sock, "--metrics-listen", metrics)
	spares := waitSpares(t, b, 2)
	waitMetric(t, metrics, "stomp_broker_spare_children", 2)
	waitMetric(t, metrics, "stomp_broker_clients", 0)
	for _, pid := range spares {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) != "stomp-spare\n" {
			t.Errorf("spare %d has comm %q, want stomp-spare", pid, comm)
		}
	}
	resp, err := control.Do(sock, control.RequestClients, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Clients) != 0 || len(resp.Spares) != 2 {
		t.Errorf("clients %d, spares %d listed; want 0 and 2", len(resp.Clients), len(resp.Spares))
	}
	// The start time has a 10 ms resolution: let it pass.
	time.Sleep(100 * time.Millisecond)

	connected := time.Now()
	r := b.Raw(t)
	r.Connect()
	addr := r.Conn.LocalAddr().String()
	pid := childServing(t, b, addr)
	if !slices.Contains(spares, pid) {
		t.Fatalf("client served by %d, not by one of the spares %v", pid, spares)
	}
	if st := startTime(t, pid); !st.Before(connected) {
		t.Errorf("serving process started at %v, not before the client connected at %v", st, connected)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) != "stomp-client\n" {
		t.Errorf("serving process has comm %q, want stomp-client", comm)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if want := "stomp-broker: client " + addr; strings.TrimRight(string(cmdline), "\x00") != want {
		t.Errorf("serving process's args line %q, want %q", cmdline, want)
	}
	// A replacement is started in the background.
	now := waitSpares(t, b, 2)
	if slices.Contains(now, pid) {
		t.Errorf("spares %v still list the serving process %d", now, pid)
	}
	b.WaitLog(t, `msg=trace .*hop="`+regexp.QuoteMeta(ipc.HopHandoff)+`".*to_child_pid=`+strconv.Itoa(pid), 5*time.Second)
	b.WaitLog(t, `msg=trace role=child .*hop="`+regexp.QuoteMeta(ipc.HopHandoff)+`"`, 5*time.Second)
	r.Send("SUBSCRIBE\nid:1\ndestination:/topic/spare\n\n\x00SEND\ndestination:/topic/spare\n\nvia a spare\x00")
	r.ExpectMessage("via a spare")

	waitMetric(t, metrics, "stomp_broker_spare_children", 2)
	waitMetric(t, metrics, "stomp_broker_clients", 1)
	resp, err = control.Do(sock, control.RequestClients, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Clients) != 1 || resp.Clients[0].PID != pid || len(resp.Spares) != 2 {
		t.Errorf("clients %+v, spares %+v; want client %d and 2 spares", resp.Clients, resp.Spares, pid)
	}
}

// connectBurst connects n clients at once and returns them; it fails the
// test unless every one gets CONNECTED.
func connectBurst(t *testing.T, b *brokertest.Broker, n int) []*brokertest.Raw {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	raws := make([]*brokertest.Raw, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", b.Addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			r := brokertest.NewRaw(t, c, fmt.Sprint("client ", i))
			r.Send("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00")
			f, err := r.Read(20 * time.Second)
			if err != nil || f.Command != frame.CONNECTED {
				errs <- fmt.Errorf("client %d: %v %v", i, f, err)
			}
			raws[i] = r
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return raws
}

// TestSpareBurstLargerThanThePool: 20 clients at once against 3 spares
// are all served, and the pool grows by the clients that found no spare
// waiting (--max-spare-children's default is above 20).
func TestSpareBurstLargerThanThePool(t *testing.T) {
	b := brokertest.Start(t, "--spare-children", "3")
	waitSpares(t, b, 3)
	const clients = 20
	connectBurst(t, b, clients)
	if n := len(brokerChildren(b.PID)); n != clients {
		t.Errorf("%d client processes, want %d", n, clients)
	}
	// Most of the 17 clients beyond the pool found no spare waiting (a
	// replacement ready in time serves one), and each of those grew it.
	poll.Eventually(t, 20*time.Second, "the pool grown past its 3 spares", func() bool {
		return len(b.Spares(t)) > 3
	})
}

// TestSparePoolGrowsAfterABurstAndShrinksBack: a burst larger than the pool
// grows it, never past --max-spare-children, so that the next burst of the
// grown size is served entirely by spares started before it; after
// --spare-idle-timeout with no client finding the pool empty the pool
// halves what it grew by, until it is back at --spare-children, and the
// clients connected meanwhile are not affected.
func TestSparePoolGrowsAfterABurstAndShrinksBack(t *testing.T) {
	const lo, hi = 2, 8
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--spare-children", strconv.Itoa(lo), "--max-spare-children", strconv.Itoa(hi),
		"--spare-idle-timeout", "6s", "--metrics-listen", metrics)
	waitSpares(t, b, lo)
	waitMetric(t, metrics, "stomp_broker_spare_pool_size", lo)

	// 16 clients against 2 spares: each one that finds no spare waiting
	// (most of them; a replacement ready in time serves one) grows the pool,
	// up to 8. The spares above 2 start a second after the burst.
	first := connectBurst(t, b, 16)
	grown := 0
	poll.Eventually(t, 5*time.Second, "the pool grown", func() bool {
		grown = int(scrape(t, metrics)["stomp_broker_spare_pool_size"])
		return grown > lo
	})
	if grown > hi {
		t.Fatalf("pool size %d after the burst, want at most %d", grown, hi)
	}
	spares := waitSpares(t, b, grown)

	// The next burst of that size is served by those spares, every one
	// started before it.
	burstStart := time.Now()
	second := connectBurst(t, b, grown)
	for _, r := range second {
		pid := childServing(t, b, r.Conn.LocalAddr().String())
		if !slices.Contains(spares, pid) {
			t.Errorf("client %s served by %d, not by one of the spares %v", r.Conn.LocalAddr(), pid, spares)
		} else if st := startTime(t, pid); !st.Before(burstStart) {
			t.Errorf("child %d started at %v, not before the burst (%v)", pid, st, burstStart)
		}
	}

	// Quiet: e.g. 8 -> 5 -> 3 -> 2, one halving per 6 s, the oldest spares
	// retiring.
	poll.Eventually(t, 40*time.Second, "the pool's size back at 2", func() bool {
		return scrape(t, metrics)["stomp_broker_spare_pool_size"] == lo
	})
	waitSpares(t, b, lo)
	b.WaitLog(t, fmt.Sprintf(`spare pool shrinks after a quiet spell.*from=%d to=%d`, grown, lo+(grown-lo)/2), 5*time.Second)
	if n, want := len(brokerChildren(b.PID)), len(first)+len(second); n != want {
		t.Errorf("%d client processes after the shrink, want all %d still connected", n, want)
	}
	r := first[0]
	r.Send("SUBSCRIBE\nid:1\ndestination:/topic/shrink\n\n\x00")
	syncRaw(t, r)
	second[0].Send("SEND\ndestination:/topic/shrink\n\nstill here\x00")
	r.ExpectMessage("still here")
}

// TestKilledSpareIsReplaced: kill -9 of a waiting spare starts another;
// the connected client does not notice.
func TestKilledSpareIsReplaced(t *testing.T) {
	b := brokertest.Start(t, "--spare-children", "2")
	r := b.Raw(t)
	r.Connect()
	r.Send("SUBSCRIBE\nid:1\ndestination:/topic/k\n\n\x00")
	syncRaw(t, r)
	spares := waitSpares(t, b, 2)
	victim := spares[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, []int{victim}, 5*time.Second)
	poll.Eventually(t, 20*time.Second, "a replacement spare", func() bool {
		now := b.Spares(t)
		return len(now) == 2 && !slices.Contains(now, victim)
	})
	b.WaitLog(t, `spare child died while waiting; starting another.*child_pid=`+strconv.Itoa(victim), 5*time.Second)
	r.Send("SEND\ndestination:/topic/k\n\nstill here\x00")
	r.ExpectMessage("still here")
}

// TestSparesDieWithTheParent: SIGKILL of the parent alone ends every
// spare (they read EOF on their socketpair).
func TestSparesDieWithTheParent(t *testing.T) {
	b := brokertest.Start(t, "--spare-children", "3")
	spares := waitSpares(t, b, 3)
	b.Signal(t, syscall.SIGKILL)
	waitGone(t, spares, 10*time.Second)
}

// TestSpareHoldsOnlyItsSocketpair: a waiting spare holds one socket, a
// unix one (its socketpair end, at fd 4 and as fd 3's placeholder): no
// client socket, no listener; its other descriptors are ones a client's
// child holds too (stdio, what the Go runtime opens). Once it serves a
// client, it holds what a child started for the client holds: the client's
// TCP socket and the socketpair.
func TestSpareHoldsOnlyItsSocketpair(t *testing.T) {
	b := brokertest.Start(t, "--spare-children", "1")
	r := b.Raw(t)
	r.Connect()
	child := childServing(t, b, r.Conn.LocalAddr().String())
	spare := waitSpares(t, b, 1)[0]

	spareFDs, childFDs := fdTargets(t, spare), fdTargets(t, child)
	var sockets []string
	for fd, target := range spareFDs {
		if strings.HasPrefix(target, "socket:") {
			if !slices.Contains(sockets, target) {
				sockets = append(sockets, target)
			}
			continue
		}
		if !slices.Contains(mapValues(childFDs), target) {
			t.Errorf("spare fd %d -> %s: a client's child holds nothing like it", fd, target)
		}
	}
	if len(sockets) != 1 {
		t.Fatalf("spare holds %d sockets %v, want 1 (its socketpair end); all: %v", len(sockets), sockets, spareFDs)
	}
	if n := countTCPSockets(t, spare); n != 0 {
		t.Errorf("spare holds %d TCP sockets, want none", n)
	}
	if !isUnixSocket(t, sockets[0]) {
		t.Errorf("spare's socket %s is not a unix socket", sockets[0])
	}
	if n := countTCPSockets(t, child); n != 1 {
		t.Errorf("client's child holds %d TCP sockets, want 1", n)
	}

	// The spare takes the next client.
	r2 := b.Raw(t)
	r2.Connect()
	if pid := childServing(t, b, r2.Conn.LocalAddr().String()); pid != spare {
		t.Fatalf("second client served by %d, not by the spare %d", pid, spare)
	}
	var servedUnix, servedTCP []string
	for _, target := range fdTargets(t, spare) {
		if !strings.HasPrefix(target, "socket:") || slices.Contains(servedUnix, target) || slices.Contains(servedTCP, target) {
			continue
		}
		if isUnixSocket(t, target) {
			servedUnix = append(servedUnix, target)
		} else {
			servedTCP = append(servedTCP, target)
		}
	}
	if len(servedUnix) != 1 || len(servedTCP) != 1 {
		t.Errorf("spare serving a client holds unix sockets %v and others %v, want one each (socketpair, client)", servedUnix, servedTCP)
	}
	if n := countTCPSockets(t, spare); n != 1 {
		t.Errorf("spare serving a client holds %d TCP sockets, want 1", n)
	}
}

func mapValues(m map[int]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// isUnixSocket reports whether target ("socket:[INODE]") is in /proc/net/unix.
func isUnixSocket(t *testing.T, target string) bool {
	t.Helper()
	inode := strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 6 && f[6] == inode {
			return true
		}
	}
	return false
}

// TestSpareFloodStaysBounded: a flood of connects with spares never takes
// the broker's processes (clients plus spares) past --max-clients.
func TestSpareFloodStaysBounded(t *testing.T) {
	const flood, maxClients = 200, 30
	b := brokertest.Start(t, "--spare-children", "8", "--max-clients", strconv.Itoa(maxClients),
		"--accept-rate", "200", "--accept-burst", "20", "--connect-timeout", "3s")
	waitSpares(t, b, 8)
	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		most := 0
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(2 * time.Millisecond):
				most = max(most, len(brokertest.Descendants(b.PID)))
			}
		}
	}()
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", b.Addr, 10*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	poll.Eventually(t, 20*time.Second, "the broker fills up to --max-clients", func() bool {
		return len(brokerChildren(b.PID)) >= maxClients
	})
	time.Sleep(200 * time.Millisecond) // a refill past the limit would show now
	close(stop)
	if p := <-peak; p > maxClients {
		t.Errorf("peak processes %d, want at most %d", p, maxClients)
	}
	if n := len(b.Spares(t)); n != 0 {
		t.Errorf("%d spares with the broker full, want 0", n)
	}
	for _, c := range conns {
		c.Close()
	}
	// Freed slots become spares again (at least the 8; more if the flood
	// grew the pool, never past --max-clients), and the broker serves.
	poll.Eventually(t, 20*time.Second, "8 or more spares again", func() bool {
		return len(b.Spares(t)) >= 8
	})
	if n := len(brokertest.Descendants(b.PID)); n > maxClients {
		t.Errorf("%d processes after the flood, want at most %d", n, maxClients)
	}
	b.Raw(t).Connect()
}

// TestTLSAndUsersThroughASpare: a TLS client with a users file is served
// by a spare, which does the TLS handshake and checks the login after the
// handoff.
func TestTLSAndUsersThroughASpare(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSignedCert(t, dir)
	b := usersBroker(t, "--spare-children", "2", "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	m := regexp.MustCompile(`tls_listen=(\S+)`).FindStringSubmatch(b.Logs())
	if m == nil {
		t.Fatalf("no tls_listen in the ready line\n%s", b.Logs())
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	for _, tt := range []struct {
		name, passcode string
		ok             bool
	}{
		{"right passcode", "wonderland", true},
		{"wrong passcode", "looking-glass", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spares := waitSpares(t, b, 2)
			sec := dialTLS(t, m[1], cfg)
			sec.Send("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\nlogin:alice\npasscode:" + tt.passcode + "\n\n\x00")
			if !tt.ok {
				sec.ExpectError("", "")
				return
			}
			sec.Expect(frame.CONNECTED)
			pid := childServing(t, b, sec.Conn.LocalAddr().String())
			if !slices.Contains(spares, pid) {
				t.Errorf("TLS client served by %d, not by one of the spares %v", pid, spares)
			}
			if n := countTCPSockets(t, pid); n != 1 {
				t.Errorf("serving process holds %d TCP sockets, want 1", n)
			}
		})
	}
	// A plain client of the same broker gets a spare too, without TLS.
	r := b.Raw(t)
	r.Send("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\nlogin:alice\npasscode:wonderland\n\n\x00")
	r.Expect(frame.CONNECTED)
}

// TestTwoHundredClientsFromOneHostOnDefaults: on the default limits and
// spare pool, 200 clients connecting at once from one host are all
// served.
func TestTwoHundredClientsFromOneHostOnDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 client processes")
	}
	const clients = 200
	b := brokertest.Start(t, "--spare-children", "8") // the default; brokertest would ask for 0
	waitSpares(t, b, 8)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", b.Addr, 30*time.Second)
			if err != nil {
				errs <- err
				return
			}
			r := brokertest.NewRaw(t, c, fmt.Sprint("client ", i))
			r.Send("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00")
			if f, err := r.Read(60 * time.Second); err != nil || f.Command != frame.CONNECTED {
				errs <- fmt.Errorf("client %d: %v %v", i, f, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(brokerChildren(b.PID)); !t.Failed() && n != clients {
		t.Errorf("%d client processes, want %d", n, clients)
	}
}

// TestSpareRefillWaitsForALullInTraffic: while a spare is still waiting, a
// replacement for the one a client took is started only once the clients'
// traffic pauses (a process start is several ms of CPU that would delay
// the message stream just begun), not 20 ms after the handoff; a pool left
// with no spare waiting refills at once, traffic or not.
func TestSpareRefillWaitsForALullInTraffic(t *testing.T) {
	b := brokertest.Start(t, "--spare-children", "3")
	waitSpares(t, b, 3)
	clients := connectBurst(t, b, 1)
	p := clients[0]

	// A SEND every few ms: the event loop never goes 50 ms without a record.
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				p.Send("SEND\ndestination:/queue/lull\n\nx\x00")
			}
		}
	}()
	stopTraffic := func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-sent
		}
	}
	defer stopTraffic()

	// Without the wait the replacement ran 20 ms after the handoff.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := len(b.Spares(t)); n != 2 {
			t.Fatalf("%d spares while the traffic runs, want the 2 left until it pauses", n)
		}
	}

	// Two more clients empty the pool: it refills at once, traffic or not.
	connectBurst(t, b, 2)
	poll.Eventually(t, 10*time.Second, "a spare started while the traffic runs", func() bool {
		return len(b.Spares(t)) >= 1
	})

	stopTraffic()
	waitSpares(t, b, 3)
}
