package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/store"
)

// TestSubscriptionsConformance checks store.Subscriptions on every backend
// that implements it: add (and add again to move it to another topic),
// list sorted, seen through a second handle, and remove deleting the
// subscription with every message of its queue but nothing else.
func TestSubscriptionsConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			ss, ok := s.(store.Subscriptions)
			if !ok {
				t.Skipf("%s keeps no durable subscriptions (the broker keeps them in memory)", b.name)
			}
			ctx := testContext(t)
			qa, qb := queueName(t, "durable-a"), queueName(t, "durable-b")
			topic, other := queueName(t, "topic"), queueName(t, "other-topic")
			for _, add := range []store.Subscription{{qb, other}, {qa, topic}, {qb, topic}} {
				if err := ss.AddSubscription(ctx, add.Queue, add.Topic); err != nil {
					t.Fatalf("AddSubscription(%v): %v", add, err)
				}
			}
			want := []store.Subscription{{qa, topic}, {qb, topic}}
			if qb < qa {
				want[0], want[1] = want[1], want[0]
			}
			check := func(what string, ss store.Subscriptions, want []store.Subscription) {
				t.Helper()
				got, err := ss.ListSubscriptions(ctx)
				if err != nil {
					t.Fatalf("ListSubscriptions: %v", err)
				}
				// Other tests may share the database: look at ours only.
				got = slices.DeleteFunc(got, func(s store.Subscription) bool { return s.Queue != qa && s.Queue != qb })
				if !slices.Equal(got, want) {
					t.Fatalf("%s: subscriptions %v, want %v", what, got, want)
				}
			}
			check("after adding", ss, want)
			if reopen != nil {
				check("through a second handle", reopen(t).(store.Subscriptions), want)
			}

			mustPut(t, s, msg(qa, "1"), msg(qa, "2"), msg(qb, "3"))
			if err := ss.RemoveSubscription(ctx, qa); err != nil {
				t.Fatalf("RemoveSubscription: %v", err)
			}
			if err := ss.RemoveSubscription(ctx, queueName(t, "never-made")); err != nil {
				t.Fatalf("RemoveSubscription of an unknown queue: %v", err)
			}
			check("after removing one", ss, []store.Subscription{{qb, topic}})
			if st := statsFor(t, s, qa); st.Stored != 0 {
				t.Fatalf("removed subscription's queue still stores %d messages", st.Stored)
			}
			if st := statsFor(t, s, qb); st.Stored != 1 {
				t.Fatalf("the other subscription's queue stores %d messages, want 1", st.Stored)
			}
		})
	}
}

// TestWatchConformance checks store.Watcher on every backend that
// implements it: a Put through one handle is announced, by queue name, to
// a Watch on another handle (another broker), once per queue per commit.
func TestWatchConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			if _, ok := s.(store.Watcher); !ok {
				t.Skipf("%s is not shared by several brokers: nothing to announce", b.name)
			}
			w := reopen(t).(store.Watcher)
			ctx, cancel := context.WithCancel(testContext(t))
			got := make(chan string, 16)
			done := make(chan error, 1)
			go func() {
				done <- w.Watch(ctx, store.WatchFuncs{Stored: func(q string) { got <- q }, Err: func(err error) { t.Log(err) }})
			}()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Watch returned %v after its context ended, want context.Canceled", err)
				}
			}()
			qa, qb := queueName(t, "watched-a"), queueName(t, "watched-b")
			// Watch has no "listening now" signal: put until the first
			// announcement arrives, then once more and check exactly that.
			deadline := time.After(10 * time.Second)
		first:
			for {
				mustPut(t, s, msg(qa, "probe"))
				select {
				case q := <-got:
					if q == qa {
						break first
					}
				case <-time.After(100 * time.Millisecond):
				case <-deadline:
					t.Fatal("no announcement of a Put within 10s")
				}
			}
			for len(got) > 0 {
				<-got
			}
			time.Sleep(100 * time.Millisecond) // late announcements of the probes
			for len(got) > 0 {
				<-got
			}
			mustPut(t, s, msg(qb, "1"), msg(qb, "2"), msg(qa, "3"))
			seen := map[string]int{}
			for len(seen) < 2 {
				select {
				case q := <-got:
					seen[q]++
				case <-time.After(5 * time.Second):
					t.Fatalf("announcements %v, want %s and %s", seen, qa, qb)
				}
			}
			select {
			case q := <-got:
				seen[q]++
			case <-time.After(200 * time.Millisecond):
			}
			if seen[qa] != 1 || seen[qb] != 1 {
				t.Fatalf("announcements %v, want one each for %s and %s", seen, qa, qb)
			}
		})
	}
}

