package integration

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// gaps returns the longest and shortest interval between arrivals.
func gaps(times []time.Time) (longest, shortest time.Duration) {
	shortest = time.Hour
	for i := 1; i < len(times); i++ {
		g := times[i].Sub(times[i-1])
		longest = max(longest, g)
		shortest = min(shortest, g)
	}
	return longest, shortest
}

func TestProtocolHeartBeatNegotiation(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "500ms")
	cases := []struct {
		name    string
		version string
		header  string // the client's heart-beat header line, "" for none
		want    string // CONNECTED's heart-beat, "" for none
	}{
		{"client wants none", "1.2", "heart-beat:0,0", "500,500"},
		{"no header means 0,0", "1.2", "", "500,500"},
		{"client offers and asks, each side gets its wish", "1.1", "heart-beat:300,400", "400,300"},
		{"client wishes above --heart-beat get --heart-beat", "1.2", "heart-beat:300,700", "500,300"},
		{"client asks below --heart-beat-min", "1.2", "heart-beat:50,20", "100,100"},
		{"malformed header means 0,0", "1.2", "heart-beat:soon", "500,500"},
		{"STOMP 1.0 has no heart-beating", "", "heart-beat:0,500", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, b, "client")
			var extra []string
			if tc.header != "" {
				extra = append(extra, tc.header)
			}
			f := p.ConnectVersion(tc.version, extra...)
			got, ok := f.Header.Contains(frame.HeartBeat)
			if tc.want == "" && ok {
				t.Fatalf("CONNECTED has heart-beat %q, want none", got)
			}
			if tc.want != "" {
				header(t, f, frame.HeartBeat, tc.want)
			}
		})
	}
	t.Run("no beats when the client asks for none", func(t *testing.T) {
		p := newPeer(t, b, "quiet")
		p.ConnectVersion("1.2", "heart-beat:0,0")
		if times := p.BeatArrivals(1500 * time.Millisecond); len(times) > 2 {
			t.Errorf("the broker sent %d heart-beats to a client that asked for none", len(times)-2)
		}
	})
	t.Run("a client that promised nothing is never timed out", func(t *testing.T) {
		p := newPeer(t, b, "lazy")
		p.ConnectVersion("1.2", "heart-beat:0,0")
		time.Sleep(3 * time.Second)
		p.Receipted("SEND\ndestination:/topic/x", "", "r")
	})
}

func TestProtocolHeartBeatsSent(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "500ms")
	cases := []struct {
		name     string
		header   string
		interval time.Duration // the client's wish, at least --heart-beat-min (100ms)
	}{
		{"client asks for 500ms", "heart-beat:0,500", 500 * time.Millisecond},
		{"client asks for 200ms, below --heart-beat", "heart-beat:0,200", 200 * time.Millisecond},
		{"client asks for 50ms, gets --heart-beat-min", "heart-beat:0,50", 100 * time.Millisecond},
		{"client asks for 1000ms", "heart-beat:0,1000", 1000 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, b, "client")
			p.ConnectVersion("1.2", tc.header)
			times := p.BeatArrivals(3500 * time.Millisecond)
			longest, shortest := gaps(times[:len(times)-1])
			// Some data at least every interval (the MUST), with room for
			// a loaded machine (a beat may lag by up to an interval and
			// half a second; none at all leaves 3.5s of silence); and not
			// much more often than asked, counted rather than timed
			// (a late read makes two beats look close; the broker beats
			// after nine tenths of the interval).
			slack := tc.interval + 500*time.Millisecond
			if longest > tc.interval+slack {
				t.Errorf("longest silence %v, want at most the interval %v", longest, tc.interval)
			}
			if last := times[len(times)-1].Sub(times[len(times)-2]); last > tc.interval+slack {
				t.Errorf("silence of %v at the end, want at most %v", last, tc.interval)
			}
			if beats, most := len(times)-2, int(3500*time.Millisecond/(tc.interval*9/10))+1; beats > most {
				t.Errorf("%d beats in 3.5s (shortest gap %v), want at most %d for one every %v", beats, shortest, most, tc.interval)
			}
		})
	}
	t.Run("messages count as beats and beats resume after them", func(t *testing.T) {
		p := newPeer(t, b, "busy")
		p.ConnectVersion("1.2", "heart-beat:0,500")
		p.Subscribe("1", "/topic/hb")
		pub := newPeer(t, b, "pub")
		pub.ConnectVersion("1.2")
		pub.Receipted("SEND\ndestination:/topic/hb", "m", "r")
		p.ExpectMessage("m")
		times := p.BeatArrivals(2500 * time.Millisecond)
		// Loaded-machine slack; no beats at all leaves 2.5s of silence.
		if longest, _ := gaps(times); longest > 2*500*time.Millisecond+500*time.Millisecond {
			t.Errorf("longest silence after a message %v, want at most 500ms", longest)
		}
	})
}

