package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Watcher is implemented by the stores several brokers share (PostgreSQL):
// it tells a broker, within moments, that messages were stored in a queue,
// or that a durable subscription was made or deleted, by another broker, so
// that it need not poll to learn of them.
type Watcher interface {
	// Watch calls h's functions as announcements arrive, until ctx ends,
	// all on one connection. It reconnects after a lost connection,
	// calling h.Err; announcements sent meanwhile are lost, so a broker
	// keeps a slow poll as well. The functions run on Watch's goroutine and
	// must not block. Watch returns ctx's error.
	Watch(ctx context.Context, h WatchFuncs) error
}

// WatchFuncs are what Watch calls. A nil function is not called.
type WatchFuncs struct {
	// Stored is called with a queue's name after each commit that stored
	// messages in it, by any broker (this one too), at most once per queue
	// per commit; names longer than maxNotifyPayload bytes are not
	// announced.
	Stored func(queue string)
	// Subscription is called after each commit of AddSubscription or
	// RemoveSubscription by any broker, in commit order, with Own set for
	// the changes made through this store handle. Subscriptions whose
	// queue and topic together pass maxNotifyPayload bytes are not
	// announced.
	Subscription func(SubscriptionChange)
	// Err is called with each error of the listening connection.
	Err func(error)
}

// SubscriptionChange is one announced change of the durable subscriptions.
type SubscriptionChange struct {
	Subscription // Topic is empty when Removed
	// Removed is true for RemoveSubscription, false for AddSubscription.
	Removed bool
	// Own is true when the change was made through the store handle that
	// announces it: its own caller made it, and all other Watchers were
	// sent it at the same commit.
	Own bool
}

// maxNotifyPayload bounds what is announced (NOTIFY's payload must stay
// under 8000 bytes).
const maxNotifyPayload = 4000

// notifyChannel is the NOTIFY channel of the store in schema. Channels are
// per database, not per schema, so stores in other schemas of the same
// database (tests, several sites) do not wake each other.
func notifyChannel(schema string) string {
	return truncateIdent("stomp_broker_messages_" + schema)
}

// subscriptionsChannel is the NOTIFY channel of durable subscription
// changes of the store in schema.
func subscriptionsChannel(schema string) string {
	return truncateIdent("stomp_broker_subscriptions_" + schema)
}

// truncateIdent cuts an identifier as PostgreSQL does (63 bytes).
func truncateIdent(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// Payloads on the subscriptions channel: "+QUEUE\nTOPIC" or "-QUEUE".
// Neither a queue nor a topic name holds a newline (STOMP headers cannot).
func encodeSubscriptionChange(c SubscriptionChange) string {
	if c.Removed {
		return "-" + c.Queue
	}
	return "+" + c.Queue + "\n" + c.Topic
}

func decodeSubscriptionChange(p string) (SubscriptionChange, bool) {
	switch {
	case strings.HasPrefix(p, "-") && len(p) > 1:
		return SubscriptionChange{Subscription: Subscription{Queue: p[1:]}, Removed: true}, true
	case strings.HasPrefix(p, "+"):
		q, t, ok := strings.Cut(p[1:], "\n")
		return SubscriptionChange{Subscription: Subscription{Queue: q, Topic: t}}, ok && q != "" && t != ""
	}
	return SubscriptionChange{}, false
}

// notifySubscription announces c at the commit of tx.
func (s *postgresStore) notifySubscription(ctx context.Context, tx pgx.Tx, c SubscriptionChange) error {
	p := encodeSubscriptionChange(c)
	if len(p) > maxNotifyPayload {
		return nil // the other brokers' poll finds it
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.subsChannel, p); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// backendSet is a set of PostgreSQL backend pids, safe for concurrent use.
type backendSet struct{ m sync.Map }

func (b *backendSet) add(pid uint32)    { b.m.Store(pid, struct{}{}) }
func (b *backendSet) remove(pid uint32) { b.m.Delete(pid) }
func (b *backendSet) has(pid uint32) bool {
	_, ok := b.m.Load(pid)
	return ok
}

// Watch implements Watcher with LISTEN on a connection of its own. A
// notification whose sending backend is one of this store's pool is its
// own (backend pids are unique among a server's live connections).
func (s *postgresStore) Watch(ctx context.Context, h WatchFuncs) error {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		},
		LogError: func(_ context.Context, err error) {
			if h.Err != nil && ctx.Err() == nil {
				h.Err(fmt.Errorf("store: postgres: listen: %w", err))
			}
		},
		ReconnectDelay: time.Second,
	}
	if h.Stored != nil {
		l.Handle(s.channel, pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
			h.Stored(n.Payload)
			return nil
		}))
	}
	if h.Subscription != nil {
		l.Handle(s.subsChannel, pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
			c, ok := decodeSubscriptionChange(n.Payload)
			if !ok {
				return fmt.Errorf("malformed subscription announcement %q", n.Payload)
			}
			c.Own = s.own.has(n.PID)
			h.Subscription(c)
			return nil
		}))
	}
	return l.Listen(ctx)
}
