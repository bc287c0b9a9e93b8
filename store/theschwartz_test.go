package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/pgtest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/store"
)

// schwartzDB is one TheSchwartz database under test: the --store spec (the
// value after "theschwartz:") and a plain connection for looking at the
// tables the way a Perl client would.
type schwartzDB struct {
	spec string
	db   *sql.DB
	pg   bool
}

// open opens a store on the database (options appended to the spec as a
// query), closed at cleanup.
func (d *schwartzDB) open(t *testing.T, options string) store.Store {
	t.Helper()
	spec := "theschwartz:" + d.spec
	if options != "" {
		sep := "?"
		if strings.Contains(d.spec, "?") {
			sep = "&"
		}
		spec += sep + options
	}
	s, err := store.Open(testContext(t), spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// q runs a query written with ? placeholders and returns its only int.
func (d *schwartzDB) int(t *testing.T, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.db.QueryRowContext(testContext(t), d.rebind(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// exec runs a statement written with ? placeholders.
func (d *schwartzDB) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := d.db.ExecContext(testContext(t), d.rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (d *schwartzDB) rebind(query string) string {
	if !d.pg {
		return query
	}
	n := 0
	var b strings.Builder
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// schwartzBackends are the databases the TheSchwartz store runs on.
var schwartzBackends = []struct {
	name string
	new  func(t *testing.T) *schwartzDB
}{
	{"sqlite", newSchwartzSQLite},
	{"postgres", newSchwartzPostgres},
}

func newSchwartzSQLite(t *testing.T) *schwartzDB {
	path := filepath.Join(t.TempDir(), "schwartz.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)") // the driver store registers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &schwartzDB{spec: "sqlite:" + path, db: db}
}

// newSchwartzPostgres gives the test its own schema (search_path), dropped
// at cleanup.
func newSchwartzPostgres(t *testing.T) *schwartzDB {
	dsn := pgtest.FreshSchema(t, "ts_")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // registered last: closed before the schema is dropped
	return &schwartzDB{spec: dsn, db: db, pg: true}
}

// forEachSchwartz runs fn as a subtest per backend.
func forEachSchwartz(t *testing.T, fn func(t *testing.T, d *schwartzDB)) {
	for _, b := range schwartzBackends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.new(t)) })
	}
}

// TestTheSchwartzConformance runs the store conformance cases whose
// promises TheSchwartz's tables can keep. Left out, and covered by the
// tests below instead: RoundTrip (headers are synthesised, not kept),
// LeaseExpiry, ReleaseOwner and RestartRedelivers (an expired or released
// grab is not a failure in TheSchwartz, so Deliveries does not grow; a new
// process cannot find an old one's grabs), ReleaseNotDelivered (LastError
// is the latest error row), Stats (leases are whole seconds), DeadLetter
// (a give-up deletes the job).
func TestTheSchwartzConformance(t *testing.T) {
	run := map[string]bool{
		"BadMessage": true, "LeaseExclusive": true, "RenewKeepsLease": true, "NotBefore": true,
		"ReleaseWithBackoff": true, "Priority": true, "UniqKeyCoalescing": true,
		"UniqKeyConcurrent": true, "GroupCommit": true, "Closed": true,
	}
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		for _, c := range conformance {
			if !run[c.name] {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				c.run(t, d.open(t, ""), func(t *testing.T) store.Store { return d.open(t, "") })
			})
		}
	})
}

// sendHeaders is a SEND header block as the broker stores it.
func sendHeaders(dest string, kv ...string) []byte {
	f := frame.New(frame.SEND, append([]string{frame.Destination, dest}, kv...)...)
	return stompwire.AppendFrame(nil, f, stompwire.V12)
}

// parseHeaders parses a header block Lease returned.
func parseHeaders(t *testing.T, b []byte) *frame.Header {
	t.Helper()
	f, _, err := stompwire.Parse(append(append([]byte(nil), b...), 0), stompwire.V12, stompwire.DefaultLimits())
	if err != nil {
		t.Fatalf("Lease returned headers the broker cannot parse: %v\n%q", err, b)
	}
	if f.Command != frame.SEND {
		t.Fatalf("header block command %q, want SEND", f.Command)
	}
	return f.Header
}

