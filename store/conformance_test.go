package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/store"
)

// conformanceCase is one behaviour every Store must have. reopen is nil for
// backends that cannot open a second handle on the same data.
type conformanceCase struct {
	name string
	run  func(t *testing.T, s store.Store, reopen func(*testing.T) store.Store)
}

// conformance is the suite TestConformance runs against every backend.
var conformance = []conformanceCase{
	{"RoundTrip", testRoundTrip},
	{"BadMessage", testBadMessage},
	{"LeaseExclusive", testLeaseExclusive},
	{"LeaseExpiry", testLeaseExpiry},
	{"RenewKeepsLease", testRenewKeepsLease},
	{"ReleaseNotDelivered", testReleaseNotDelivered},
	{"NotBefore", testNotBefore},
	{"ReleaseWithBackoff", testReleaseWithBackoff},
	{"Priority", testPriority},
	{"UniqKeyCoalescing", testUniqKeyCoalescing},
	{"UniqKeyConcurrent", testUniqKeyConcurrent},
	{"DeadLetter", testDeadLetter},
	{"ReleaseOwner", testReleaseOwner},
	{"RestartRedelivers", testRestartRedelivers},
	{"Stats", testStats},
	{"GroupCommit", testGroupCommit},
	{"Closed", testClosed},
}

func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					s, reopen := b.open(t)
					c.run(t, s, reopen)
				})
			}
		})
	}
}

// --- helpers ---

func msg(queue, body string) *store.Message {
	return &store.Message{Queue: queue, Headers: []byte("h:" + body), Body: []byte(body), MaxRedeliveries: -1}
}

func mustPut(t *testing.T, s store.Store, msgs ...*store.Message) []store.PutResult {
	t.Helper()
	res, err := s.Put(testContext(t), msgs)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("Put returned %d results for %d messages", len(res), len(msgs))
	}
	for i, r := range res {
		if r.ID != msgs[i].ID {
			t.Fatalf("Put result %d has ID %d but the message has ID %d", i, r.ID, msgs[i].ID)
		}
	}
	return res
}

func mustLease(t *testing.T, s store.Store, queue, owner string, n int, d time.Duration) []*store.Message {
	t.Helper()
	got, err := s.Lease(testContext(t), queue, owner, n, d)
	if err != nil {
		t.Fatalf("Lease(%s, %s, %d): %v", queue, owner, n, err)
	}
	return got
}

func ids(msgs []*store.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func wantIDs(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got ids %v, want %v", what, got, want)
	}
}

