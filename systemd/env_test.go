package systemd

import (
	"os"
	"testing"
)

func TestScrubEnv(t *testing.T) {
	scrubbed := map[string]string{
		envListenPID:     "1234",
		envListenFDs:     "2",
		envListenFDNames: "stomp:admin",
		envNotifySocket:  "/run/systemd/notify",
		envWatchdogUsec:  "30000000",
		envWatchdogPID:   "1234",
	}
	// Set by systemd too, but true for every process of the unit: children may keep them.
	kept := map[string]string{
		"INVOCATION_ID":     "0123456789abcdef0123456789abcdef",
		"JOURNAL_STREAM":    "8:12345",
		"RUNTIME_DIRECTORY": "/run/stomp-broker",
		"STATE_DIRECTORY":   "/var/lib/stomp-broker",
		"LISTEN_ADDR":       "127.0.0.1:61613", // LISTEN_* by prefix only, not by contract
	}

	tests := []struct {
		name  string
		calls int
	}{
		{"once", 1},
		{"twice is the same as once", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, v := range scrubbed {
				t.Setenv(name, v)
			}
			for name, v := range kept {
				t.Setenv(name, v)
			}
			for range tt.calls {
				ScrubEnv()
			}
			for name := range scrubbed {
				if v, ok := os.LookupEnv(name); ok {
					t.Errorf("%s=%q survived ScrubEnv", name, v)
				}
			}
			for name, want := range kept {
				if got := os.Getenv(name); got != want {
					t.Errorf("%s=%q after ScrubEnv, want %q", name, got, want)
				}
			}
		})
	}
}