// TestTheSchwartzSchema: the tables are created as TheSchwartz's schema
// has them, a second open reuses them, and a table without TheSchwartz's
// columns is refused.
func TestTheSchwartzSchema(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		want := map[string]string{
			"funcmap":    "funcid, funcname",
			"job":        `jobid, funcid, arg, uniqkey, insert_time, run_after, grabbed_until, priority, "coalesce"`,
			"note":       "jobid, notekey, value",
			"error":      "error_time, jobid, message, funcid",
			"exitstatus": "jobid, funcid, status, completion_time, delete_after",
		}
		for table, cols := range want {
			rows, err := d.db.QueryContext(testContext(t), "SELECT "+cols+" FROM "+table+" WHERE 1 = 0")
			if err != nil {
				t.Fatalf("table %s with TheSchwartz's columns: %v", table, err)
			}
			rows.Close()
		}
		q := "/queue/Schema::Check"
		mustPut(t, s, &store.Message{Queue: q, Body: []byte("a")})
		s.Close()
		s2 := d.open(t, "")
		if st := statsFor(t, s2, q); st.Stored != 1 {
			t.Fatalf("after reopening: %+v, want the job still stored", st)
		}
		s2.Close()

		d.exec(t, "DROP TABLE exitstatus")
		d.exec(t, "CREATE TABLE exitstatus (jobid BIGINT)")
		_, err := store.Open(testContext(t), "theschwartz:"+d.spec)
		if err == nil || !strings.Contains(err.Error(), "exitstatus") {
			t.Fatalf("open with a foreign exitstatus table: %v, want an error naming it", err)
		}
	})
}

