package integration

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// dialFrom connects to the broker from a chosen loopback address (Linux
// routes all of 127.0.0.0/8 to lo), so one test can play several hosts.
func dialFrom(t *testing.T, b *brokertest.Broker, ip string) *brokertest.Raw {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	return brokertest.NewRaw(t, c, "client from "+ip)
}

const plainConnect = "CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00"

// waitLogN waits until re matches at least n times in the broker's log.
func waitLogN(t *testing.T, b *brokertest.Broker, re string, n int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	if !poll.Within(5*time.Second, func() bool { return len(rx.FindAllString(b.Logs(), -1)) >= n }) {
		t.Fatalf("log matched %q fewer than %d times\n%s", re, n, b.Logs())
	}
}

func TestAdmissionLimitsRefuseWithoutSpawning(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		from    []string // client IPs, connected in order
		refused map[int]string
	}{
		{"max clients", []string{"--max-clients", "2"},
			[]string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, map[int]string{2: "too many clients (limit 2)"}},
		{"per IP", []string{"--max-clients-per-ip", "2"},
			[]string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"}, map[int]string{2: "too many clients from 127.0.0.1 (limit 2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := brokertest.Start(t, tt.args...)
			served := 0
			var clients []*brokertest.Raw
			for i, ip := range tt.from {
				h := dialFrom(t, b, ip)
				if msg, ok := tt.refused[i]; ok {
					// The ERROR comes before the client says anything.
					f := h.First("")
					if f.Command != frame.ERROR || f.Header.Get(frame.Message) != msg {
						t.Fatalf("client %d from %s: got %s %q, want ERROR %q", i, ip, f.Command, f.Header.Get(frame.Message), msg)
					}
					continue
				}
				if f := h.First(plainConnect); f.Command != frame.CONNECTED {
					t.Fatalf("client %d from %s: got %s %q", i, ip, f.Command, f.Header.Get(frame.Message))
				}
				clients = append(clients, h)
				served++
				b.WaitChildren(t, served, 5*time.Second)
			}
			// Refused clients never got a process. The accept loop
			// takes one connection at a time, so once a later probe
			// from a refused address is refused too, the refused
			// clients' turns (with any spawn in them) are over.
			for i := range tt.refused {
				if f := dialFrom(t, b, tt.from[i]).First(""); f.Command != frame.ERROR || f.Header.Get(frame.Message) != tt.refused[i] {
					t.Fatalf("probe from %s: got %s %q, want ERROR %q", tt.from[i], f.Command, f.Header.Get(frame.Message), tt.refused[i])
				}
			}
			if n := len(b.Children(t)); n != served {
				t.Fatalf("%d children for %d served clients", n, served)
			}
			// A slot freed by a client that leaves is usable again.
			clients[0].Conn.Close()
			b.WaitChildren(t, served-1, 5*time.Second)
			if f := dialFrom(t, b, tt.from[0]).First(plainConnect); f.Command != frame.CONNECTED {
				t.Fatalf("after a client left: got %s %q", f.Command, f.Header.Get(frame.Message))
			}
		})
	}
}

func TestAcceptRateSpreadsSpawns(t *testing.T) {
	const n, rate = 6, 5 // one child per 200ms after a burst of 1
	b := brokertest.Start(t, "--accept-rate", "5", "--accept-burst", "1")
	start := time.Now()
	var wg sync.WaitGroup
	done := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		r := b.Raw(t)
		r.Send(plainConnect)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := r.Read(10 * time.Second)
			if err != nil || f.Command != frame.CONNECTED {
				t.Errorf("client %d: %v %v", i, f, err)
				return
			}
			done[i] = time.Since(start)
		}()
	}
	wg.Wait()
	var last time.Duration
	for _, d := range done {
		last = max(last, d)
	}
	// n-1 spawns had to wait 1/rate each.
	want := time.Duration(n-1) * time.Second / rate
	if last < want-50*time.Millisecond {
		t.Errorf("%d clients served within %v; the spawn rate allows no less than %v", n, last, want)
	}
	if last > want+5*time.Second {
		t.Errorf("%d clients took %v; the spawn rate asks only %v", n, last, want)
	}
}

func TestConnectDeadlineClosesSilentClients(t *testing.T) {
	b := brokertest.Start(t, "--connect-timeout", "500ms")
	r := b.Raw(t)
	pid := b.WaitChildren(t, 1, 5*time.Second)[0]
	start := time.Now()
	r.ExpectError("no CONNECT frame within 500ms", "")
	const deadline = 500 * time.Millisecond
	if d := time.Since(start); d > 2*deadline+3*time.Second {
		t.Errorf("closed after %v, deadline %v", d, deadline)
	}
	waitGone(t, []int{pid}, 5*time.Second)
}

