package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// EnvFlood turns on TestFloodMeasure, the measurement behind the default
// limits in README.md ("Operating"). It is a measurement, not a regression
// test (TestConnectionFloodStaysBounded is that): it opens thousands of
// connections and takes a minute. Run it without -race, so the children
// are the size they are in production:
//
//	STOMP_BROKER_FLOOD=1 go test -run TestFloodMeasure -v ./integration/
//
// STOMP_BROKER_FLOOD_CONNS sets the number of connections (default 2000).
const EnvFlood = "STOMP_BROKER_FLOOD"

// floodResult is what one flood scenario measured.
type floodResult struct {
	connected    int           // TCP connections the kernel accepted
	peakChildren int           // most broker children seen at once
	peakPssMiB   float64       // most Pss of parent + children seen at once
	worstControl time.Duration // slowest control-socket answer during the flood
	worstRTT     time.Duration // slowest topic message round trip between two clients connected before the flood
	cpuPerSpawn  time.Duration // CPU time of the broker's process tree per child, once all are reaped
	spawns       int           // children seen (sampled from /proc every 200ms)
}

// treeCPU returns the CPU time used so far by pid and by its children that
// it has reaped (utime, stime, cutime, cstime of /proc/PID/stat), assuming
// the kernel's usual 100 clock ticks per second.
func treeCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // fields 14..17, counted from field 3
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// flood opens n connections to b as fast as possible (from hosts
// 127.0.0.1 .. 127.0.0.hosts), sends nothing on them, holds them for
// hold, and samples the broker's process tree meanwhile.
func flood(t *testing.T, b *brokertest.Broker, sock string, n, hosts int, hold time.Duration) floodResult {
	t.Helper()
	var res floodResult
	var mu sync.Mutex
	// Two clients from before the flood time a message through the broker.
	sub, pub := b.Raw(t), b.Raw(t)
	sub.Connect()
	sub.Send("SUBSCRIBE\nid:1\ndestination:/topic/ping\n\n\x00")
	syncRaw(t, sub)
	pub.Connect()
	roundTrip := func() time.Duration {
		start := time.Now()
		_ = pub.Conn.SetWriteDeadline(start.Add(30 * time.Second))
		if _, err := pub.Conn.Write([]byte("SEND\ndestination:/topic/ping\n\nping\x00")); err != nil {
			return time.Hour
		}
		if f, err := sub.Read(30 * time.Second); err != nil || f.Command != "MESSAGE" {
			return time.Hour
		}
		return time.Since(start)
	}
	seen := map[int]bool{} // every child pid sampled
	cpu0 := treeCPU(t, b.PID)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			kids := brokerChildren(b.PID)
			kib, _ := pssKiB(append(kids, b.PID))
			for _, k := range kids {
				seen[k] = true
			}
			start := time.Now()
			_, err := control.Clients(sock, 10*time.Second)
			took := time.Since(start)
			if err != nil {
				took = 10 * time.Second
			}
			rtt := roundTrip()
			mu.Lock()
			res.worstRTT = max(res.worstRTT, rtt)
			res.peakChildren = max(res.peakChildren, len(kids))
			res.peakPssMiB = max(res.peakPssMiB, float64(kib)/1024)
			res.worstControl = max(res.worstControl, took)
			mu.Unlock()
		}
	}()
	conns := make(chan net.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256) // connects in flight
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := net.Dialer{Timeout: 10 * time.Second,
				LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%hosts))}}
			if c, err := d.Dial("tcp", b.Addr); err == nil {
				conns <- c
			}
		}()
	}
	wg.Wait()
	close(conns)
	res.connected = len(conns)
	time.Sleep(hold)
	close(stop)
	<-sampled
	res.spawns = len(seen)
	for c := range conns {
		c.Close()
	}
	pub.Conn.Close()
	sub.Conn.Close()
	b.WaitChildren(t, 0, 60*time.Second)
	if res.spawns > 0 {
		res.cpuPerSpawn = (treeCPU(t, b.PID) - cpu0) / time.Duration(res.spawns)
	}
	return res
}

// TestFloodMeasure measures the broker under a connection flood with and
// without the admission limits and logs the figures.
func TestFloodMeasure(t *testing.T) {
	if os.Getenv(EnvFlood) != "1" {
		t.Skipf("measurement; set %s=1 to run it", EnvFlood)
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv(EnvFlood + "_CONNS")); err == nil && v > 0 {
		n = v
	}
	noLimits := []string{"--max-clients", "0", "--max-clients-per-ip", "0", "--accept-rate", "0"}
	scenarios := []struct {
		name  string
		args  []string
		hosts int
		max   int // children allowed at once (0 = unbounded)
	}{
		{"defaults, one host", nil, 1, 100},
		{"defaults, 200 hosts", nil, 200, 500},
		{"no limits, 200 hosts", noLimits, 200, 0},
		{"no rate limit, 200 hosts", []string{"--accept-rate", "0"}, 200, 500},
	}
	if only := os.Getenv(EnvFlood + "_ONLY"); only != "" {
		for i := 0; i < len(scenarios); i++ {
			if !strings.Contains(scenarios[i].name, only) {
				scenarios = append(scenarios[:i], scenarios[i+1:]...)
				i--
			}
		}
	}
	var report []string
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "control.sock")
			// The default CONNECT deadline (10s) keeps every flood
			// connection's child alive for the whole measurement.
			b := brokertest.Start(t, append([]string{"--control-socket", sock}, sc.args...)...)
			idleKiB, _ := pssKiB([]int{b.PID})
			start := time.Now()
			res := flood(t, b, sock, n, sc.hosts, 8*time.Second)
			line := fmt.Sprintf("%-26s %5d conns: peak %4d children (%4d seen), peak Pss %5.0f MiB (parent alone %.0f MiB), %v CPU each, slowest control answer %v, slowest message round trip %v, %v",
				sc.name, res.connected, res.peakChildren, res.spawns, res.peakPssMiB, float64(idleKiB)/1024, res.cpuPerSpawn.Round(100*time.Microsecond),
				res.worstControl.Round(time.Millisecond), res.worstRTT.Round(time.Millisecond), time.Since(start).Round(time.Second))
			t.Log(line)
			report = append(report, line)
			if sc.max > 0 && res.peakChildren > sc.max {
				t.Errorf("peak %d children, limit %d", res.peakChildren, sc.max)
			}
		})
	}
	t.Logf("flood summary (%d connections):\n%s", n, strings.Join(report, "\n"))
}