// TestTheSchwartzColumns: SEND headers land in TheSchwartz's columns and
// come back as MESSAGE headers; what the columns cannot hold is refused.
func TestTheSchwartzColumns(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		q := "/queue/Mail::Send"
		in := &store.Message{
			Queue:    q,
			Headers:  sendHeaders(q, stompwire.HeaderCoalesce, "example.com", stompwire.HeaderUniqKey, "u-1", "x-custom", "dropped"),
			Body:     []byte("to=a@example.com"),
			UniqKey:  "u-1",
			Priority: 7,
		}
		mustPut(t, s, in)
		row := d.db.QueryRowContext(testContext(t), d.rebind(`SELECT f.funcname, j.arg, j.uniqkey, j.priority, j."coalesce",
			j.grabbed_until, j.run_after, j.insert_time FROM job j JOIN funcmap f ON f.funcid = j.funcid WHERE j.jobid = ?`), in.ID)
		var funcname, uniq, coalesce string
		var arg []byte
		var prio, grabbed, runAfter, inserted int64
		if err := row.Scan(&funcname, &arg, &uniq, &prio, &coalesce, &grabbed, &runAfter, &inserted); err != nil {
			t.Fatal(err)
		}
		now := time.Now().Unix()
		if funcname != "Mail::Send" || string(arg) != "to=a@example.com" || uniq != "u-1" || prio != 7 ||
			coalesce != "example.com" || grabbed != 0 || runAfter > now || runAfter < now-5 || inserted != runAfter {
			t.Fatalf("job row: funcname %q arg %q uniqkey %q priority %d coalesce %q grabbed_until %d run_after %d insert_time %d",
				funcname, arg, uniq, prio, coalesce, grabbed, runAfter, inserted)
		}

		got := mustLease(t, s, q, "A", 10, long)
		if len(got) != 1 || got[0].ID != in.ID || string(got[0].Body) != "to=a@example.com" || got[0].Deliveries != 1 ||
			got[0].UniqKey != "u-1" || got[0].Priority != 7 {
			t.Fatalf("leased %+v", got)
		}
		h := parseHeaders(t, got[0].Headers)
		for name, want := range map[string]string{
			frame.Destination:                    q,
			stompwire.HeaderTheSchwartzJobID:     strconv.FormatInt(in.ID, 10),
			stompwire.HeaderTheSchwartzFuncname:  "Mail::Send",
			stompwire.HeaderTheSchwartzArg:       store.ArgBytes,
			stompwire.HeaderUniqKey:              "u-1",
			stompwire.HeaderPriority:             "7",
			stompwire.HeaderCoalesce:             "example.com",
			stompwire.HeaderRunAfter:             strconv.FormatInt(runAfter, 10),
			stompwire.HeaderInsertTime:           strconv.FormatInt(inserted, 10),
			stompwire.HeaderTheSchwartzLastError: "",
			"x-custom":                           "",
		} {
			if v := h.Get(name); v != want {
				t.Errorf("header %s = %q, want %q", name, v, want)
			}
		}
		if g := d.int(t, "SELECT grabbed_until FROM job WHERE jobid = ?", in.ID); g <= now {
			t.Errorf("grabbed_until %d after Lease, want in the future (now %d)", g, now)
		}

		// run_after header wins over NotBefore; priority 0 leaves the column NULL.
		later := &store.Message{Queue: q, Headers: sendHeaders(q, stompwire.HeaderRunAfter, "2000000000"), NotBefore: time.Now().Add(time.Hour)}
		plain := &store.Message{Queue: q, NotBefore: time.Now().Add(90 * time.Second)}
		mustPut(t, s, later, plain)
		if ra := d.int(t, "SELECT run_after FROM job WHERE jobid = ?", later.ID); ra != 2000000000 {
			t.Errorf("run_after %d, want the header's 2000000000", ra)
		}
		if ra := d.int(t, "SELECT run_after FROM job WHERE jobid = ?", plain.ID); ra < now+89 || ra > now+92 {
			t.Errorf("run_after %d for a 90s NotBefore, want about %d", ra, now+90)
		}
		if n := d.int(t, "SELECT count(*) FROM job WHERE jobid = ? AND priority IS NULL AND uniqkey IS NULL AND \"coalesce\" IS NULL", plain.ID); n != 1 {
			t.Errorf("unset priority, uniqkey, coalesce not stored as NULL")
		}

		for name, m := range map[string]*store.Message{
			"topic":              {Queue: "/topic/x"},
			"empty funcname":     {Queue: "/queue/"},
			"priority too big":   {Queue: q, Priority: 1 << 15},
			"bad run_after":      {Queue: q, Headers: sendHeaders(q, stompwire.HeaderRunAfter, "tomorrow")},
			"long uniqkey":       {Queue: q, UniqKey: strings.Repeat("k", 256)},
			"long coalesce":      {Queue: q, Headers: sendHeaders(q, stompwire.HeaderCoalesce, strings.Repeat("c", 256))},
			"long funcname":      {Queue: "/queue/" + strings.Repeat("f", 256)},
			"negative run_after": {Queue: q, Headers: sendHeaders(q, stompwire.HeaderRunAfter, "-5")},
		} {
			if _, err := s.Put(testContext(t), []*store.Message{m}); !errors.Is(err, store.ErrBadMessage) {
				t.Errorf("%s: Put error %v, want ErrBadMessage", name, err)
			}
		}
	})
}

