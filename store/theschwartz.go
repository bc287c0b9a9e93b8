package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The TheSchwartz store puts STOMP in front of an existing TheSchwartz
// database: it reads and writes TheSchwartz 1.12's own tables the way its
// Perl code does, so Perl clients and workers and STOMP clients share one
// set of jobs. docs/theschwartz.md describes the mapping for users and, in
// "How the store implements it", the facts of TheSchwartz this code relies
// on. The files:
//
//	theschwartz.go              the Store methods (this file)
//	theschwartz_schema.go       TheSchwartz's tables per SQL dialect
//	theschwartz_job.go          Message <-> job row, MESSAGE headers
//	theschwartz_arg.go          Storable sniffing (theschwartz-arg)
//	theschwartz_housekeeping.go error and exitstatus rows

const (
	// schwartzMaxVarchar is the VARCHAR(255) of funcname, uniqkey and
	// coalesce in doc/schema.sql.
	schwartzMaxVarchar = 255
	// schwartzMaxErrorMessage bounds the error rows we write: message is a
	// VARCHAR(255) in doc/schema.sql (TEXT in the PostgreSQL schema).
	schwartzMaxErrorMessage = 255
	// maxLastErrorHeader bounds stompwire.HeaderTheSchwartzLastError: a Perl die
	// message can be long, and a header line has a size limit.
	maxLastErrorHeader = 1024
	// schwartzErrorMaxAge is $TheSchwartz::T_ERRORS_MAX_AGE's default:
	// error rows older than this are deleted at each new failure.
	schwartzErrorMaxAge = 7 * 24 * 3600
	// schwartzExitStatusCleanChance is the default of
	// $TheSchwartz::T_EXITSTATUS_CLEAN_THRES: the share of exitstatus
	// inserts that also purge expired exitstatus rows.
	schwartzExitStatusCleanChance = 0.10
	// schwartzGiveUpMessage is the error row written when the broker gives a
	// job up; the ledger does not tell DeadLetter the last failure's reason.
	schwartzGiveUpMessage = "stomp-broker: delivery failed and max-redeliveries is used up; job given up"
	// schwartzIDChunk bounds the ids of one "IN (...)" list.
	schwartzIDChunk = 500
	// schwartzSchemaLockKey serialises schema creation on PostgreSQL
	// ("THESCHWZ"), like schemaLockKey for the broker's own schema.
	schwartzSchemaLockKey = 0x5448455343485750
)

// schwartzStore is the TheSchwartz Store (see docs/theschwartz.md for how
// the Store contract maps onto TheSchwartz).
type schwartzStore struct {
	db                *sql.DB
	d                 *schwartzDialect
	keepExitStatusFor int64 // seconds; 0 = record no exit status (TheSchwartz's default)
	sqlBase

	funcMu  sync.Mutex
	funcIDs map[string]int64 // funcname → funcid, committed rows only

	// leaseMu serialises every method that reads or changes held and the
	// rows it fences (Lease, Renew, Ack, Release, DeadLetter,
	// ReleaseOwner), so a fencing token is never used while another call
	// is replacing it. Put and Stats do not take it.
	leaseMu sync.Mutex
	held    map[int64]schwartzGrab
}

// schwartzGrab is a job this store grabbed: who asked, and the
// grabbed_until value written (the fencing token).
type schwartzGrab struct {
	owner  string
	until  int64
	funcid int64
}

// OpenTheSchwartz opens the TheSchwartz database named by spec, the part of
// a --store value after "theschwartz:" (see ParseSpec for its forms and
// options), and creates TheSchwartz's tables (funcmap, job, note, error,
// exitstatus, with the indexes of TheSchwartz's schema files) if absent.
// Existing tables are never altered; they must have TheSchwartz's columns,
// or OpenTheSchwartz fails saying which table does not. An SQLite file is
// opened with busy_timeout 10s so Perl workers holding the lock are waited
// for, and its journal mode is left as the file has it. The caller must
// Close the store.
func OpenTheSchwartz(ctx context.Context, spec string) (Store, error) {
	sp, err := ParseSpec(schwartzSpecPrefix + spec)
	if err != nil {
		return nil, err
	}
	return openTheSchwartz(ctx, sp)
}

