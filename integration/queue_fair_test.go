package integration

import (
	"bufio"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// fairWork is how long each consumer works on a message: slow enough that
// a burst is still being shared when the last of it arrives, whatever the
// machine's load (the property checked is who got what, not how fast).
const fairWork = 3 * time.Millisecond

// fairConsumer starts consumer i of dest with the given ack mode; it
// reports every message it finished working on to got, and returns once
// its subscription is live.
type fairConsumer func(t *testing.T, b *brokertest.Broker, dest, ack string, i int, got chan<- delivery)

// TestQueueFairShare: three slow consumers on one queue, a burst of 30 or
// 300 messages from one producer: each consumer gets at least half its
// fair share (before fair dispatch one child could win the race for a
// batch of its whole credit: a burst of 30 went [30 0 0]), every message
// arrives once, and each consumer sees the producer's order. Real
// clients: go-stomp's, and stomp.py when Debian's python3-stomp is there.
func TestQueueFairShare(t *testing.T) {
	clients := []struct {
		name  string
		acks  []string
		start fairConsumer
	}{
		{"go-stomp", []string{"auto", "client", "client-individual"}, goStompFairConsumer},
		{"stomp.py", []string{"auto", "client-individual"}, stompPyFairConsumer},
	}
	b := brokertest.Start(t)
	for _, cl := range clients {
		for _, ack := range cl.acks {
			for _, n := range []int{30, 300} {
				t.Run(fmt.Sprintf("%s/%s/%d", cl.name, ack, n), func(t *testing.T) {
					if cl.name == "stomp.py" {
						requireStompPy(t)
					}
					dest := fmt.Sprintf("/queue/fair-%s-%s-%d-%d", strings.ReplaceAll(cl.name, ".", ""), ack, n, time.Now().UnixNano())
					got := make(chan delivery, 2*n)
					for i := 0; i < 3; i++ {
						cl.start(t, b, dest, ack, i, got)
					}
					pub := dial(t, b)
					for i := 0; i < n; i++ {
						if err := pub.Send(dest, "text/plain", []byte(strconv.Itoa(i))); err != nil {
							t.Fatalf("SEND %d: %v", i, err)
						}
					}
					per := collectFair(t, got, n)
					t.Logf("messages per consumer: %v", per)
					for i, k := range per {
						if 2*k*3 < n {
							t.Errorf("consumer %d got %d of %d messages, less than half its fair share %d (per consumer: %v)", i, k, n, n/3, per)
						}
					}
				})
			}
		}
	}
}

// collectFair reads n deliveries from got and returns the count per
// consumer; it fails t on a duplicate, a message out of the producer's
// order for its consumer, a redelivery, or messages that never come.
func collectFair(t *testing.T, got <-chan delivery, n int) []int {
	t.Helper()
	per := make([]int, 3)
	last := []int{-1, -1, -1}
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case d := <-got:
			if seen[d.body] {
				t.Fatalf("message %s delivered twice", d.body)
			}
			if d.redelivered {
				t.Fatalf("message %s flagged redelivered, with no consumer gone", d.body)
			}
			seen[d.body] = true
			v, err := strconv.Atoi(d.body)
			if err != nil {
				t.Fatalf("body %q", d.body)
			}
			if v <= last[d.consumer] {
				t.Fatalf("consumer %d got %d after %d: producer order broken", d.consumer, v, last[d.consumer])
			}
			last[d.consumer] = v
			per[d.consumer]++
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d messages arrived (per consumer %v)", len(seen), n, per)
		}
	}
	select {
	case d := <-got:
		t.Fatalf("extra delivery of %s", d.body)
	case <-time.After(200 * time.Millisecond):
	}
	return per
}

// goStompFairConsumer is a go-stomp consumer that works fairWork on each
// message before it ACKs it (client modes) or takes the next (auto).
func goStompFairConsumer(t *testing.T, b *brokertest.Broker, dest, ack string, i int, got chan<- delivery) {
	t.Helper()
	mode := map[string]stomp.AckMode{"auto": stomp.AckAuto, "client": stomp.AckClient, "client-individual": stomp.AckClientIndividual}[ack]
	c := dial(t, b)
	sub := subscribe(t, c, dest, mode)
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				return
			}
			time.Sleep(fairWork)
			if mode != stomp.AckAuto {
				if err := c.Ack(m); err != nil {
					return
				}
			}
			got <- delivery{body: string(m.Body), redelivered: m.Header.Get("redelivered") == "true", consumer: i}
		}
	}()
}

// stompPyPython is Debian's python3, the one python3-stomp installs into
// (the python3 on PATH may be another build).
const stompPyPython = "/usr/bin/python3"

func requireStompPy(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(stompPyPython, "-c", "import stomp").CombinedOutput(); err != nil {
		brokertest.Missing(t, fmt.Sprintf("stomp.py unavailable (%s -c 'import stomp': %v %s); install the Debian package python3-stomp (scripts/install-test-deps)",
			stompPyPython, err, firstLine(out)))
	}
}

// stompPyFairConsumer runs testdata/fair/consumer.py, a stomp.py consumer
// that works fairWork on each message (see the script).
func stompPyFairConsumer(t *testing.T, b *brokertest.Broker, dest, ack string, i int, got chan<- delivery) {
	t.Helper()
	cmd := exec.Command(stompPyPython, "testdata/fair/consumer.py", b.Addr, dest, ack, strconv.Itoa(int(fairWork/time.Millisecond)))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stomp.py consumer: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close() // the script disconnects and exits
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "READY":
				ready <- ""
			case strings.HasPrefix(line, "MSG "):
				got <- delivery{body: strings.TrimPrefix(line, "MSG "), consumer: i}
			case strings.HasPrefix(line, "ERROR"):
				select {
				case ready <- line:
				default:
				}
			}
		}
		cmd.Wait()
	}()
	select {
	case msg := <-ready:
		if msg != "" {
			t.Fatalf("stomp.py consumer %d: %s", i, msg)
		}
	case <-exited:
		t.Fatalf("stomp.py consumer %d exited before subscribing: %s", i, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("stomp.py consumer %d not subscribed after 20s: %s", i, stderr.String())
	}
}
