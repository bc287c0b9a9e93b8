package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Subscription is one durable topic subscription: the queue that keeps
// what is published to Topic while its subscriber is away.
type Subscription struct {
	// Queue is the subscription's queue (stompwire.DurablePrefix + name).
	Queue string
	// Topic is the /topic/ destination that feeds it.
	Topic string
}

// Subscriptions is implemented by the stores that keep durable topic
// subscriptions (SQLite and PostgreSQL), so that every broker sharing the
// store feeds every subscription, wherever it was made, and a subscription
// survives a restart. Its methods are safe for concurrent use.
type Subscriptions interface {
	// AddSubscription records that queue keeps topic's messages. Adding an
	// existing queue again sets its topic.
	AddSubscription(ctx context.Context, queue, topic string) error
	// RemoveSubscription deletes the subscription of queue and, in the same
	// transaction, every message stored in queue. Removing an unknown
	// queue is not an error.
	RemoveSubscription(ctx context.Context, queue string) error
	// ListSubscriptions returns every subscription, sorted by queue.
	ListSubscriptions(ctx context.Context) ([]Subscription, error)
}

// AddSubscription implements Subscriptions.
func (s *sqliteStore) AddSubscription(ctx context.Context, queue, topic string) error {
	return s.do("add subscription", func() error {
		_, err := s.db.ExecContext(ctx, `INSERT INTO durable_subscriptions (queue, topic) VALUES (?, ?)
			ON CONFLICT (queue) DO UPDATE SET topic = excluded.topic`, queue, topic)
		return err
	})
}

// RemoveSubscription implements Subscriptions.
func (s *sqliteStore) RemoveSubscription(ctx context.Context, queue string) error {
	return s.do("remove subscription", func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.ExecContext(ctx, `DELETE FROM durable_subscriptions WHERE queue = ?`, queue); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE queue = ?`, queue); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// ListSubscriptions implements Subscriptions.
func (s *sqliteStore) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var subs []Subscription
	err := s.do("list subscriptions", func() error {
		rows, err := s.db.QueryContext(ctx, `SELECT queue, topic FROM durable_subscriptions ORDER BY queue`)
		if err != nil {
			return err
		}
		subs, err = scanSubscriptions(rows)
		return err
	})
	return subs, err
}

func scanSubscriptions(rows *sql.Rows) ([]Subscription, error) {
	defer rows.Close()
	var subs []Subscription
	for rows.Next() {
		var sub Subscription
		if err := rows.Scan(&sub.Queue, &sub.Topic); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		subs = append(subs, sub)
	}
	return subs, rows.Err()
}

// AddSubscription implements Subscriptions.
func (s *postgresStore) AddSubscription(ctx context.Context, queue, topic string) error {
	return s.do("add subscription", func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO durable_subscriptions (queue, topic) VALUES ($1, $2)
				ON CONFLICT (queue) DO UPDATE SET topic = excluded.topic`, queue, topic); err != nil {
				return err
			}
			return s.notifySubscription(ctx, tx, SubscriptionChange{Subscription: Subscription{Queue: queue, Topic: topic}})
		})
	})
}

// RemoveSubscription implements Subscriptions.
func (s *postgresStore) RemoveSubscription(ctx context.Context, queue string) error {
	return s.do("remove subscription", func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM durable_subscriptions WHERE queue = $1`, queue); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE queue = $1`, queue); err != nil {
				return err
			}
			return s.notifySubscription(ctx, tx, SubscriptionChange{Subscription: Subscription{Queue: queue}, Removed: true})
		})
	})
}

// ListSubscriptions implements Subscriptions.
func (s *postgresStore) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var subs []Subscription
	err := s.do("list subscriptions", func() error {
		rows, err := s.pool.Query(ctx, `SELECT queue, topic FROM durable_subscriptions ORDER BY queue`)
		if err != nil {
			return err
		}
		subs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
			var sub Subscription
			err := r.Scan(&sub.Queue, &sub.Topic)
			return sub, err
		})
		return err
	})
	return subs, err
}