// openTheSchwartz opens the TheSchwartz store sp names.
func openTheSchwartz(ctx context.Context, sp Spec) (Store, error) {
	d, driver, dsn := schwartzPostgres, "pgx", sp.URL
	if sp.Path != "" {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)") // Perl workers hold the lock briefly: wait, don't fail
		q.Add("_pragma", "synchronous(FULL)")   // a RECEIPT means the job is on disk
		q.Set("_txlock", "immediate")           // BEGIN IMMEDIATE: take the write lock up front
		d, driver, dsn = schwartzSQLite, sqliteDriver, sqliteURI(sp.Path, q)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("store: theschwartz: open: %w", err)
	}
	if d == schwartzSQLite {
		// One connection, as for the broker's own SQLite store: SQLite has
		// one writer, so more connections would only wait on each other.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
	}
	s := &schwartzStore{
		db: db, d: d, keepExitStatusFor: sp.KeepExitStatusFor,
		sqlBase: sqlBase{name: "theschwartz"},
		funcIDs: make(map[string]int64),
		held:    make(map[int64]schwartzGrab),
	}
	if err := s.createSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.gc = newGroupCommitter(s.commitPuts)
	return s, nil
}

// Put implements Store.Put through the group committer: every message
// becomes a job row (TheSchwartz's insert). A message whose uniqkey is
// taken by a stored job of the same funcname is not inserted (Coalesced),
// as TheSchwartz ignores such a duplicate.
func (s *schwartzStore) Put(ctx context.Context, msgs []*Message) ([]PutResult, error) {
	now := time.Now()
	return s.put(ctx, msgs, func(m *Message) error {
		_, err := jobFromMessage(m, now)
		return err
	})
}

// commitPuts is the group committer's commitFunc: all jobs of the batch in
// one transaction. funcmap rows it creates are cached only once committed.
func (s *schwartzStore) commitPuts(ctx context.Context, batch []*putRequest) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: theschwartz: put: begin: %w", err)
	}
	defer tx.Rollback()
	now := time.Now()
	created := make(map[string]int64)
	for _, req := range batch {
		req.results = make([]PutResult, len(req.msgs))
		for i, m := range req.msgs {
			j, err := jobFromMessage(m, now)
			if err != nil {
				return fmt.Errorf("store: theschwartz: put: %w", err)
			}
			funcid, err := s.funcIDForInsert(ctx, tx, j.funcname, created)
			if err != nil {
				return err
			}
			if req.results[i], err = s.insertJob(ctx, tx, funcid, j, now); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: theschwartz: put: commit: %w", err)
	}
	s.funcMu.Lock()
	for name, id := range created {
		s.funcIDs[name] = id
	}
	s.funcMu.Unlock()
	return nil
}

// funcIDForInsert is TheSchwartz::FuncMap->create_or_find inside tx: the
// cached id, or the row's id, or a new row's id (noted in created).
func (s *schwartzStore) funcIDForInsert(ctx context.Context, tx *sql.Tx, funcname string, created map[string]int64) (int64, error) {
	if id, ok := s.cachedFuncID(funcname); ok {
		return id, nil
	}
	if id, ok := created[funcname]; ok {
		return id, nil
	}
	var id int64
	err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO funcmap (funcname) VALUES (?)
		ON CONFLICT DO NOTHING RETURNING funcid`), funcname).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) { // it exists (maybe inserted by a Perl client just now)
		err = tx.QueryRowContext(ctx, s.d.q(`SELECT funcid FROM funcmap WHERE funcname = ?`), funcname).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("store: theschwartz: put: funcmap %q: %w", funcname, err)
	}
	created[funcname] = id
	return id, nil
}

// insertJob inserts one job, or finds the stored job with the same
// (funcid, uniqkey). Between the conflict and the lookup the other job may
// be completed (deleted) by a worker, so it tries a few times.
func (s *schwartzStore) insertJob(ctx context.Context, tx *sql.Tx, funcid int64, j schwartzJob, now time.Time) (PutResult, error) {
	insert := s.d.q(`INSERT INTO job (funcid, arg, uniqkey, insert_time, run_after, grabbed_until, priority, "coalesce")
		VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING RETURNING jobid`)
	for range 3 {
		var id int64
		err := tx.QueryRowContext(ctx, insert, funcid, j.arg, j.uniqkey, now.Unix(), j.runAfter, j.priority, j.coalesce).Scan(&id)
		if err == nil {
			return PutResult{ID: id}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return PutResult{}, fmt.Errorf("store: theschwartz: put: insert job: %w", err)
		}
		if j.uniqkey == nil {
			return PutResult{}, fmt.Errorf("store: theschwartz: put: insert job: conflict without a uniqkey")
		}
		err = tx.QueryRowContext(ctx, s.d.q(`SELECT jobid FROM job WHERE funcid = ? AND uniqkey = ?`), funcid, j.uniqkey).Scan(&id)
		if err == nil {
			return PutResult{ID: id, Coalesced: true}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return PutResult{}, fmt.Errorf("store: theschwartz: put: find uniqkey %q: %w", j.uniqkey, err)
		}
	}
	return PutResult{}, fmt.Errorf("store: theschwartz: put: uniqkey %q keeps changing hands", j.uniqkey)
}

func (s *schwartzStore) cachedFuncID(funcname string) (int64, bool) {
	s.funcMu.Lock()
	defer s.funcMu.Unlock()
	id, ok := s.funcIDs[funcname]
	return id, ok
}

// lookupFuncID finds funcname's funcid without creating it (a consumer of a
// function nobody inserted jobs for leaves no trace in funcmap).
func (s *schwartzStore) lookupFuncID(ctx context.Context, funcname string) (int64, bool, error) {
	if id, ok := s.cachedFuncID(funcname); ok {
		return id, true, nil
	}
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT funcid FROM funcmap WHERE funcname = ?`), funcname).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	s.funcMu.Lock()
	s.funcIDs[funcname] = id
	s.funcMu.Unlock()
	return id, true, nil
}

