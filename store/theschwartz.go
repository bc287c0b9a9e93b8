package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3/frame"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The TheSchwartz store puts STOMP in front of an existing TheSchwartz
// database (LiveJournal's database-backed job queue; Debian ships 1.12 as
// libtheschwartz-perl). It reads and writes TheSchwartz's own tables the way
// TheSchwartz 1.12's Perl code does, so Perl clients and workers and STOMP
// clients share one set of jobs:
//
//	STOMP                      TheSchwartz
//	SEND /queue/<funcname>     insert(<funcname>, <body>): a job row, the
//	                           funcmap row created on demand
//	SUBSCRIBE /queue/<f>       a worker that can_do(<f>): Lease grabs jobs by
//	                           setting grabbed_until, like _grab_a_job
//	ACK                        $job->completed: row deleted (+ exitstatus)
//	NACK, consumer lost        $job->failed($msg): an error row; retried
//	                           after the backoff (run_after), or given up
//	                           when max-redeliveries is used up (DeadLetter:
//	                           error row, exitstatus 1, row deleted)
//
// Facts of TheSchwartz 1.12 this file relies on (TheSchwartz.pm, Job.pm,
// Worker.pm, doc/schema.sql, doc/schema-postgres.sql; Data::ObjectDriver
// 0.22 for the SQL it generates):
//
//   - A job is available when run_after <= now AND grabbed_until <= now,
//     both unix seconds. On SQLite and PostgreSQL, "now" is the CLIENT's
//     time(): Data::ObjectDriver's sql_for_unixtime is the server's clock
//     only on MySQL. This store therefore uses the broker's clock, like
//     every other TheSchwartz client of these databases.
//   - A grab is optimistic: UPDATE job SET grabbed_until = now + grab_for
//     WHERE jobid = ? AND grabbed_until = <value read> AND grabbed_until <=
//     now; zero rows means another worker won. Any writer that changes
//     grabbed_until (our grab, our renewal, a failure resetting it to 0)
//     therefore makes a racing Perl grab fail, and vice versa.
//   - failed() inserts an error row (error_time, jobid, message, funcid);
//     the job's failure count is its number of error rows. A job is retried
//     while max_retries >= failures, with grabbed_until = 0 and, if
//     retry_delay is non-zero, run_after = time() + delay; otherwise the
//     exit status (default 1) is recorded and the row deleted. Each failure
//     also deletes error rows older than 7 days.
//   - completed() records exit status 0 only if keep_exit_status_for > 0
//     (default 0), then deletes the row. An exitstatus row is (jobid, funcid,
//     status, completion_time, delete_after = completion_time + keep); 10%
//     of the inserts also delete rows whose delete_after has passed.
//   - arg is a blob: a Perl reference is stored Storable::nfreeze'd, a
//     plain scalar as is. On load, TheSchwartz thaws any arg whose
//     Storable::read_magic major version is 2 to 5 and that thaws cleanly;
//     everything else reaches the worker unchanged.
//   - uniqkey is unique per (funcid, uniqkey) while the row exists; a
//     duplicate insert is not an error for TheSchwartz (it returns no
//     handle). priority is a SMALLINT; prioritize => 1 workers take larger
//     values first. coalesce is a free-form grouping key.
//
// How the Store contract maps onto that:
//
//   - Message.ID is the jobid; Queue is "/queue/" + funcname.
//   - Deliveries, on a leased message, is the job's error rows + 1, so
//     "redelivered" means "failed before", and the ledger's
//     max-redeliveries check (give up when Deliveries > max) is exactly
//     TheSchwartz's (give up when failures > max_retries). A grab that ran
//     out (a crashed broker or Perl worker) is not counted, as TheSchwartz
//     does not count it either; such a job is not flagged redelivered.
//   - TheSchwartz has no lease owner. This store remembers, in memory, the
//     grabbed_until value it wrote for each job it holds and the owner that
//     asked; that value is the fencing token every later write of this
//     store checks (WHERE grabbed_until = <ours>). A new grab always writes
//     a value later than the expired one, so a lost lease is always
//     noticed: Renew reports it, Release and ReleaseOwner leave the job
//     alone. ReleaseOwner can only release what this process holds: the
//     leases of a previous broker process simply expire, like those of a
//     crashed TheSchwartz worker.
//   - Leases are whole seconds (grabbed_until is an INTEGER): Lease and
//     Renew round now+lease up to the next second, so a lease is never
//     shorter than asked and at most a second longer.
//   - Headers: TheSchwartz has no place for STOMP headers, so only what
//     maps onto columns is kept. Lease returns a synthesised SEND header
//     block (see the Header* constants below) describing the job.
//   - DeadLetter gives the job up the TheSchwartz way (there is no
//     dead-letter queue): an error row, exit status 1 if kept, row deleted.
//     Nothing appears in the dlq queue.

