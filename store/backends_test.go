package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/pgtest"
	"github.com/stomp-broker/stomp-broker/store"
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

// openPostgres gives each test its own schema in the test database
// (pgtest.FreshSchema), so tests neither see each other's rows nor leave any behind.
func openPostgres(t *testing.T) (store.Store, func(*testing.T) store.Store) {
	t.Helper()
	dsn := pgtest.FreshSchema(t, "test_")
	reopen := func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.Open(testContext(t), dsn)
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return reopen(t), reopen
}

// testContext bounds every store call a test makes.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queueName gives a test its own destination name.
func queueName(t *testing.T, suffix string) string {
	return "/queue/" + strings.ReplaceAll(t.Name(), "/", ".") + suffix
}
