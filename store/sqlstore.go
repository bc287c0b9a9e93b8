package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// sqlBase is what every SQL store (SQLite, PostgreSQL, TheSchwartz) shares:
// its name in error messages, the closed flag, and the group committer
// Put goes through.
type sqlBase struct {
	name   string // errors read "store: <name>: <op>: ..."
	gc     *groupCommitter
	closed atomic.Bool
}

// PutCommits implements CommitCounter.
func (b *sqlBase) PutCommits() (commits, puts uint64) { return b.gc.counts() }

// do is the preamble of a store method: ErrClosed after Close, else fn's
// error wrapped as "store: <name>: <op>: <err>".
func (b *sqlBase) do(op string, fn func() error) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := fn(); err != nil {
		return fmt.Errorf("store: %s: %s: %w", b.name, op, err)
	}
	return nil
}

// put is Store.Put for every SQL store: ErrClosed after Close, the checks
// every backend makes, then check (if not nil) on each message, then the
// group committer.
func (b *sqlBase) put(ctx context.Context, msgs []*Message, check func(*Message) error) ([]PutResult, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if err := validate(msgs); err != nil {
		return nil, err
	}
	if check != nil {
		for i, m := range msgs {
			if err := check(m); err != nil {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
		}
	}
	return b.gc.put(ctx, msgs)
}

// close is Store.Close for every SQL store: the first call lets the group
// committer finish its batch, then runs closeDB; later calls do nothing.
func (b *sqlBase) close(closeDB func() error) error {
	if b.closed.Swap(true) {
		return nil
	}
	b.gc.close()
	if err := closeDB(); err != nil {
		return fmt.Errorf("store: %s: close: %w", b.name, err)
	}
	return nil
}

// msgDialect is what differs between the SQLite and PostgreSQL flavours of
// the broker's own messages table, for the statements that have the same
// shape in both (Renew, Ack, Release, DeadLetter, ReleaseOwner). Queries
// are written with "?" placeholders and the markers below; sql rewrites
// them. Lease, Put and Stats differ for real (SKIP LOCKED and the server
// clock on PostgreSQL, one writer on SQLite) and stay with each backend.
type msgDialect struct {
	// dollar: PostgreSQL's $1, $2, ... instead of "?".
	dollar bool
	// noLease is lease_until's value for "not leased".
	noLease string
	// idIn is the condition "id is one of the ids of one placeholder".
	idIn string
	// ids is that placeholder's argument.
	ids func(ids []int64) any
	// instant is the SQL for instant t (zero: now) and its one argument.
	instant func(t time.Time) (expr string, arg any)
	// exec runs a statement and returns how many rows it changed.
	exec func(ctx context.Context, query string, args ...any) (int64, error)
	// queryIDs runs a query whose only column is an id.
	queryIDs func(ctx context.Context, query string, args ...any) ([]int64, error)
}

// sql fills in the dialect markers {noLease} and {idIn}, then the
// placeholders.
func (d *msgDialect) sql(query string) string {
	query = strings.NewReplacer("{noLease}", d.noLease, "{idIn}", d.idIn).Replace(query)
	if d.dollar {
		query = dollarPlaceholders(query)
	}
	return query
}

// dollarPlaceholders rewrites the "?" placeholders of query as $1, $2, ...
func dollarPlaceholders(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// msgStore implements the Store methods whose SQL has the same shape on
// SQLite and PostgreSQL; sqliteStore and postgresStore embed it and add
// Put, Lease, Stats and Close.
type msgStore struct {
	sqlBase
	d *msgDialect
}

// Renew implements Store.Renew.
func (s *msgStore) Renew(ctx context.Context, owner string, ids []int64, lease time.Duration) error {
	if len(ids) == 0 {
		return s.do("renew", func() error { return nil })
	}
	var renewed []int64
	err := s.do("renew", func() error {
		until, arg := s.d.instant(time.Now().Add(lease))
		var err error
		renewed, err = s.d.queryIDs(ctx, s.d.sql(`UPDATE messages SET lease_until = `+until+`
			WHERE owner = ? AND {idIn} RETURNING id`), arg, owner, s.d.ids(ids))
		return err
	})
	if err != nil {
		return err
	}
	return leaseLost(missing(ids, renewed))
}

// Ack implements Store.Ack.
func (s *msgStore) Ack(ctx context.Context, ids []int64) error {
	return s.do("ack", func() error {
		if len(ids) == 0 {
			return nil
		}
		_, err := s.d.exec(ctx, s.d.sql(`DELETE FROM messages WHERE {idIn}`), s.d.ids(ids))
		return err
	})
}

// Release implements Store.Release. On PostgreSQL notBefore becomes a
// delay on the server's clock, as in Put.
func (s *msgStore) Release(ctx context.Context, ids []int64, notDelivered bool, notBefore time.Time, lastError string) error {
	return s.do("release", func() error {
		if len(ids) == 0 {
			return nil
		}
		at, arg := s.d.instant(notBefore)
		_, err := s.d.exec(ctx, s.d.sql(`UPDATE messages SET owner = '', lease_until = {noLease},
			deliveries = CASE WHEN ? AND deliveries > 0 THEN deliveries - 1 ELSE deliveries END,
			not_before = `+at+`, last_error = ?
			WHERE {idIn}`), notDelivered, arg, lastError, s.d.ids(ids))
		return err
	})
}

// DeadLetter implements Store.DeadLetter as one UPDATE (SQL evaluates every
// right-hand side on the old row, so orig_queue gets the old queue).
func (s *msgStore) DeadLetter(ctx context.Context, id int64, dlq string) error {
	return s.do("dead-letter "+strconv.FormatInt(id, 10), func() error {
		if dlq == "" {
			return fmt.Errorf("empty queue name: %w", ErrBadMessage)
		}
		now, arg := s.d.instant(time.Time{})
		n, err := s.d.exec(ctx, s.d.sql(`UPDATE messages SET
			orig_queue = queue, orig_deliveries = deliveries,
			queue = ?, deliveries = 0, uniqkey = '', not_before = `+now+`, owner = '', lease_until = {noLease}
			WHERE id = ?`), dlq, arg, id)
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
}

// ReleaseOwner implements Store.ReleaseOwner.
func (s *msgStore) ReleaseOwner(ctx context.Context, owner string) error {
	return s.do(fmt.Sprintf("release owner %q", owner), func() error {
		_, err := s.d.exec(ctx, s.d.sql(msgReleaseOwner), owner)
		return err
	})
}

// msgReleaseOwner is ReleaseOwner's statement (plan_test.go checks its
// SQLite plan). Its second condition (owner not empty) holds whenever the
// first does, but only with it written out does SQLite use the partial
// index messages_owner.
const msgReleaseOwner = `UPDATE messages SET owner = '', lease_until = {noLease}
	WHERE owner = ? AND owner <> ''`

// missing returns the ids of want that are not in got.
func missing(want, got []int64) []int64 {
	have := make(map[int64]bool, len(got))
	for _, id := range got {
		have[id] = true
	}
	var out []int64
	for _, id := range want {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}
