package integration

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// EnvSoakSeconds sets how long TestHostileSoak runs (default 20 s);
// EnvSoakSeed replays a run (its seed is logged when the test fails).
const (
	EnvSoakSeconds = "STOMP_BROKER_SOAK_SECONDS"
	EnvSoakSeed    = "STOMP_BROKER_SOAK_SEED"
)

// hostileClients is how many connections at once send garbage.
const hostileClients = 4

// TestHostileSoak is issue 17's whole-broker fuzz: several clients send
// random and mutated frames (flipped, inserted and deleted bytes, invalid
// UTF-8, huge and odd headers, random commands, random bytes) while one
// well-behaved pair of clients publishes and consumes on a topic and a
// queue. Every message the good producer sends must arrive, every RECEIPT
// must come back, and at the end the parent (with metrics on) must still
// be alive, no child may have crashed, and nothing may have panicked.
func TestHostileSoak(t *testing.T) {
	dur := 20 * time.Second
	if s := os.Getenv(EnvSoakSeconds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number of seconds", EnvSoakSeconds, s)
		}
		dur = time.Duration(n) * time.Second
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv(EnvSoakSeed); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an integer", EnvSoakSeed, s)
		}
		seed = n
	}
	t.Logf("seed %d (replay with %s=%d)", seed, EnvSoakSeed, seed)

	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--heart-beat", "0", "--metrics-listen", addr)

	// The good clients' destinations are not in any template the hostile
	// clients mutate, so no garbage can take their messages.
	topic, queue := fmt.Sprintf("/topic/good-%d", seed&0xffff), fmt.Sprintf("/queue/good-%d", seed&0xffff)
	sub, pub := newPeer(t, b, "good-sub"), newPeer(t, b, "good-pub")
	sub.ConnectVersion("1.2")
	pub.ConnectVersion("1.2")
	sub.Subscribe("t", topic)
	sub.Subscribe("q", queue, "ack:client-individual")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var statsMu sync.Mutex
	conns, frames := 0, 0
	for i := range hostileClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed + int64(i)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := hostileConnection(r, b.Addr)
				statsMu.Lock()
				conns, frames = conns+1, frames+n
				statsMu.Unlock()
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	rounds := 0
	for deadline := time.Now().Add(dur); time.Now().Before(deadline); rounds++ {
		tb, qb := fmt.Sprintf("t-%d", rounds), fmt.Sprintf("q-%d", rounds)
		pub.Send("SEND\ndestination:" + topic + "\n\n" + tb + "\x00")
		pub.Receipted("SEND\ndestination:"+queue, qb, "r-"+strconv.Itoa(rounds))
		want := map[string]bool{tb: true, qb: true}
		for len(want) > 0 {
			f, wire := sub.ExpectWire(frame.MESSAGE)
			if !want[string(f.Body)] {
				t.Fatalf("round %d: good subscriber got %q, want %v\n%q", rounds, f.Body, want, wire)
			}
			delete(want, string(f.Body))
			if f.Header.Get(frame.Subscription) == "q" {
				sub.Send("ACK\nid:" + f.Header.Get(frame.Ack) + "\n\n\x00")
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d good rounds; %d hostile connections sent %d hostile frames", rounds, conns, frames)

	// A last round trip after the storm, then the parent's health.
	pub.Receipted("SEND\ndestination:"+topic, "after", "last")
	sub.ExpectMessage("after")
	if b.Exited() {
		t.Fatalf("the parent exited:\n%s", b.Logs())
	}
	m := scrape(t, addr)
	if got := m[`stomp_broker_messages_in_total{destination="`+queue+`"}`]; got != float64(rounds) {
		t.Errorf("metrics count %v messages to %s, want %d", got, queue, rounds)
	}
	if got := m["stomp_broker_child_crashes_total"]; got != 0 {
		t.Errorf("%v children crashed", got)
	}
	if logs := b.Logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "DATA RACE") {
		t.Errorf("the broker panicked or raced:\n%s", logs)
	}
	b.WaitChildren(t, 2, 10*time.Second)
}

// hostileConnection opens one connection, maybe CONNECTs, writes a few
// hostile frames in random pieces, reads what comes back for a moment and
// closes. It returns how many frames it wrote. Errors are expected (the
// broker closes on the first bad frame) and ignored.
func hostileConnection(r *rand.Rand, addr string) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if r.Intn(5) > 0 {
		v := []string{"1.0", "1.1", "1.2", "1.0,1.1,1.2"}[r.Intn(4)]
		if _, err := c.Write([]byte("CONNECT\naccept-version:" + v + "\nhost:h\n\n\x00")); err != nil {
			return 0
		}
	}
	n := 1 + r.Intn(6)
	for i := 0; i < n; i++ {
		data := hostileFrame(r)
		for len(data) > 0 { // random pieces: the broker must reassemble
			k := min(len(data), 1+r.Intn(len(data)))
			if _, err := c.Write(data[:k]); err != nil {
				return i
			}
			data = data[k:]
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Duration(r.Intn(100)) * time.Millisecond))
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return n
		}
	}
}

