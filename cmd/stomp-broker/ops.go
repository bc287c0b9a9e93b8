package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/stomp-broker/stomp-broker/control"
)

// controlTimeout bounds one `clients` or `queues` request.
const controlTimeout = 15 * time.Second

// controlFlags locate a running broker's control socket the way serve
// chooses it, so `stomp-broker clients` finds a broker started with the
// same flags (or environment).
func controlFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagControlSocket, EnvVars: env("CONTROL_SOCKET"), Usage: "the broker's control socket `PATH` (default: as the broker chooses it)"},
		&cli.StringFlag{Name: flagRuntimeDir, EnvVars: []string{"STOMP_BROKER_RUNTIME_DIR", "RUNTIME_DIRECTORY"}, Usage: "the broker's runtime `DIR`"},
		&cli.StringSliceFlag{Name: flagListen, Aliases: []string{"l"}, Value: cli.NewStringSlice("127.0.0.1:61613"), EnvVars: env("LISTEN"),
			Usage: "the broker's --listen `ADDR`s, which name the default socket"},
		&cli.BoolFlag{Name: "json", Usage: "print the broker's answer as JSON"},
	}
}

// socketFor returns the control socket path the flags name.
func socketFor(c *cli.Context) (string, error) {
	var ports []string
	for _, a := range c.StringSlice(flagListen) {
		ports = append(ports, portOf(a))
	}
	p := controlSocketPath(c, strings.Join(ports, "-"))
	if p == "" {
		return "", cli.Exit("stomp-broker: --control-socket off: nothing to ask", 2)
	}
	return p, nil
}

// ask sends request to the broker and prints the answer with table, or as
// JSON with --json.
func ask(c *cli.Context, request string, table func(w io.Writer, r *control.Response)) error {
	path, err := socketFor(c)
	if err != nil {
		return err
	}
	resp, err := control.Do(path, request, controlTimeout)
	if err != nil {
		return cli.Exit("stomp-broker: "+err.Error()+" (is the broker running? see --control-socket)", 1)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 8, 2, ' ', 0)
	table(w, resp)
	return w.Flush()
}

// transport is how cl came in, for the clients table (brokers that
// predate Client.Transport set only TLS).
func transport(cl control.Client) string {
	switch {
	case cl.Transport != "":
		return cl.Transport
	case cl.TLS:
		return "tls"
	}
	return "tcp"
}

func clientsCommand() *cli.Command {
	return &cli.Command{
		Name:  "clients",
		Usage: "list the clients of a running broker (over its control socket)",
		Description: "One line per client: the pid of the process serving it (`kill PID` disconnects\n" +
			"that client with an ERROR frame), its address, transport (tcp, tls, ws, wss), login, STOMP version, subscriptions,\n" +
			"messages published (IN) and handed to it (OUT), and bytes waiting in the parent for it.\n" +
			"Spare processes, started and waiting for a client (--spare-children), follow as \"(spare)\".\n" +
			"With a --store postgres:// shared by several brokers, a last line tells whether this broker\n" +
			"is connected to the others through the database or CUT OFF (serving its own clients only).",
		Flags: controlFlags(),
		Action: func(c *cli.Context) error {
			return ask(c, control.RequestClients, func(w io.Writer, r *control.Response) {
				fmt.Fprintln(w, "PID\tADDRESS\tTRANSPORT\tLOGIN\tVERSION\tSUBS\tIN\tOUT\tQUEUED\tCONNECTED")
				for _, cl := range r.Clients {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", cl.PID, cl.Addr, transport(cl), dash(cl.Login), dash(cl.Version),
						cl.Subscriptions, cl.MessagesIn, cl.MessagesOut, cl.BytesQueued, cl.Since.Local().Format(time.DateTime))
				}
				for _, sp := range r.Spares {
					fmt.Fprintf(w, "%d\t(spare)\t-\t-\t-\t0\t0\t0\t0\t%s\n", sp.PID, sp.Since.Local().Format(time.DateTime))
				}
				if cl := r.Cluster; cl != nil {
					state := "connected to the shared database"
					if !cl.Connected {
						state = "CUT OFF from the shared database: serving this broker's clients only"
					}
					fmt.Fprintf(w, "cluster node %s: %s (messages to other brokers %d, from them %d, dropped %d)\n", cl.Node, state, cl.Sent, cl.Received, cl.Dropped)
				}
			})
		},
	}
}