// TestWatchSubscriptionsConformance checks the announcements of durable
// subscription changes on every backend that makes them: a Watch sees
// AddSubscription and RemoveSubscription made through another handle
// (another broker) in commit order, with Own false, and its own handle's
// changes with Own true; queue names the messages announcements use are
// not mixed in.
func TestWatchSubscriptionsConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			w, ok := s.(store.Watcher)
			if !ok {
				t.Skipf("%s is not shared by several brokers: nothing to announce", b.name)
			}
			mine := s.(store.Subscriptions)
			theirs := reopen(t).(store.Subscriptions)
			ctx, cancel := context.WithCancel(testContext(t))
			got := make(chan store.SubscriptionChange, 64)
			stored := make(chan string, 64)
			done := make(chan error, 1)
			go func() {
				done <- w.Watch(ctx, store.WatchFuncs{
					Stored:       func(q string) { stored <- q },
					Subscription: func(c store.SubscriptionChange) { got <- c },
					Err:          func(err error) { t.Log(err) },
				})
			}()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Watch returned %v after its context ended, want context.Canceled", err)
				}
			}()
			// Watch has no "listening now" signal: add a probe until its
			// announcement arrives.
			probe, topic := queueName(t, "sub-probe"), queueName(t, "sub-topic")
			deadline := time.After(10 * time.Second)
		first:
			for {
				if err := theirs.AddSubscription(ctx, probe, topic); err != nil {
					t.Fatal(err)
				}
				select {
				case c := <-got:
					if c.Queue == probe {
						break first
					}
				case <-time.After(100 * time.Millisecond):
				case <-deadline:
					t.Fatal("no announcement of AddSubscription within 10s")
				}
			}
			time.Sleep(100 * time.Millisecond) // late announcements of the probes
			for len(got) > 0 {
				<-got
			}
			qa, qb := queueName(t, "sub-a"), queueName(t, "sub-b")
			steps := []struct {
				ss   store.Subscriptions
				want store.SubscriptionChange
			}{
				{theirs, store.SubscriptionChange{Subscription: store.Subscription{Queue: qa, Topic: topic}}},
				{mine, store.SubscriptionChange{Subscription: store.Subscription{Queue: qb, Topic: topic}, Own: true}},
				{theirs, store.SubscriptionChange{Subscription: store.Subscription{Queue: qa}, Removed: true}},
				{mine, store.SubscriptionChange{Subscription: store.Subscription{Queue: qb}, Removed: true, Own: true}},
				{theirs, store.SubscriptionChange{Subscription: store.Subscription{Queue: probe}, Removed: true}},
			}
			for _, st := range steps {
				var err error
				if st.want.Removed {
					err = st.ss.RemoveSubscription(ctx, st.want.Queue)
				} else {
					err = st.ss.AddSubscription(ctx, st.want.Queue, st.want.Topic)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			for i, st := range steps {
				select {
				case c := <-got:
					if c != st.want {
						t.Fatalf("announcement %d: %+v, want %+v", i, c, st.want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("announcement %d (%+v) did not arrive", i, st.want)
				}
			}
			select {
			case c := <-got:
				t.Fatalf("unexpected announcement %+v", c)
			case q := <-stored:
				t.Fatalf("subscription change announced as stored messages of %q", q)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}