// MESSAGE headers (in the header block Lease returns) and SEND headers
// (read by Put) of the TheSchwartz store.
const (
	// HeaderTheSchwartzJobID carries the job's jobid (MESSAGE).
	HeaderTheSchwartzJobID = "theschwartz-jobid"
	// HeaderTheSchwartzFuncname carries the job's funcname (MESSAGE).
	HeaderTheSchwartzFuncname = "theschwartz-funcname"
	// HeaderTheSchwartzArg says how to read the body (MESSAGE): ArgStorable
	// when the arg is a Perl Storable image (a Perl client inserted a
	// reference), ArgBytes otherwise.
	HeaderTheSchwartzArg = "theschwartz-arg"
	// HeaderTheSchwartzLastError is the message of the job's latest error
	// row (MESSAGE; only on jobs that failed before), at most
	// maxLastErrorHeader bytes.
	HeaderTheSchwartzLastError = "theschwartz-last-error"
	// HeaderRunAfter is the job's run_after column in unix seconds: on SEND,
	// the earliest time the job may run (it wins over AMQ_SCHEDULED_DELAY);
	// on MESSAGE, the stored value.
	HeaderRunAfter = "run_after"
	// HeaderCoalesce is the job's coalesce column (SEND and MESSAGE).
	HeaderCoalesce = "coalesce"
	// HeaderInsertTime is the job's insert_time column (MESSAGE).
	HeaderInsertTime = "insert_time"
	// The uniqkey and priority headers, which the broker already reads,
	// map onto the columns of the same names.
	headerUniqKey  = "uniqkey"
	headerPriority = "priority"
)

// Values of HeaderTheSchwartzArg.
const (
	// ArgStorable: the body is a Perl Storable image (Storable::nfreeze or
	// freeze output), which TheSchwartz thaws before a Perl worker sees it.
	ArgStorable = "storable"
	// ArgBytes: the body is the arg exactly as stored.
	ArgBytes = "bytes"
)

