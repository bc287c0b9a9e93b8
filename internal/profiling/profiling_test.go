package profiling

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestStart(t *testing.T) {
	cases := []struct {
		name     string
		dir      func(t *testing.T) string
		wantFile bool
	}{
		{"off when unset", func(*testing.T) string { return "" }, false},
		{"writes ROLE-PID.pprof", func(t *testing.T) string { return t.TempDir() }, true},
		{"no-op when the directory is missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			t.Setenv(EnvDir, dir)
			stop := Start("test")
			stop()
			if dir == "" {
				return
			}
			st, err := os.Stat(filepath.Join(dir, fmt.Sprintf("test-%d.pprof", os.Getpid())))
			if got := err == nil && st.Size() > 0; got != tc.wantFile {
				t.Fatalf("profile written: %v (err %v), want %v", got, err, tc.wantFile)
			}
		})
	}
}
