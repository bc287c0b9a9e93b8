// Package logging builds the broker's loggers: log/slog text lines on
// stderr, one line per event, which journald attributes to the writing
// process (so a child's lines are already per client).
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// ParseLevel maps "debug", "info", "warn" and "error" to a slog.Level; ok
// is false for anything else.
func ParseLevel(s string) (level slog.Level, ok bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info", "":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// New returns a text logger writing to w at the named level (info when the
// name is unknown; the CLI validates names before this is called).
func New(w io.Writer, level string) *slog.Logger {
	lv, _ := ParseLevel(level)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}

// NewLeveled is New with a level variable the caller can change later
// (SIGHUP reload).
func NewLeveled(w io.Writer, level *slog.LevelVar) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
