package ipc

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// TestChildConfigFromEnv: a child refuses to start unless the parent set its
// environment, speaking the same child protocol.
func TestChildConfigFromEnv(t *testing.T) {
	want := ChildConfig{ClientAddr: "127.0.0.1:1", LogLevel: "error"}
	want.Limits = stompwire.Limits{MaxBodyBytes: 1 << 20}
	want.Transport, want.WSAllowedOrigins = TransportWS, []string{"https://app.example"}
	cases := []struct {
		name, role, config string
		wantErr            string
	}{
		{"started by the parent", ProtocolVersion, want.Encode(), ""},
		{"started by hand", "", "", "not meant to be run by hand"},
		{"another protocol version", "0", want.Encode(), `parent speaks child protocol "0"`},
		{"bad config", ProtocolVersion, "{", "bad " + EnvConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.role != "" {
				t.Setenv(EnvRole, tc.role)
			} else {
				t.Setenv(EnvRole, "")
				os.Unsetenv(EnvRole)
			}
			t.Setenv(EnvConfig, tc.config)
			got, err := ChildConfigFromEnv()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, want)
			}
		})
	}
}
