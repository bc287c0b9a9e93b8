package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The TheSchwartz tests run the broker with --store theschwartz:... and
// drive the same database from Perl with Debian's libtheschwartz-perl
// (TheSchwartz 1.12) through testdata/theschwartz/ts.pl, on SQLite and on
// PostgreSQL.

// schwartzSite is one TheSchwartz database: the broker's --store value and
// what the Perl side needs to reach the same tables.
type schwartzSite struct {
	store string   // --store value
	env   []string // TS_DSN, TS_USER, PGOPTIONS for ts.pl
}

// schwartzSites lists the databases the tests run on.
func schwartzSites() map[string]func(t *testing.T) *schwartzSite {
	return map[string]func(t *testing.T) *schwartzSite{
		"sqlite": func(t *testing.T) *schwartzSite {
			requirePerlModules(t, "TheSchwartz", "DBD::SQLite")
			path := filepath.Join(t.TempDir(), "theschwartz.db")
			return &schwartzSite{
				store: "theschwartz:sqlite:" + path + "?keep_exit_status_for=3600",
				env:   []string{"TS_DSN=dbi:SQLite:dbname=" + path, "TS_USER="},
			}
		},
		"postgres": func(t *testing.T) *schwartzSite {
			requirePerlModules(t, "TheSchwartz", "DBD::Pg")
			dsn := postgresDSN(t) // a fresh schema, named in search_path
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			dbi := "dbi:Pg:dbname=" + strings.TrimPrefix(u.Path, "/")
			if h := q.Get("host"); h != "" {
				dbi += ";host=" + h
			} else if u.Hostname() != "" {
				dbi += ";host=" + u.Hostname()
			}
			if p := u.Port(); p != "" {
				dbi += ";port=" + p
			}
			q.Set("keep_exit_status_for", "3600")
			u.RawQuery = q.Encode()
			return &schwartzSite{
				store: "theschwartz:" + u.String(),
				env: []string{"TS_DSN=" + dbi, "TS_USER=" + u.User.Username(),
					"PGOPTIONS=-c search_path=" + q.Get("search_path")},
			}
		},
	}
}

// requirePerlModules skips (fails under STOMP_BROKER_REQUIRE_ALL=1) unless
// perl can load every module.
func requirePerlModules(t *testing.T, modules ...string) {
	t.Helper()
	if _, err := exec.LookPath("perl"); err != nil {
		brokertest.Missing(t, "perl is not installed (scripts/install-test-deps)")
	}
	args := []string{"-e1"}
	for _, m := range modules {
		args = append(args, "-M"+m)
	}
	if out, err := exec.Command("perl", args...).CombinedOutput(); err != nil {
		brokertest.Missing(t, fmt.Sprintf("perl modules %v missing (scripts/install-test-deps installs libtheschwartz-perl, libdbd-sqlite3-perl, libdbd-pg-perl): %s",
			modules, firstLine(out)))
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// perlCmd is ts.pl with args, bound to the test's lifetime.
func (s *schwartzSite) perlCmd(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "perl", append([]string{filepath.Join("testdata", "theschwartz", "ts.pl")}, args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// perl runs ts.pl and returns its output lines decoded as JSON objects.
func (s *schwartzSite) perl(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	cmd, stdout, stderr := s.perlCmd(t, args...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("ts.pl %v: %v\n%s", args, err, stderr)
	}
	return decodeLines(t, stdout.Bytes())
}

func decodeLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("ts.pl printed %q: %v", line, err)
		}
		objs = append(objs, o)
	}
	return objs
}

// jobID reads a jobid field (JSON numbers decode as float64).
func jobID(o map[string]any) int64 {
	f, _ := o["jobid"].(float64)
	return int64(f)
}

// count returns how many job rows of funcname TheSchwartz sees.
func (s *schwartzSite) count(t *testing.T, funcname string) int {
	t.Helper()
	return int(s.perl(t, "count", funcname)[0]["count"].(float64))
}

// waitGone waits until TheSchwartz sees no job of funcname (the broker
// deletes acked jobs asynchronously).
func (s *schwartzSite) waitGone(t *testing.T, funcname string) {
	t.Helper()
	if !poll.Within(10*time.Second, func() bool { return s.count(t, funcname) == 0 }) {
		t.Fatalf("TheSchwartz still has jobs of %s", funcname)
	}
}

// status is ts.pl status: what a TheSchwartz::JobHandle says about a job.
type jobStatus struct {
	Pending    int      `json:"pending"`
	Failures   int      `json:"failures"`
	FailureLog []string `json:"failure_log"`
	ExitStatus *int     `json:"exit_status"`
}

func (s *schwartzSite) status(t *testing.T, jobid int64) jobStatus {
	t.Helper()
	cmd, stdout, stderr := s.perlCmd(t, "status", strconv.FormatInt(jobid, 10))
	if err := cmd.Run(); err != nil {
		t.Fatalf("ts.pl status: %v\n%s", err, stderr)
	}
	var st jobStatus
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatalf("ts.pl status printed %q: %v", stdout, err)
	}
	return st
}

