package console

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       float64
		bad        bool
	}{
		{"plain", "42 (stomp-broker) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 100 0 0", 3.0, false},
		{"name with spaces and parens", "42 (stomp-broker: client 1.2.3.4:5 (x)) S 1 42 42 0 -1 0 0 0 0 0 7 3 0 0", 0.1, false},
		{"short", "42 (x) S 1 2", 0, true},
		{"no name", "42 x S", 0, true},
	} {
		got, err := parseStatCPU([]byte(tc.stat))
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%s: got %v, %v; want %v (error %v)", tc.name, got, err, tc.want, tc.bad)
		}
	}
}

func TestParsePss(t *testing.T) {
	rollup := "00400000-7ffd [rollup]\nRss:  4000 kB\nPss:  1234 kB\nPss_Anon:  1000 kB\n"
	if got, err := parsePss([]byte(rollup)); err != nil || got != 1234 {
		t.Errorf("got %d, %v; want 1234", got, err)
	}
	if _, err := parsePss([]byte("Rss: 1 kB\nPss_Anon: 2 kB\n")); err == nil {
		t.Error("a text without a Pss line parsed")
	}
}

// TestReadProcSelf reads the test process itself: real files, plausible
// figures.
func TestReadProcSelf(t *testing.T) {
	st, err := readProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PssKiB <= 0 || st.CPUSeconds < 0 {
		t.Errorf("self: %+v", st)
	}
	if _, err := readProc(filepath.Join(t.TempDir(), "none"), 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing process: %v, want not-exist", err)
	}
}
