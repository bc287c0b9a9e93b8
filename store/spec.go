package store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Backend names a Store implementation a --store value selects.
type Backend string

// The backends ParseSpec knows.
const (
	// BackendMemory: RAM only (NewMemory).
	BackendMemory Backend = "memory"
	// BackendSQLite: the broker's own schema in an SQLite file (OpenSQLite).
	BackendSQLite Backend = "sqlite"
	// BackendPostgres: the broker's own schema in PostgreSQL (OpenPostgres).
	BackendPostgres Backend = "postgres"
	// BackendTheSchwartz: TheSchwartz's tables in SQLite or PostgreSQL
	// (OpenTheSchwartz).
	BackendTheSchwartz Backend = "theschwartz"
)

// schwartzSpecPrefix starts every TheSchwartz --store value.
const schwartzSpecPrefix = "theschwartz:"

// Spec is a parsed --store value. ParseSpec is the only place that reads
// the value's syntax; Open opens what it names.
type Spec struct {
	// Backend is the implementation the value selects.
	Backend Backend
	// Path is the SQLite file of BackendSQLite, and of BackendTheSchwartz
	// on SQLite. Empty otherwise.
	Path string
	// URL is the PostgreSQL connection URL of BackendPostgres, and of
	// BackendTheSchwartz on PostgreSQL (without the TheSchwartz options).
	// Empty otherwise.
	URL string
	// KeepExitStatusFor is TheSchwartz's keep_exit_status_for option in
	// seconds: ACK and give-up leave an exitstatus row that long. 0 (the
	// default) records none. Only BackendTheSchwartz has it.
	KeepExitStatusFor int64

	raw string // the value as given
}

// ParseSpec parses a --store value:
//
//   - "memory": RAM only, nothing survives a restart;
//   - "sqlite:/path/file.db": an SQLite file (created if absent), with no
//     '?' or '#' in the path;
//   - "postgres://..." or "postgresql://...": a PostgreSQL database, the
//     whole value being the connection URL;
//   - "theschwartz:sqlite:/path[?options]" or
//     "theschwartz:postgres://...[?options]": a TheSchwartz job database;
//     the only option is keep_exit_status_for=<seconds> (on PostgreSQL
//     every other query parameter goes to the driver).
//
// It returns a wrapped ErrBadSpec, naming the value, for anything else.
// It does not touch the file or the network.
func ParseSpec(value string) (Spec, error) {
	sp := Spec{raw: value}
	switch {
	case value == "memory":
		sp.Backend = BackendMemory
	case strings.HasPrefix(value, "sqlite:"):
		sp.Backend, sp.Path = BackendSQLite, strings.TrimPrefix(value, "sqlite:")
		if sp.Path == "" {
			return Spec{}, fmt.Errorf("%w: %q has no file path", ErrBadSpec, value)
		}
		if strings.ContainsAny(sp.Path, "?#") {
			return Spec{}, fmt.Errorf("%w: sqlite path %q must not contain '?' or '#'", ErrBadSpec, sp.Path)
		}
	case isPostgresURL(value):
		sp.Backend, sp.URL = BackendPostgres, value
	case strings.HasPrefix(value, schwartzSpecPrefix):
		if err := sp.parseTheSchwartz(strings.TrimPrefix(value, schwartzSpecPrefix)); err != nil {
			return Spec{}, err
		}
	default:
		return Spec{}, fmt.Errorf("%w: %q (want memory, sqlite:/path, postgres://... or theschwartz:...)", ErrBadSpec, value)
	}
	return sp, nil
}

// parseTheSchwartz fills sp from the part of a value after "theschwartz:".
func (sp *Spec) parseTheSchwartz(rest string) error {
	sp.Backend = BackendTheSchwartz
	var options url.Values
	switch {
	case strings.HasPrefix(rest, "sqlite:"):
		path, raw, _ := strings.Cut(strings.TrimPrefix(rest, "sqlite:"), "?")
		if path == "" || strings.Contains(path, "#") {
			return fmt.Errorf("%w: theschwartz: %q needs an SQLite file path without '#'", ErrBadSpec, rest)
		}
		var err error
		if options, err = url.ParseQuery(raw); err != nil {
			return fmt.Errorf("%w: theschwartz: options of %q: %v", ErrBadSpec, rest, err)
		}
		sp.Path = path
	case isPostgresURL(rest):
		u, err := url.Parse(rest)
		if err != nil {
			return fmt.Errorf("%w: theschwartz: %v", ErrBadSpec, err)
		}
		all := u.Query()
		options = url.Values{}
		if v, ok := all["keep_exit_status_for"]; ok {
			options["keep_exit_status_for"] = v
			all.Del("keep_exit_status_for")
		}
		u.RawQuery = all.Encode()
		sp.URL = u.String()
	default:
		return fmt.Errorf("%w: theschwartz: %q (want theschwartz:sqlite:/path or theschwartz:postgres://...)", ErrBadSpec, rest)
	}
	for name, values := range options {
		switch name {
		case "keep_exit_status_for":
			v := values[len(values)-1]
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: theschwartz: keep_exit_status_for=%q: want seconds >= 0", ErrBadSpec, v)
			}
			sp.KeepExitStatusFor = n
		default:
			return fmt.Errorf("%w: theschwartz: unknown option %q (known: keep_exit_status_for)", ErrBadSpec, name)
		}
	}
	return nil
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Durable reports whether the store keeps messages across a restart
// (every backend but memory).
func (sp Spec) Durable() bool { return sp.Backend != BackendMemory }

// PersistAll reports whether every queue message must go to the store,
// persistent:true or not. TheSchwartz has no notion of a non-persistent
// job: every SEND to a queue becomes a job row that Perl workers can see.
func (sp Spec) PersistAll() bool { return sp.Backend == BackendTheSchwartz }

// String is the value as given, with the password of a PostgreSQL URL
// replaced by "xxx": fit for logs.
func (sp Spec) String() string {
	if sp.URL == "" {
		return sp.raw
	}
	prefix, rest := "", sp.raw
	if sp.Backend == BackendTheSchwartz {
		prefix, rest = schwartzSpecPrefix, strings.TrimPrefix(sp.raw, schwartzSpecPrefix)
	}
	u, err := url.Parse(rest)
	if err != nil || u.User == nil {
		return sp.raw
	}
	if _, has := u.User.Password(); !has {
		return sp.raw
	}
	u.User = url.UserPassword(u.User.Username(), "xxx")
	return prefix + u.String()
}

// Open opens the store sp names; durable stores create their tables if
// absent. BackendMemory gets NewMemory with no byte budget. The caller must
// Close the store.
func (sp Spec) Open(ctx context.Context) (Store, error) {
	switch sp.Backend {
	case BackendMemory:
		return NewMemory(0), nil
	case BackendSQLite:
		return OpenSQLite(ctx, sp.Path)
	case BackendPostgres:
		return OpenPostgres(ctx, sp.URL)
	case BackendTheSchwartz:
		return openTheSchwartz(ctx, sp)
	default:
		return nil, fmt.Errorf("%w: no backend in %q (use ParseSpec)", ErrBadSpec, sp.raw)
	}
}

// Open parses a --store value (see ParseSpec) and opens that store. It
// returns a wrapped ErrBadSpec for a value ParseSpec refuses, or the
// backend's open error. The caller must Close the store.
func Open(ctx context.Context, value string) (Store, error) {
	sp, err := ParseSpec(value)
	if err != nil {
		return nil, err
	}
	return sp.Open(ctx)
}
