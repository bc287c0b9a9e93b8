//go:build linux && (amd64 || arm64)

package semaphore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// record is the runtime record: one JSON line that lets a later process decide
// whether the set it names was left behind by a dead broker.
type record struct {
	SemID int `json:"semid"`
	// NSems and CUID describe the set as created. Sweep removes a set only if it
	// still looks like this (and has key IPC_PRIVATE), because after a reboot or
	// enough set creations the kernel can give the same id to an unrelated set.
	NSems int    `json:"nsems"`
	CUID  uint32 `json:"cuid"`
	PID   int    `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat (clock ticks after boot): with the
	// boot id it identifies the process even if its pid is reused later.
	StartTime uint64 `json:"start_time"`
	BootID    string `json:"boot_id"`
	Exe       string `json:"exe"`
	// IPCNamespace is readlink(/proc/self/ns/ipc) of the writer: a semid only means
	// something inside its own IPC namespace.
	IPCNamespace string `json:"ipc_ns"`
	// PrivateNamespace is true if the writer ran in the broker's private namespace
	// (EnvPrivateIPC set); such a set dies with the namespace and is never swept.
	PrivateNamespace bool `json:"private_ns,omitempty"`
}

// bootIDPath holds the random id the kernel picks at every boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// WriteRecord writes {semid, parent pid, boot id} (plus the parent's start time,
// executable, IPC namespace and the set's size and creator) as one JSON line to
// path, atomically: a temporary file in the same directory is written, synced and
// renamed over path, so a reader sees the old record or the new one, never half.
// The pid recorded is the caller's: the parent calls it right after [Create]. It
// fails if semid does not name an existing set.
func WriteRecord(path string, semid int) error {
	st, err := stat(semid)
	if err != nil {
		return wrap("write record (IPC_STAT)", semid, err)
	}
	pid := os.Getpid()
	start, err := procStartTime(pid)
	if err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	boot, err := bootID()
	if err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	ns, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	rec := record{
		SemID: semid, NSems: st.nsems, CUID: st.perm.Cuid,
		PID: pid, StartTime: start, BootID: boot, Exe: trimDeleted(exe),
		IPCNamespace: ns, PrivateNamespace: InPrivateIPCNamespace(),
	}
	return writeRecordFile(path, rec)
}

// writeRecordFile marshals rec and renames it into place.
func writeRecordFile(path string, rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("semaphore: write record %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("semaphore: write record %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("semaphore: write record %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("semaphore: write record: %w", err)
	}
	return nil
}

// readRecord reads and parses the record at path.
func readRecord(path string) (record, error) {
	var rec record
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, fmt.Errorf("semaphore: read record: %w", err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(data), &rec); err != nil {
		return rec, fmt.Errorf("semaphore: read record %s: %w: %w", path, ErrBadRecord, err)
	}
	if rec.SemID < 0 || rec.PID <= 0 {
		return rec, fmt.Errorf("semaphore: read record %s: semid %d pid %d: %w", path, rec.SemID, rec.PID, ErrBadRecord)
	}
	return rec, nil
}

// Sweep reads the record at path and cleans up after a dead broker. If the recorded
// parent pid is not alive (or the boot id differs, or the pid is alive but is not a
// stomp-broker: its /proc/<pid>/cmdline does not contain "stomp-broker" and its exe
// is not the recorded one, or its start time differs), Sweep removes the recorded
// set (ignoring "already gone") and the file, and returns what it removed. A record
// whose parent is alive is left alone, as is its set.
//
// Sweep deliberately does not remove the set, but still deletes the file, when the
// id cannot be trusted to name the broker's set: after a reboot (ids start over),
// when the record comes from another IPC namespace or from the broker's private one
// (that set died with its namespace), when the set now has a different size, key or
// creator, or when this process itself holds the set. Reason says which case applied.
//
// A missing file is not an error: Sweep returns a zero SweepResult with Reason set.
// An unparsable file yields an error wrapping [ErrBadRecord] and is left in place.
// The parent should call Sweep before [Create] and [WriteRecord] at start-up.
func Sweep(path string) (SweepResult, error) {
	rec, err := readRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return SweepResult{Reason: "no runtime record at " + path}, nil
	}
	if err != nil {
		return SweepResult{}, err
	}
	res := SweepResult{SemID: rec.SemID, ParentPID: rec.PID}

	alive, why := parentAlive(rec)
	if alive {
		res.Reason = why + "; nothing swept"
		return res, nil
	}
	res.Reason = why

	removed, what, err := removeRecordedSet(rec)
	res.Removed = removed
	res.Reason += "; " + what
	if err != nil {
		return res, err // keep the record: an operator may retry
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("semaphore: sweep: %w", err)
	}
	res.RecordRemoved = true
	return res, nil
}

// parentAlive decides whether the recorded parent still runs as a broker, and says
// why in a phrase for SweepResult.Reason.
func parentAlive(rec record) (bool, string) {
	boot, err := bootID()
	if err == nil && rec.BootID != "" && boot != rec.BootID {
		return false, fmt.Sprintf("record is from an earlier boot (%s)", rec.BootID)
	}
	ps, err := readProcStat(rec.PID)
	if err != nil {
		return false, fmt.Sprintf("parent pid %d is not running", rec.PID)
	}
	if ps.state == 'Z' || ps.state == 'X' {
		return false, fmt.Sprintf("parent pid %d has exited (zombie)", rec.PID)
	}
	if rec.StartTime != 0 && ps.startTime != rec.StartTime {
		return false, fmt.Sprintf("pid %d now belongs to a process started later", rec.PID)
	}
	if isBroker(rec.PID, rec.Exe) {
		return true, fmt.Sprintf("parent pid %d is alive", rec.PID)
	}
	return false, fmt.Sprintf("pid %d is alive but is not a stomp-broker", rec.PID)
}

// isBroker reports whether pid's command line mentions stomp-broker or its
// executable is the recorded one (reading /proc/<pid>/exe needs ptrace rights over
// the process; the command line is readable by everyone).
func isBroker(pid int, exe string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && bytes.Contains(cmdline, []byte("stomp-broker")) {
		return true
	}
	got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && exe != "" && trimDeleted(got) == exe
}

// removeRecordedSet removes the recorded set if the id can still be trusted to name
// it. It returns whether it removed the set and a phrase for the reason.
func removeRecordedSet(rec record) (bool, string, error) {
	if boot, err := bootID(); err == nil && rec.BootID != "" && boot != rec.BootID {
		return false, fmt.Sprintf("set %d did not survive the reboot; not touched", rec.SemID), nil
	}
	if rec.PrivateNamespace {
		return false, fmt.Sprintf("set %d lived in the broker's private IPC namespace, which the kernel destroys with its last process; not touched", rec.SemID), nil
	}
	ns, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		return false, "", fmt.Errorf("semaphore: sweep: %w", err)
	}
	if rec.IPCNamespace != "" && rec.IPCNamespace != ns {
		return false, fmt.Sprintf("set %d belongs to IPC namespace %s, not this one (%s); not touched", rec.SemID, rec.IPCNamespace, ns), nil
	}
	if isHeld(rec.SemID) {
		return false, fmt.Sprintf("set %d is in use by this process; not touched", rec.SemID), nil
	}
	st, err := stat(rec.SemID)
	if isGone(err) {
		return false, fmt.Sprintf("set %d is already gone", rec.SemID), nil
	}
	if err != nil {
		return false, "", wrap("sweep (IPC_STAT)", rec.SemID, err)
	}
	if st.perm.Key != unix.IPC_PRIVATE || st.nsems != rec.NSems || st.perm.Cuid != rec.CUID {
		return false, fmt.Sprintf("set %d is now a different set (key %#x, %d semaphores, creator uid %d; recorded: %d semaphores, uid %d); not touched",
			rec.SemID, st.perm.Key, st.nsems, st.perm.Cuid, rec.NSems, rec.CUID), nil
	}
	if err := rmid(rec.SemID); err != nil {
		if isGone(err) {
			return false, fmt.Sprintf("set %d is already gone", rec.SemID), nil
		}
		return false, "", wrap("sweep (IPC_RMID)", rec.SemID, err)
	}
	return true, fmt.Sprintf("removed set %d", rec.SemID), nil
}

// bootID returns the kernel's boot id.
func bootID() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// procStat is what Sweep needs from /proc/<pid>/stat.
type procStat struct {
	state     byte
	startTime uint64
}

// readProcStat parses /proc/<pid>/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("semaphore: /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("semaphore: /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("semaphore: /proc/%d/stat starttime: %w", pid, err)
	}
	return procStat{state: f[0][0], startTime: start}, nil
}

// procStartTime returns field 22 of /proc/<pid>/stat.
func procStartTime(pid int) (uint64, error) {
	ps, err := readProcStat(pid)
	return ps.startTime, err
}

// trimDeleted strips the " (deleted)" suffix /proc shows for an executable that
// was replaced on disk, as happens on upgrades.
func trimDeleted(exe string) string { return strings.TrimSuffix(exe, " (deleted)") }