func forEachSchwartzSite(t *testing.T, fn func(t *testing.T, site *schwartzSite)) {
	for name, newSite := range schwartzSites() {
		t.Run(name, func(t *testing.T) { fn(t, newSite(t)) })
	}
}

// TestTheSchwartzPerlInsertsSTOMPConsumes: jobs a Perl client inserts
// reach a STOMP consumer with their columns as headers (a Storable arg
// marked as such); the consumer's ACKs complete them, which TheSchwartz
// sees as jobs gone with exit status 0.
func TestTheSchwartzPerlInsertsSTOMPConsumes(t *testing.T) {
	forEachSchwartzSite(t, func(t *testing.T, site *schwartzSite) {
		b := brokertest.Start(t, "--store", site.store)
		const fn = "StompTest::Resize"
		plain := jobID(site.perl(t, "insert", fn, "photo-1.jpg")[0])
		frozen := jobID(site.perl(t, "insert", fn, "photo-2.jpg", "storable=1")[0])
		keyed := jobID(site.perl(t, "insert", fn, "photo-3.jpg", "uniqkey=photo-3", "priority=5", "coalesce=photos")[0])
		if dup := site.perl(t, "insert", fn, "again", "uniqkey=photo-3")[0]["jobid"]; dup != nil {
			t.Fatalf("TheSchwartz took a duplicate uniqkey: jobid %v", dup)
		}

		r := b.Raw(t)
		r.Connect()
		rawSubscribe(t, r, "1", "/queue/"+fn, "client-individual")
		got := map[int64]*frame.Frame{}
		for len(got) < 3 {
			m := r.Expect(frame.MESSAGE)
			id, err := strconv.ParseInt(m.Header.Get(stompwire.HeaderTheSchwartzJobID), 10, 64)
			if err != nil || got[id] != nil {
				t.Fatalf("MESSAGE with theschwartz-jobid %q: %v", m.Header.Get(stompwire.HeaderTheSchwartzJobID), err)
			}
			got[id] = m
		}
		check := func(id int64, what string, cond bool) {
			t.Helper()
			if !cond {
				m := got[id]
				t.Errorf("job %d: %s; body %q headers %v", id, what, m.Body, m.Header)
			}
		}
		check(plain, "plain arg", string(got[plain].Body) == "photo-1.jpg" && got[plain].Header.Get(stompwire.HeaderTheSchwartzArg) == "bytes")
		check(frozen, "Storable arg", got[frozen].Header.Get(stompwire.HeaderTheSchwartzArg) == "storable" &&
			bytes.HasPrefix(got[frozen].Body, []byte{0x05}) && bytes.Contains(got[frozen].Body, []byte("photo-2.jpg")))
		check(keyed, "columns as headers", string(got[keyed].Body) == "photo-3.jpg" &&
			got[keyed].Header.Get(stompwire.HeaderUniqKey) == "photo-3" && got[keyed].Header.Get(stompwire.HeaderPriority) == "5" &&
			got[keyed].Header.Get(stompwire.HeaderCoalesce) == "photos")
		for id, m := range got {
			check(id, "funcname header, first delivery", m.Header.Get(stompwire.HeaderTheSchwartzFuncname) == fn &&
				m.Header.Get(stompwire.HeaderRedelivered) == "" && m.Header.Get(stompwire.HeaderDeliveryCount) == "1")
		}
		for _, m := range got {
			rawAck(r, "ACK", m)
		}
		site.waitGone(t, fn)
		for _, id := range []int64{plain, frozen, keyed} {
			st := site.status(t, id)
			if st.Pending != 0 || st.ExitStatus == nil || *st.ExitStatus != 0 || st.Failures != 0 {
				t.Errorf("job %d after ACK: %+v, want completed (not pending, exit status 0)", id, st)
			}
		}
		// The uniqkey is free again once the job is gone, as in TheSchwartz.
		if again := site.perl(t, "insert", fn, "photo-3 again", "uniqkey=photo-3")[0]["jobid"]; again == nil {
			t.Fatal("uniqkey still taken after the job completed")
		}
	})
}

