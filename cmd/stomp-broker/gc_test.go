package main

import (
	"runtime/debug"
	"testing"
)

func TestParentGCTuning(t *testing.T) {
	const budget = 256 << 20
	tests := []struct {
		name   string
		env    map[string]string
		want   gcTuning
		wantOK bool
	}{
		{"defaults", nil, gcTuning{percent: 300, limit: 2*budget + 64<<20}, true},
		{"GOGC set", map[string]string{"GOGC": "100"}, gcTuning{}, false},
		{"GOGC off", map[string]string{"GOGC": "off"}, gcTuning{}, false},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, gcTuning{}, false},
		{"empty GOGC is unset", map[string]string{"GOGC": ""}, gcTuning{percent: 300, limit: 2*budget + 64<<20}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parentGCTuning(func(k string) string { return tt.env[k] }, budget)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("parentGCTuning = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestApplyParentGC checks the settings reach the runtime, and restores
// the test binary's own.
func TestApplyParentGC(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	const budget = 1 << 20
	if _, ok := applyParentGC(func(string) string { return "" }, budget); !ok {
		t.Fatal("applyParentGC did not apply with an empty environment")
	}
	if got := debug.SetGCPercent(100); got != parentGCPercent {
		t.Errorf("GC percent %d, want %d", got, parentGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != 2*budget+parentHeapHeadroom {
		t.Errorf("memory limit %d, want %d", got, 2*budget+parentHeapHeadroom)
	}
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(1 << 40)
	if _, ok := applyParentGC(func(k string) string { return map[string]string{"GOGC": "50"}[k] }, budget); ok {
		t.Fatal("applyParentGC applied although GOGC was set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent changed to %d although GOGC was set", got)
	}
}