// TestConnectionFloodStaysBounded opens far more connections than the
// limits allow, as fast as possible, and checks that the number of
// children never passes --max-clients and that the parent keeps answering.
func TestConnectionFloodStaysBounded(t *testing.T) {
	const flood, maxClients = 400, 40
	sock := filepath.Join(t.TempDir(), "control.sock")
	b := brokertest.Start(t, "--max-clients", "40", "--accept-rate", "200", "--accept-burst", "20",
		"--connect-timeout", "3s", "--control-socket", sock)
	stopSampling := make(chan struct{})
	peak := make(chan int)
	go func() {
		most := 0
		for {
			select {
			case <-stopSampling:
				peak <- most
				return
			case <-time.After(5 * time.Millisecond):
				most = max(most, len(brokerChildren(b.PID)))
			}
		}
	}()
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", b.Addr, 10*time.Second)
			if err != nil {
				return // a full backlog may reset a few; that is the kernel's limit, not ours
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	start := time.Now()
	if _, err := control.Clients(sock, 10*time.Second); err != nil {
		t.Errorf("control socket during the flood: %v", err)
	}
	// Prompt, not timed to the millisecond: a loaded machine may lag.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("control answer took %v during the flood", d)
	}
	// Sample until the broker is full: the moment an overshoot would
	// happen.
	poll.Eventually(t, 10*time.Second, "the broker fills up to --max-clients", func() bool {
		return len(brokerChildren(b.PID)) >= maxClients
	})
	close(stopSampling)
	if p := <-peak; p > maxClients || p == 0 {
		t.Errorf("peak children %d, want 1..%d", p, maxClients)
	}
	for _, c := range conns {
		c.Close()
	}
	b.WaitChildren(t, 0, 10*time.Second)
	b.Raw(t).Connect() // and the broker still serves
}

func TestSIGHUPReloadsLimitsAndKeepsClients(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "broker.conf")
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# a comment\nmax-clients = 1\nlog-level = \"info\"\n")
	b := brokertest.Start(t, "--config", conf)
	first := b.Raw(t)
	first.Connect()
	first.Send("SUBSCRIBE\nid:1\ndestination:/topic/hup\n\n\x00")
	syncRaw(t, first)
	b.Raw(t).ExpectError("too many clients (limit 1)", "")

	tests := []struct {
		name, file string
		wantLog    string
		times      int // how often wantLog has matched after this step
	}{
		{"raise the limit and log debug", "max-clients = 3\nlog-level = debug\nheart-beat = 1s\n",
			`msg=reloaded .*max_clients=3 `, 1},
		{"bad file keeps the settings", "max-clients = lots\n", `msg="reload failed; keeping the running settings"`, 1},
		{"unknown setting keeps the settings", "max-clientz = 1\n", `msg="reload failed; keeping the running settings"`, 2},
		{"removed line falls back to the default", "", `msg=reloaded .*max_clients=500 `, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write(tt.file)
			b.Signal(t, syscall.SIGHUP)
			waitLogN(t, b, tt.wantLog, tt.times)
			// The client from before the reload did not notice.
			first.Send("SEND\ndestination:/topic/hup\n\nstill here\x00")
			if m := first.Expect(frame.MESSAGE); string(m.Body) != "still here" {
				t.Fatalf("got %q", m.Body)
			}
			if i == 0 {
				b.WaitLog(t, `msg="setting changed in the config file; it takes effect when the broker is restarted" setting=heart-beat running=10s file=1s`, 5*time.Second)
				// log-level debug applies to the parent (it logs new
				// clients at debug) and to new children.
				second := b.Raw(t)
				second.Connect()
				b.WaitLog(t, `level=DEBUG msg="client connected" role=parent`, 5*time.Second)
				second.Send("BOGUS\n\n\x00")
				second.ExpectError("", "")
				b.WaitLog(t, `level=DEBUG msg=.*role=child client=`+regexp.QuoteMeta(second.Conn.LocalAddr().String()), 5*time.Second)
			}
		})
	}
	// max-clients is back at its default.
	for i := 0; i < 3; i++ {
		b.Raw(t).Connect()
	}
	if regexp.MustCompile(`setting changed.*setting=listen`).MatchString(b.Logs()) {
		t.Errorf("a flag given on the command line was reported as changed by the file")
	}
}
