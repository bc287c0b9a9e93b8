package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// smapsRollup returns a realistic smaps_rollup text with the given Pss.
func smapsRollup(pss int) string {
	return `55d0c9a3b000-7ffd5a9f1000 ---p 00000000 00:00 0                          [rollup]
Rss:                4600 kB
Pss:                ` + strconv.Itoa(pss) + ` kB
Pss_Dirty:           800 kB
Pss_Anon:            812 kB
Pss_File:             40 kB
Pss_Shmem:             0 kB
Shared_Clean:       3700 kB
Private_Dirty:       812 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`
}

func TestParsePss(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    int64
		wantErr bool
	}{
		{name: "real layout", text: smapsRollup(852), want: 852},
		{name: "Pss after its break-down lines", text: "Pss_Anon: 5 kB\nPss_File: 6 kB\nPss: 11 kB\n", want: 11},
		{name: "missing", text: "Rss: 10 kB\nPss_Anon: 5 kB\n", wantErr: true},
		{name: "empty", text: "", wantErr: true},
		{name: "not a number", text: "Pss: lots kB\n", wantErr: true},
		{name: "unexpected unit", text: "Pss: 10 MB\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePss(strings.NewReader(tc.text))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parsePss: err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("parsePss = %d, want %d", got, tc.want)
			}
		})
	}
	if _, err := parsePss(strings.NewReader("Rss: 1 kB\n")); !errors.Is(err, errNoPss) {
		t.Errorf("missing Pss: err = %v, want errNoPss", err)
	}
}

// fakeProc builds a /proc-like tree: procs maps pid -> Pss (or -1 for "no
// smaps_rollup", as for a process that exited), kids maps "pid/tid" to the
// content of that thread's children file.
func fakeProc(t *testing.T, procs map[int]int, kids map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, pss := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(dir, "task", strconv.Itoa(pid)), 0o755); err != nil {
			t.Fatal(err)
		}
		if pss >= 0 {
			if err := os.WriteFile(filepath.Join(dir, "smaps_rollup"), []byte(smapsRollup(pss)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for at, content := range kids {
		dir := filepath.Join(root, strings.Split(at, "/")[0], "task", strings.Split(at, "/")[1])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "children"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTreePss(t *testing.T) {
	tests := []struct {
		name    string
		procs   map[int]int
		kids    map[string]string
		want    pssSample
		wantErr bool
	}{
		{
			name:  "lone process",
			procs: map[int]int{100: 5000},
			want:  pssSample{KiB: 5000, Procs: 1},
		},
		{
			// children forked from two threads, one grandchild, and a
			// pid listed twice
			name:  "parent, children on two threads, grandchild",
			procs: map[int]int{100: 5000, 201: 800, 202: 900, 301: 50},
			kids:  map[string]string{"100/100": "201 ", "100/105": "202 201", "202/202": "301\n"},
			want:  pssSample{KiB: 6750, Procs: 4},
		},
		{
			name:  "a child that exited after being listed is skipped",
			procs: map[int]int{100: 5000, 201: -1},
			kids:  map[string]string{"100/100": "201"},
			want:  pssSample{KiB: 5000, Procs: 1},
		},
		{
			name:    "the broker itself is gone",
			procs:   map[int]int{},
			wantErr: true,
		},
		{
			name:    "the broker has no smaps_rollup",
			procs:   map[int]int{100: -1},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeProc(t, tc.procs, tc.kids)
			got, err := treePss(root, 100)
			if (err != nil) != tc.wantErr {
				t.Fatalf("treePss: err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("treePss = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestTreePssOfThisProcess reads the real /proc: the test binary has at
// least one process and a positive Pss.
func TestTreePssOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/self/smaps_rollup on this system")
	}
	s, err := treePss(procRoot, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.KiB <= 0 || s.Procs < 1 {
		t.Errorf("treePss(self) = %+v, want positive Pss and at least one process", s)
	}
}