func queuesCommand() *cli.Command {
	return &cli.Command{
		Name:  "queues",
		Usage: "list the queues of a running broker (over its control socket)",
		Description: "One line per queue: messages waiting for a consumer (DEPTH), subscriptions\n" +
			"(CONSUMERS), messages delivered and not yet acknowledged (IN-FLIGHT), persistent\n" +
			"messages in the --store (STORED), and, for a dead-letter queue /queue/DLQ.<name>,\n" +
			"the messages that used up their redeliveries (DEAD-LETTERED).",
		Flags: controlFlags(),
		Action: func(c *cli.Context) error {
			return ask(c, control.RequestQueues, func(w io.Writer, r *control.Response) {
				fmt.Fprintln(w, "QUEUE\tDEPTH\tCONSUMERS\tIN-FLIGHT\tSTORED\tDEAD-LETTERED")
				for _, q := range r.Queues {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\n", q.Name, q.Depth, q.Consumers, q.InFlight, q.Stored, q.DeadLettered)
				}
			})
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// passwdCommand prints a --users line for a login, with the passcode read
// from standard input (so it shows neither in ps nor in the shell history):
// on a terminal it prompts twice without echo, else it reads one line.
func passwdCommand() *cli.Command {
	return &cli.Command{
		Name:      "passwd",
		Usage:     "print a --users file line (login:bcrypt-hash) for LOGIN; the passcode is asked for on the terminal (not shown), or read as one line from standard input",
		ArgsUsage: "LOGIN",
		Description: "Example: stomp-broker passwd alice >> users   (then type the passcode twice)\n" +
			"   or:   printf '%s\\n' \"$PASSCODE\" | stomp-broker passwd alice >> users",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "cost", Value: bcrypt.DefaultCost, Usage: "bcrypt cost (each step doubles the work of every CONNECT)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return cli.Exit("stomp-broker passwd: want exactly one LOGIN", 2)
			}
			login := c.Args().First()
			if login == "" || strings.ContainsAny(login, ": \t\r\n#") {
				return cli.Exit("stomp-broker passwd: a login must be non-empty and hold no ':', '#' or white space", 2)
			}
			var passcode string
			var err error
			if in, ok := c.App.Reader.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
				passcode, err = promptPasscode(in, c.App.ErrWriter, login)
			} else {
				passcode, err = readPasscode(c.App.Reader)
			}
			if err != nil {
				return cli.Exit("stomp-broker passwd: "+err.Error(), 2)
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(passcode), c.Int("cost"))
			if err != nil {
				return cli.Exit("stomp-broker passwd: "+err.Error(), 2)
			}
			fmt.Fprintf(c.App.Writer, "%s:%s\n", login, hash)
			return nil
		},
	}
}

// readPasscode reads the first line of r, without its line ending.
func readPasscode(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the passcode: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", errors.New("empty passcode on standard input")
	case len(line) > 72:
		return "", errors.New("passcode longer than 72 bytes (bcrypt's limit): " + strconv.Itoa(len(line)))
	}
	return line, nil
}

// promptPasscode asks for the passcode on the terminal in, twice, without
// echo; prompts go to w (stderr, so stdout holds only the users line).
func promptPasscode(in *os.File, w io.Writer, login string) (string, error) {
	var got [2]string
	for i, prompt := range []string{"Passcode for " + login + ": ", "Again: "} {
		fmt.Fprint(w, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(w)
		if err != nil {
			return "", fmt.Errorf("reading the passcode: %w", err)
		}
		got[i] = string(b)
	}
	if got[0] != got[1] {
		return "", errors.New("the passcodes differ")
	}
	return readPasscode(strings.NewReader(got[0] + "\n")) // the same checks as for stdin
}
