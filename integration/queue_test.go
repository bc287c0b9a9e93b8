package integration

import (
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// delivery is one MESSAGE as a consumer saw it.
type delivery struct {
	body        string
	redelivered bool
	consumer    int
}

func TestQueueCompetingConsumersEachMessageOnce(t *testing.T) {
	b := brokertest.Start(t)
	const n = 3000
	dest := "/queue/compete"
	got := make(chan delivery, n*2)
	for i := 0; i < 3; i++ {
		c := dial(t, b)
		sub := subscribe(t, c, dest, stomp.AckClientIndividual)
		go func() {
			for m := range sub.C {
				if m.Err != nil {
					return
				}
				got <- delivery{body: string(m.Body), consumer: i}
				c.Ack(m)
			}
		}()
	}
	pub := dial(t, b)
	for i := 0; i < n; i++ {
		if err := pub.Send(dest, "text/plain", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	perConsumer := make([]int, 3)
	for len(seen) < n {
		select {
		case d := <-got:
			if seen[d.body] {
				t.Fatalf("message %s delivered twice", d.body)
			}
			seen[d.body] = true
			perConsumer[d.consumer]++
		case <-time.After(15 * time.Second):
			t.Fatalf("only %d of %d messages arrived", len(seen), n)
		}
	}
	select {
	case d := <-got:
		t.Fatalf("extra delivery of %s", d.body)
	case <-time.After(300 * time.Millisecond):
	}
	t.Logf("messages per consumer: %v", perConsumer)
	for i, k := range perConsumer {
		if k < n/20 {
			t.Errorf("consumer %d got only %d of %d messages: not first come, first served", i, k, n)
		}
	}
}

func TestQueueKeepsMessagesUntilAConsumerComes(t *testing.T) {
	b := brokertest.Start(t)
	pub := dial(t, b)
	for i := 0; i < 10; i++ {
		if err := pub.Send("/queue/later", "text/plain", []byte(strconv.Itoa(i)), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	sub := subscribe(t, dial(t, b), "/queue/later", stomp.AckAuto)
	for i := 0; i < 10; i++ {
		if m := receive(t, sub, 5*time.Second); string(m.Body) != strconv.Itoa(i) {
			t.Fatalf("got %q, want %d", m.Body, i)
		}
	}
}

func TestQueueRedeliversWhatADisconnectedConsumerHeld(t *testing.T) {
	b := brokertest.Start(t)
	first := dial(t, b)
	sub := subscribe(t, first, "/queue/held", stomp.AckClientIndividual)
	pub := dial(t, b)
	pub.Send("/queue/held", "text/plain", []byte("job"), stomp.SendOpt.Receipt)
	m := receive(t, sub, 5*time.Second)
	if m.Header.Get(stompwire.HeaderRedelivered) == "true" {
		t.Fatal("first delivery flagged redelivered")
	}
	first.Disconnect() // without ACK

	second := subscribe(t, dial(t, b), "/queue/held", stomp.AckClientIndividual)
	m = receive(t, second, 5*time.Second)
	if string(m.Body) != "job" || m.Header.Get(stompwire.HeaderRedelivered) != "true" {
		t.Fatalf("redelivery: body %q redelivered=%q", m.Body, m.Header.Get(stompwire.HeaderRedelivered))
	}
}

func TestQueuePrefetchHeadersLimitInFlight(t *testing.T) {
	for _, header := range []string{stompwire.HeaderPrefetchCount, stompwire.HeaderActiveMQPrefetchSize} {
		t.Run(header, func(t *testing.T) {
			b := brokertest.Start(t)
			greedy := dial(t, b)
			sub := subscribe(t, greedy, "/queue/pf", stomp.AckClientIndividual, stomp.SubscribeOpt.Header(header, "2"))
			pub := dial(t, b)
			for i := 0; i < 10; i++ {
				pub.Send("/queue/pf", "text/plain", []byte(strconv.Itoa(i)), stomp.SendOpt.Receipt)
			}
			var held []*stomp.Message
			held = append(held, receive(t, sub, 5*time.Second), receive(t, sub, 5*time.Second))
			select {
			case m := <-sub.C:
				t.Fatalf("a third message (%q) arrived with prefetch 2 and nothing acked", m.Body)
			case <-time.After(500 * time.Millisecond):
			}
			// Another consumer gets the rest meanwhile.
			other := subscribe(t, dial(t, b), "/queue/pf", stomp.AckAuto)
			for i := 0; i < 8; i++ {
				receive(t, other, 5*time.Second)
			}
			greedy.Ack(held[0])
		})
	}
}

func TestQueueMemoryLimitRefusesSendWithError(t *testing.T) {
	b := brokertest.Start(t, "--max-queue-memory", "4096")
	r := b.Raw(t)
	r.Connect()
	body := string(make([]byte, 1000))
	for i := 0; i < 10; i++ {
		r.Send("SEND\ndestination:/queue/full\ncontent-length:1000\n\n" + body + "\x00")
	}
	r.ExpectError("queue memory limit", "")
}

// TestQueueChaosNothingLostRepeatsFlagged SIGKILLs consumer children while
// a 3000-message queue drains: every message must arrive, and every
// delivery after a message's first must carry redelivered:true.
func TestQueueChaosNothingLostRepeatsFlagged(t *testing.T) {
	b := brokertest.Start(t)
	const n = 3000
	dest := "/queue/chaos"

	var mu sync.Mutex
	deliveries := map[string][]bool{} // body → redelivered flags in arrival order
	acked := map[string]bool{}
	done := make(chan struct{})

	type consumer struct {
		c   *client
		sub *stomp.Subscription
	}
	start := func() *consumer {
		c := dialClient(t, b)
		sub, err := c.Subscribe(dest, stomp.AckClientIndividual, stomp.SubscribeOpt.Header(stompwire.HeaderPrefetchCount, "5"))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range sub.C {
				if m.Err != nil {
					return
				}
				mu.Lock()
				deliveries[string(m.Body)] = append(deliveries[string(m.Body)], m.Header.Get(stompwire.HeaderRedelivered) == "true")
				mu.Unlock()
				if c.Ack(m) == nil {
					mu.Lock()
					acked[string(m.Body)] = true
					if len(acked) == n {
						select {
						case <-done:
						default:
							close(done)
						}
					}
					mu.Unlock()
				}
			}
		}()
		return &consumer{c: c, sub: sub}
	}
	consumers := []*consumer{start(), start(), start()}

	pub := dial(t, b)
	go func() {
		for i := 0; i < n; i++ {
			if err := pub.Send(dest, "text/plain", []byte(strconv.Itoa(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	kills := 0
	rnd := rand.New(rand.NewSource(1))
	deadline := time.After(60 * time.Second)
chaos:
	for {
		select {
		case <-done:
			break chaos
		case <-deadline:
			mu.Lock()
			t.Fatalf("after 60s only %d of %d messages were acked (%d kills)", len(acked), n, kills)
		case <-time.After(time.Duration(20+rnd.Intn(60)) * time.Millisecond):
			if kills >= 25 {
				continue
			}
			i := rnd.Intn(len(consumers))
			syscall.Kill(consumers[i].c.pid, syscall.SIGKILL)
			kills++
			consumers[i] = start()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	repeats := 0
	for i := 0; i < n; i++ {
		flags := deliveries[strconv.Itoa(i)]
		if len(flags) == 0 {
			t.Fatalf("message %d never delivered", i)
		}
		for j, red := range flags[1:] {
			repeats++
			if !red {
				t.Fatalf("message %d: delivery %d was a repeat without redelivered:true", i, j+2)
			}
		}
	}
	t.Logf("%d kills, %d redeliveries, all %d messages acked", kills, repeats, n)
	if kills == 0 {
		t.Fatal("the chaos never happened")
	}
	_ = fmt.Sprint
}

// TestQueueKeepsPerProducerOrderPerConsumer: with competing consumers
// whose credit differs (so offers are partly claimed), each consumer still
// sees every producer's messages in the order they were sent.
func TestQueueKeepsPerProducerOrderPerConsumer(t *testing.T) {
	b := brokertest.Start(t)
	const producers, n = 2, 1000
	dest := "/queue/order"
	type seen struct {
		consumer, producer, seq int
	}
	got := make(chan seen, producers*n*2)
	for ci, prefetch := range []string{"3", "7", "20"} {
		c := dial(t, b)
		sub := subscribe(t, c, dest, stomp.AckClientIndividual, stomp.SubscribeOpt.Header(stompwire.HeaderPrefetchCount, prefetch))
		go func() {
			for m := range sub.C {
				if m.Err != nil {
					return
				}
				var p, seq int
				fmt.Sscanf(string(m.Body), "%d:%d", &p, &seq)
				if m.Header.Get(stompwire.HeaderRedelivered) != "true" {
					got <- seen{ci, p, seq}
				}
				c.Ack(m)
			}
		}()
	}
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		pub := dial(t, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				pub.Send(dest, "text/plain", []byte(fmt.Sprintf("%d:%d", p, i)))
			}
		}()
	}
	wg.Wait()
	last := map[[2]int]int{} // (consumer, producer) → last seq seen
	for i := 0; i < producers*n; i++ {
		select {
		case s := <-got:
			k := [2]int{s.consumer, s.producer}
			if prev, ok := last[k]; ok && s.seq < prev {
				t.Fatalf("consumer %d got producer %d's message %d after %d", s.consumer, s.producer, s.seq, prev)
			}
			last[k] = s.seq
		case <-time.After(15 * time.Second):
			t.Fatalf("only %d of %d messages arrived", i, producers*n)
		}
	}
}
