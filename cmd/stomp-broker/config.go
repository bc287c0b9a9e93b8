package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/internal/logging"
	"github.com/stomp-broker/stomp-broker/parent"
)

// The configuration file (--config FILE) holds "name = value" lines whose
// names are the long flag names ("max-clients = 200"); blank lines and
// lines starting with '#' are ignored; a value may be wrapped in double
// quotes; a repeatable flag (listen) may appear on several lines. The file
// supplies every setting not given on the command line or in the
// environment, which always win.
//
// On SIGHUP the file is read again and the settings in reloadable apply at
// once, with every client staying connected; any other changed setting is
// logged as needing a restart. Without --config, SIGHUP re-applies the
// current settings (and still notifies systemd), which is harmless.

// reloadable are the flags a SIGHUP applies live.
var reloadable = []string{flagLogLevel, flagMaxClients, flagMaxClientsPerIP, flagAcceptRate, flagAcceptBurst}

// errConfig marks a problem in the configuration file.
var errConfig = errors.New("config file")

// configEntry is one "name = value" line.
type configEntry struct {
	line        int
	name, value string
}

// readConfigFile parses a configuration file. The error names the file
// and the line of every bad line, one per line.
func readConfigFile(path string) ([]configEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	defer f.Close()
	var out []configEntry
	var errs []error
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("%w: %s:%d: want \"name = value\", got %q", errConfig, path, n, line))
			continue
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if name == flagConfig {
			errs = append(errs, fmt.Errorf("%w: %s:%d: %s cannot be set in the config file", errConfig, path, n, flagConfig))
			continue
		}
		out = append(out, configEntry{line: n, name: name, value: value})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	return out, errors.Join(errs...)
}

// setError is the error for a bad value of flag name on a line of the
// configuration file.
func (cfg *config) setError(e configEntry, err error) error {
	if !isFlag(serveFlags(), e.name) {
		return fmt.Errorf("%w: %s:%d: unknown setting %q (the settings are the long flag names, see stomp-broker --help)", errConfig, cfg.path, e.line, e.name)
	}
	return fmt.Errorf("%w: %s:%d: %s: invalid value %q (%v): want %s", errConfig, cfg.path, e.line, e.name, e.value, err, valueForm(serveFlags(), e.name))
}

// config ties the running broker's settings to their sources, for the
// start-up and for every reload.
type config struct {
	path  string          // --config, absolute; "" if none
	fixed map[string]bool // flags set on the command line or in the environment
	start *cli.Context    // the settings the broker started with
}

// loadConfig applies the configuration file to c at start-up: every entry
// whose flag was not set on the command line or in the environment.
func loadConfig(c *cli.Context) (*config, error) {
	cfg := &config{path: absPath(c.String(flagConfig)), fixed: map[string]bool{}, start: c}
	for _, f := range c.App.Flags {
		for _, name := range f.Names() {
			if c.IsSet(name) {
				cfg.fixed[f.Names()[0]] = true
			}
		}
	}
	if cfg.path == "" {
		return cfg, nil
	}
	entries, err := readConfigFile(cfg.path)
	errs := []error{err}
	for _, e := range entries {
		if cfg.fixed[e.name] {
			continue
		}
		if err := c.Set(e.name, e.value); err != nil {
			errs = append(errs, cfg.setError(e, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// reload reads the configuration file again and returns the settings to
// apply: the reloadable ones from the file (or their defaults, if a line
// was removed), unless fixed on the command line or in the environment.
// Changed settings that cannot apply live are logged. A file with an error
// changes nothing.
func (cfg *config) reload(log *slog.Logger) (parent.Settings, slog.Level, error) {
	if cfg.path == "" {
		return settingsOf(cfg.start), levelOf(cfg.start), nil
	}
	entries, err := readConfigFile(cfg.path)
	errs := []error{err}
	// A fresh flag set holds the defaults (and the environment's values);
	// the file goes on top, then what the command line fixed.
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	for _, f := range serveFlags() {
		if err := f.Apply(fs); err != nil {
			return parent.Settings{}, 0, err
		}
	}
	for _, e := range entries {
		if cfg.fixed[e.name] {
			continue
		}
		if err := fs.Set(e.name, e.value); err != nil {
			errs = append(errs, cfg.setError(e, err))
		}
	}
	for _, name := range reloadable {
		if cfg.fixed[name] {
			_ = fs.Set(name, fmt.Sprint(cfg.start.Value(name)))
		}
	}
	next := cli.NewContext(cfg.start.App, fs, nil)
	if err := checkFlags(next); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, fmt.Errorf("%w: %s: %s", errConfig, cfg.path, line))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return parent.Settings{}, 0, err
	}
	live := map[string]bool{}
	for _, name := range reloadable {
		live[name] = true
	}
	for _, f := range serveFlags() {
		name := f.Names()[0]
		if live[name] || cfg.fixed[name] || name == flagConfig {
			continue
		}
		if was, now := cfg.start.Value(name), next.Value(name); !reflect.DeepEqual(was, now) {
			log.Warn("setting changed in the config file; it takes effect when the broker is restarted",
				"setting", name, "running", showValue(was), "file", showValue(now))
		}
	}
	return settingsOf(next), levelOf(next), nil
}

// settingsOf returns the live-reloadable settings in c.
func settingsOf(c *cli.Context) parent.Settings {
	return parent.Settings{Limits: limitsOf(c), ChildLogLevel: c.String(flagLogLevel)}
}

// limitsOf returns the admission limits in c.
func limitsOf(c *cli.Context) parent.Limits {
	return parent.Limits{
		MaxClients:      c.Int(flagMaxClients),
		MaxClientsPerIP: c.Int(flagMaxClientsPerIP),
		AcceptRate:      c.Float64(flagAcceptRate),
		AcceptBurst:     c.Int(flagAcceptBurst),
	}
}

// levelOf returns the log level in c (validated by checkFlags).
func levelOf(c *cli.Context) slog.Level {
	l, _ := logging.ParseLevel(c.String(flagLogLevel))
	return l
}

// showValue formats a flag value for a log line.
func showValue(v any) string {
	switch s := v.(type) {
	case *cli.StringSlice:
		return strings.Join(s.Value(), ",")
	case cli.StringSlice:
		return strings.Join(s.Value(), ",")
	}
	return fmt.Sprint(v)
}
