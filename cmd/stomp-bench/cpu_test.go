package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name         string
		stat         string
		self, reaped int64
		wantErr      bool
	}{
		{"plain", "42 (stomp-broker) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 11 2 20 0 5 0 100 1000 10", 10, 13, false},
		{"name with spaces and parens", "43 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 1 2 3 4 20 0 1 0 1 2 3", 3, 7, false},
		{"no name", "44 S 1 2", 0, 0, true},
		{"too short", "45 (x) S 1 2 3", 0, 0, true},
		{"not a number", "46 (x) S 1 2 3 4 5 6 7 8 9 10 u 2 3 4 5", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			self, reaped, err := parseStatCPU(tc.stat)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && (self != tc.self || reaped != tc.reaped) {
				t.Errorf("got self %d reaped %d, want %d and %d", self, reaped, tc.self, tc.reaped)
			}
		})
	}
}

// TestTreeCPU sums the parent's and its live child's own ticks and the
// ticks of the children each has reaped, from a fake /proc.
func TestTreeCPU(t *testing.T) {
	root := t.TempDir()
	write := func(pid, stat, children string) {
		dir := filepath.Join(root, pid, "task", pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "children"), []byte(children), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "10 (parent) S 1 1 1 0 -1 0 0 0 0 0 5 5 100 0 20 0 1 0 1 1 1", "11 ")
	write("11", "11 (child) S 10 1 1 0 -1 0 0 0 0 0 20 10 0 1 20 0 1 0 1 1 1", "")
	got, err := treeCPU(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := 141 * clockTick; got != want {
		t.Errorf("treeCPU = %v, want %v", got, want)
	}
	if _, err := treeCPU(root, 99); err == nil {
		t.Error("treeCPU of a missing pid: no error")
	}
}
