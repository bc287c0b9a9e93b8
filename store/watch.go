package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Watcher is implemented by the stores several brokers share (PostgreSQL):
// it tells a broker, within moments, that messages were stored in a queue,
// by any broker, so that it need not poll to learn of them.
type Watcher interface {
	// Watch calls fn with a queue's name after each commit that stored
	// messages in it (at most once per queue per commit; names longer than
	// maxNotifyPayload bytes are not announced), until ctx ends. It
	// reconnects after a lost connection, calling logErr; notifications
	// sent meanwhile are lost, so a broker keeps a slow poll as well. fn
	// runs on Watch's goroutine and must not block. Watch returns ctx's
	// error.
	Watch(ctx context.Context, fn func(queue string), logErr func(error)) error
}

// maxNotifyPayload bounds the queue names Put announces (NOTIFY's payload
// must stay under 8000 bytes).
const maxNotifyPayload = 4000

// notifyChannel is the NOTIFY channel of the store in schema. Channels are
// per database, not per schema, so stores in other schemas of the same
// database (tests, several sites) do not wake each other.
func notifyChannel(schema string) string {
	ch := "stomp_broker_messages_" + schema
	if len(ch) > 63 { // PostgreSQL truncates identifiers to 63 bytes
		ch = ch[:63]
	}
	return ch
}

// Watch implements Watcher with LISTEN on a connection of its own.
func (s *postgresStore) Watch(ctx context.Context, fn func(queue string), logErr func(error)) error {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		},
		LogError: func(_ context.Context, err error) {
			if logErr != nil && ctx.Err() == nil {
				logErr(fmt.Errorf("store: postgres: listen: %w", err))
			}
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(s.channel, pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
		fn(n.Payload)
		return nil
	}))
	return l.Listen(ctx)
}
