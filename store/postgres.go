package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresSchema is the same model as sqliteSchema with PostgreSQL types.
// Times are timestamptz on the DATABASE clock: every lease and visibility
// test compares with the server's now(), so brokers on machines whose clocks
// disagree still agree on when a lease has run out. See sqliteSchema for why
// each index exists and why queries repeat the partial-index conditions;
// here messages_ready also keeps Lease's FOR UPDATE SKIP LOCKED scan short.
var postgresSchema = []string{
	`CREATE TABLE IF NOT EXISTS messages (
		id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		queue            TEXT        NOT NULL,
		headers          BYTEA,
		body             BYTEA,
		uniqkey          TEXT        NOT NULL DEFAULT '',
		not_before       TIMESTAMPTZ NOT NULL DEFAULT now(),
		deliveries       INTEGER     NOT NULL DEFAULT 0,
		max_redeliveries INTEGER     NOT NULL DEFAULT -1,
		last_error       TEXT        NOT NULL DEFAULT '',
		priority         INTEGER     NOT NULL DEFAULT 0,
		orig_queue       TEXT        NOT NULL DEFAULT '',
		orig_deliveries  INTEGER     NOT NULL DEFAULT 0,
		owner            TEXT        NOT NULL DEFAULT '', -- '' = not leased
		lease_until      TIMESTAMPTZ                      -- NULL when not leased
	)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS messages_uniqkey ON messages (queue, uniqkey) WHERE uniqkey <> ''`,
	`CREATE INDEX IF NOT EXISTS messages_ready  ON messages (queue, priority DESC, id) WHERE owner = ''`,
	`CREATE INDEX IF NOT EXISTS messages_leased ON messages (queue, lease_until) WHERE owner <> ''`,
	`CREATE INDEX IF NOT EXISTS messages_owner  ON messages (owner) WHERE owner <> ''`,
	`CREATE TABLE IF NOT EXISTS durable_subscriptions (
		queue TEXT PRIMARY KEY,
		topic TEXT NOT NULL
	)`,
}

// schemaLockKey is the advisory lock that serialises schema creation, since
// concurrent CREATE ... IF NOT EXISTS from brokers starting together can
// still collide in the catalog. Any fixed number works; this is "STOMPSTR".
const schemaLockKey = 0x53544f4d50535452

// postgresStore is the PostgreSQL Store. Several brokers may share one
// database: rows are claimed with SELECT ... FOR UPDATE SKIP LOCKED, so
// concurrent Lease calls never wait on or hand out each other's rows.
type postgresStore struct {
	msgStore
	pool *pgxpool.Pool
	// channel is the NOTIFY channel of this database schema: a commit of
	// Put notifies it once per queue (see Watch).
	channel string
	// subsChannel is the NOTIFY channel of durable subscription changes
	// (AddSubscription, RemoveSubscription; see Watch).
	subsChannel string
	// own are the backend pids of pool's connections.
	own *backendSet
}

// postgresDialect builds the msgDialect of a PostgreSQL store on pool.
// Times are on the database clock: an instant travels as a delay added to
// the server's now(). A set of ids travels as one array for ANY.
func postgresDialect(pool *pgxpool.Pool) *msgDialect {
	return &msgDialect{
		dollar:  true,
		noLease: "NULL",
		idIn:    "id = ANY(?)",
		ids:     func(ids []int64) any { return ids },
		instant: func(t time.Time) (string, any) {
			var delay time.Duration
			if !t.IsZero() {
				delay = time.Until(t)
			}
			return "now() + ?::interval", delay
		},
		exec: func(ctx context.Context, query string, args ...any) (int64, error) {
			tag, err := pool.Exec(ctx, query, args...)
			return tag.RowsAffected(), err
		},
		queryIDs: func(ctx context.Context, query string, args ...any) ([]int64, error) {
			rows, err := pool.Query(ctx, query, args...)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowTo[int64])
		},
	}
}

