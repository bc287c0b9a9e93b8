package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/internal/logging"
	"github.com/stomp-broker/stomp-broker/internal/userfile"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/parent"
	"github.com/stomp-broker/stomp-broker/semaphore"
	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/systemd"
)

// Environment variables between a `--daemonize` launcher and its daemon.
const (
	// envDaemonNotifyFD names the fd of the pipe the daemon reports on:
	// "READY <addresses>" once listening, or "ERROR <text>".
	envDaemonNotifyFD = "STOMP_BROKER_DAEMON_NOTIFY_FD"
)

// usageError is a CLI error that names the flag at fault.
func usageError(flag, format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("--%s: %s", flag, fmt.Sprintf(format, args...)), 2)
}

// checkFlags validates what urfave/cli cannot. The error names every
// flag at fault, one per line.
func checkFlags(c *cli.Context) error {
	var problems []string
	bad := func(flag, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if _, ok := logging.ParseLevel(c.String(flagLogLevel)); !ok {
		bad(flagLogLevel, "unknown level %q (want debug, info, warn or error)", c.String(flagLogLevel))
	}
	switch c.String(flagIPCNamespace) {
	case "auto", "on", "off":
	default:
		bad(flagIPCNamespace, "unknown mode %q (want auto, on or off)", c.String(flagIPCNamespace))
	}
	for _, f := range []string{flagMaxFrameSize, flagMaxHeaders, flagMaxHeaderLine, flagOutboxLimit, flagPrefetch, flagSlots} {
		if c.Int(f) <= 0 {
			bad(f, "must be positive, got %d", c.Int(f))
		}
	}
	if c.Int(flagSlots) > 30000 {
		bad(flagSlots, "at most 30000 (the kernel's SEMMSL), got %d", c.Int(flagSlots))
	}
	for _, f := range []string{flagMaxClients, flagMaxSubscriptions, flagMaxClientsPerIP, flagAcceptBurst, flagSpareChildren, flagMaxSpares} {
		if c.Int(f) < 0 {
			bad(f, "must not be negative, got %d", c.Int(f))
		}
	}
	if r := c.Float64(flagAcceptRate); r < 0 || r != r {
		bad(flagAcceptRate, "must not be negative, got %v", r)
	}
	if c.Int64(flagMaxQueueMemory) <= 0 {
		bad(flagMaxQueueMemory, "must be positive")
	}
	if c.Duration(flagSpareIdle) <= 0 {
		bad(flagSpareIdle, "must be positive")
	}
	if c.Duration(flagConnectTimeout) <= 0 {
		bad(flagConnectTimeout, "must be positive")
	}
	if c.Duration(flagHeartBeat) < 0 {
		bad(flagHeartBeat, "must not be negative")
	}
	if c.Duration(flagHeartBeatMin) < 0 {
		bad(flagHeartBeatMin, "must not be negative")
	}
	if u := c.String(flagUsers); u != "" {
		if f, err := userfile.Read(u); err != nil {
			bad(flagUsers, "%v", err)
		} else {
			for _, p := range f.Problems {
				bad(flagUsers, "%v", p)
			}
		}
	}
	switch cert, key := c.String(flagTLSCert) != "", c.String(flagTLSKey) != ""; {
	case cert && !key:
		bad(flagTLSKey, "missing: --%s needs it", flagTLSCert)
	case key && !cert:
		bad(flagTLSCert, "missing: --%s needs it", flagTLSKey)
	case !cert && len(c.StringSlice(flagTLSListen)) > 0:
		bad(flagTLSListen, "needs --%s and --%s", flagTLSCert, flagTLSKey)
	}
	if addr := c.String(flagConsoleListen); addr != "" && c.String(flagUsers) == "" && !isLoopback(addr) {
		bad(flagConsoleListen, "%q is not a loopback address: without --%s anyone who can reach it would see every client; listen on 127.0.0.1 or [::1], or give --%s (a login is then asked for)", addr, flagUsers, flagUsers)
	}
	if c.Args().Len() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q (see stomp-broker --help)", c.Args().First()))
	}
	if len(problems) > 0 {
		return cli.Exit(strings.Join(problems, "\n"), 2)
	}
	return nil
}