// TestTheSchwartzArgKind: the theschwartz-arg header tells Storable images
// (what a Perl client's insert of a reference stores) from plain bytes,
// by the test TheSchwartz itself makes before thawing.
func TestTheSchwartzArgKind(t *testing.T) {
	cases := []struct {
		name string
		arg  string
		want string
	}{
		// Storable 3.26 output, from perl -MStorable -e 'print nfreeze(...)'.
		{"nfreeze hash", "\x05\x0b\x03\x00\x00\x00\x01\x08\x81\x00\x00\x00\x01a", store.ArgStorable},
		{"nfreeze array", "\x05\x0b\x02\x00\x00\x00\x01\x08\x81", store.ArgStorable},
		{"freeze (native order)", "\x04\x0b\x0812345678\x04\x08\x08\x08\x03\x01\x00\x00\x00\x08\x81\x01\x00\x00\x00a", store.ArgStorable},
		{"native order, cut short", "\x04\x0b\x0812345", store.ArgBytes},
		{"native order, odd byte order length", "\x04\x0b\x0512345\x04\x08\x08\x08", store.ArgBytes},
		{"major 5 (read_magic refuses)", "\x0b\x0b\x03", store.ArgBytes},
		{"major 1", "\x03\x07\x03", store.ArgBytes},
		{"text", "hello", store.ArgBytes},
		{"JSON", `{"to":"a@example.com"}`, store.ArgBytes},
		{"one byte", "\x05", store.ArgBytes},
		{"empty", "", store.ArgBytes},
	}
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		q := "/queue/Args"
		want := map[int64]string{}
		for _, c := range cases {
			m := &store.Message{Queue: q, Body: []byte(c.arg)}
			mustPut(t, s, m)
			want[m.ID] = c.name
		}
		got := mustLease(t, s, q, "A", len(cases)+1, long)
		if len(got) != len(cases) {
			t.Fatalf("leased %d jobs, want %d", len(got), len(cases))
		}
		for i, m := range got {
			c := cases[i] // Lease returns jobid order, which is Put order
			if want[m.ID] != c.name || string(m.Body) != c.arg {
				t.Fatalf("job %d: body %q, want case %q", m.ID, m.Body, c.name)
			}
			if kind := parseHeaders(t, m.Headers).Get(stompwire.HeaderTheSchwartzArg); kind != c.want {
				t.Errorf("%s: %s = %q, want %q", c.name, stompwire.HeaderTheSchwartzArg, kind, c.want)
			}
		}
	})
}

// TestTheSchwartzFailures: a failed delivery is an error row (TheSchwartz's
// failure log) and the failure count is what Deliveries reports; a
// not-delivered release is no failure; a give-up records error and exit
// status and deletes the job.
func TestTheSchwartzFailures(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "keep_exit_status_for=3600")
		ctx := testContext(t)
		q := "/queue/Flaky"
		in := &store.Message{Queue: q, Body: []byte("job")}
		mustPut(t, s, in)
		funcid := d.int(t, "SELECT funcid FROM funcmap WHERE funcname = 'Flaky'")
		errorRows := func() int64 { return d.int(t, "SELECT count(*) FROM error WHERE jobid = ?", in.ID) }

		steps := []struct {
			notDelivered   bool
			reason         string
			wantErrorRows  int64
			wantDeliveries int
			wantLastError  string
		}{
			{false, "boom\nat worker line 3", 1, 2, "boom\nat worker line 3"},
			{true, "", 1, 2, "boom\nat worker line 3"},
			{false, "again", 2, 3, "again"},
		}
		mustLease(t, s, q, "A", 1, long)
		for i, st := range steps {
			if err := s.Release(ctx, []int64{in.ID}, st.notDelivered, time.Time{}, st.reason); err != nil {
				t.Fatalf("step %d: Release: %v", i, err)
			}
			if n := errorRows(); n != st.wantErrorRows {
				t.Fatalf("step %d: %d error rows, want %d", i, n, st.wantErrorRows)
			}
			if g := d.int(t, "SELECT grabbed_until FROM job WHERE jobid = ?", in.ID); g != 0 {
				t.Fatalf("step %d: grabbed_until %d after Release, want 0 (as failed() leaves it)", i, g)
			}
			got := mustLease(t, s, q, "A", 1, long)
			if len(got) != 1 || got[0].Deliveries != st.wantDeliveries || got[0].LastError != st.wantLastError {
				t.Fatalf("step %d: leased %+v, want Deliveries %d LastError %q", i, got, st.wantDeliveries, st.wantLastError)
			}
			if h := parseHeaders(t, got[0].Headers).Get(stompwire.HeaderTheSchwartzLastError); h != st.wantLastError {
				t.Fatalf("step %d: last-error header %q, want %q", i, h, st.wantLastError)
			}
		}
		if n := d.int(t, "SELECT count(*) FROM error WHERE jobid = ? AND funcid = ? AND message = 'again' AND error_time >= ?",
			in.ID, funcid, time.Now().Unix()-5); n != 1 {
			t.Fatalf("error row of the last failure not as TheSchwartz writes it")
		}
		// An error row older than TheSchwartz's 7 days goes at the next failure.
		d.exec(t, "INSERT INTO error (error_time, jobid, message, funcid) VALUES (?, ?, 'ancient', ?)",
			time.Now().Unix()-8*24*3600, in.ID, funcid)

		if err := s.DeadLetter(ctx, in.ID, "/queue/DLQ.Flaky"); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		if n := d.int(t, "SELECT count(*) FROM job WHERE jobid = ?", in.ID); n != 0 {
			t.Fatal("given-up job still stored")
		}
		if n := d.int(t, "SELECT count(*) FROM error WHERE jobid = ? AND message = 'ancient'", in.ID); n != 0 {
			t.Fatal("error row older than 7 days not cleaned at the failure")
		}
		if n := errorRows(); n != 3 {
			t.Fatalf("%d error rows after the give-up, want 3", n)
		}
		if st := d.int(t, "SELECT status FROM exitstatus WHERE jobid = ? AND funcid = ? AND delete_after = completion_time + 3600", in.ID, funcid); st != 1 {
			t.Fatalf("exit status %d after the give-up, want 1", st)
		}
		if got := mustLease(t, s, "/queue/DLQ.Flaky", "A", 1, long); len(got) != 0 {
			t.Fatal("a given-up job showed up in the dead-letter queue")
		}
		if err := s.DeadLetter(ctx, in.ID, "/queue/DLQ.Flaky"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second DeadLetter: %v, want ErrNotFound", err)
		}

		done := &store.Message{Queue: q, Body: []byte("fine")}
		mustPut(t, s, done)
		mustLease(t, s, q, "A", 1, long)
		if err := s.Ack(ctx, []int64{done.ID}); err != nil {
			t.Fatal(err)
		}
		if st := d.int(t, "SELECT status FROM exitstatus WHERE jobid = ?", done.ID); st != 0 {
			t.Fatalf("exit status %d after ACK, want 0", st)
		}
		if n := d.int(t, "SELECT count(*) FROM job"); n != 0 {
			t.Fatalf("%d jobs left, want 0", n)
		}
	})
}