// TestTheSchwartzSTOMPProducerPerlWorker: jobs SENT over STOMP are worked
// by a TheSchwartz::Worker, which sees the body as its arg and the headers
// in their columns; uniqkey coalesces like TheSchwartz's, and run_after
// holds a job back.
func TestTheSchwartzSTOMPProducerPerlWorker(t *testing.T) {
	forEachSchwartzSite(t, func(t *testing.T, site *schwartzSite) {
		b := brokertest.Start(t, "--store", site.store)
		const fn = "StompTest::Echo"
		dest := "/queue/" + fn
		r := b.Raw(t)
		r.Connect()
		rawSend(t, r, dest, "hello perl", stompwire.HeaderPersistent, "true")
		if f := rawSend(t, r, dest, "keyed", stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "k-1", stompwire.HeaderPriority, "3", stompwire.HeaderCoalesce, "example.com"); f.Header.Get(stompwire.HeaderCoalesced) != "" {
			t.Fatal("first SEND with a uniqkey reported coalesced")
		}
		if f := rawSend(t, r, dest, "keyed twice", stompwire.HeaderPersistent, "true", stompwire.HeaderUniqKey, "k-1"); f.Header.Get(stompwire.HeaderCoalesced) != "true" {
			t.Fatal("SEND with a pending uniqkey not reported coalesced")
		}
		runAfter := time.Now().Unix() + 2
		rawSend(t, r, dest, "later", stompwire.HeaderPersistent, "true", stompwire.HeaderRunAfter, strconv.FormatInt(runAfter, 10))
		binary := "line one\nline\x00two\xff"
		rawSend(t, r, dest, binary, stompwire.HeaderPersistent, "true")

		jobs := site.perl(t, "work", fn, "timeout=30")
		byArg := map[string]map[string]any{}
		for _, j := range jobs {
			byArg[j["arg"].(string)] = j
		}
		if len(jobs) != 4 || len(byArg) != 4 {
			t.Fatalf("Perl worker did %d jobs: %v", len(jobs), jobs)
		}
		if j := byArg["keyed"]; j["uniqkey"] != "k-1" || j["priority"] != 3.0 || j["coalesce"] != "example.com" {
			t.Errorf("keyed job as Perl sees it: %v", j)
		}
		if j := byArg["hello perl"]; j["arg_ref"] != "" || j["uniqkey"] != nil || j["priority"] != nil || j["coalesce"] != nil {
			t.Errorf("plain job as Perl sees it: %v", j)
		}
		// JSON cannot carry the bytes, so ts.pl reports them in hex too.
		sawBinary := false
		for _, j := range jobs {
			sawBinary = sawBinary || j["arg_hex"] == hex.EncodeToString([]byte(binary))
		}
		if !sawBinary {
			t.Errorf("binary body did not reach Perl unchanged: %v", jobs)
		}
		if j := byArg["later"]; j["run_after"] != float64(runAfter) || j["time"].(float64) < float64(runAfter) {
			t.Errorf("run_after job: %v, want run_after %d and not worked before it", j, runAfter)
		}
		if n := site.count(t, fn); n != 0 {
			t.Fatalf("%d jobs left after the Perl worker", n)
		}
	})
}