// statsFor returns the Stats line of queue (zero if absent).
func statsFor(t *testing.T, s store.Store, queue string) store.QueueStats {
	t.Helper()
	all, err := s.Stats(testContext(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, st := range all {
		if st.Queue == queue {
			return st
		}
	}
	return store.QueueStats{Queue: queue}
}

const long = time.Minute // a lease that never runs out during a test

// --- cases ---

func testRoundTrip(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	in := []*store.Message{msg(q, "a"), msg(q, "b"), msg(q, "c")}
	in[1].Headers = nil // nil and empty blobs must survive too
	in[2].Body = []byte{}
	in[2].MaxRedeliveries = 7
	mustPut(t, s, in...)
	for i := 1; i < len(in); i++ {
		if in[i].ID <= in[i-1].ID {
			t.Fatalf("IDs not increasing: %d then %d", in[i-1].ID, in[i].ID)
		}
	}

	got := mustLease(t, s, q, "A", 10, long)
	wantIDs(t, "lease", ids(got), ids(in))
	for i, m := range got {
		if m.Queue != q || !bytes.Equal(m.Headers, in[i].Headers) || !bytes.Equal(m.Body, in[i].Body) {
			t.Errorf("message %d: got %q %q %q, want %q %q %q", i, m.Queue, m.Headers, m.Body, q, in[i].Headers, in[i].Body)
		}
		if m.Deliveries != 1 {
			t.Errorf("message %d: Deliveries %d, want 1", i, m.Deliveries)
		}
		if m.MaxRedeliveries != in[i].MaxRedeliveries {
			t.Errorf("message %d: MaxRedeliveries %d, want %d", i, m.MaxRedeliveries, in[i].MaxRedeliveries)
		}
	}
	if again := mustLease(t, s, q, "B", 10, long); len(again) != 0 {
		t.Fatalf("leased messages were leased again: %v", ids(again))
	}
	if err := s.Ack(testContext(t), ids(got)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := s.Ack(testContext(t), ids(got)); err != nil {
		t.Fatalf("Ack of ids already deleted: %v, want nil", err)
	}
	if st := statsFor(t, s, q); st.Stored != 0 {
		t.Fatalf("after Ack: %+v, want nothing stored", st)
	}
	if err := s.ReleaseOwner(testContext(t), "A"); err != nil {
		t.Fatal(err)
	}
	if again := mustLease(t, s, q, "B", 10, long); len(again) != 0 {
		t.Fatalf("acked messages came back: %v", ids(again))
	}
}

func testBadMessage(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	for _, c := range []struct {
		name string
		msgs []*store.Message
	}{
		{"no queue", []*store.Message{{Body: []byte("x")}}},
		{"nil message", []*store.Message{nil}},
		{"one bad of two", []*store.Message{msg(queueName(t, ""), "ok"), {}}},
	} {
		if _, err := s.Put(testContext(t), c.msgs); !errors.Is(err, store.ErrBadMessage) {
			t.Errorf("%s: Put error %v, want ErrBadMessage", c.name, err)
		}
	}
	if st := statsFor(t, s, queueName(t, "")); st.Stored != 0 {
		t.Fatalf("a refused Put stored something: %+v", st)
	}
}

// testLeaseExclusive: many owners lease the same queue at once (half of them
// through a second handle where the backend has one); every message must be
// handed out exactly once.
func testLeaseExclusive(t *testing.T, s store.Store, reopen func(*testing.T) store.Store) {
	const messages, owners = 300, 8
	q := queueName(t, "")
	in := make([]*store.Message, messages)
	for i := range in {
		in[i] = msg(q, fmt.Sprint(i))
	}
	mustPut(t, s, in...)

	handles := []store.Store{s}
	if reopen != nil {
		handles = append(handles, reopen(t))
	}
	var (
		mu      sync.Mutex
		seen    = make(map[int64]string)
		dups    []string
		wg      sync.WaitGroup
		errs    = make(chan error, owners) // one per goroutine at most
		startCh = make(chan struct{})
	)
	for o := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := handles[o%len(handles)]
			owner := fmt.Sprintf("owner-%d", o)
			<-startCh
			for {
				got, err := h.Lease(testContext(t), q, owner, 7, long)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					if prev, dup := seen[m.ID]; dup {
						dups = append(dups, fmt.Sprintf("%d by %s and %s", m.ID, prev, owner))
					}
					seen[m.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	close(startCh)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Lease: %v", err)
	}
	if len(dups) > 0 {
		t.Fatalf("%d messages leased twice, e.g. %s", len(dups), dups[0])
	}
	if len(seen) != messages {
		t.Fatalf("%d distinct messages leased, want %d", len(seen), messages)
	}
}

// testLeaseExpiry: broker A leases and goes silent; once the lease runs out,
// broker B (through its own handle where the backend has one) gets the
// message, flagged as a redelivery.
func testLeaseExpiry(t *testing.T, s store.Store, reopen func(*testing.T) store.Store) {
	q := queueName(t, "")
	in := msg(q, "x")
	mustPut(t, s, in)
	brokerB := s
	if reopen != nil {
		brokerB = reopen(t)
	}
	first := mustLease(t, s, q, "A", 1, 200*time.Millisecond)
	wantIDs(t, "first lease", ids(first), []int64{in.ID})
	if got := mustLease(t, brokerB, q, "B", 1, long); len(got) != 0 {
		t.Fatalf("leased while A's lease runs: %v", ids(got))
	}
	var second []*store.Message
	poll.Eventually(t, 5*time.Second, "lease runs out", func() bool {
		second = mustLease(t, brokerB, q, "B", 1, long)
		return len(second) == 1
	})
	if second[0].ID != in.ID || second[0].Deliveries != 2 {
		t.Fatalf("after expiry got id %d Deliveries %d, want id %d Deliveries 2", second[0].ID, second[0].Deliveries, in.ID)
	}
	// A's lease is gone: renewing it must say so, and must not steal it.
	err := s.Renew(testContext(t), "A", []int64{in.ID}, long)
	var lost *store.LeaseLostError
	if !errors.As(err, &lost) || !errors.Is(err, store.ErrLeaseLost) || !slices.Equal(lost.IDs, []int64{in.ID}) {
		t.Fatalf("Renew by the old owner: %v, want LeaseLostError for [%d]", err, in.ID)
	}
	if err := s.Renew(testContext(t), "B", []int64{in.ID}, long); err != nil {
		t.Fatalf("Renew by the holder: %v", err)
	}
	if st := statsFor(t, s, q); st.Stored != 1 || st.Leased != 1 {
		t.Fatalf("stats %+v, want 1 stored 1 leased", st)
	}
}

func testRenewKeepsLease(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	in := []*store.Message{msg(q, "a"), msg(q, "b")}
	mustPut(t, s, in...)
	mustLease(t, s, q, "A", 2, 150*time.Millisecond)
	if err := s.Renew(testContext(t), "A", ids(in), long); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // well past the original lease
	if got := mustLease(t, s, q, "B", 2, long); len(got) != 0 {
		t.Fatalf("renewed leases ran out: %v leased by B", ids(got))
	}
	// A renewal that names an unknown id renews the rest and reports it.
	err := s.Renew(testContext(t), "A", []int64{in[0].ID, 1 << 40}, long)
	var lost *store.LeaseLostError
	if !errors.As(err, &lost) || !slices.Equal(lost.IDs, []int64{1 << 40}) {
		t.Fatalf("Renew with an unknown id: %v", err)
	}
}

func testReleaseNotDelivered(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	in := msg(q, "x")
	mustPut(t, s, in)
	ctx := testContext(t)
	steps := []struct {
		notDelivered   bool
		lastError      string
		wantDeliveries int // on the lease that follows the release
	}{
		{notDelivered: true, wantDeliveries: 1},                     // never reached a client: not counted
		{notDelivered: false, lastError: "boom", wantDeliveries: 2}, // a NACK: counted
		{notDelivered: true, lastError: "", wantDeliveries: 2},
	}
	got := mustLease(t, s, q, "A", 1, long)
	if len(got) != 1 || got[0].Deliveries != 1 {
		t.Fatalf("first lease: %+v", got)
	}
	for i, st := range steps {
		if err := s.Release(ctx, []int64{in.ID}, st.notDelivered, time.Time{}, st.lastError); err != nil {
			t.Fatalf("step %d: Release: %v", i, err)
		}
		got = mustLease(t, s, q, "A", 1, long)
		if len(got) != 1 {
			t.Fatalf("step %d: released message not leasable", i)
		}
		if got[0].Deliveries != st.wantDeliveries || got[0].LastError != st.lastError {
			t.Fatalf("step %d: Deliveries %d LastError %q, want %d %q",
				i, got[0].Deliveries, got[0].LastError, st.wantDeliveries, st.lastError)
		}
	}
	if err := s.Release(ctx, []int64{1 << 40}, false, time.Time{}, ""); err != nil {
		t.Fatalf("Release of an unknown id: %v, want nil", err)
	}
}

// leaseWhenVisible polls Lease until the message shows up and returns how
// long after start that was.
func leaseWhenVisible(t *testing.T, s store.Store, q string, start time.Time) (*store.Message, time.Duration) {
	t.Helper()
	var got []*store.Message
	poll.Eventually(t, 5*time.Second, "delayed message becomes visible", func() bool {
		got = mustLease(t, s, q, "A", 1, long)
		return len(got) == 1
	})
	return got[0], time.Since(start)
}

// delayTolerance allows for the PostgreSQL store converting NotBefore into
// a delay on the server clock (a few ms of round trip).
const delayTolerance = 20 * time.Millisecond

func testNotBefore(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	const delay = 300 * time.Millisecond
	start := time.Now()
	later := msg(q, "later")
	later.NotBefore = start.Add(delay)
	mustPut(t, s, later)
	if got := mustLease(t, s, q, "A", 1, long); len(got) != 0 {
		t.Fatalf("delayed message leased at once")
	}
	now := msg(q, "now") // put after, but visible first
	mustPut(t, s, now)
	if got := mustLease(t, s, q, "A", 5, long); !slices.Equal(ids(got), []int64{now.ID}) {
		t.Fatalf("got %v, want only the undelayed %d", ids(got), now.ID)
	}
	m, after := leaseWhenVisible(t, s, q, start)
	if m.ID != later.ID {
		t.Fatalf("got %d, want %d", m.ID, later.ID)
	}
	if after < delay-delayTolerance {
		t.Fatalf("delayed message leased after %v, before its NotBefore (%v)", after, delay)
	}
}

func testReleaseWithBackoff(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	in := msg(q, "x")
	mustPut(t, s, in)
	mustLease(t, s, q, "A", 1, long)
	const delay = 300 * time.Millisecond
	start := time.Now()
	if err := s.Release(testContext(t), []int64{in.ID}, false, start.Add(delay), "retry later"); err != nil {
		t.Fatal(err)
	}
	if got := mustLease(t, s, q, "A", 1, long); len(got) != 0 {
		t.Fatalf("released-with-backoff message leased at once")
	}
	m, after := leaseWhenVisible(t, s, q, start)
	if after < delay-delayTolerance {
		t.Fatalf("leased after %v, before the backoff (%v)", after, delay)
	}
	if m.Deliveries != 2 || m.LastError != "retry later" {
		t.Fatalf("Deliveries %d LastError %q, want 2 %q", m.Deliveries, m.LastError, "retry later")
	}
}

func testPriority(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	prios := []int{0, 5, 1, 5, -3, 1}
	in := make([]*store.Message, len(prios))
	for i, p := range prios {
		in[i] = msg(q, fmt.Sprint(i))
		in[i].Priority = p
	}
	mustPut(t, s, in...)
	// Highest priority first, ties in ID (= arrival) order.
	want := []int64{in[1].ID, in[3].ID, in[2].ID, in[5].ID, in[0].ID, in[4].ID}
	var got []int64
	for range 3 { // two at a time: order must hold across Lease calls too
		got = append(got, ids(mustLease(t, s, q, "A", 2, long))...)
	}
	wantIDs(t, "priority order", got, want)
}

func testUniqKeyCoalescing(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q, other := queueName(t, ""), queueName(t, ".other")
	keyed := func(queue, key, body string) *store.Message {
		m := msg(queue, body)
		m.UniqKey = key
		return m
	}
	first, dupSameCall, noKey1, noKey2 := keyed(q, "k", "1"), keyed(q, "k", "2"), keyed(q, "", "3"), keyed(q, "", "4")
	res := mustPut(t, s, first, dupSameCall, noKey1, noKey2)
	wantCoalesced := []bool{false, true, false, false}
	for i, r := range res {
		if r.Coalesced != wantCoalesced[i] {
			t.Fatalf("result %d: Coalesced=%v, want %v", i, r.Coalesced, wantCoalesced[i])
		}
	}
	if dupSameCall.ID != first.ID {
		t.Fatalf("coalesced message got ID %d, want the first's %d", dupSameCall.ID, first.ID)
	}

	cases := []struct {
		name          string
		m             *store.Message
		wantCoalesced bool
	}{
		{"same key, later Put", keyed(q, "k", "5"), true},
		{"same key, other queue", keyed(other, "k", "6"), false},
		{"other key", keyed(q, "k2", "7"), false},
	}
	for _, c := range cases {
		r := mustPut(t, s, c.m)[0]
		if r.Coalesced != c.wantCoalesced || (c.wantCoalesced && r.ID != first.ID) {
			t.Fatalf("%s: %+v, want Coalesced=%v", c.name, r, c.wantCoalesced)
		}
	}
	if st := statsFor(t, s, q); st.Stored != 4 { // first, noKey1, noKey2, k2
		t.Fatalf("stored %d in %s, want 4", st.Stored, q)
	}

	// Unique only while stored: once acked, the key is free again.
	if err := s.Ack(testContext(t), []int64{first.ID}); err != nil {
		t.Fatal(err)
	}
	again := keyed(q, "k", "8")
	if r := mustPut(t, s, again)[0]; r.Coalesced || r.ID == first.ID {
		t.Fatalf("key reused after ack: %+v, want a new message", r)
	}
}

// testUniqKeyConcurrent: producers on every handle Put the same key at
// once; exactly one message is stored and every Put reports its ID.
func testUniqKeyConcurrent(t *testing.T, s store.Store, reopen func(*testing.T) store.Store) {
	const producers = 20
	q := queueName(t, "")
	handles := []store.Store{s}
	if reopen != nil {
		handles = append(handles, reopen(t))
	}
	results := make([]store.PutResult, producers)
	errs := make([]error, producers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			m := msg(q, fmt.Sprint(i))
			m.UniqKey = "same"
			var res []store.PutResult
			res, errs[i] = handles[i%len(handles)].Put(testContext(t), []*store.Message{m})
			if errs[i] == nil {
				results[i] = res[0]
			}
		}()
	}
	close(start)
	wg.Wait()
	stored := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("producer %d: %v", i, errs[i])
		}
		if !r.Coalesced {
			stored++
		}
		if r.ID != results[0].ID {
			t.Fatalf("producer %d got ID %d, producer 0 got %d", i, r.ID, results[0].ID)
		}
	}
	if stored != 1 {
		t.Fatalf("%d Puts stored a message, want exactly 1", stored)
	}
	if st := statsFor(t, s, q); st.Stored != 1 {
		t.Fatalf("stored %d, want 1", st.Stored)
	}
}

func testDeadLetter(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q, dlq := queueName(t, ""), queueName(t, ".DLQ")
	in := msg(q, "poison")
	in.UniqKey = "job-1"
	in.Priority = 3
	mustPut(t, s, in)
	ctx := testContext(t)
	mustLease(t, s, q, "A", 1, long)
	if err := s.Release(ctx, []int64{in.ID}, false, time.Time{}, "bad input"); err != nil {
		t.Fatal(err)
	}
	mustLease(t, s, q, "A", 1, long) // second delivery
	if err := s.DeadLetter(ctx, in.ID, dlq); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if got := mustLease(t, s, q, "B", 1, long); len(got) != 0 {
		t.Fatalf("dead-lettered message still in its queue")
	}
	got := mustLease(t, s, dlq, "B", 1, long)
	if len(got) != 1 {
		t.Fatalf("dead-lettered message not in %s", dlq)
	}
	m := got[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"ID", m.ID, in.ID},
		{"Queue", m.Queue, dlq},
		{"OrigQueue", m.OrigQueue, q},
		{"OrigDeliveries", m.OrigDeliveries, 2},
		{"Deliveries", m.Deliveries, 1},
		{"LastError", m.LastError, "bad input"},
		{"Priority", m.Priority, 3},
		{"Body", string(m.Body), "poison"},
		{"Headers", string(m.Headers), "h:poison"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("dead-lettered %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if st := statsFor(t, s, dlq); st.Stored != 1 || st.DeadLettered != 1 || st.Leased != 1 {
		t.Errorf("DLQ stats %+v, want 1 stored, 1 dead-lettered, 1 leased", st)
	}
	// The key left with the message: the original queue takes it again.
	if r := mustPut(t, s, &store.Message{Queue: q, UniqKey: "job-1"})[0]; r.Coalesced {
		t.Errorf("uniqkey still taken after dead-lettering")
	}
	if err := s.DeadLetter(ctx, 1<<40, dlq); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeadLetter of an unknown id: %v, want ErrNotFound", err)
	}
}

func testReleaseOwner(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q := queueName(t, "")
	in := make([]*store.Message, 5)
	for i := range in {
		in[i] = msg(q, fmt.Sprint(i))
	}
	mustPut(t, s, in...)
	a := mustLease(t, s, q, "broker-A", 3, long)
	b := mustLease(t, s, q, "broker-B", 2, long)
	if err := s.ReleaseOwner(testContext(t), "broker-A"); err != nil {
		t.Fatalf("ReleaseOwner: %v", err)
	}
	got := mustLease(t, s, q, "broker-C", 10, long)
	wantIDs(t, "after ReleaseOwner(A)", ids(got), ids(a))
	for _, m := range got {
		if m.Deliveries != 2 {
			t.Errorf("message %d: Deliveries %d, want 2 (redelivery must be flagged)", m.ID, m.Deliveries)
		}
	}
	if err := s.Renew(testContext(t), "broker-B", ids(b), long); err != nil {
		t.Fatalf("B's leases were touched: %v", err)
	}
}

// testRestartRedelivers: a broker leases, "dies" (its store handle is
// closed), restarts, releases its old leases, and the messages come back
// flagged as redelivered. Only for backends that survive a reopen.
func testRestartRedelivers(t *testing.T, s store.Store, reopen func(*testing.T) store.Store) {
	if reopen == nil {
		t.Skip("backend keeps nothing across a restart")
	}
	q := queueName(t, "")
	in := []*store.Message{msg(q, "a"), msg(q, "b"), msg(q, "c")}
	mustPut(t, s, in...)
	leased := mustLease(t, s, q, "broker-1", 2, long)
	if err := s.Ack(testContext(t), ids(leased[:1])); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := reopen(t)
	if err := s2.ReleaseOwner(testContext(t), "broker-1"); err != nil {
		t.Fatal(err)
	}
	got := mustLease(t, s2, q, "broker-1", 10, long)
	wantIDs(t, "after restart", ids(got), []int64{in[1].ID, in[2].ID})
	if got[0].Deliveries != 2 || got[1].Deliveries != 1 {
		t.Fatalf("Deliveries %d, %d; want 2 (redelivered), 1", got[0].Deliveries, got[1].Deliveries)
	}
	// New IDs keep increasing past everything ever stored.
	next := msg(q, "d")
	mustPut(t, s2, next)
	if next.ID <= in[2].ID {
		t.Fatalf("ID after restart %d, not above %d", next.ID, in[2].ID)
	}
}

func testStats(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	q1, q2 := queueName(t, ".1"), queueName(t, ".2")
	mustPut(t, s, msg(q1, "a"), msg(q1, "b"), msg(q1, "c"), msg(q2, "d"), msg(q2, "e"))
	mustLease(t, s, q1, "A", 1, long)
	mustLease(t, s, q2, "A", 1, 50*time.Millisecond) // runs out: no longer counted
	time.Sleep(100 * time.Millisecond)
	all, err := s.Stats(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var mine []store.QueueStats
	for _, st := range all {
		if st.Queue == q1 || st.Queue == q2 {
			mine = append(mine, st)
		}
	}
	want := []store.QueueStats{{Queue: q1, Stored: 3, Leased: 1}, {Queue: q2, Stored: 2, Leased: 0}}
	if !slices.Equal(mine, want) {
		t.Fatalf("Stats %+v, want %+v", mine, want)
	}
}

// testGroupCommit: 100 producers Put one message each at the same moment;
// the group committer must carry them in far fewer transactions.
func testGroupCommit(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	counter, ok := s.(store.CommitCounter)
	if !ok {
		t.Skip("backend has no commits to group")
	}
	const producers = 100
	q := queueName(t, "")
	c0, p0 := counter.PutCommits()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, producers)
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Put(testContext(t), []*store.Message{msg(q, fmt.Sprint(i))}); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	c1, p1 := counter.PutCommits()
	commits, puts := c1-c0, p1-p0
	t.Logf("%d Puts in %d commits", puts, commits)
	if puts != producers {
		t.Fatalf("%d Puts counted, want %d", puts, producers)
	}
	if commits > producers/4 {
		t.Fatalf("%d commits for %d concurrent Puts: not grouped", commits, producers)
	}
	if st := statsFor(t, s, q); st.Stored != producers {
		t.Fatalf("stored %d, want %d", st.Stored, producers)
	}
}

func testClosed(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testContext(t)
	q := queueName(t, "")
	calls := map[string]error{}
	_, calls["Put"] = s.Put(ctx, []*store.Message{msg(q, "x")})
	_, calls["Lease"] = s.Lease(ctx, q, "A", 1, long)
	calls["Renew"] = s.Renew(ctx, "A", []int64{1}, long)
	calls["Ack"] = s.Ack(ctx, []int64{1})
	calls["Release"] = s.Release(ctx, []int64{1}, false, time.Time{}, "")
	calls["DeadLetter"] = s.DeadLetter(ctx, 1, q+".DLQ")
	calls["ReleaseOwner"] = s.ReleaseOwner(ctx, "A")
	_, calls["Stats"] = s.Stats(ctx)
	for name, err := range calls {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
