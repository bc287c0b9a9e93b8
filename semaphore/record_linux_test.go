//go:build linux && (amd64 || arm64)

package semaphore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// orphanSet creates a set the way a dead broker left it: private, mode 0600, not
// held by this process. The set is removed at the end of the test if still there.
func orphanSet(t testing.TB, nsems int) int {
	t.Helper()
	id, err := semget(unix.IPC_PRIVATE, nsems, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rmid(id) })
	return id
}

// recordFor builds the record WriteRecord would write for set id if pid were the
// parent; tests then falsify one field at a time.
func recordFor(t testing.TB, id, pid int) record {
	t.Helper()
	st, err := stat(id)
	if err != nil {
		t.Fatal(err)
	}
	start, err := procStartTime(pid)
	if err != nil {
		start = 1 // a dead pid has no start time; Sweep will not get that far
	}
	boot, err := bootID()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink("/proc/self/exe")
	ns, _ := os.Readlink("/proc/self/ns/ipc")
	return record{SemID: id, NSems: st.nsems, CUID: st.perm.Cuid, PID: pid, StartTime: start,
		BootID: boot, Exe: trimDeleted(exe), IPCNamespace: ns}
}

// deadPID returns the pid of a helper that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	h := startHelper(t, "exit")
	h.exit()
	return h.pid()
}

// zombiePID returns the pid of a helper that has exited but is not reaped yet
// (it is reaped when the test ends).
func zombiePID(t *testing.T) int {
	t.Helper()
	h := startHelper(t, "exit")
	poll.Eventually(t, helperTimeout, fmt.Sprintf("helper %d becomes a zombie", h.pid()), func() bool {
		ps, err := readProcStat(h.pid())
		return err == nil && ps.state == 'Z'
	})
	return h.pid()
}

func TestSweepCases(t *testing.T) {
	notBroker := func(t *testing.T, pid int) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("stomp-broker")) {
			t.Skipf("the test binary's command line contains stomp-broker (%q)", cmdline)
		}
	}
	tests := []struct {
		name        string
		pid         func(t *testing.T) int
		held        bool // the set was made by Create in this process
		goneBefore  bool // the set is removed before Sweep runs
		edit        func(t *testing.T, r *record)
		wantRemoved bool
		wantRecord  bool // record file still there afterwards
		wantReason  string
	}{
		{name: "parent dead", pid: deadPID,
			wantRemoved: true, wantReason: "is not running; removed set"},
		{name: "parent is a zombie", pid: zombiePID,
			wantRemoved: true, wantReason: "zombie"},
		{name: "parent alive", pid: func(*testing.T) int { return os.Getpid() },
			wantRecord: true, wantReason: "is alive; nothing swept"},
		{name: "pid alive but not a broker", pid: func(*testing.T) int { return os.Getpid() },
			edit:        func(t *testing.T, r *record) { notBroker(t, r.PID); r.Exe = "/nonexistent/other" },
			wantRemoved: true, wantReason: "is not a stomp-broker"},
		{name: "pid reused", pid: func(*testing.T) int { return os.Getpid() },
			edit:        func(_ *testing.T, r *record) { r.StartTime++ },
			wantRemoved: true, wantReason: "started later"},
		{name: "earlier boot", pid: deadPID,
			edit:       func(_ *testing.T, r *record) { r.BootID = "00000000-0000-0000-0000-000000000000" },
			wantReason: "did not survive the reboot; not touched"},
		{name: "other IPC namespace", pid: deadPID,
			edit:       func(_ *testing.T, r *record) { r.IPCNamespace = "ipc:[1]" },
			wantReason: "belongs to IPC namespace ipc:[1]"},
		{name: "private namespace", pid: deadPID,
			edit:       func(_ *testing.T, r *record) { r.PrivateNamespace = true },
			wantReason: "private IPC namespace"},
		{name: "id now names a different set", pid: deadPID,
			edit:       func(_ *testing.T, r *record) { r.NSems++ },
			wantReason: "is now a different set"},
		{name: "set already gone", pid: deadPID, goneBefore: true,
			wantReason: "already gone"},
		{name: "set held by this process", pid: deadPID, held: true,
			wantReason: "in use by this process"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var id int
			if tc.held {
				id = newSet(t, 2).ID()
			} else {
				id = orphanSet(t, 3)
			}
			rec := recordFor(t, id, tc.pid(t))
			if tc.edit != nil {
				tc.edit(t, &rec)
			}
			if tc.goneBefore {
				if err := rmid(id); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(t.TempDir(), "stomp-broker.ipc")
			if err := writeRecordFile(path, rec); err != nil {
				t.Fatal(err)
			}

			res, err := Sweep(path)
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			t.Logf("reason: %s", res.Reason)
			if res.Removed != tc.wantRemoved || res.SemID != id || res.ParentPID != rec.PID ||
				!strings.Contains(res.Reason, tc.wantReason) {
				t.Errorf("Sweep = %+v; want Removed %v, SemID %d, ParentPID %d, Reason containing %q",
					res, tc.wantRemoved, id, rec.PID, tc.wantReason)
			}
			_, statErr := os.Stat(path)
			if recordThere := statErr == nil; recordThere != tc.wantRecord || res.RecordRemoved == tc.wantRecord {
				t.Errorf("record file there: %v (RecordRemoved %v), want there: %v", recordThere, res.RecordRemoved, tc.wantRecord)
			}
			_, err = stat(id)
			if setThere := err == nil; setThere != !(tc.wantRemoved || tc.goneBefore) {
				t.Errorf("set there after Sweep: %v (IPC_STAT %v)", setThere, err)
			}
		})
	}
}

