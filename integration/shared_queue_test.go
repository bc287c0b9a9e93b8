package integration

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// TestQueueSharedAcrossBrokers: a burst of 200 persistent messages sent on
// broker A is shared by client-individual consumers (go-stomp, each doing
// a little work per message) on A and on B, each getting at least a
// quarter, none twice. Before brokers woke on a database notification and
// leased in small chunks, A's consumer got all 200.
func TestQueueSharedAcrossBrokers(t *testing.T) {
	dsn := postgresDSN(t)
	a := brokertest.Start(t, "--store", dsn, "--broker-id", "share-a")
	b := brokertest.Start(t, "--store", dsn, "--broker-id", "share-b")
	queue := "/queue/shared-burst-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = 200

	var mu sync.Mutex
	seen := map[string]string{}
	count := map[string]int{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for name, br := range map[string]*brokertest.Broker{"a": a, "b": b} {
		c := dial(t, br)
		sub := subscribe(t, c, queue, stomp.AckClientIndividual)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case m, ok := <-sub.C:
					if !ok || m.Err != nil {
						return
					}
					time.Sleep(2 * time.Millisecond) // the work
					mu.Lock()
					body := string(m.Body)
					if prev, dup := seen[body]; dup {
						t.Errorf("message %s delivered on %s and again on %s", body, prev, name)
					}
					seen[body] = name
					count[name]++
					mu.Unlock()
					if err := c.Ack(m); err != nil {
						t.Errorf("ack on %s: %v", name, err)
						return
					}
				}
			}
		}()
	}
	prod := dial(t, a)
	for i := 0; i < n; i++ {
		if err := prod.Send(queue, "text/plain", []byte(strconv.Itoa(i)), stomp.SendOpt.Header("persistent", "true"), stomp.SendOpt.Receipt); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("deliveries per broker: a=%d b=%d", count["a"], count["b"])
	if len(seen) != n {
		t.Fatalf("%d of %d messages delivered", len(seen), n)
	}
	for _, name := range []string{"a", "b"} {
		if count[name] < n/4 {
			t.Errorf("broker %s's consumer got %d of %d, want at least a quarter", name, count[name], n)
		}
	}
}
