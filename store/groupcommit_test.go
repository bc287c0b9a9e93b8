package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitter drives the committer with a fake commitFunc, so its
// batching and failure rules are tested apart from any database.
func TestGroupCommitter(t *testing.T) {
	errBad := errors.New("bad request")
	// commit fails any batch that holds a message for queue "bad", the way
	// a constraint violation aborts a whole transaction.
	newFake := func() (*groupCommitter, *[]int) {
		var mu sync.Mutex
		var sizes []int
		var nextID int64
		g := newGroupCommitter(func(ctx context.Context, batch []*putRequest) error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(batch))
			for _, r := range batch {
				for _, m := range r.msgs {
					if m.Queue == "bad" {
						return errBad
					}
				}
			}
			for _, r := range batch {
				r.results = make([]PutResult, len(r.msgs))
				for i := range r.msgs {
					nextID++
					r.results[i] = PutResult{ID: nextID}
				}
			}
			time.Sleep(time.Millisecond) // an "fsync", so producers pile up
			return nil
		})
		return g, &sizes
	}

	t.Run("a bad request fails alone", func(t *testing.T) {
		g, _ := newFake()
		defer g.close()
		const producers = 30
		errs := make([]error, producers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				q := "good"
				if i == 7 {
					q = "bad"
				}
				m := &Message{Queue: q}
				_, errs[i] = g.put(context.Background(), []*Message{m})
				if errs[i] == nil && m.ID == 0 {
					errs[i] = errors.New("no ID filled in")
				}
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if i == 7 && !errors.Is(err, errBad) {
				t.Errorf("bad producer: %v, want errBad", err)
			}
			if i != 7 && err != nil {
				t.Errorf("producer %d: %v (failed with the bad one's batch)", i, err)
			}
		}
		// (Whether the fake's instant commits got batched depends on the
		// scheduler; batching is asserted against real databases in the
		// conformance suite. Here only the isolation counts.)
		if _, puts := g.counts(); puts != producers-1 {
			t.Errorf("%d puts committed, want %d", puts, producers-1)
		}
	})

	t.Run("cancelled before queued", func(t *testing.T) {
		g, sizes := newFake()
		defer g.close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := g.put(ctx, []*Message{{Queue: "good"}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("put: %v, want context.Canceled", err)
		}
		g.close()
		if len(*sizes) != 0 {
			t.Fatalf("a cancelled put reached commit: batches %v", *sizes)
		}
	})

	t.Run("closed", func(t *testing.T) {
		g, _ := newFake()
		g.close()
		g.close() // idempotent
		if _, err := g.put(context.Background(), []*Message{{Queue: "good"}}); !errors.Is(err, ErrClosed) {
			t.Fatalf("put after close: %v, want ErrClosed", err)
		}
	})
}