func TestProtocolHeartBeatTimeout(t *testing.T) {
	const broker = 500 * time.Millisecond
	b := brokertest.Start(t, "--heart-beat", broker.String())
	by := newBystander(t, b)
	t.Run("silent client is closed", func(t *testing.T) {
		const promised = 300 * time.Millisecond
		p := newPeer(t, b, "silent")
		p.ConnectVersion("1.2", "heart-beat:300,0")
		start := time.Now()
		p.ExpectError("heart-beat timeout", "")
		took := time.Since(start)
		// Tolerant (well past the promised interval, which the broker
		// accepted), but within twice it plus a second, with slack for a
		// loaded machine: the broker's clock may have started before
		// CONNECTED reached us, and it may act late.
		window := 2*promised + time.Second
		if took < 2*promised*8/10 || took > window+4*time.Second {
			t.Errorf("closed after %v, want between %v and about %v", took, 2*promised, window)
		}
		by.check(t)
	})
	t.Run("silent after some traffic", func(t *testing.T) {
		p := newPeer(t, b, "silent-later")
		p.ConnectVersion("1.2", "heart-beat:300,0")
		p.Receipted("SEND\ndestination:/topic/x", "", "r")
		start := time.Now()
		p.ExpectError("heart-beat timeout", "")
		if took, window := time.Since(start), 2*300*time.Millisecond+time.Second; took > window+4*time.Second {
			t.Errorf("closed after %v, want about %v", took, window)
		}
		by.check(t)
	})
	t.Run("a beating client stays", func(t *testing.T) {
		p := newPeer(t, b, "beating")
		p.ConnectVersion("1.2", "heart-beat:300,0")
		for i := range 12 { // 3.6s, well past the 1.6s window
			time.Sleep(300 * time.Millisecond)
			if i%2 == 0 {
				p.Send("\n")
			} else {
				p.Send("\r\n")
			}
		}
		p.Receipted("SEND\ndestination:/topic/x", "", "alive")
	})
	t.Run("frames count as beats", func(t *testing.T) {
		p := newPeer(t, b, "chatty")
		p.ConnectVersion("1.2", "heart-beat:300,0")
		for i := range 12 {
			time.Sleep(300 * time.Millisecond)
			p.Send("SEND\ndestination:/topic/x\n\n" + strings.Repeat("x", i) + "\x00")
		}
		p.Receipted("SEND\ndestination:/topic/x", "", "alive")
	})
}

func TestProtocolHeartBeatOff(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	p := newPeer(t, b, "client")
	f := p.ConnectVersion("1.2", "heart-beat:300,300")
	header(t, f, frame.HeartBeat, "0,0")
	if times := p.BeatArrivals(1500 * time.Millisecond); len(times) > 2 {
		t.Errorf("a broker with --heart-beat 0 sent %d heart-beats", len(times)-2)
	}
	time.Sleep(1500 * time.Millisecond) // the client promised beats but none were negotiated
	p.Receipted("SEND\ndestination:/topic/x", "", "r")
}