const (
	// schwartzQueuePrefix: only /queue/ destinations are TheSchwartz
	// functions.
	schwartzQueuePrefix = "/queue/"
	// schwartzMaxVarchar is the VARCHAR(255) of funcname, uniqkey and
	// coalesce in doc/schema.sql.
	schwartzMaxVarchar = 255
	// schwartzMaxErrorMessage bounds the error rows we write: message is a
	// VARCHAR(255) in doc/schema.sql (TEXT in the PostgreSQL schema).
	schwartzMaxErrorMessage = 255
	// maxLastErrorHeader bounds HeaderTheSchwartzLastError: a Perl die
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

// schwartzTable is one TheSchwartz table: created (with its indexes) only
// when absent, and checked for the columns this store uses when present.
type schwartzTable struct {
	name    string
	create  []string // CREATE TABLE, then CREATE INDEX statements
	columns string   // the columns this store reads or writes
}

// schwartzSQLiteTables is doc/schema.sql in SQLite's dialect. MySQL's
// AUTO_INCREMENT becomes INTEGER PRIMARY KEY AUTOINCREMENT (AUTOINCREMENT,
// so a deleted job's id is never reused: exitstatus and error rows are
// keyed by jobid); the inline INDEX clauses become CREATE INDEX with the
// names doc/schema-postgres.sql gives them. Type names are kept: SQLite
// maps them onto the same storage classes.
var schwartzSQLiteTables = []schwartzTable{
	{"funcmap", []string{`CREATE TABLE funcmap (
		funcid   INTEGER PRIMARY KEY AUTOINCREMENT,
		funcname VARCHAR(255) NOT NULL,
		UNIQUE (funcname))`},
		"funcid, funcname"},
	{"job", []string{`CREATE TABLE job (
		jobid         INTEGER PRIMARY KEY AUTOINCREMENT,
		funcid        INTEGER UNSIGNED NOT NULL,
		arg           MEDIUMBLOB,
		uniqkey       VARCHAR(255) NULL,
		insert_time   INTEGER UNSIGNED,
		run_after     INTEGER UNSIGNED NOT NULL,
		grabbed_until INTEGER UNSIGNED NOT NULL,
		priority      SMALLINT UNSIGNED,
		"coalesce"    VARCHAR(255),
		UNIQUE (funcid, uniqkey))`,
		`CREATE INDEX job_funcid_runafter ON job (funcid, run_after)`,
		`CREATE INDEX job_funcid_coalesce ON job (funcid, "coalesce")`},
		`jobid, funcid, arg, uniqkey, insert_time, run_after, grabbed_until, priority, "coalesce"`},
	{"note", []string{`CREATE TABLE note (
		jobid   BIGINT UNSIGNED NOT NULL,
		notekey VARCHAR(255),
		value   MEDIUMBLOB,
		PRIMARY KEY (jobid, notekey))`},
		""},
	{"error", []string{`CREATE TABLE error (
		error_time INTEGER UNSIGNED NOT NULL,
		jobid      BIGINT UNSIGNED NOT NULL,
		message    VARCHAR(255) NOT NULL,
		funcid     INT UNSIGNED NOT NULL DEFAULT 0)`,
		`CREATE INDEX error_funcid_errortime ON error (funcid, error_time)`,
		`CREATE INDEX error_time ON error (error_time)`,
		`CREATE INDEX error_jobid ON error (jobid)`},
		"error_time, jobid, message, funcid"},
	{"exitstatus", []string{`CREATE TABLE exitstatus (
		jobid           BIGINT UNSIGNED PRIMARY KEY NOT NULL,
		funcid          INT UNSIGNED NOT NULL DEFAULT 0,
		status          SMALLINT UNSIGNED,
		completion_time INTEGER UNSIGNED,
		delete_after    INTEGER UNSIGNED)`,
		`CREATE INDEX exitstatus_funcid ON exitstatus (funcid)`,
		`CREATE INDEX exitstatus_deleteafter ON exitstatus (delete_after)`},
		"jobid, funcid, status, completion_time, delete_after"},
}

// schwartzPostgresTables is doc/schema-postgres.sql as shipped, with one
// addition: funcmap.funcid and job.jobid are PRIMARY KEYs (the shipped file
// makes them SERIAL without a key, so every lookup by jobid scans the whole
// table). The sequences keep the names Data::ObjectDriver asks for
// (job_jobid_seq, funcmap_funcid_seq).
var schwartzPostgresTables = []schwartzTable{
	{"funcmap", []string{`CREATE TABLE funcmap (
		funcid   SERIAL PRIMARY KEY,
		funcname VARCHAR(255) NOT NULL,
		UNIQUE (funcname))`},
		"funcid, funcname"},
	{"job", []string{`CREATE TABLE job (
		jobid         BIGSERIAL PRIMARY KEY,
		funcid        INT NOT NULL,
		arg           BYTEA,
		uniqkey       VARCHAR(255) NULL,
		insert_time   INTEGER,
		run_after     INTEGER NOT NULL,
		grabbed_until INTEGER NOT NULL,
		priority      SMALLINT,
		"coalesce"    VARCHAR(255))`,
		`CREATE UNIQUE INDEX job_funcid_uniqkey ON job (funcid, uniqkey)`,
		`CREATE INDEX job_funcid_runafter ON job (funcid, run_after)`,
		`CREATE INDEX job_funcid_coalesce ON job (funcid, "coalesce")`},
		`jobid, funcid, arg, uniqkey, insert_time, run_after, grabbed_until, priority, "coalesce"`},
	{"note", []string{`CREATE TABLE note (
		jobid   BIGINT NOT NULL,
		notekey VARCHAR(255),
		PRIMARY KEY (jobid, notekey),
		value   BYTEA)`},
		""},
	{"error", []string{`CREATE TABLE error (
		error_time INTEGER NOT NULL,
		jobid      BIGINT NOT NULL,
		message    TEXT NOT NULL,
		funcid     INT NOT NULL DEFAULT 0)`,
		`CREATE INDEX error_funcid_errortime ON error (funcid, error_time)`,
		`CREATE INDEX error_time ON error (error_time)`,
		`CREATE INDEX error_jobid ON error (jobid)`},
		"error_time, jobid, message, funcid"},
	{"exitstatus", []string{`CREATE TABLE exitstatus (
		jobid           BIGINT PRIMARY KEY NOT NULL,
		funcid          INT NOT NULL DEFAULT 0,
		status          SMALLINT,
		completion_time INTEGER,
		delete_after    INTEGER)`,
		`CREATE INDEX exitstatus_funcid ON exitstatus (funcid)`,
		`CREATE INDEX exitstatus_deleteafter ON exitstatus (delete_after)`},
		"jobid, funcid, status, completion_time, delete_after"},
}

// schwartzDialect is what differs between the SQLite and PostgreSQL
// flavours. Queries are written with "?" placeholders; dollar rewrites them
// to PostgreSQL's $1, $2, ...
type schwartzDialect struct {
	name   string
	dollar bool
	tables []schwartzTable
	// tableExists is a query with one placeholder (the table name) that
	// returns one boolean-ish row.
	tableExists string
	// lockSchema, if set, runs first in the schema transaction.
	lockSchema string
	// grabLock ends the grab's inner SELECT: PostgreSQL claims the rows
	// with FOR UPDATE SKIP LOCKED, so concurrent grabs pass over each other's
	// rows instead of waiting; SQLite has a single writer and needs nothing.
	grabLock string
}

var (
	schwartzSQLite = &schwartzDialect{
		name:        "sqlite",
		tables:      schwartzSQLiteTables,
		tableExists: `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`,
	}
	schwartzPostgres = &schwartzDialect{
		name:        "postgres",
		dollar:      true,
		tables:      schwartzPostgresTables,
		tableExists: `SELECT to_regclass(?) IS NOT NULL`,
		lockSchema:  `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(schwartzSchemaLockKey, 10) + `)`,
		grabLock:    ` FOR UPDATE SKIP LOCKED`,
	}
)

// q returns query with its placeholders in this dialect's form.
func (d *schwartzDialect) q(query string) string {
	if !d.dollar {
		return query
	}
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

// schwartzStore is the TheSchwartz Store. See the comment at the top of
// this file for the mapping.
type schwartzStore struct {
	db                *sql.DB
	d                 *schwartzDialect
	keepExitStatusFor int64 // seconds; 0 = record no exit status (TheSchwartz's default)
	gc                *groupCommitter
	closed            atomic.Bool

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
		d, driver, dsn = schwartzSQLite, "sqlite", sp.Path+"?"+q.Encode()
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

// createSchema creates every absent table in one transaction and checks
// that the present ones have the columns this store uses.
func (s *schwartzStore) createSchema(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: theschwartz: schema: begin: %w", err)
	}
	defer tx.Rollback()
	if s.d.lockSchema != "" {
		if _, err := tx.ExecContext(ctx, s.d.lockSchema); err != nil {
			return fmt.Errorf("store: theschwartz: schema lock: %w", err)
		}
	}
	for _, t := range s.d.tables {
		var exists bool
		if err := tx.QueryRowContext(ctx, s.d.q(s.d.tableExists), t.name).Scan(&exists); err != nil {
			return fmt.Errorf("store: theschwartz: looking for table %s: %w", t.name, err)
		}
		if !exists {
			for _, stmt := range t.create {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("store: theschwartz: create table %s: %w", t.name, err)
				}
			}
			continue
		}
		if t.columns == "" {
			continue
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+t.columns+" FROM "+t.name+" WHERE 1 = 0")
		if err != nil {
			return fmt.Errorf("store: theschwartz: table %s exists but lacks TheSchwartz's columns (%s): %w", t.name, t.columns, err)
		}
		rows.Close()
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: theschwartz: schema: commit: %w", err)
	}
	return nil
}

// PutCommits implements CommitCounter.
func (s *schwartzStore) PutCommits() (commits, puts uint64) { return s.gc.counts() }

// schwartzJob is one job row to insert, derived from a Message.
type schwartzJob struct {
	funcname string
	arg      []byte
	uniqkey  any // string or nil (NULL)
	runAfter int64
	priority any // int64 or nil (NULL)
	coalesce any // string or nil (NULL)
}

// jobFromMessage maps m onto job columns: Queue "/queue/<funcname>", Body
// → arg, UniqKey → uniqkey, Priority → priority (0 = NULL, as TheSchwartz
// leaves it), the run_after header or else NotBefore (rounded up to a whole
// second) or else now → run_after, the coalesce header → coalesce. Headers
// that are not a STOMP header block are ignored. It returns a wrapped
// ErrBadMessage for what TheSchwartz's columns cannot hold.
func jobFromMessage(m *Message, now time.Time) (schwartzJob, error) {
	funcname, ok := strings.CutPrefix(m.Queue, schwartzQueuePrefix)
	if !ok || funcname == "" || len(funcname) > schwartzMaxVarchar {
		return schwartzJob{}, fmt.Errorf("%w: theschwartz: destination %q is not /queue/<funcname> with a funcname of 1 to %d bytes",
			ErrBadMessage, m.Queue, schwartzMaxVarchar)
	}
	j := schwartzJob{funcname: funcname, arg: m.Body, runAfter: now.Unix()}
	if j.arg == nil {
		j.arg = []byte{} // an empty body is an empty arg, not NULL
	}
	if m.UniqKey != "" {
		if len(m.UniqKey) > schwartzMaxVarchar {
			return j, fmt.Errorf("%w: theschwartz: uniqkey longer than %d bytes", ErrBadMessage, schwartzMaxVarchar)
		}
		j.uniqkey = m.UniqKey
	}
	if m.Priority != 0 {
		if m.Priority < -1<<15 || m.Priority >= 1<<15 {
			return j, fmt.Errorf("%w: theschwartz: priority %d does not fit TheSchwartz's SMALLINT", ErrBadMessage, m.Priority)
		}
		j.priority = int64(m.Priority)
	}
	if !m.NotBefore.IsZero() && m.NotBefore.After(now) {
		j.runAfter = ceilUnix(m.NotBefore)
	}
	hdr := parseHeaderBlock(m.Headers)
	if hdr == nil {
		return j, nil
	}
	if v, ok := hdr.Contains(HeaderRunAfter); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 || n >= 1<<31 {
			return j, fmt.Errorf("%w: theschwartz: bad %s header %q: want unix seconds", ErrBadMessage, HeaderRunAfter, v)
		}
		j.runAfter = n
	}
	if v := hdr.Get(HeaderCoalesce); v != "" {
		if len(v) > schwartzMaxVarchar {
			return j, fmt.Errorf("%w: theschwartz: coalesce longer than %d bytes", ErrBadMessage, schwartzMaxVarchar)
		}
		j.coalesce = v
	}
	return j, nil
}

// parseHeaderBlock parses a stored SEND header block, or returns nil.
func parseHeaderBlock(b []byte) *frame.Header {
	if len(b) == 0 {
		return nil
	}
	f, _, err := stompwire.Parse(append(append([]byte(nil), b...), 0), stompwire.V12, stompwire.DefaultLimits())
	if err != nil {
		return nil
	}
	return f.Header
}

// ceilUnix is t in unix seconds, rounded up: a job or lease never becomes
// available before t.
func ceilUnix(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// Put implements Store.Put through the group committer: every message
// becomes a job row (TheSchwartz's insert). A message whose uniqkey is
// taken by a stored job of the same funcname is not inserted (Coalesced),
// as TheSchwartz ignores such a duplicate.
func (s *schwartzStore) Put(ctx context.Context, msgs []*Message) ([]PutResult, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := validate(msgs); err != nil {
		return nil, err
	}
	now := time.Now()
	for i, m := range msgs {
		if _, err := jobFromMessage(m, now); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
	}
	return s.gc.put(ctx, msgs)
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

// leaseUntil is the grabbed_until value for a lease of d from now: whole
// seconds, rounded up, and always in the future.
func leaseUntil(now time.Time, d time.Duration) int64 {
	until := ceilUnix(now.Add(d))
	if until <= now.Unix() {
		until = now.Unix() + 1
	}
	return until
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
	funcname, ok := strings.CutPrefix(queue, schwartzQueuePrefix)
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

// grabbedJob is a job row as the grab returns it.
type grabbedJob struct {
	Message
	insertTime sql.NullInt64
	runAfter   int64
	priority   sql.NullInt64
	coalesce   sql.NullString
}

// grabbedIDs lists the jobids of jobs.
func grabbedIDs(jobs []*grabbedJob) []int64 {
	out := make([]int64, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// scanGrabbed scans and closes the grab's RETURNING rows.
func scanGrabbed(rows *sql.Rows) ([]*grabbedJob, error) {
	defer rows.Close()
	var out []*grabbedJob
	for rows.Next() {
		j := &grabbedJob{}
		var uniq sql.NullString
		if err := rows.Scan(&j.ID, &j.Body, &uniq, &j.insertTime, &j.runAfter, &j.priority, &j.coalesce); err != nil {
			return nil, err
		}
		j.UniqKey = uniq.String
		j.Priority = int(j.priority.Int64)
		j.NotBefore = time.Unix(j.runAfter, 0)
		j.MaxRedeliveries = -1 // TheSchwartz's max_retries is per function: the broker default stands in
		out = append(out, j)
	}
	return out, rows.Err()
}

// failureLog is what the error table says about one job.
type failureLog struct {
	count    int
	last     string
	lastTime int64
}

// failures reads the error rows of ids: how many each job has (its
// TheSchwartz failure count) and the latest message.
func (s *schwartzStore) failures(ctx context.Context, jobIDs []int64) (map[int64]failureLog, error) {
	out := make(map[int64]failureLog)
	for chunk := range slices.Chunk(jobIDs, schwartzIDChunk) {
		rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT jobid, CAST(error_time AS BIGINT), message FROM error
			WHERE jobid IN (`+placeholders(len(chunk))+`)`), anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, at int64
			var msg string
			if err := rows.Scan(&id, &at, &msg); err != nil {
				rows.Close()
				return nil, err
			}
			f := out[id]
			f.count++
			if f.count == 1 || at >= f.lastTime {
				f.last, f.lastTime = msg, at
			}
			out[id] = f
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// schwartzHeaders is the SEND header block Lease hands the broker for a
// job: what TheSchwartz knows about it, as MESSAGE headers.
func schwartzHeaders(funcname string, j *grabbedJob, f failureLog) []byte {
	h := frame.New(frame.SEND,
		frame.Destination, schwartzQueuePrefix+funcname,
		"persistent", "true",
		HeaderTheSchwartzJobID, strconv.FormatInt(j.ID, 10),
		HeaderTheSchwartzFuncname, headerValue(funcname, schwartzMaxVarchar),
		HeaderTheSchwartzArg, argKind(j.Body),
		HeaderRunAfter, strconv.FormatInt(j.runAfter, 10),
	)
	if j.insertTime.Valid {
		h.Header.Add(HeaderInsertTime, strconv.FormatInt(j.insertTime.Int64, 10))
	}
	if j.UniqKey != "" {
		h.Header.Add(headerUniqKey, headerValue(j.UniqKey, schwartzMaxVarchar))
	}
	if j.priority.Valid {
		h.Header.Add(headerPriority, strconv.FormatInt(j.priority.Int64, 10))
	}
	if j.coalesce.Valid {
		h.Header.Add(HeaderCoalesce, headerValue(j.coalesce.String, schwartzMaxVarchar))
	}
	if f.count > 0 {
		h.Header.Add(HeaderTheSchwartzLastError, headerValue(f.last, maxLastErrorHeader))
	}
	return stompwire.AppendFrame(nil, h, stompwire.V12)
}

// headerValue makes s a header value: valid UTF-8 (STOMP headers are
// UTF-8; Perl may store anything) and at most max bytes, cut at a rune
// boundary.
func headerValue(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// argKind is HeaderTheSchwartzArg's value for arg.
func argKind(arg []byte) string {
	if looksLikeStorable(arg) {
		return ArgStorable
	}
	return ArgBytes
}

// looksLikeStorable applies the test TheSchwartz::Job's _cond_thaw makes
// before it thaws an arg: Storable::read_magic must accept the start of an
// in-memory image (freeze/nfreeze output) with a major version of 2 to 4
// (read_magic refuses above 4; _cond_thaw allows 2 to 5). The first byte is
// major<<1 | netorder, the second the minor version; a native-order image
// then names its byte order (4 or 8 bytes) and int, long, pointer and, from
// version 2.2 on, NV sizes. TheSchwartz also requires the thaw to succeed,
// which only Perl can try, so a non-Storable arg that happens to start like
// one is reported as storable here and still handed to Perl workers as is.
func looksLikeStorable(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	major, netorder, minor := int(b[0]>>1), b[0]&1 == 1, int(b[1])
	if major < 2 || major > 4 {
		return false
	}
	if netorder {
		return true
	}
	if len(b) < 3 {
		return false
	}
	n := int(b[2])
	if n != 4 && n != 8 {
		return false
	}
	need := 3 + n + 3 // byte order, then int, long and pointer sizes
	if major > 2 || minor >= 2 {
		need++ // NV size
	}
	return len(b) >= need
}

// Renew implements Store.Renew: for each job owner holds, grabbed_until
// moves to now+lease if it still has the value this store wrote. A job
// whose value changed (completed or failed by someone, or grabbed again
// after the lease ran out) is lost.
func (s *schwartzStore) Renew(ctx context.Context, owner string, jobIDs []int64, lease time.Duration) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(jobIDs) == 0 {
		return nil
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	until := leaseUntil(time.Now(), lease)
	var lost, renewed []int64
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
		return fmt.Errorf("store: theschwartz: renew: %w", err)
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
	return leaseLost(lost)
}

// Ack implements Store.Ack as TheSchwartz's completed(): the job rows are
// deleted, and with keep_exit_status_for an exitstatus row (status 0) is
// recorded for each job that was still there. Like completed(), it does not
// check the grab: the work is done, whoever else holds the job now.
func (s *schwartzStore) Ack(ctx context.Context, jobIDs []int64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(jobIDs) == 0 {
		return nil
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
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
		return fmt.Errorf("store: theschwartz: ack: %w", err)
	}
	for _, id := range jobIDs {
		delete(s.held, id)
	}
	s.maybeCleanExitStatus(ctx, now)
	return nil
}

// Release implements Store.Release for the jobs this store still holds
// (others are ignored: their grab is someone else's now). With
// notDelivered the grab is simply undone (grabbed_until = 0), which
// TheSchwartz does not count. Otherwise the delivery failed, as
// TheSchwartz's failed(lastError) with a retry: an error row, grabbed_until
// = 0 and, when notBefore is in the future, run_after = notBefore (rounded
// up to a whole second).
func (s *schwartzStore) Release(ctx context.Context, jobIDs []int64, notDelivered bool, notBefore time.Time, lastError string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(jobIDs) == 0 {
		return nil
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
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
		return fmt.Errorf("store: theschwartz: release: %w", err)
	}
	for _, id := range jobIDs {
		delete(s.held, id)
	}
	return nil
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
	if s.closed.Load() {
		return ErrClosed
	}
	if dlq == "" {
		return fmt.Errorf("store: theschwartz: give up job %d: empty queue name: %w", id, ErrBadMessage)
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
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
		return fmt.Errorf("store: theschwartz: give up job %d: %w", id, err)
	}
	s.maybeCleanExitStatus(ctx, now)
	return nil
}

// addFailure inserts an error row, as TheSchwartz::Job's add_failure.
func (s *schwartzStore) addFailure(ctx context.Context, tx *sql.Tx, jobid, funcid int64, msg string, now int64) error {
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO error (error_time, jobid, message, funcid) VALUES (?, ?, ?, ?)`),
		now, jobid, headerValue(msg, schwartzMaxErrorMessage), funcid)
	return err
}

// cleanOldErrors deletes error rows past TheSchwartz's maximum age, as
// add_failure does after every failure.
func (s *schwartzStore) cleanOldErrors(ctx context.Context, tx *sql.Tx, now int64) error {
	_, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM error WHERE error_time < ?`), now-schwartzErrorMaxAge)
	return err
}

