package store

import (
	"context"
	"fmt"
	"strconv"
)

// The TheSchwartz tables in each SQL dialect, and what else differs
// between SQLite and PostgreSQL for the TheSchwartz store.

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
	return dollarPlaceholders(query)
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