// TestTheSchwartzNoExitStatusByDefault: like keep_exit_status_for's
// default 0, nothing is recorded unless configured.
func TestTheSchwartzNoExitStatusByDefault(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		q := "/queue/Quiet"
		a, b := &store.Message{Queue: q}, &store.Message{Queue: q}
		mustPut(t, s, a, b)
		mustLease(t, s, q, "A", 2, long)
		if err := s.Ack(testContext(t), []int64{a.ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeadLetter(testContext(t), b.ID, "/queue/DLQ.Quiet"); err != nil {
			t.Fatal(err)
		}
		if n := d.int(t, "SELECT count(*) FROM exitstatus"); n != 0 {
			t.Fatalf("%d exitstatus rows, want none", n)
		}
	})
}

// TestTheSchwartzFencing: once a grab ran out and someone else grabbed the
// job (here a Perl-style grab written straight into the table), the first
// holder's Release and DeadLetter leave the job alone and its Renew
// reports the loss. Each runs on a job of its own, since each forgets the
// grab it found stale.
func TestTheSchwartzFencing(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		q := "/queue/Fenced"
		released, givenUp, renewed := &store.Message{Queue: q}, &store.Message{Queue: q}, &store.Message{Queue: q}
		mustPut(t, s, released, givenUp, renewed)
		mustLease(t, s, q, "A", 3, 100*time.Millisecond) // whole seconds: runs out within 1.1s
		perlUntil := map[int64]int64{}
		poll.Eventually(t, 5*time.Second, "grabs run out and a Perl worker takes the jobs", func() bool {
			// TheSchwartz's _grab_a_job: optimistic update on the value read.
			for _, m := range []*store.Message{released, givenUp, renewed} {
				if perlUntil[m.ID] != 0 {
					continue
				}
				now := time.Now().Unix()
				old := d.int(t, "SELECT grabbed_until FROM job WHERE jobid = ?", m.ID)
				if old > now {
					return false
				}
				d.exec(t, "UPDATE job SET grabbed_until = ? WHERE jobid = ? AND grabbed_until = ? AND grabbed_until <= ?",
					now+3600, m.ID, old, now)
				if d.int(t, "SELECT grabbed_until FROM job WHERE jobid = ?", m.ID) == now+3600 {
					perlUntil[m.ID] = now + 3600
				}
			}
			return len(perlUntil) == 3
		})
		if err := s.Release(testContext(t), []int64{released.ID}, false, time.Time{}, "late NACK"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeadLetter(testContext(t), givenUp.ID, "/queue/DLQ.Fenced"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("stale DeadLetter: %v, want ErrNotFound", err)
		}
		err := s.Renew(testContext(t), "A", []int64{renewed.ID}, long)
		var lost *store.LeaseLostError
		if !errors.As(err, &lost) || !slices.Equal(lost.IDs, []int64{renewed.ID}) {
			t.Fatalf("Renew after the Perl grab: %v, want the lease lost", err)
		}
		for id, until := range perlUntil {
			if g := d.int(t, "SELECT grabbed_until FROM job WHERE jobid = ?", id); g != until {
				t.Errorf("job %d: grabbed_until %d after stale calls, want the Perl worker's %d", id, g, until)
			}
		}
		if n := d.int(t, "SELECT count(*) FROM error"); n != 0 {
			t.Fatalf("stale calls wrote %d error rows", n)
		}
		if got := mustLease(t, s, q, "B", 3, long); len(got) != 0 {
			t.Fatal("jobs leased while the Perl worker holds them")
		}
	})
}