// Lease implements Store.Lease as one TheSchwartz grab of up to n jobs of
// the queue's funcname: available jobs (run_after and grabbed_until not in
// the future), highest priority first (NULL counts as 0), then by jobid,
// get grabbed_until = now+lease in one UPDATE whose WHERE clause re-checks
// availability, so a Perl worker's racing grab and ours cannot both win.
// A queue whose funcname is not in funcmap has no jobs.
func (s *schwartzStore) Lease(ctx context.Context, queue, owner string, n int, lease time.Duration) ([]*Message, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	funcname, ok := strings.CutPrefix(queue, stompwire.QueuePrefix)
	if n <= 0 || !ok || funcname == "" {
		return nil, nil
	}
	funcid, found, err := s.lookupFuncID(ctx, funcname)
	if err != nil {
		return nil, fmt.Errorf("store: theschwartz: lease: funcmap %q: %w", funcname, err)
	}
	if !found {
		return nil, nil
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	now := time.Now()
	nowSec, until := now.Unix(), leaseUntil(now, lease)
	rows, err := s.db.QueryContext(ctx, s.d.q(`UPDATE job SET grabbed_until = ?
		WHERE jobid IN (SELECT jobid FROM job
			WHERE funcid = ? AND run_after <= ? AND grabbed_until <= ?
			ORDER BY COALESCE(priority, 0) DESC, jobid
			LIMIT ?`+s.d.grabLock+`)
		AND grabbed_until <= ?
		RETURNING jobid, arg, uniqkey, insert_time, CAST(run_after AS BIGINT), priority, "coalesce"`),
		until, funcid, nowSec, nowSec, n, nowSec)
	if err != nil {
		return nil, fmt.Errorf("store: theschwartz: lease: grab: %w", err)
	}
	jobs, err := scanGrabbed(rows)
	if err != nil {
		return nil, fmt.Errorf("store: theschwartz: lease: grab: %w", err)
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	for _, j := range jobs {
		s.held[j.ID] = schwartzGrab{owner: owner, until: until, funcid: funcid}
	}
	// The jobs are ours from here on. If reading their failures fails, give
	// them back rather than hold jobs the broker was never told about.
	fails, err := s.failures(ctx, grabbedIDs(jobs))
	if err != nil {
		s.releaseHeld(ctx, grabbedIDs(jobs))
		return nil, fmt.Errorf("store: theschwartz: lease: failures: %w", err)
	}
	msgs := make([]*Message, len(jobs))
	for i, j := range jobs {
		f := fails[j.ID]
		j.Queue = queue
		j.Deliveries = f.count + 1
		j.LastError = f.last
		j.Headers = schwartzHeaders(funcname, j, f)
		msgs[i] = &j.Message
	}
	sortForDelivery(msgs)
	return msgs, nil
}

// Renew implements Store.Renew: for each job owner holds, grabbed_until
// moves to now+lease if it still has the value this store wrote. A job
// whose value changed (completed or failed by someone, or grabbed again
// after the lease ran out) is lost.
func (s *schwartzStore) Renew(ctx context.Context, owner string, jobIDs []int64, lease time.Duration) error {
	var lost []int64
	err := s.fenced("renew", func() error {
		if len(jobIDs) == 0 {
			return nil
		}
		until := leaseUntil(time.Now(), lease)
		var renewed []int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			lost, renewed = lost[:0], renewed[:0]
			for _, id := range jobIDs {
				g, ok := s.held[id]
				if !ok || g.owner != owner {
					lost = append(lost, id)
					continue
				}
				n, err := execCount(ctx, tx, s.d.q(`UPDATE job SET grabbed_until = ? WHERE jobid = ? AND grabbed_until = ?`), until, id, g.until)
				if err != nil {
					return err
				}
				if n == 0 {
					lost = append(lost, id)
				} else {
					renewed = append(renewed, id)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range renewed {
			g := s.held[id]
			g.until = until
			s.held[id] = g
		}
		for _, id := range lost {
			if g, ok := s.held[id]; ok && g.owner == owner {
				delete(s.held, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return leaseLost(lost)
}

// Ack implements Store.Ack as TheSchwartz's completed(): the job rows are
// deleted, and with keep_exit_status_for an exitstatus row (status 0) is
// recorded for each job that was still there. Like completed(), it does not
// check the grab: the work is done, whoever else holds the job now.
func (s *schwartzStore) Ack(ctx context.Context, jobIDs []int64) error {
	return s.fenced("ack", func() error {
		if len(jobIDs) == 0 {
			return nil
		}
		now := time.Now().Unix()
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for chunk := range slices.Chunk(jobIDs, schwartzIDChunk) {
				rows, err := tx.QueryContext(ctx, s.d.q(`DELETE FROM job WHERE jobid IN (`+placeholders(len(chunk))+`)
					RETURNING jobid, funcid`), anys(chunk)...)
				if err != nil {
					return err
				}
				deleted, err := scanIDPairs(rows)
				if err != nil {
					return err
				}
				for _, d := range deleted {
					if err := s.recordExitStatus(ctx, tx, d[0], d[1], 0, now); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range jobIDs {
			delete(s.held, id)
		}
		s.maybeCleanExitStatus(ctx, now)
		return nil
	})
}

// Release implements Store.Release for the jobs this store still holds
// (others are ignored: their grab is someone else's now). With
// notDelivered the grab is simply undone (grabbed_until = 0), which
// TheSchwartz does not count. Otherwise the delivery failed, as
// TheSchwartz's failed(lastError) with a retry: an error row, grabbed_until
// = 0 and, when notBefore is in the future, run_after = notBefore (rounded
// up to a whole second).
func (s *schwartzStore) Release(ctx context.Context, jobIDs []int64, notDelivered bool, notBefore time.Time, lastError string) error {
	return s.fenced("release", func() error {
		if len(jobIDs) == 0 {
			return nil
		}
		now := time.Now()
		// args gives the update's arguments for one job.
		update := `UPDATE job SET grabbed_until = 0 WHERE jobid = ? AND grabbed_until = ?`
		args := func(id int64, g schwartzGrab) []any { return []any{id, g.until} }
		if !notDelivered && notBefore.After(now) {
			update = `UPDATE job SET grabbed_until = 0, run_after = ? WHERE jobid = ? AND grabbed_until = ?`
			runAfter := ceilUnix(notBefore)
			args = func(id int64, g schwartzGrab) []any { return []any{runAfter, id, g.until} }
		}
		failed := false
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			failed = false
			for _, id := range jobIDs {
				g, ok := s.held[id]
				if !ok {
					continue
				}
				n, err := execCount(ctx, tx, s.d.q(update), args(id, g)...)
				if err != nil {
					return err
				}
				if n == 0 || notDelivered {
					continue
				}
				if err := s.addFailure(ctx, tx, id, g.funcid, lastError, now.Unix()); err != nil {
					return err
				}
				failed = true
			}
			if failed {
				return s.cleanOldErrors(ctx, tx, now.Unix())
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range jobIDs {
			delete(s.held, id)
		}
		return nil
	})
}

// releaseHeld undoes grabs without counting them (Lease's way back when it
// cannot finish); errors are ignored, the grabs then simply expire.
func (s *schwartzStore) releaseHeld(ctx context.Context, jobIDs []int64) {
	_ = s.inTx(ctx, func(tx *sql.Tx) error {
		for _, id := range jobIDs {
			if g, ok := s.held[id]; ok {
				if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE job SET grabbed_until = 0 WHERE jobid = ? AND grabbed_until = ?`), id, g.until); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, id := range jobIDs {
		delete(s.held, id)
	}
}

// DeadLetter implements Store.DeadLetter the TheSchwartz way: there is no
// dead-letter queue, so the job is given up like a failure past
// max_retries: an error row (schwartzGiveUpMessage), an exitstatus row with
// status 1 if keep_exit_status_for is set, and the row deleted. dlq only
// has to be non-empty. If this store holds the job, the delete is fenced by
// its grab. It returns a wrapped ErrNotFound when the job is not stored (or
// no longer held by this store).
func (s *schwartzStore) DeadLetter(ctx context.Context, id int64, dlq string) error {
	return s.fenced(fmt.Sprintf("give up job %d", id), func() error {
		if dlq == "" {
			return fmt.Errorf("empty queue name: %w", ErrBadMessage)
		}
		now := time.Now().Unix()
		del, args := `DELETE FROM job WHERE jobid = ? RETURNING funcid`, []any{id}
		if g, ok := s.held[id]; ok {
			del, args = `DELETE FROM job WHERE jobid = ? AND grabbed_until = ? RETURNING funcid`, []any{id, g.until}
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var funcid int64
			if err := tx.QueryRowContext(ctx, s.d.q(del), args...).Scan(&funcid); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return ErrNotFound
				}
				return err
			}
			if err := s.addFailure(ctx, tx, id, funcid, schwartzGiveUpMessage, now); err != nil {
				return err
			}
			if err := s.recordExitStatus(ctx, tx, id, funcid, 1, now); err != nil {
				return err
			}
			return s.cleanOldErrors(ctx, tx, now)
		})
		delete(s.held, id)
		if err != nil {
			return err
		}
		s.maybeCleanExitStatus(ctx, now)
		return nil
	})
}

// ReleaseOwner implements Store.ReleaseOwner for the jobs this process
// holds for owner: their grabs are undone (not counted as failures). There
// is no owner column, so a previous process's grabs cannot be found: they
// expire by themselves (grabbed_until), as a crashed TheSchwartz worker's
// do.
func (s *schwartzStore) ReleaseOwner(ctx context.Context, owner string) error {
	return s.fenced(fmt.Sprintf("release owner %q", owner), func() error {
		var mine []int64
		for id, g := range s.held {
			if g.owner == owner {
				mine = append(mine, id)
			}
		}
		if len(mine) == 0 {
			return nil
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for _, id := range mine {
				if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE job SET grabbed_until = 0 WHERE jobid = ? AND grabbed_until = ?`),
					id, s.held[id].until); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range mine {
			delete(s.held, id)
		}
		return nil
	})
}

// Stats implements Store.Stats: one line per funcname with jobs; Leased
// counts every job under an unexpired grab, Perl workers' included. It
// scans the whole job table.
func (s *schwartzStore) Stats(ctx context.Context) ([]QueueStats, error) {
	var out []QueueStats
	err := s.do("stats", func() error {
		rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT f.funcname, count(*),
			COALESCE(sum(CASE WHEN j.grabbed_until > ? THEN 1 ELSE 0 END), 0)
			FROM job j JOIN funcmap f ON f.funcid = j.funcid
			GROUP BY f.funcname`), time.Now().Unix())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var st QueueStats
			if err := rows.Scan(&st.Queue, &st.Stored, &st.Leased); err != nil {
				return err
			}
			st.Queue = stompwire.QueuePrefix + st.Queue
			out = append(out, st)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	// Sorted here, not by ORDER BY: PostgreSQL sorts text by collation.
	sort.Slice(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out, nil
}

// Close implements Store.Close: it lets the group committer finish its
// batch, then closes the database. Jobs still held keep their grab until it
// expires (the broker releases what it holds before closing).
func (s *schwartzStore) Close() error { return s.close(s.db.Close) }

// fenced is the preamble of the methods that read or change s.held and
// the rows it fences: ErrClosed after Close, else fn under leaseMu, its
// error wrapped as "store: theschwartz: <op>: <err>".
func (s *schwartzStore) fenced(op string, fn func() error) error {
	return s.do(op, func() error {
		s.leaseMu.Lock()
		defer s.leaseMu.Unlock()
		return fn()
	})
}

// inTx runs fn in a transaction and commits it.
func (s *schwartzStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// execCount runs a statement and returns how many rows it changed.
func execCount(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// scanIDPairs scans and closes rows of two integer columns.
func scanIDPairs(rows *sql.Rows) ([][2]int64, error) {
	defer rows.Close()
	var out [][2]int64
	for rows.Next() {
		var p [2]int64
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// placeholders is "?, ?, ..." n times.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// anys converts ids to query arguments.
func anys(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