// TestSweepCrashedBroker is the real thing: a helper creates a set, writes the
// record, and is SIGKILLed; its set outlives it until Sweep removes it.
func TestSweepCrashedBroker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stomp-broker.ipc")
	h := startHelper(t, "create", "3")
	var id int
	if _, err := fmt.Sscanf(h.expect(), "id %d", &id); err != nil {
		t.Fatal(err)
	}
	removeOnCleanup(t, id)
	h.send("record " + path)
	h.expectLine("recorded")
	h.kill()

	if _, err := stat(id); err != nil {
		t.Fatalf("the crashed helper's set should still exist before the sweep: %v", err)
	}
	res, err := Sweep(path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Removed || !res.RecordRemoved || res.SemID != id || res.ParentPID != h.pid() {
		t.Errorf("Sweep = %+v; want set %d of pid %d removed with its record", res, id, h.pid())
	}
	requireGone(t, id)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record still there: %v", err)
	}
}

// TestSweepLiveBroker: a record written by this (live) process is left alone.
func TestSweepLiveBroker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stomp-broker.ipc")
	s := newSet(t, 2)
	if err := WriteRecord(path, s.ID()); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("WriteRecord left %d files in its directory, want 1", len(entries))
	}
	rec, err := readRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := recordFor(t, s.ID(), os.Getpid()); rec != want {
		t.Errorf("record %+v, want %+v", rec, want)
	}

	res, err := Sweep(path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed || res.RecordRemoved || !strings.Contains(res.Reason, "alive") {
		t.Errorf("Sweep = %+v; want nothing removed", res)
	}
	if _, err := s.Value(1); err != nil {
		t.Errorf("set damaged by Sweep: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("record removed: %v", err)
	}
}

func TestSweepRecordFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		contents *string // nil = no file
		wantErr  error
	}{
		{"no record", nil, nil},
		{"not JSON", ptr("semid=3\n"), ErrBadRecord},
		{"no pid", ptr(`{"semid":3}` + "\n"), ErrBadRecord},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("rec%d", i))
			if tc.contents != nil {
				if err := os.WriteFile(path, []byte(*tc.contents), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			res, err := Sweep(path)
			if !errors.Is(err, tc.wantErr) || res.Removed || res.RecordRemoved {
				t.Errorf("Sweep = %+v, %v; want nothing removed and error %v", res, err, tc.wantErr)
			}
			if tc.contents != nil {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("a bad record must be left for the operator: %v", err)
				}
			}
		})
	}
}

func TestWriteRecordNoSuchSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	if err := WriteRecord(path, -1); !errors.Is(err, ErrRemoved) {
		t.Errorf("WriteRecord(-1): %v, want ErrRemoved", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record written for a missing set")
	}
}

func TestRecordIsOneJSONLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	s := newSet(t, 1)
	if err := WriteRecord(path, s.ID()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if bytes.Count(data, []byte("\n")) != 1 || !bytes.HasSuffix(data, []byte("\n")) || json.Unmarshal(data, &m) != nil {
		t.Fatalf("record is not one JSON line: %q", data)
	}
	for _, key := range []string{"semid", "pid", "boot_id"} {
		if _, ok := m[key]; !ok {
			t.Errorf("record lacks %q: %s", key, data)
		}
	}
}

func ptr(s string) *string { return &s }
