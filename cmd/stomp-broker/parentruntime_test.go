package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestParentRuntimeFor(t *testing.T) {
	const budget = 256 << 20
	tuned := parentRuntime{procs: 1, gcPercent: 300, memLimit: 2*budget + 64<<20}
	tests := []struct {
		name string
		env  map[string]string
		want parentRuntime
	}{
		{"defaults", nil, tuned},
		{"empty variables are unset", map[string]string{"GOGC": "", "GOMAXPROCS": ""}, tuned},
		{"GOMAXPROCS set", map[string]string{"GOMAXPROCS": "4"}, parentRuntime{gcPercent: 300, memLimit: 2*budget + 64<<20}},
		{"GOGC set", map[string]string{"GOGC": "100"}, parentRuntime{procs: 1}},
		{"GOGC off", map[string]string{"GOGC": "off"}, parentRuntime{procs: 1}},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, parentRuntime{procs: 1}},
		{"all set", map[string]string{"GOMAXPROCS": "2", "GOGC": "50"}, parentRuntime{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parentRuntimeFor(func(k string) string { return tt.env[k] }, budget); got != tt.want {
				t.Fatalf("parentRuntimeFor = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParentRuntimeApply checks the settings reach the runtime and that a
// zero field leaves the runtime's own alone; it restores the test
// binary's settings.
func TestParentRuntimeApply(t *testing.T) {
	oldProcs := runtime.GOMAXPROCS(3)
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(1 << 40)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(oldProcs)
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})

	parentRuntime{}.apply()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("zero settings changed GOMAXPROCS to %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("zero settings changed the GC percent to %d", got)
	}

	parentRuntime{procs: 1, gcPercent: 300, memLimit: 5 << 20}.apply()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("GOMAXPROCS %d, want 1", got)
	}
	if got := debug.SetGCPercent(100); got != 300 {
		t.Errorf("GC percent %d, want 300", got)
	}
	if got := debug.SetMemoryLimit(1 << 40); got != 5<<20 {
		t.Errorf("memory limit %d, want %d", got, 5<<20)
	}
}