// TestProtocolHeartBeatAsAsked: on the default --heart-beat (10s), a
// client gets the interval it asks for, both ways, and nobody else is
// affected. Before the broker honoured the client's wish, these clients
// heard nothing for 10s and a silent one was closed after 21s.
func TestProtocolHeartBeatAsAsked(t *testing.T) {
	const asked = 500 * time.Millisecond
	b := brokertest.Start(t)
	by := newBystander(t, b)
	t.Run("offered", func(t *testing.T) {
		p := newPeer(t, b, "asker")
		f := p.ConnectVersion("1.2", "heart-beat:500,500")
		header(t, f, frame.HeartBeat, "500,500")
	})
	t.Run("the interval asked is the interval sent", func(t *testing.T) {
		p := newPeer(t, b, "listener")
		p.ConnectVersion("1.2", "heart-beat:0,500")
		const window = 4 * time.Second
		times := p.BeatArrivals(window)
		// About 8 beats (one every 450-500ms); at least 3 even if the
		// machine stalls for seconds, none at all on 10s beats.
		beats := len(times) - 2
		if least, most := int(window/asked)/3, int(window/(asked*9/10))+1; beats < least || beats > most {
			t.Errorf("%d beats in %v, want about %d (between %d and %d)", beats, window, window/asked, least, most)
		}
		by.check(t)
	})
	t.Run("a silent client that promised 500ms is dropped", func(t *testing.T) {
		p := newPeer(t, b, "silent")
		p.ConnectVersion("1.2", "heart-beat:500,0")
		start := time.Now()
		p.ExpectError("heart-beat timeout: no data from the client within 2s", "")
		// The grace is 2 × 500ms + 1s; the slack is for a loaded machine.
		if took, grace := time.Since(start), 2*asked+time.Second; took < 2*asked*8/10 || took > grace+3*time.Second {
			t.Errorf("closed after %v, want about %v", took, grace)
		}
		by.check(t)
	})
}

// TestProtocolHeartBeatGoStompDetectsDeadBroker: go-stomp, asking to hear
// from the broker every 300ms, stays connected while its child beats, and
// notices within about that interval when the child stops (SIGSTOP):
// go-stomp's read timeout is the broker's offer plus its HeartBeatError,
// so on --heart-beat's 10s offer it would wait 10s.
func TestProtocolHeartBeatGoStompDetectsDeadBroker(t *testing.T) {
	const asked, errorMargin = 300 * time.Millisecond, 700 * time.Millisecond
	b := brokertest.Start(t)
	by := newBystander(t, b)
	nc, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stomp.Connect(nc, stomp.ConnOpt.HeartBeat(0, asked), stomp.ConnOpt.HeartBeatError(errorMargin))
	if err != nil {
		nc.Close()
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	pid := childServing(t, b, nc.LocalAddr().String())
	sub, err := c.Subscribe("/topic/hb-gostomp", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	// Alive: 3s of nothing but the broker's beats, ten read timeouts' worth.
	select {
	case m := <-sub.C:
		t.Fatalf("go-stomp got %+v while the broker was beating every %v", m, asked)
	case <-time.After(3 * time.Second):
	}
	if err := c.Send("/topic/hb-gostomp", "text/plain", []byte("alive")); err != nil {
		t.Fatal(err)
	}
	if m := <-sub.C; m.Err != nil || string(m.Body) != "alive" {
		t.Fatalf("after 3s of beats: %v %q", m.Err, m.Body)
	}
	// Dead: stop the child; go-stomp must give up after its read timeout.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	stopped := time.Now()
	select {
	case m := <-sub.C:
		if m.Err == nil {
			t.Fatalf("go-stomp got a message from a stopped child: %q", m.Body)
		}
		// Slack for a loaded machine; the 10s offer would take 10.7s.
		if took, timeout := time.Since(stopped), asked+errorMargin; took > timeout+4*time.Second {
			t.Errorf("go-stomp noticed the stopped child after %v, want about %v", took, timeout)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("go-stomp did not notice the stopped child within 15s")
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	by.check(t)
}

// TestProtocolHeartBeatMin: the floor, set through its environment
// variable, bounds what a client asking for faster beats is offered.
func TestProtocolHeartBeatMin(t *testing.T) {
	t.Setenv("STOMP_BROKER_HEART_BEAT_MIN", "300ms")
	b := brokertest.Start(t)
	cases := []struct{ header, want string }{
		{"heart-beat:0,50", "300,10000"},
		{"heart-beat:50,0", "10000,300"},
		{"heart-beat:400,500", "500,400"},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			p := newPeer(t, b, "client")
			header(t, p.ConnectVersion("1.2", tc.header), frame.HeartBeat, tc.want)
		})
	}
}