// serve is the default action: run the broker until SIGTERM or SIGINT.
func serve(c *cli.Context) (err error) {
	conf, err := loadConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if err := checkFlags(c); err != nil {
		return err
	}
	_, isDaemon := os.LookupEnv(envDaemonNotifyFD)
	if c.Bool(flagDaemonize) && !isDaemon {
		return daemonize(c)
	}

	// Private IPC namespace first (it re-executes this same process), so
	// the semaphore set and every child live in it and vanish with us.
	// The --daemonize pipe is adopted only afterwards: adopting it makes
	// it close-on-exec, and the re-exec would close it.
	nsMode := c.String(flagIPCNamespace)
	var nsErr error
	if nsMode != "off" && !semaphore.InPrivateIPCNamespace() {
		nsErr = semaphore.EnterPrivateIPCNamespace("1") // returns only on failure
	}
	report := newDaemonReport()
	if nsErr != nil && nsMode == "on" {
		report.fail(nsErr)
		return fmt.Errorf("--%s=on: %w", flagIPCNamespace, nsErr)
	}

	level := new(slog.LevelVar)
	level.Set(levelOf(c))
	log, logOut, closeLog, err := openLog(c, level)
	if err != nil {
		report.fail(err)
		return err
	}
	defer closeLog()
	log.Info("broker starting", "pid", os.Getpid(), "version", version)
	rt := parentRuntimeFor(os.Getenv, c.Int64(flagMaxQueueMemory))
	rt.apply()
	log.Debug("parent runtime", "settings", rt.String())
	if c.String(flagLogFile) != "" {
		// The exit line for an error: a clean stop logs "broker stopped".
		defer func() {
			if err != nil {
				log.Error("broker exiting on an error", "err", err)
			}
		}()
	}
	if nsErr != nil {
		log.Warn("no private IPC namespace; relying on the semaphore refcount and the start-up sweep", "err", nsErr)
	}

	// The pidfile comes before any socket, so a second broker started by
	// mistake is refused before it can disturb the first. It is removed on
	// every return (it still names us: it is locked), never on a panic.
	pf, err := lockPidfile(c.String(flagPidfile))
	if err != nil {
		report.fail(err)
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			log.Error("broker panicked; leaving the pidfile", "panic", r)
			panic(r) // the runtime prints it with the stack to stderr and exits 2
		}
		pf.release()
	}()

	// Take what systemd handed us before any child can inherit it.
	notifier := systemd.NewNotifierFromEnv()
	activated, err := systemd.Listeners()
	if err != nil {
		report.fail(err)
		return fmt.Errorf("socket activation: %w", err)
	}
	systemd.ScrubEnv()

	ls, err := openListeners(c, log, activated)
	if err != nil {
		report.fail(err)
		return err
	}
	defer ls.closeAll() // a no-op once the broker has closed them

	recordPath := ""
	if !semaphore.InPrivateIPCNamespace() {
		recordPath = filepath.Join(runtimeDir(c), "stomp-broker-"+portTag(ls.plainAndTLS())+".ipc")
		if res, err := semaphore.Sweep(recordPath); err != nil {
			log.Warn("sweeping a crashed broker's semaphore set failed", "record", recordPath, "err", err)
		} else if res.Removed {
			log.Warn("removed the semaphore set of a broker that died", "semid", res.SemID, "pid", res.ParentPID, "reason", res.Reason)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg := parent.Config{
		Listeners:    ls.plain,
		TLSListeners: ls.tls,
		WSListeners:  ls.ws,
		WSSListeners: ls.wss,
		Child: ipc.ChildConfig{
			Limits: stompwire.Limits{
				MaxHeaderLines:     c.Int(flagMaxHeaders),
				MaxHeaderLineBytes: c.Int(flagMaxHeaderLine),
				MaxBodyBytes:       c.Int(flagMaxFrameSize),
			},
			ConnectTimeout:   c.Duration(flagConnectTimeout),
			HeartBeat:        c.Duration(flagHeartBeat),
			HeartBeatMin:     c.Duration(flagHeartBeatMin),
			MaxSubscriptions: c.Int(flagMaxSubscriptions),
			DefaultPrefetch:  c.Int(flagPrefetch),
			UsersFile:        absPath(c.String(flagUsers)),
			LogLevel:         c.String(flagLogLevel),
			ServerName:       "stomp-broker/" + version,
			WSAllowedOrigins: c.StringSlice(flagWSAllowedOrigins),
		},
		TLSCertFile:      absPath(c.String(flagTLSCert)),
		TLSKeyFile:       absPath(c.String(flagTLSKey)),
		TLSConfig:        ls.tlsConfig,
		ControlListener:  ls.control,
		MetricsListener:  ls.metrics,
		Slots:            c.Int(flagSlots),
		OutboxLimit:      c.Int(flagOutboxLimit),
		Limits:           limitsOf(c),
		MaxQueueBytes:    c.Int64(flagMaxQueueMemory),
		ShutdownTimeout:  c.Duration(flagShutdownTimeout),
		Log:              log,
		ChildStderr:      logOut,
		Notifier:         multiNotifier{notifier, report},
		WatchdogInterval: notifier.WatchdogInterval(),
		Trace:            c.Bool(flagTrace),
		SpareChildren:    c.Int(flagSpareChildren),
		MaxSpareChildren: c.Int(flagMaxSpares),
		SpareIdleTimeout: c.Duration(flagSpareIdle),
		SemaphoreCreated: func(id int) {
			if recordPath != "" {
				if err := semaphore.WriteRecord(recordPath, id); err != nil {
					log.Warn("cannot record the semaphore set for crash clean-up", "record", recordPath, "err", err)
				}
			}
		},
	}
	if err := applyStoreFlags(c, log, &cfg); err != nil {
		report.fail(err)
		return err
	}
	b, err := parent.New(cfg)
	if err != nil {
		report.fail(err)
		return err
	}
	stopConsole, err := startConsole(c, b, log)
	if err != nil {
		report.fail(err)
		return err
	}
	defer stopConsole()
	stopReloads := handleReloads(ctx, b, conf, cfg.Child.UsersFile, notifier, level, log)
	defer stopReloads()
	err = b.Serve(ctx)
	if recordPath != "" {
		os.Remove(recordPath)
	}
	if err != nil {
		report.fail(err)
		return err
	}
	log.Info("broker stopped")
	return nil
}

// handleReloads applies SIGHUP: it tells systemd RELOADING=1, reads the
// configuration file again, applies the parent's log level and hands the
// rest to the broker, then tells systemd READY=1, which it sends even if
// the file was bad (the old settings stay; the error is logged), so the
// service never hangs in "reloading". The returned function stops it.
//
// The users file (children read it at every CONNECT) is checked again
// too, and its problems are logged.
func handleReloads(ctx context.Context, b *parent.Broker, conf *config, usersFile string, n *systemd.Notifier, level *slog.LevelVar, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
			case <-done:
				return
			}
			if err := n.Reloading(); err != nil {
				log.Warn("reload notification failed", "err", err)
			}
			if usersFile != "" {
				if f, err := userfile.Read(usersFile); err != nil {
					log.Error("cannot read the users file", "err", err)
				} else if err := f.Err(); err != nil {
					log.Error("users file has errors; the logins on those lines are refused", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
				}
			}
			settings, lvl, err := conf.reload(log)
			if err != nil {
				// Every problem, not just the first, on one line.
				log.Error("reload failed; keeping the running settings", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			} else {
				level.Set(lvl)
				if err := b.Reload(ctx, settings); err != nil {
					log.Warn("reload not applied", "err", err)
				}
			}
			if err := n.Ready("reloaded"); err != nil {
				log.Warn("readiness notification failed", "err", err)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// openLog returns the logger (at level), the file children should log to,
// and a closer.
func openLog(c *cli.Context, level *slog.LevelVar) (*slog.Logger, *os.File, func(), error) {
	out := os.Stderr
	closeFn := func() {}
	if path := c.String(flagLogFile); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, nil, usageError(flagLogFile, "%v", err)
		}
		out = f
		closeFn = func() { f.Close() }
	}
	return logging.NewLeveled(out, level), out, closeFn, nil
}

func runtimeDir(c *cli.Context) string {
	if d := c.String(flagRuntimeDir); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// portTag names the crash record after the listening ports, so brokers on
// different ports do not sweep each other's sets.
func portTag(ls []net.Listener) string {
	var parts []string
	for _, l := range ls {
		a := l.Addr().String()
		if i := strings.LastIndexByte(a, ':'); i >= 0 {
			a = a[i+1:]
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, "-")
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// multiNotifier fans life-cycle events out to systemd and to a
// --daemonize launcher.
type multiNotifier struct {
	sd     *systemd.Notifier
	daemon *daemonReport
}

func (m multiNotifier) Ready(status string) error {
	m.daemon.ready(status)
	return m.sd.Ready(status)
}

func (m multiNotifier) Stopping() error { return m.sd.Stopping() }

func (m multiNotifier) Watchdog() error { return m.sd.Watchdog() }

// daemonReport is the daemon's side of the --daemonize pipe; a no-op when
// the broker was not started by a launcher.
type daemonReport struct{ w *os.File }

func newDaemonReport() *daemonReport {
	fd, err := strconv.Atoi(os.Getenv(envDaemonNotifyFD))
	if err != nil || fd < 3 {
		return &daemonReport{}
	}
	os.Unsetenv(envDaemonNotifyFD)
	syscall.CloseOnExec(fd)
	return &daemonReport{w: os.NewFile(uintptr(fd), "daemon-notify")}
}

func (d *daemonReport) ready(status string) {
	if d.w != nil {
		fmt.Fprintf(d.w, "READY %s\n", status)
		d.w.Close()
		d.w = nil
	}
}

func (d *daemonReport) fail(err error) {
	if d.w != nil && err != nil {
		fmt.Fprintf(d.w, "ERROR %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		d.w.Close()
		d.w = nil
	}
}

// daemonize starts the broker again in the background, detached from the
// terminal (new session, stdin on /dev/null, stdout and stderr on
// --log-file or else /dev/null, so whatever the Go runtime prints when
// the daemon dies lands in its log), and returns once it reports that it
// is listening, or with its start-up error.
func daemonize(c *cli.Context) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	defer devnull.Close()
	out := devnull
	if path := c.String(flagLogFile); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return usageError(flagLogFile, "%v", err)
		}
		defer f.Close()
		out = f
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	attr := &os.ProcAttr{
		Env:   append(os.Environ(), envDaemonNotifyFD+"=3"),
		Files: []*os.File{devnull, out, out, w},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	proc, err := os.StartProcess(exe, os.Args, attr)
	w.Close()
	if err != nil {
		return fmt.Errorf("daemonize: start: %w", err)
	}
	pid := proc.Pid
	proc.Release()

	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		done <- result{strings.TrimSpace(line), err}
	}()
	select {
	case res := <-done:
		switch {
		case strings.HasPrefix(res.line, "READY "):
			fmt.Printf("stomp-broker: running in the background, pid %d, %s\n", pid, strings.TrimPrefix(res.line, "READY "))
			return nil
		case strings.HasPrefix(res.line, "ERROR "):
			return cli.Exit(strings.TrimPrefix(res.line, "ERROR "), 1)
		case errors.Is(res.err, io.EOF):
			return cli.Exit("stomp-broker: the background broker exited before it was ready (see --log-file)", 1)
		default:
			return cli.Exit(fmt.Sprintf("stomp-broker: unexpected report from the background broker: %q", res.line), 1)
		}
	case <-time.After(30 * time.Second):
		return cli.Exit(fmt.Sprintf("stomp-broker: the background broker (pid %d) did not report ready within 30s", pid), 1)
	}
}

// ipcCleanCommand removes the semaphore set of a broker that died without
// cleaning up (for ExecStopPost= or by hand).
func ipcCleanCommand() *cli.Command {
	return &cli.Command{
		Name:  "ipc-clean",
		Usage: "remove semaphore sets left by a broker that died (run from ExecStopPost= or by hand)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagRuntimeDir, EnvVars: []string{"STOMP_BROKER_RUNTIME_DIR", "RUNTIME_DIRECTORY"}, Usage: "`DIR` holding the brokers' records"},
		},
		Action: func(c *cli.Context) error {
			matches, _ := filepath.Glob(filepath.Join(runtimeDir(c), "stomp-broker-*.ipc"))
			if len(matches) == 0 {
				fmt.Println("no broker records found in", runtimeDir(c))
				return nil
			}
			for _, m := range matches {
				res, err := semaphore.Sweep(m)
				switch {
				case err != nil:
					fmt.Printf("%s: %v\n", m, err)
				case res.Removed:
					fmt.Printf("%s: removed semaphore set %d of dead broker pid %d (%s)\n", m, res.SemID, res.ParentPID, res.Reason)
				default:
					fmt.Printf("%s: broker pid %d is alive; left alone\n", m, res.ParentPID)
				}
			}
			return nil
		},
	}
}