// OpenPostgres connects to the database at url (a postgres:// or
// postgresql:// URL, with any libpq parameters pgx understands, such as
// search_path) and creates the schema if absent. The caller must Close it.
func OpenPostgres(ctx context.Context, url string) (Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	// The backends of this pool: Watch tells their subscription changes
	// (this broker's own, already applied) from other brokers'.
	own := &backendSet{}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		own.add(c.PgConn().PID())
		return nil
	}
	cfg.BeforeClose = func(c *pgx.Conn) { own.remove(c.PgConn().PID()) }
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := createPostgresSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: current schema: %w", err)
	}
	s := &postgresStore{msgStore: msgStore{sqlBase: sqlBase{name: "postgres"}, d: postgresDialect(pool)}, pool: pool, channel: notifyChannel(schema), subsChannel: subscriptionsChannel(schema), own: own}
	s.gc = newGroupCommitter(s.commitPuts)
	return s, nil
}

// createPostgresSchema runs postgresSchema in one transaction holding the
// schema advisory lock.
func createPostgresSchema(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey)); err != nil {
			return fmt.Errorf("store: postgres: schema lock: %w", err)
		}
		for _, stmt := range postgresSchema {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("store: postgres: create schema: %w", err)
			}
		}
		return nil
	})
}

// Put implements Store.Put through the group committer.
func (s *postgresStore) Put(ctx context.Context, msgs []*Message) ([]PutResult, error) {
	return s.put(ctx, msgs, nil)
}

// postgresInsert stores one message unless its (queue, uniqkey) exists.
// NotBefore travels as a delay ($5) added to the server's now().
const postgresInsert = `INSERT INTO messages
	(queue, headers, body, uniqkey, not_before, deliveries, max_redeliveries,
	 last_error, priority, orig_queue, orig_deliveries)
	VALUES ($1, $2, $3, $4, now() + $5::interval, $6, $7, $8, $9, $10, $11)
	ON CONFLICT (queue, uniqkey) WHERE uniqkey <> '' DO NOTHING
	RETURNING id`

// commitPuts is the group committer's commitFunc. The inserts go out as one
// pipelined pgx.Batch (one round trip); rows whose key conflicted are then
// looked up one by one.
func (s *postgresStore) commitPuts(ctx context.Context, batch []*putRequest) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		now := time.Now()
		var b pgx.Batch
		notify := map[string]bool{}
		for _, req := range batch {
			req.results = make([]PutResult, len(req.msgs))
			for _, m := range req.msgs {
				b.Queue(postgresInsert, insertArgs(m, now)...)
				if len(m.Queue) <= maxNotifyPayload {
					notify[m.Queue] = true
				}
			}
		}
		// Delivered at commit, to every broker that Watches (itself too).
		for q := range notify {
			b.Queue(`SELECT pg_notify($1, $2)`, s.channel, q)
		}
		br := tx.SendBatch(ctx, &b)
		type conflict struct {
			req *putRequest
			i   int
		}
		var conflicts []conflict
		for _, req := range batch {
			for i := range req.msgs {
				var id int64
				err := br.QueryRow().Scan(&id)
				switch {
				case err == nil:
					req.results[i] = PutResult{ID: id}
				case errors.Is(err, pgx.ErrNoRows):
					conflicts = append(conflicts, conflict{req, i})
				default:
					br.Close()
					return fmt.Errorf("store: postgres: put: insert: %w", err)
				}
			}
		}
		for range notify {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return fmt.Errorf("store: postgres: put: notify: %w", err)
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("store: postgres: put: %w", err)
		}
		for _, c := range conflicts {
			r, err := coalesce(ctx, tx, c.req.msgs[c.i], now)
			if err != nil {
				return err
			}
			c.req.results[c.i] = r
		}
		return nil
	})
}

