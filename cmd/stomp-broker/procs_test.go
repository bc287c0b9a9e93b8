package main

import (
	"runtime"
	"testing"
)

func TestParentMaxProcs(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		want   int
		wantOK bool
	}{
		{"default", nil, 1, true},
		{"GOMAXPROCS set", map[string]string{"GOMAXPROCS": "4"}, 0, false},
		{"empty GOMAXPROCS is unset", map[string]string{"GOMAXPROCS": ""}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parentMaxProcs(func(k string) string { return tt.env[k] })
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("parentMaxProcs = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestApplyParentProcs checks the setting reaches the runtime, and
// restores the test binary's own.
func TestApplyParentProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(3)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	if _, ok := applyParentProcs(func(string) string { return "" }); !ok {
		t.Fatal("applyParentProcs did not apply with an empty environment")
	}
	if got := runtime.GOMAXPROCS(3); got != parentProcs {
		t.Errorf("GOMAXPROCS %d, want %d", got, parentProcs)
	}
	if _, ok := applyParentProcs(func(k string) string { return map[string]string{"GOMAXPROCS": "2"}[k] }); ok {
		t.Fatal("applyParentProcs applied although GOMAXPROCS was set")
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS changed to %d although GOMAXPROCS was set", got)
	}
}
