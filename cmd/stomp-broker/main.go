// Command stomp-broker is a STOMP 1.0/1.1/1.2 message broker built the
// classic pre-fork way: one parent process listens, and every client is
// served by a child process of its own. See README.md and
// docs/ARCHITECTURE.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/child"
	"github.com/stomp-broker/stomp-broker/ipc"
)

// version is the broker's version, sent in CONNECTED's server header.
const version = "0.1.0"

func main() {
	// A child is started by the parent as `stomp-broker child` (see
	// ipc.StartedAsChild); route it before the CLI parses anything, so a
	// child cannot be confused by flags or by its unusual argv[0]
	// ("stomp-broker: client ADDR").
	if ipc.StartedAsChild() {
		os.Exit(child.Run())
	}
	setProcessName()
	os.Exit(exitStatus(os.Stderr, newApp().Run(os.Args)))
}

// exitStatus prints err to w, each line prefixed once with the program's name, and
// returns the exit status: a cli.ExitCoder's code, else 1 (0 for nil).
// Every error ends here (the app's ExitErrHandler does nothing), so each
// is printed exactly once.
func exitStatus(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "stomp-broker") {
			line = "stomp-broker: " + line
		}
		fmt.Fprintln(w, line)
	}
	return code
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "stomp-broker",
		Usage:   "a STOMP message broker with one process per client",
		Version: version,
		Description: "Serves STOMP 1.0, 1.1 and 1.2 on --listen (default 127.0.0.1:61613).\n" +
			"/topic/NAME destinations broadcast to every subscriber; /queue/NAME destinations\n" +
			"give each message to exactly one consumer, with acknowledgements and redelivery.\n" +
			"Every client is served by its own process (see `ps`): `kill PID` disconnects that\n" +
			"one client. Run with no arguments for a broker on the defaults.",
		Flags:  serveFlags(),
		Action: serve,
		Commands: []*cli.Command{
			{
				Name:   ipc.ChildCommand,
				Hidden: true,
				Usage:  "internal: serve one client (started by the parent process)",
				Action: func(*cli.Context) error { os.Exit(child.Run()); return nil },
			},
			ipcCleanCommand(),
			clientsCommand(),
			queuesCommand(),
			passwdCommand(),
		},
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // main prints and exits
	}
	app.OnUsageError = onUsageError(app.Name, app.Flags)
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError(app.Name+" "+cmd.Name, cmd.Flags)
	}
	return app
}
