package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver" // registers the pure-Go "sqlite3" database/sql driver
)

// sqliteSchema creates the table and its indexes if absent. Times are Unix
// nanoseconds on this machine's clock (one broker owns an SQLite file).
//
// Indexes, and the queries they serve (an empty owner means "not leased"):
//
//	messages_ready   (queue, priority DESC, id), rows with no owner
//	messages_leased  (queue, lease_until), rows with an owner
//	messages_owner   (owner), rows with an owner
//	messages_uniqkey UNIQUE (queue, uniqkey), rows with a uniqkey
//
// Lease walks messages_ready in delivery order and stops after n rows,
// skipping only delayed rows (NotBefore in the future) on the way. Leased
// rows are not in it at all, so a large window of in-flight messages costs
// the scan nothing. messages_leased lets Lease find a queue's expired leases
// without touching ready rows; messages_owner serves ReleaseOwner. The
// uniqueness rule for coalescing is enforced by the database itself.
//
// The partial indexes stay small: messages_leased and messages_owner hold
// only the leased window, messages_uniqkey only rows that have a key.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS messages (
	id               INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: never reuse an acked id
	queue            TEXT    NOT NULL,
	headers          BLOB,
	body             BLOB,
	uniqkey          TEXT    NOT NULL DEFAULT '',
	not_before       INTEGER NOT NULL,
	deliveries       INTEGER NOT NULL DEFAULT 0,
	max_redeliveries INTEGER NOT NULL DEFAULT -1,
	last_error       TEXT    NOT NULL DEFAULT '',
	priority         INTEGER NOT NULL DEFAULT 0,
	orig_queue       TEXT    NOT NULL DEFAULT '',
	orig_deliveries  INTEGER NOT NULL DEFAULT 0,
	owner            TEXT    NOT NULL DEFAULT '', -- '' = not leased
	lease_until      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_uniqkey ON messages (queue, uniqkey) WHERE uniqkey <> '';
