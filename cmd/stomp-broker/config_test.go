package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/parent"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "broker.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadConfigFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []configEntry
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# c\n\n   # d\n", nil, ""},
		{"entries", "max-clients = 10\nlisten=127.0.0.1:1\nlisten = 127.0.0.1:2\n", []configEntry{
			{1, "max-clients", "10"}, {2, "listen", "127.0.0.1:1"}, {3, "listen", "127.0.0.1:2"}}, ""},
		{"quoted value keeps spaces and equals", `log-file = "/var/log/a b=c.log"`, []configEntry{{1, "log-file", "/var/log/a b=c.log"}}, ""},
		{"no equals sign", "max-clients 10\n", nil, ":1: want"},
		{"no name", "= 10\n", nil, ":1: want"},
		{"config in config", "\nconfig = other\n", nil, ":2: config cannot be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readConfigFile(writeFile(t, tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errConfig) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
	if _, err := readConfigFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// serveContext parses args like the broker's command line does.
func serveContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	app := newApp()
	set := flag.NewFlagSet("test", flag.ContinueOnError)
	for _, f := range app.Flags {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(app, set, nil)
}

func TestConfigStartAndReload(t *testing.T) {
	path := writeFile(t, "max-clients = 7\naccept-rate = 2.5\nmax-clients-per-ip = 3\n")
	// --max-clients-per-ip on the command line wins over the file.
	c := serveContext(t, "--config", path, "--max-clients-per-ip", "9")
	cfg, err := loadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := limitsOf(c), (parent.Limits{MaxClients: 7, MaxClientsPerIP: 9, AcceptRate: 2.5, AcceptBurst: defaultAcceptBurst}); got != want {
		t.Fatalf("start-up limits %+v, want %+v", got, want)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name    string
		file    string
		want    parent.Settings
		wantErr bool
	}{
		{"changed values", "max-clients = 20\nlog-level = debug\nmax-clients-per-ip = 1\n",
			parent.Settings{Limits: parent.Limits{MaxClients: 20, MaxClientsPerIP: 9, AcceptRate: defaultAcceptRate, AcceptBurst: defaultAcceptBurst}, ChildLogLevel: "debug"}, false},
		{"removed lines fall back to defaults", "",
			parent.Settings{Limits: parent.Limits{MaxClients: defaultMaxClients, MaxClientsPerIP: 9, AcceptRate: defaultAcceptRate, AcceptBurst: defaultAcceptBurst}, ChildLogLevel: "info"}, false},
		{"bad value", "max-clients = many\n", parent.Settings{}, true},
		{"invalid value", "max-clients = -1\n", parent.Settings{}, true},
		{"bad level", "log-level = loud\n", parent.Settings{}, true},
		{"unknown name", "maxclients = 1\n", parent.Settings{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			got, _, err := cfg.reload(log)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("settings %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestControlSocketPath(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"flag", []string{"--control-socket", "/x/y.sock"}, nil, "/x/y.sock"},
		{"off", []string{"--control-socket", "off"}, nil, ""},
		{"runtime dir from systemd", nil, map[string]string{"RUNTIME_DIRECTORY": "/run/sb"}, "/run/sb/stomp-broker.sock"},
		{"XDG runtime dir", nil, map[string]string{"XDG_RUNTIME_DIR": "/run/user/7"}, "/run/user/7/stomp-broker-61613.sock"},
		{"tmp", nil, nil, filepath.Join(os.TempDir(), "stomp-broker-61613.sock")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"RUNTIME_DIRECTORY", "STOMP_BROKER_RUNTIME_DIR", "XDG_RUNTIME_DIR", "STOMP_BROKER_CONTROL_SOCKET"} {
				t.Setenv(k, tt.env[k])
				if tt.env[k] == "" {
					os.Unsetenv(k)
				}
			}
			c := serveContext(t, tt.args...)
			got := controlSocketPath(c, "61613")
			if got != tt.want {
				t.Fatalf("path %q, want %q", got, tt.want)
			}
		})
	}
}