// hostileTemplates are valid frames on the hostile clients' own
// destinations, to be sent as they are or mutated.
var hostileTemplates = []string{
	"SEND\ndestination:/queue/h\nreceipt:1\n\nbody\x00",
	"SEND\ndestination:/topic/h\ncontent-length:5\n\na\x00b\x00c\x00",
	"SEND\ndestination:/queue/h\npersistent:true\nmax-redeliveries:1\nuniqkey:u\nscheduled-delay:10\n\njob\x00",
	"SUBSCRIBE\nid:1\ndestination:/queue/h\nack:client\nprefetch-count:3\nack-timeout:50\n\n\x00",
	"SUBSCRIBE\nid:2\ndestination:/topic/h\n\n\x00",
	"UNSUBSCRIBE\nid:1\n\n\x00",
	"ACK\nid:1\n\n\x00",
	"NACK\nid:1\nreceipt:n\n\n\x00",
	"BEGIN\ntransaction:tx\n\n\x00",
	"COMMIT\ntransaction:tx\n\n\x00",
	"ABORT\ntransaction:tx\n\n\x00",
	"DISCONNECT\nreceipt:bye\n\n\x00",
	"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:100,100\n\n\x00",
	"\n",
}

// hostileFrame returns one piece of hostile input.
func hostileFrame(r *rand.Rand) []byte {
	tpl := []byte(hostileTemplates[r.Intn(len(hostileTemplates))])
	switch r.Intn(10) {
	case 0, 1, 2, 3: // a mutated valid frame
		return mutate(r, tpl)
	case 4: // a valid frame
		return tpl
	case 5: // random bytes
		b := make([]byte, 1+r.Intn(300))
		r.Read(b)
		return b
	case 6: // a random command
		cmd := make([]byte, 1+r.Intn(12))
		for i := range cmd {
			cmd[i] = byte('A' + r.Intn(26))
		}
		return []byte(string(cmd) + "\ndestination:/topic/h\n\n\x00")
	case 7: // a huge header line, a little below or above the limit
		return []byte("SEND\ndestination:/topic/h\nx:" + strings.Repeat("v", 8000+r.Intn(400)) + "\n\n\x00")
	case 8: // too many headers, or many odd ones
		var sb strings.Builder
		sb.WriteString("SEND\ndestination:/queue/h\n")
		for i := range 100 + r.Intn(60) {
			fmt.Fprintf(&sb, "h%d:%s\n", i, []string{"", ":", "\\c\\n\\\\", "é☃", " sp ", "\xff"}[r.Intn(6)])
		}
		sb.WriteString("\nx\x00")
		return []byte(sb.String())
	default: // invalid UTF-8 or an announced body that never comes
		switch r.Intn(3) {
		case 0:
			return []byte("SEND\ndestination:/queue/h\xff\xfe\n\n\x00")
		case 1:
			return []byte("SUBSCRIBE\nid:\xc3\ndestination:/topic/h\n\n\x00")
		default:
			return []byte("SEND\ndestination:/queue/h\ncontent-length:" + strconv.Itoa(r.Intn(5<<20)) + "\n\npartial")
		}
	}
}

// mutate returns a copy of b with a few random edits.
func mutate(r *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	specials := []string{":", "\n", "\x00", "\\", "\r", "\xff", "\xc3", "\xed\xa0\x80", "é"}
	for n := 1 + r.Intn(4); n > 0; n-- {
		i := 0
		if len(b) > 0 {
			i = r.Intn(len(b))
		}
		switch r.Intn(5) {
		case 0: // flip a bit
			if len(b) > 0 {
				b[i] ^= 1 << r.Intn(8)
			}
		case 1: // insert a random byte
			b = append(b[:i], append([]byte{byte(r.Intn(256))}, b[i:]...)...)
		case 2: // delete a byte
			if len(b) > 0 {
				b = append(b[:i], b[i+1:]...)
			}
		case 3: // insert a special
			b = append(b[:i], append([]byte(specials[r.Intn(len(specials))]), b[i:]...)...)
		case 4: // repeat a piece
			j := i + r.Intn(len(b)-i+1)
			b = append(b[:j], append(append([]byte(nil), b[i:j]...), b[j:]...)...)
		}
	}
	return b
}