// TestTheSchwartzReleaseOwner: the grabs this process holds for an owner
// are undone (no failure counted); others' stay.
func TestTheSchwartzReleaseOwner(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		q := "/queue/Owners"
		in := make([]*store.Message, 4)
		for i := range in {
			in[i] = &store.Message{Queue: q, Body: []byte(fmt.Sprint(i))}
		}
		mustPut(t, s, in...)
		a := mustLease(t, s, q, "broker-A", 2, long)
		b := mustLease(t, s, q, "broker-B", 2, long)
		if err := s.ReleaseOwner(testContext(t), "broker-A"); err != nil {
			t.Fatal(err)
		}
		got := mustLease(t, s, q, "broker-C", 10, long)
		wantIDs(t, "after ReleaseOwner(A)", ids(got), ids(a))
		for _, m := range got {
			if m.Deliveries != 1 {
				t.Errorf("job %d: Deliveries %d, want 1 (a released grab is no failure)", m.ID, m.Deliveries)
			}
		}
		if err := s.Renew(testContext(t), "broker-B", ids(b), long); err != nil {
			t.Fatalf("B's grabs were touched: %v", err)
		}
	})
}

// TestTheSchwartzStats counts jobs per function, Perl workers' grabs
// included.
func TestTheSchwartzStats(t *testing.T) {
	forEachSchwartz(t, func(t *testing.T, d *schwartzDB) {
		s := d.open(t, "")
		mustPut(t, s, &store.Message{Queue: "/queue/B"}, &store.Message{Queue: "/queue/A"}, &store.Message{Queue: "/queue/B"})
		mustLease(t, s, "/queue/B", "x", 1, long)
		d.exec(t, "UPDATE job SET grabbed_until = ? WHERE funcid = (SELECT funcid FROM funcmap WHERE funcname = 'A')", time.Now().Unix()+60)
		got, err := s.Stats(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		want := []store.QueueStats{{Queue: "/queue/A", Stored: 1, Leased: 1}, {Queue: "/queue/B", Stored: 2, Leased: 1}}
		if !slices.Equal(got, want) {
			t.Fatalf("Stats %+v, want %+v", got, want)
		}
	})
}