// recordExitStatus inserts an exitstatus row if keep_exit_status_for is set
// (TheSchwartz::Job's set_exit_status).
func (s *schwartzStore) recordExitStatus(ctx context.Context, tx *sql.Tx, jobid, funcid int64, status int, now int64) error {
	if s.keepExitStatusFor <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO exitstatus (jobid, funcid, status, completion_time, delete_after)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), jobid, funcid, status, now, now+s.keepExitStatusFor)
	return err
}

// maybeCleanExitStatus purges expired exitstatus rows one call in ten, as
// set_exit_status does. A failure only delays the purge.
func (s *schwartzStore) maybeCleanExitStatus(ctx context.Context, now int64) {
	if s.keepExitStatusFor <= 0 || rand.Float64() >= schwartzExitStatusCleanChance {
		return
	}
	_, _ = s.db.ExecContext(ctx, s.d.q(`DELETE FROM exitstatus WHERE delete_after < ?`), now)
}

// ReleaseOwner implements Store.ReleaseOwner for the jobs this process
// holds for owner: their grabs are undone (not counted as failures). There
// is no owner column, so a previous process's grabs cannot be found: they
// expire by themselves (grabbed_until), as a crashed TheSchwartz worker's
// do.
func (s *schwartzStore) ReleaseOwner(ctx context.Context, owner string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
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
		return fmt.Errorf("store: theschwartz: release owner %q: %w", owner, err)
	}
	for _, id := range mine {
		delete(s.held, id)
	}
	return nil
}

