package main

import (
	"fmt"
	"regexp"
	"sync"

	"github.com/urfave/cli/v2"
)

// usageErrors are the errors of Go's flag package and of urfave/cli, which
// onUsageError turns into messages that name the flag the way it is typed
// and say what it wants. They are compiled on the first usage error, not
// at package initialisation: every child is an exec of this binary and
// would otherwise compile them for nothing.
var usageErrors = sync.OnceValue(func() (rx struct{ badValue, badEnv, unknown, noValue *regexp.Regexp }) {
	rx.badValue = regexp.MustCompile(`^invalid value "(.*)" for flag -+([\w-]+): `)
	rx.badEnv = regexp.MustCompile(`^could not parse "(.*)" as \S+ value from env var "(\w+)" for flag ([\w-]+): `)
	rx.unknown = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	rx.noValue = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	return rx
})

// onUsageError returns an OnUsageError for the command prog ("stomp-broker"
// or "stomp-broker passwd") with flags: the error alone, naming the flag
// and the form it wants, then "see PROG --help" instead of the whole help
// text. Exit status 2.
func onUsageError(prog string, flags []cli.Flag) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		rx := usageErrors()
		if m := rx.badValue.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("--%s: invalid value %q: want %s", m[2], m[1], valueForm(flags, m[2]))
		} else if m := rx.badEnv.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("%s (--%s): invalid value %q: want %s", m[2], m[3], m[1], valueForm(flags, m[3]))
		} else if m := rx.unknown.FindStringSubmatch(msg); m != nil {
			msg = "unknown flag --" + m[1]
		} else if m := rx.noValue.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("--%s: needs a value (%s)", m[1], valueForm(flags, m[1]))
		}
		return cli.Exit(fmt.Sprintf("%s: %s (see %s --help)", prog, msg, prog), 2)
	}
}

// valueForm says what the flag name in flags takes.
func valueForm(flags []cli.Flag, name string) string {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			switch f.(type) {
			case *cli.DurationFlag:
				return "a duration with a unit, such as 5s, 500ms or 2m"
			case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
				return "a whole number"
			case *cli.Float64Flag:
				return "a number"
			case *cli.BoolFlag:
				return "true or false"
			}
		}
	}
	return "a value"
}

// isFlag reports whether flags has one called name.
func isFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}
