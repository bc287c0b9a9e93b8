package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/store"
)

// TestSQLiteReadsModerncFile opens testdata/modernc-sqlite.db, written by
// the store when it used modernc.org/sqlite (main at 496276f): four
// messages put, the third acked, one durable subscription added. Switching
// drivers must leave such files readable and writable as they were:
// messages, their columns, the AUTOINCREMENT sequence (an acked id is
// never reused) and the uniqkey index.
func TestSQLiteReadsModerncFile(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("testdata", "modernc-sqlite.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	msgs, err := s.Lease(ctx, "/queue/old", "owner", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("leased %d messages of /queue/old, want 2 (ids 2 and 1)", len(msgs))
	}
	two, one := msgs[0], msgs[1]
	if two.ID != 2 || string(two.Body) != "two" || two.Priority != 5 || two.LastError != "boom" ||
		two.OrigQueue != "/queue/orig" || two.OrigDeliveries != 2 || two.Deliveries != 1 || two.MaxRedeliveries != 0 {
		t.Errorf("message 2 = %+v", two)
	}
	if one.ID != 1 || string(one.Body) != "one" || string(one.Headers) != "content-type:text/plain\n" ||
		one.UniqKey != "k1" || one.MaxRedeliveries != 3 || one.Deliveries != 1 {
		t.Errorf("message 1 = %+v", one)
	}
	if delayed, err := s.Lease(ctx, "/queue/later", "owner", 10, time.Minute); err != nil || len(delayed) != 0 {
		t.Errorf("lease of the delayed queue = %d messages, %v; want none (not before 2100)", len(delayed), err)
	}

	res, err := s.Put(ctx, []*store.Message{
		{Queue: "/queue/old", Body: []byte("again"), UniqKey: "k1"},
		{Queue: "/queue/old", Body: []byte("new")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != (store.PutResult{ID: 1, Coalesced: true}) {
		t.Errorf("put with the old file's uniqkey k1 = %+v, want coalesced into id 1", res[0])
	}
	if res[1].ID <= 4 || res[1].Coalesced {
		// Not exactly 5: the coalesced insert before it consumed a
		// sequence number, with either driver.
		t.Errorf("new message = %+v, want an id above 4 (ids 1-4 used, 3 acked and not reused)", res[1])
	}

	subs, err := s.(store.Subscriptions).ListSubscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].Queue != "/queue/sub" || subs[0].Topic != "/topic/t" {
		t.Errorf("subscriptions = %+v, want /queue/sub on /topic/t", subs)
	}
}

// TestSQLitePathCharacters opens stores at paths that are not plain words:
// the driver takes a "file:" URI, so '%', spaces and the like must name
// the file they spell, and a relative path stays relative to the working
// directory.
func TestSQLitePathCharacters(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, name := range []string{
		"plain.db",
		"with space.db",
		"per%25cent.db",
		"per%cent.db",
		"semi;colon&amp=x+y.db",
		"ünïcode.db",
		"dir:colon.db",
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for _, path := range []string{name, filepath.Join(dir, "abs-"+name), "." + string(filepath.Separator) + "dot-" + name} {
				s, err := store.OpenSQLite(ctx, path)
				if err != nil {
					t.Fatalf("open %q: %v", path, err)
				}
				if _, err := s.Put(ctx, []*store.Message{{Queue: "/queue/q", Body: []byte("x")}}); err != nil {
					t.Errorf("put in %q: %v", path, err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("close %q: %v", path, err)
				}
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Errorf("file %q after close: %v (want a non-empty file of exactly that name)", path, err)
				}
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Logf("created %q", e.Name())
	}
}
