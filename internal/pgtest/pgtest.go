// Package pgtest gives tests that need PostgreSQL a database of their own:
// a fresh schema in the test database that STOMP_BROKER_TEST_POSTGRES names
// (scripts/start-test-postgres starts one), dropped when the test ends.
// Tests of several packages share that one database at the same time; a
// schema per test keeps their tables, rows and notification channels apart.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// EnvDSN names the variable holding the test database's URL.
const EnvDSN = "STOMP_BROKER_TEST_POSTGRES"

// DSN returns the test database's URL, or skips the test (fails it under
// STOMP_BROKER_REQUIRE_ALL=1) when EnvDSN is not set.
func DSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		brokertest.Missing(tb, EnvDSN+" is not set: PostgreSQL tests not run (eval \"$(scripts/start-test-postgres)\" to run them)")
	}
	return dsn
}

// FreshSchema creates a schema named prefix plus random hex in the test
// database and returns DSN(tb) with search_path set to it, so everything
// opened with the returned URL lives in that schema. The schema and all in
// it are dropped at cleanup. Register cleanups that close connections
// using it after calling FreshSchema, so they run before the drop.
func FreshSchema(tb testing.TB, prefix string) string {
	tb.Helper()
	dsn := DSN(tb)
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("pgtest: %s is not a URL: %v", EnvDSN, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v", EnvDSN, err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := prefix + hex.EncodeToString(r[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		tb.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