// TestTheSchwartzNackIsFailure: a STOMP NACK is a TheSchwartz failure (an
// error row); the job is retried after the redelivery delay, flagged, and
// given up once max-redeliveries is used up (exit status 1), as
// max_retries would. A failure a Perl worker records counts the same way
// for the STOMP consumer that retries the job.
func TestTheSchwartzNackIsFailure(t *testing.T) {
	forEachSchwartzSite(t, func(t *testing.T, site *schwartzSite) {
		b := brokertest.Start(t, "--store", site.store, "--max-redeliveries", "1", "--redelivery-delay", "1s")
		const fn = "StompTest::Flaky"
		id := jobID(site.perl(t, "insert", fn, "flaky job")[0])
		r := b.Raw(t)
		r.Connect()
		rawSubscribe(t, r, "1", "/queue/"+fn, "client-individual")
		m := r.Expect(frame.MESSAGE)
		if m.Header.Get(stompwire.HeaderDeliveryCount) != "1" {
			t.Fatalf("first delivery: %v", m.Header)
		}
		nacked := time.Now()
		rawAck(r, "NACK", m)
		if !poll.Within(10*time.Second, func() bool { return site.status(t, id).Failures == 1 }) {
			t.Fatalf("NACK not in TheSchwartz's error table: %+v", site.status(t, id))
		}
		if st := site.status(t, id); st.Pending != 1 || st.ExitStatus != nil {
			t.Fatalf("after one failure (max-redeliveries 1): %+v, want pending for a retry", st)
		}
		m = r.Expect(frame.MESSAGE)
		if waited := time.Since(nacked); waited < time.Second {
			t.Errorf("retried after %v, before the 1s redelivery delay", waited)
		}
		if m.Header.Get(stompwire.HeaderRedelivered) != "true" || m.Header.Get(stompwire.HeaderDeliveryCount) != "2" ||
			m.Header.Get(stompwire.HeaderTheSchwartzLastError) == "" || string(m.Body) != "flaky job" {
			t.Fatalf("retry: body %q headers %v", m.Body, m.Header)
		}
		rawAck(r, "NACK", m)
		poll.Eventually(t, 10*time.Second, "job given up after max-redeliveries", func() bool {
			return site.status(t, id).Pending == 0
		})
		if st := site.status(t, id); st.Failures != 2 || st.ExitStatus == nil || *st.ExitStatus != 1 {
			t.Fatalf("given up: %+v, want 2 failures and exit status 1", st)
		}
		noMessage(t, r, 500*time.Millisecond)

		// A Perl worker's failure, retried by STOMP (on a function nobody
		// consumes over STOMP yet, so the Perl worker gets the job first).
		const fn2 = "StompTest::PerlFails"
		id = jobID(site.perl(t, "insert", fn2, "perl fails first")[0])
		if did := site.perl(t, "work", fn2, "fail=1", "max_retries=3", "max_jobs=1"); len(did) != 1 || jobID(did[0]) != id {
			t.Fatalf("Perl worker did %v, want job %d", did, id)
		}
		rawSubscribe(t, r, "2", "/queue/"+fn2, "client-individual")
		m = r.Expect(frame.MESSAGE)
		if m.Header.Get(stompwire.HeaderTheSchwartzJobID) != strconv.FormatInt(id, 10) || m.Header.Get(stompwire.HeaderDeliveryCount) != "2" ||
			m.Header.Get(stompwire.HeaderRedelivered) != "true" || m.Header.Get(stompwire.HeaderTheSchwartzLastError) != "perl says no" {
			t.Fatalf("job the Perl worker failed: %v", m.Header)
		}
		rawAck(r, "ACK", m)
		site.waitGone(t, fn2)
		if st := site.status(t, id); st.Failures != 1 || st.ExitStatus == nil || *st.ExitStatus != 0 {
			t.Fatalf("completed after a Perl failure: %+v", st)
		}
	})
}

