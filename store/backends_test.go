package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stomp-broker/stomp-broker/store"
)

// Environment variables the tests read.
const (
	// envPostgres holds a PostgreSQL URL; scripts/start-test-postgres
	// prints one. Unset: the PostgreSQL cases are skipped.
	envPostgres = "STOMP_BROKER_TEST_POSTGRES"
	// envRequireAll=1 turns every such skip into a failure (CI sets it).
	envRequireAll = "STOMP_BROKER_REQUIRE_ALL"
)

// backend is one Store implementation under test.
type backend struct {
	name string
	// open returns a new, empty store, closed at test cleanup. reopen, when
	// not nil, opens another handle on the same data: a second broker
	// (PostgreSQL), another process or a restart (SQLite). The memory store
	// has none.
	open func(t *testing.T) (s store.Store, reopen func(t *testing.T) store.Store)
}

// backends lists every implementation the conformance suite runs against.
func backends() []backend {
	return []backend{
		{name: "memory", open: openMemory},
		{name: "sqlite", open: openSQLite},
		{name: "postgres", open: openPostgres},
	}
}

func openMemory(t *testing.T) (store.Store, func(*testing.T) store.Store) {
	s := store.NewMemory(0)
	t.Cleanup(func() { s.Close() })
	return s, nil
}

func openSQLite(t *testing.T) (store.Store, func(*testing.T) store.Store) {
	path := filepath.Join(t.TempDir(), "store.db")
	reopen := func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.Open(testContext(t), "sqlite:"+path)
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return reopen(t), reopen
}

// openPostgres gives each test its own schema in the database named by
// envPostgres, so tests neither see each other's rows nor leave any behind.
func openPostgres(t *testing.T) (store.Store, func(*testing.T) store.Store) {
	t.Helper()
	dsn := requirePostgres(t)
	ctx := testContext(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", envPostgres, err)
	}
	schema := "test_" + randomHex(t, 8)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", envPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	reopen := func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.Open(testContext(t), u.String())
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return reopen(t), reopen
}

// requirePostgres returns the test database URL, or skips the test (fails
// it under envRequireAll=1) when there is none.
func requirePostgres(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(envPostgres)
	if dsn != "" {
		return dsn
	}
	msg := envPostgres + " is not set: PostgreSQL store tests not run " +
		"(eval \"$(scripts/start-test-postgres)\" to run them)"
	if os.Getenv(envRequireAll) == "1" {
		t.Fatal(msg + " and " + envRequireAll + "=1")
	}
	t.Skip(msg)
	return ""
}

// testContext bounds every store call a test makes.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// queueName gives a test its own destination name.
func queueName(t *testing.T, suffix string) string {
	return "/queue/" + strings.ReplaceAll(t.Name(), "/", ".") + suffix
}
