package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSQLiteQueryPlans checks that the hot queries use the partial indexes
// the schema builds for them, rather than scanning the table or sorting:
// a queue larger than memory lives on disk, so Lease must stay cheap.
func TestSQLiteQueryPlans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.(*sqliteStore).db

	cases := []struct {
		name, query string
		args        []any
		wantIndex   string
	}{
		{"lease: pick ready rows", sqlitePickReady, []any{"q", 0, 10}, "messages_ready"},
		{"lease: expire leases", sqliteExpireLeases, []any{"q", 0}, "messages_leased"},
		{"release owner", sqliteDialect(db).sql(msgReleaseOwner), []any{"A"}, "messages_owner"},
		{"coalesce lookup", sqliteFindUniq, []any{"q", "k"}, "messages_uniqkey"},
	}
	for _, c := range cases {
		rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		if !strings.Contains(text, c.wantIndex) {
			t.Errorf("%s: plan %q does not use %s", c.name, text, c.wantIndex)
		}
		if strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s: plan %q sorts instead of walking the index in order", c.name, text)
		}
	}
}