// TestTheSchwartzCompetingWorkers: two Perl workers and a STOMP consumer
// work one function at once; every job is worked exactly once, and both
// sides get some.
func TestTheSchwartzCompetingWorkers(t *testing.T) {
	forEachSchwartzSite(t, func(t *testing.T, site *schwartzSite) {
		b := brokertest.Start(t, "--store", site.store)
		const fn, n = "StompTest::Shared", 150
		inserted := site.perl(t, "insert-many", fn, strconv.Itoa(n), "job")
		if len(inserted) != n {
			t.Fatalf("inserted %d jobs, want %d", len(inserted), n)
		}

		r := b.Raw(t)
		r.Connect()
		rawSubscribe(t, r, "1", "/queue/"+fn, "client-individual", stompwire.HeaderPrefetchCount, "2")

		type worker struct {
			cmd    *exec.Cmd
			stdout *bytes.Buffer
			stderr *bytes.Buffer
		}
		var workers []worker
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			cmd, stdout, stderr := site.perlCmd(t, "work", fn, "sleep=0.01", "timeout=60")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			workers = append(workers, worker{cmd, stdout, stderr})
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = cmd.Wait() }()
		}
		perlDone := make(chan struct{})
		go func() { wg.Wait(); close(perlDone) }()

		var stompJobs []int64
		deadline := time.Now().Add(90 * time.Second)
		for {
			if time.Now().After(deadline) {
				t.Fatalf("jobs not all worked within 90s (STOMP consumer did %d)", len(stompJobs))
			}
			f, err := r.Read(500 * time.Millisecond)
			if err != nil {
				select {
				case <-perlDone:
				default:
					continue
				}
				if site.count(t, fn) == 0 {
					break
				}
				continue
			}
			if f.Command != frame.MESSAGE {
				t.Fatalf("got %s: %v", f.Command, f.Header)
			}
			id, _ := strconv.ParseInt(f.Header.Get(stompwire.HeaderTheSchwartzJobID), 10, 64)
			stompJobs = append(stompJobs, id)
			time.Sleep(10 * time.Millisecond)
			rawAck(r, "ACK", f)
		}
		for i, w := range workers {
			if errs[i] != nil {
				t.Fatalf("Perl worker %d: %v\n%s", i, errs[i], w.stderr)
			}
		}

		worked := map[int64]string{}
		record := func(who string, id int64) {
			if prev, dup := worked[id]; dup {
				t.Errorf("job %d worked twice: by %s and by %s", id, prev, who)
			}
			worked[id] = who
		}
		for _, id := range stompJobs {
			record("STOMP", id)
		}
		perlCount := 0
		for i, w := range workers {
			for _, j := range decodeLines(t, w.stdout.Bytes()) {
				record(fmt.Sprintf("Perl worker %d", i), jobID(j))
				perlCount++
			}
		}
		t.Logf("STOMP consumer worked %d jobs, Perl workers %d", len(stompJobs), perlCount)
		for _, j := range inserted {
			if _, ok := worked[jobID(j)]; !ok {
				t.Errorf("job %d (%v) never worked", jobID(j), j["arg"])
			}
		}
		if len(worked) != n {
			t.Fatalf("%d distinct jobs worked, want %d", len(worked), n)
		}
		if len(stompJobs) == 0 || perlCount == 0 {
			t.Fatalf("no competition: STOMP %d, Perl %d", len(stompJobs), perlCount)
		}
	})
}
