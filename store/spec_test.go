package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stomp-broker/stomp-broker/store"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		value string
		want  store.Spec
		// durable, persistAll and redacted are what the broker reads.
		durable, persistAll bool
		redacted            string
	}{
		{value: "memory", want: store.Spec{Backend: store.BackendMemory}, redacted: "memory"},
		{value: "sqlite:/var/lib/b.db", want: store.Spec{Backend: store.BackendSQLite, Path: "/var/lib/b.db"},
			durable: true, redacted: "sqlite:/var/lib/b.db"},
		{value: "sqlite:relative.db", want: store.Spec{Backend: store.BackendSQLite, Path: "relative.db"},
			durable: true, redacted: "sqlite:relative.db"},
		{value: "postgres://broker@db/jobs", want: store.Spec{Backend: store.BackendPostgres, URL: "postgres://broker@db/jobs"},
			durable: true, redacted: "postgres://broker@db/jobs"},
		{value: "postgres://broker:s3cret@db/jobs", want: store.Spec{Backend: store.BackendPostgres, URL: "postgres://broker:s3cret@db/jobs"},
			durable: true, redacted: "postgres://broker:xxx@db/jobs"},
		{value: "postgresql://b:pw@db/jobs?sslmode=disable", want: store.Spec{Backend: store.BackendPostgres, URL: "postgresql://b:pw@db/jobs?sslmode=disable"},
			durable: true, redacted: "postgresql://b:xxx@db/jobs?sslmode=disable"},
		{value: "theschwartz:sqlite:/tmp/ts.db", want: store.Spec{Backend: store.BackendTheSchwartz, Path: "/tmp/ts.db"},
			durable: true, persistAll: true, redacted: "theschwartz:sqlite:/tmp/ts.db"},
		{value: "theschwartz:sqlite:/tmp/ts.db?keep_exit_status_for=86400",
			want:    store.Spec{Backend: store.BackendTheSchwartz, Path: "/tmp/ts.db", KeepExitStatusFor: 86400},
			durable: true, persistAll: true, redacted: "theschwartz:sqlite:/tmp/ts.db?keep_exit_status_for=86400"},
		{value: "theschwartz:postgres://w:pw@db/ts", want: store.Spec{Backend: store.BackendTheSchwartz, URL: "postgres://w:pw@db/ts"},
			durable: true, persistAll: true, redacted: "theschwartz:postgres://w:xxx@db/ts"},
		{value: "theschwartz:postgresql://w@db/ts?search_path=tsw&keep_exit_status_for=60",
			want:    store.Spec{Backend: store.BackendTheSchwartz, URL: "postgresql://w@db/ts?search_path=tsw", KeepExitStatusFor: 60},
			durable: true, persistAll: true, redacted: "theschwartz:postgresql://w@db/ts?search_path=tsw&keep_exit_status_for=60"},
	}
	for _, c := range cases {
		t.Run(c.value, func(t *testing.T) {
			got, err := store.ParseSpec(c.value)
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if got.Backend != c.want.Backend || got.Path != c.want.Path || got.URL != c.want.URL ||
				got.KeepExitStatusFor != c.want.KeepExitStatusFor {
				t.Errorf("ParseSpec = %+v, want %+v", got, c.want)
			}
			if got.Durable() != c.durable || got.PersistAll() != c.persistAll {
				t.Errorf("Durable, PersistAll = %v, %v; want %v, %v", got.Durable(), got.PersistAll(), c.durable, c.persistAll)
			}
			if s := got.String(); s != c.redacted {
				t.Errorf("String() = %q, want %q", s, c.redacted)
			}
		})
	}
}

func TestParseSpecBad(t *testing.T) {
	cases := []struct {
		value string
		says  string // a part of the error message that tells what is wrong
	}{
		{"", `""`},
		{"mem", `"mem"`},
		{"mysql://db/jobs", "want memory, sqlite:/path, postgres://"},
		{"sqlite:", "no file path"},
		{"sqlite:/tmp/b.db?cache=shared", "must not contain '?'"},
		{"sqlite:/tmp/b#1.db", "must not contain '?' or '#'"},
		{"postgres:/db", `"postgres:/db"`},
		{"theschwartz:", "want theschwartz:sqlite:/path"},
		{"theschwartz:mysql://localhost/jobs", "want theschwartz:sqlite:/path"},
		{"theschwartz:sqlite:", "needs an SQLite file path"},
		{"theschwartz:sqlite:/tmp/x#.db", "needs an SQLite file path without '#'"},
		{"theschwartz:sqlite:/tmp/x.db?keep_exit_status_for=-1", "want seconds >= 0"},
		{"theschwartz:sqlite:/tmp/x.db?keep_exit_status_for=soon", `keep_exit_status_for="soon"`},
		{"theschwartz:sqlite:/tmp/x.db?grab_for=10", `unknown option "grab_for"`},
		{"theschwartz:postgres://db/ts?keep_exit_status_for=x", `keep_exit_status_for="x"`},
	}
	for _, c := range cases {
		t.Run(c.value, func(t *testing.T) {
			sp, err := store.ParseSpec(c.value)
			if !errors.Is(err, store.ErrBadSpec) {
				t.Fatalf("ParseSpec = %+v, %v; want ErrBadSpec", sp, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "--store") || !strings.Contains(msg, c.says) {
				t.Errorf("error %q does not name --store and say %q", msg, c.says)
			}
			if s, err := store.Open(testContext(t), c.value); !errors.Is(err, store.ErrBadSpec) {
				if s != nil {
					s.Close()
				}
				t.Errorf("Open: %v, want ErrBadSpec", err)
			}
		})
	}
}

// TestSpecOpen: Open gives each backend's store; PersistAll and the
// backend agree (TheSchwartz keeps every queue message).
func TestSpecOpen(t *testing.T) {
	dir := t.TempDir()
	for _, value := range []string{
		"memory",
		"sqlite:" + filepath.Join(dir, "b.db"),
		"theschwartz:sqlite:" + filepath.Join(dir, "ts.db"),
	} {
		s, err := store.Open(testContext(t), value)
		if err != nil {
			t.Fatalf("Open(%q): %v", value, err)
		}
		_, groupCommits := s.(store.CommitCounter)
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q): %v", value, err)
		}
		sp, _ := store.ParseSpec(value)
		if groupCommits != sp.Durable() {
			t.Errorf("%q: group commit %v, durable %v", value, groupCommits, sp.Durable())
		}
	}
}