// coalesce resolves an insert that hit the uniqkey index. Another broker
// may delete the conflicting row between our insert and our lookup (it was
// acked), so it retries the insert a few times.
func coalesce(ctx context.Context, tx pgx.Tx, m *Message, now time.Time) (PutResult, error) {
	for range 3 {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM messages WHERE queue = $1 AND uniqkey = $2 AND uniqkey <> ''`,
			m.Queue, m.UniqKey).Scan(&id)
		if err == nil {
			return PutResult{ID: id, Coalesced: true}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return PutResult{}, fmt.Errorf("store: postgres: put: find uniqkey %q: %w", m.UniqKey, err)
		}
		err = tx.QueryRow(ctx, postgresInsert, insertArgs(m, now)...).Scan(&id)
		if err == nil {
			return PutResult{ID: id}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return PutResult{}, fmt.Errorf("store: postgres: put: insert: %w", err)
		}
	}
	return PutResult{}, fmt.Errorf("store: postgres: put: uniqkey %q keeps changing hands", m.UniqKey)
}

// insertArgs are postgresInsert's arguments for m; now is the local time the
// NotBefore delay is measured from.
func insertArgs(m *Message, now time.Time) []any {
	var delay time.Duration
	if !m.NotBefore.IsZero() {
		delay = m.NotBefore.Sub(now)
	}
	return []any{m.Queue, m.Headers, m.Body, m.UniqKey, delay, m.Deliveries, m.MaxRedeliveries,
		m.LastError, m.Priority, m.OrigQueue, m.OrigDeliveries}
}

// Lease implements Store.Lease in one transaction: clear the queue's expired
// leases, then claim the first n ready rows. SKIP LOCKED makes concurrent
// brokers pass over rows another transaction is claiming instead of waiting
// for it, and PostgreSQL re-checks the WHERE clause on each row it locks,
// so a row claimed meanwhile is never returned twice.
func (s *postgresStore) Lease(ctx context.Context, queue, owner string, n int, lease time.Duration) ([]*Message, error) {
	var msgs []*Message
	err := s.do("lease", func() error {
		if n <= 0 {
			return nil
		}
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE messages SET owner = '', lease_until = NULL
				WHERE id IN (SELECT id FROM messages
					WHERE queue = $1 AND owner <> '' AND lease_until <= now()
					FOR UPDATE SKIP LOCKED)`, queue); err != nil {
				return fmt.Errorf("expire old leases: %w", err)
			}
			rows, err := tx.Query(ctx, `WITH picked AS (
					SELECT id FROM messages
					WHERE queue = $1 AND owner = '' AND not_before <= now()
					ORDER BY priority DESC, id
					LIMIT $2
					FOR UPDATE SKIP LOCKED)
				UPDATE messages m
				SET owner = $3, lease_until = now() + $4::interval, deliveries = m.deliveries + 1
				FROM picked WHERE m.id = picked.id
				RETURNING `+qualified("m", messageColumns), queue, n, owner, lease)
			if err != nil {
				return err
			}
			msgs, err = pgx.CollectRows(rows, scanPostgresMessage)
			if err != nil {
				msgs = nil
				return fmt.Errorf("scan: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortForDelivery(msgs)
	return msgs, nil
}

// qualified prefixes every column of messageColumns with alias, since the
// UPDATE ... FROM in Lease makes "id" ambiguous.
func qualified(alias, columns string) string {
	out := alias + "."
	for _, r := range columns {
		out += string(r)
		if r == ',' {
			out += " " + alias + "."
		}
	}
	return out
}

// scanPostgresMessage scans one row of messageColumns.
func scanPostgresMessage(row pgx.CollectableRow) (*Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.Queue, &m.Headers, &m.Body, &m.UniqKey, &m.NotBefore, &m.Deliveries,
		&m.MaxRedeliveries, &m.LastError, &m.Priority, &m.OrigQueue, &m.OrigDeliveries)
	return &m, err
}

// Stats implements Store.Stats. It scans the whole table.
func (s *postgresStore) Stats(ctx context.Context) ([]QueueStats, error) {
	var out []QueueStats
	err := s.do("stats", func() error {
		rows, err := s.pool.Query(ctx, `SELECT queue, count(*),
			count(*) FILTER (WHERE owner <> '' AND lease_until > now()),
			count(*) FILTER (WHERE orig_queue <> '')
			FROM messages GROUP BY queue ORDER BY queue`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueueStats, error) {
			var st QueueStats
			err := row.Scan(&st.Queue, &st.Stored, &st.Leased, &st.DeadLettered)
			return st, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Close implements Store.Close: it lets the group committer finish its
// batch, then closes the connection pool.
func (s *postgresStore) Close() error {
	return s.close(func() error { s.pool.Close(); return nil })
}
