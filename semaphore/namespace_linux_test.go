//go:build linux && (amd64 || arm64)

package semaphore

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestEnterPrivateIPCNamespaceRefuses(t *testing.T) {
	tests := []struct {
		name    string
		marker  string // EnvPrivateIPC in this process
		value   string // argument
		wantErr error  // nil: any error
	}{
		{name: "empty marker value", value: ""},
		{name: "already private", marker: "1", value: "x", wantErr: ErrAlreadyPrivate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvPrivateIPC, tc.marker)
			err := EnterPrivateIPCNamespace(tc.value)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("EnterPrivateIPCNamespace(%q) with marker %q: %v, want %v", tc.value, tc.marker, err, tc.wantErr)
			}
		})
	}
}

// TestPrivateNamespaceSetDiesWithProcess: a helper re-executes itself into a private
// IPC namespace, creates a set of a distinctive size and is SIGKILLed. The set must
// never be visible in this (the host's) namespace, the helper must keep its pid
// across the re-exec, and its namespace must differ from ours.
func TestPrivateNamespaceSetDiesWithProcess(t *testing.T) {
	const slots = 4241 // 4242 semaphores: easy to tell apart from anybody else's set
	hostNS, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	// Sets of our size that were not there before the helper ran are the helper's
	// set leaking into the host namespace (ids of sets already there are excluded).
	before := sysvSets(t)
	hasOurSize := func(sets map[int]int) bool {
		for id, n := range sets {
			if _, old := before[id]; n == slots+1 && !old {
				return true
			}
		}
		return false
	}
	t.Cleanup(func() { // if the test failed, do not leave the leaked set behind
		for id, n := range sysvSets(t) {
			if _, old := before[id]; n == slots+1 && !old {
				_ = rmid(id)
			}
		}
	})

	h := startHelper(t, "private-ns", strconv.Itoa(slots))
	line := h.expect()
	if line == "eperm" {
		t.Skip("unshare(CLONE_NEWIPC) refused with EPERM: creating an IPC namespace needs CAP_SYS_ADMIN")
	}
	var ns string
	var id, pid int
	if _, err := fmt.Sscanf(line, "ns %s id %d pid %d", &ns, &id, &pid); err != nil {
		t.Fatalf("helper said %q: %v (stderr: %s)", line, err, h.stderr.String())
	}
	t.Logf("host namespace %s, helper namespace %s, helper set %d", hostNS, ns, id)

	if pid != h.pid() {
		t.Errorf("helper pid %d after re-exec, want %d (syscall.Exec keeps the pid)", pid, h.pid())
	}
	if ns == hostNS {
		t.Errorf("helper is still in the host IPC namespace %s", ns)
	}
	if outside, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/ipc", h.pid())); err != nil || outside != ns {
		t.Errorf("/proc/%d/ns/ipc = %q, %v; want %q", h.pid(), outside, err, ns)
	}
	h.send("take 1") // the set works inside: an unarmed slot has no token
	h.expectLine("lost")

	if hasOurSize(sysvSets(t)) {
		t.Errorf("the helper's set is visible in the host namespace")
	}
	if out, err := exec.Command("ipcs", "-s").Output(); err == nil {
		if hasOurSize(parseIpcs(t, out)) {
			t.Errorf("host `ipcs -s` shows the helper's set:\n%s", out)
		}
	} else {
		t.Logf("ipcs not run: %v", err)
	}
	// Positive control: the same check from inside the helper's namespace finds it,
	// so the negative checks above can fail.
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(h.pid()), "-i", "cat", "/proc/sysvipc/sem").Output(); err == nil {
		if inside := parseSysvSem(t, out); inside[id] != slots+1 {
			t.Errorf("inside the helper's namespace set %d has %d semaphores, want %d", id, inside[id], slots+1)
		}
	} else {
		t.Logf("nsenter control not run: %v", err)
	}

	h.kill()
	if hasOurSize(sysvSets(t)) {
		t.Errorf("a set of the helper's size appeared in the host namespace after its death")
	}
}

// parseIpcs returns semid → nsems from `ipcs -s` output (util-linux format:
// key semid owner perms nsems).
func parseIpcs(t testing.TB, out []byte) map[int]int {
	t.Helper()
	sets := map[int]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 || !strings.HasPrefix(f[0], "0x") {
			continue
		}
		id, err1 := strconv.Atoi(f[1])
		nsems, err2 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil {
			t.Fatalf("ipcs -s: odd line %q", line)
		}
		sets[id] = nsems
	}
	return sets
}