// Stats implements Store.Stats: one line per funcname with jobs; Leased
// counts every job under an unexpired grab, Perl workers' included. It
// scans the whole job table.
func (s *schwartzStore) Stats(ctx context.Context) ([]QueueStats, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT f.funcname, count(*),
		COALESCE(sum(CASE WHEN j.grabbed_until > ? THEN 1 ELSE 0 END), 0)
		FROM job j JOIN funcmap f ON f.funcid = j.funcid
		GROUP BY f.funcname`), time.Now().Unix())
	if err != nil {
		return nil, fmt.Errorf("store: theschwartz: stats: %w", err)
	}
	defer rows.Close()
	var out []QueueStats
	for rows.Next() {
		var st QueueStats
		if err := rows.Scan(&st.Queue, &st.Stored, &st.Leased); err != nil {
			return nil, fmt.Errorf("store: theschwartz: stats: %w", err)
		}
		st.Queue = schwartzQueuePrefix + st.Queue
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: theschwartz: stats: %w", err)
	}
	// Sorted here, not by ORDER BY: PostgreSQL sorts text by collation.
	sort.Slice(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out, nil
}

// Close implements Store.Close: it lets the group committer finish its
// batch, then closes the database. Jobs still held keep their grab until it
// expires (the broker releases what it holds before closing).
func (s *schwartzStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.gc.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: theschwartz: close: %w", err)
	}
	return nil
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