CREATE INDEX IF NOT EXISTS messages_ready  ON messages (queue, priority DESC, id) WHERE owner = '';
CREATE INDEX IF NOT EXISTS messages_leased ON messages (queue, lease_until) WHERE owner <> '';
CREATE INDEX IF NOT EXISTS messages_owner  ON messages (owner) WHERE owner <> '';
CREATE TABLE IF NOT EXISTS durable_subscriptions (
	queue TEXT PRIMARY KEY,
	topic TEXT NOT NULL
);
`

// messageColumns is the column list every query that returns messages uses,
// in the order scanMessage expects.
const messageColumns = `id, queue, headers, body, uniqkey, not_before, deliveries,
	max_redeliveries, last_error, priority, orig_queue, orig_deliveries`

// The statements whose plans matter, kept as constants so plan_test.go
// checks exactly these. A partial index is only used when the WHERE clause
// itself implies the index's condition, so the queries repeat that
// condition (owner not empty, uniqkey not empty) even where a bound
// parameter makes it true anyway.
const (
	sqlitePickReady = `SELECT id FROM messages
		WHERE queue = ? AND owner = '' AND not_before <= ?
		ORDER BY priority DESC, id LIMIT ?`
	sqliteExpireLeases = `UPDATE messages SET owner = '', lease_until = 0
		WHERE queue = ? AND owner <> '' AND lease_until <= ?`
	sqliteFindUniq = `SELECT id FROM messages WHERE queue = ? AND uniqkey = ? AND uniqkey <> ''`
)

// sqliteDriver is the database/sql driver name that
// github.com/ncruces/go-sqlite3/driver registers. That driver is SQLite
// compiled to Go (no cgo) with no package initialisers worth the name,
// which matters because every child process pays every initialiser of the
// binary on each start.
const sqliteDriver = "sqlite3"

// sqliteURI renders path as an SQLite "file:" URI carrying the query q.
// The driver reads "_pragma" and "_txlock" only from a URI, so a plain
// filename cannot be used. The path is percent-escaped ('%' and spaces
// stay part of the file name) and cleaned, so that a path beginning with
// "//" is not read as a URI authority. path must not contain '?' or '#'.
func sqliteURI(path string, q url.Values) string {
	u := url.URL{Path: filepath.Clean(path)}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// sqliteStore is the SQLite Store: one database file, one connection.
//
// SQLite allows one writer at a time. Several connections would not write
// faster; they would wait on each other through busy_timeout, which polls
// with sleeps. So the pool is capped at one connection and Go serialises
// the callers instead, without sleeps. Put goes through the group committer.
type sqliteStore struct {
	msgStore
	db *sql.DB
}

// sqliteDialect builds the msgDialect of an SQLite store on db. Times are
// Unix nanoseconds on this machine's clock; a set of ids travels as one
// JSON array read by json_each.
func sqliteDialect(db *sql.DB) *msgDialect {
	return &msgDialect{
		noLease: "0",
		idIn:    "id IN (SELECT value FROM json_each(?))",
		ids:     func(ids []int64) any { return jsonIDs(ids) },
		instant: func(t time.Time) (string, any) {
			if t.IsZero() {
				t = time.Now()
			}
			return "?", t.UnixNano()
		},
		exec: func(ctx context.Context, query string, args ...any) (int64, error) {
			res, err := db.ExecContext(ctx, query, args...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		},
		queryIDs: func(ctx context.Context, query string, args ...any) ([]int64, error) {
			return queryIDs(ctx, db, query, args...)
		},
	}
}

// OpenSQLite opens (creating if absent) the SQLite database file at path in
// WAL mode with synchronous=FULL, so a commit returns only after its WAL
// frames are fsync'd, and creates the schema. The caller must Close it.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("%w: sqlite path %q must not contain '?' or '#'", ErrBadSpec, path)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)") // another process holding the file: wait, don't fail
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)") // fsync the WAL on every commit
	q.Set("_txlock", "immediate")         // BEGIN IMMEDIATE: take the write lock up front
	db, err := sql.Open(sqliteDriver, sqliteURI(path, q))
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	if _, err := db.ExecContext(ctx, sqliteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: sqlite: create schema in %s: %w", path, err)
	}
	s := &sqliteStore{msgStore: msgStore{sqlBase: sqlBase{name: "sqlite"}, d: sqliteDialect(db)}, db: db}
	s.gc = newGroupCommitter(s.commitPuts)
	return s, nil
}

// Put implements Store.Put through the group committer.
func (s *sqliteStore) Put(ctx context.Context, msgs []*Message) ([]PutResult, error) {
	return s.put(ctx, msgs, nil)
}

// commitPuts is the group committer's commitFunc: every message of every
// request in one transaction.
func (s *sqliteStore) commitPuts(ctx context.Context, batch []*putRequest) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: sqlite: put: begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	insert, err := tx.PrepareContext(ctx, `INSERT INTO messages
		(queue, headers, body, uniqkey, not_before, deliveries, max_redeliveries,
		 last_error, priority, orig_queue, orig_deliveries)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (queue, uniqkey) WHERE uniqkey <> '' DO NOTHING
		RETURNING id`)
	if err != nil {
		return fmt.Errorf("store: sqlite: put: prepare: %w", err)
	}
	defer insert.Close()
	now := time.Now().UnixNano()
	for _, req := range batch {
		req.results = make([]PutResult, len(req.msgs))
		for i, m := range req.msgs {
			notBefore := now
			if !m.NotBefore.IsZero() {
				notBefore = m.NotBefore.UnixNano()
			}
			var id int64
			err := insert.QueryRowContext(ctx, m.Queue, m.Headers, m.Body, m.UniqKey, notBefore,
				m.Deliveries, m.MaxRedeliveries, m.LastError, m.Priority, m.OrigQueue, m.OrigDeliveries).Scan(&id)
			switch {
			case err == nil:
				req.results[i] = PutResult{ID: id}
			case errors.Is(err, sql.ErrNoRows):
				// DO NOTHING fired: a message with this key is stored (maybe
				// inserted earlier in this very transaction). The single
				// writer guarantees it is still there.
				err = tx.QueryRowContext(ctx, sqliteFindUniq, m.Queue, m.UniqKey).Scan(&id)
				if err != nil {
					return fmt.Errorf("store: sqlite: put: find uniqkey %q: %w", m.UniqKey, err)
				}
				req.results[i] = PutResult{ID: id, Coalesced: true}
			default:
				return fmt.Errorf("store: sqlite: put: insert: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: sqlite: put: commit: %w", err)
	}
	return nil
}

// Lease implements Store.Lease in one IMMEDIATE transaction: clear the
// queue's expired leases, pick the first n ready rows, mark them leased.
func (s *sqliteStore) Lease(ctx context.Context, queue, owner string, n int, lease time.Duration) ([]*Message, error) {
	var msgs []*Message
	err := s.do("lease", func() error {
		if n <= 0 {
			return nil
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		now := time.Now()
		if _, err := tx.ExecContext(ctx, sqliteExpireLeases, queue, now.UnixNano()); err != nil {
			return fmt.Errorf("expire old leases: %w", err)
		}
		ids, err := queryIDs(ctx, tx, sqlitePickReady, queue, now.UnixNano(), n)
		if err != nil {
			return fmt.Errorf("select: %w", err)
		}
		if len(ids) == 0 {
			return nil // the deferred Rollback ends the transaction
		}
		rows, err := tx.QueryContext(ctx, `UPDATE messages
			SET owner = ?, lease_until = ?, deliveries = deliveries + 1
			WHERE id IN (SELECT value FROM json_each(?))
			RETURNING `+messageColumns, owner, now.Add(lease).UnixNano(), jsonIDs(ids))
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
		if msgs, err = scanSQLiteMessages(rows); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			msgs = nil
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortForDelivery(msgs)
	return msgs, nil
}

// Stats implements Store.Stats. It scans the whole table.
func (s *sqliteStore) Stats(ctx context.Context) ([]QueueStats, error) {
	var out []QueueStats
	err := s.do("stats", func() error {
		rows, err := s.db.QueryContext(ctx, `SELECT queue, count(*),
			coalesce(sum(owner <> '' AND lease_until > ?), 0),
			coalesce(sum(orig_queue <> ''), 0)
			FROM messages GROUP BY queue ORDER BY queue`, time.Now().UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var st QueueStats
			if err := rows.Scan(&st.Queue, &st.Stored, &st.Leased, &st.DeadLettered); err != nil {
				return err
			}
			out = append(out, st)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Close implements Store.Close: it lets the group committer finish its
// batch, then closes the database (which checkpoints the WAL).
func (s *sqliteStore) Close() error { return s.close(s.db.Close) }

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryIDs runs a query whose only column is an id.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// jsonIDs renders ids as a JSON array for json_each, which lets one
// placeholder carry any number of ids.
func jsonIDs(ids []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// scanSQLiteMessages scans every row of messageColumns and closes rows.
func scanSQLiteMessages(rows *sql.Rows) ([]*Message, error) {
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanSQLiteMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	return out, nil
}

// scanSQLiteMessage scans one row of messageColumns.
func scanSQLiteMessage(rows *sql.Rows) (*Message, error) {
	var m Message
	var notBefore int64
	if err := rows.Scan(&m.ID, &m.Queue, &m.Headers, &m.Body, &m.UniqKey, &notBefore, &m.Deliveries,
		&m.MaxRedeliveries, &m.LastError, &m.Priority, &m.OrigQueue, &m.OrigDeliveries); err != nil {
		return nil, err
	}
	m.NotBefore = time.Unix(0, notBefore)
	return &m, nil
}

// sortForDelivery orders leased messages as the queue does: Priority
// descending, then ID. RETURNING does not promise any order.
func sortForDelivery(msgs []*Message) {
	sort.Slice(msgs, func(i, j int) bool {
		if msgs[i].Priority != msgs[j].Priority {
			return msgs[i].Priority > msgs[j].Priority
		}
		return msgs[i].ID < msgs[j].ID
	})
}
