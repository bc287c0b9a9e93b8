package parent

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/stomp-broker/stomp-broker/ipc"
)

// SelfExe is what the parent re-executes for each client. /proc/self/exe
// is the very binary the parent runs, even if the file on disk was replaced
// by an upgrade, so parent and children always speak the same protocol.
const SelfExe = "/proc/self/exe"

// spawn starts a child process for one accepted client connection: it
// hands the child the connection as fd 3 (ipc.FDClient) and one end of a
// fresh socketpair as fd 4 (ipc.FDParent), then closes its own copies of
// both, so only the child holds the client socket: `ss -tnp` shows the
// child's pid, and killing the child closes that client's connection and
// nothing else.
//
// For a client of a TLS listener the child is told where the certificate
// and key are, and does the TLS handshake itself (see Config.TLSListeners).
//
// The caller owns the returned process: it must start its reader and
// writer goroutines and eventually Wait for it.
func (b *Broker) spawn(conn net.Conn, transport ipc.Transport) (*childProc, error) {
	defer conn.Close()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("spawn: %T has no file descriptor", conn)
	}
	clientFile, err := fileOf(sc)
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	defer clientFile.Close()

	addr := conn.RemoteAddr().String()
	cfg := b.cfg.Child
	cfg.ClientAddr = addr
	cfg.LogLevel = b.currentChildLogLevel()
	cfg.Transport = transport
	if transport.UsesTLS() {
		cfg.TLSCertFile, cfg.TLSKeyFile = b.cfg.TLSCertFile, b.cfg.TLSKeyFile
	}
	// ps shows Args, so an operator sees which client each process serves.
	cmd, parentEnd, err := b.startChild(cfg, clientTitle(addr, transport), clientFile)
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	return &childProc{
		pid:       cmd.Process.Pid,
		addr:      addr,
		transport: transport,
		started:   time.Now(),
		cmd:       cmd,
		conn:      parentEnd,
		out:       newOutbox(b.cfg.OutboxLimit),
		subs:      map[string]*subscription{},
	}, nil
}

// startChild re-executes the broker's binary as a child with configuration
// cfg and argv[0] title (what ps shows), client as fd 3 and a fresh
// socketpair's end as fd 4. For a spare client is nil and fd 3 is a second
// copy of the socketpair end, a placeholder the spare replaces with its
// client's socket (so that a Go runtime file cannot take fd 3 meanwhile). It returns the
// started command and the parent's end of the socketpair.
func (b *Broker) startChild(cfg ipc.ChildConfig, title string, client *os.File) (*exec.Cmd, *ipc.Conn, error) {
	parentEnd, childEnd, err := ipc.Socketpair()
	if err != nil {
		return nil, nil, err
	}
	defer childEnd.Close()
	cmd := exec.Command(SelfExe, ipc.ChildCommand)
	cmd.Args[0] = title
	// An allow-list, never os.Environ(): nothing systemd handed the parent
	// (LISTEN_FDS, NOTIFY_SOCKET, ...) may leak into a child. The runtime
	// settings below are also what scripts/bench-compare gives the child
	// whose start it measures: keep the two alike.
	cmd.Env = []string{
		ipc.EnvRole + "=" + ipc.ProtocolVersion,
		ipc.EnvConfig + "=" + cfg.Encode(),
		"GOMAXPROCS=1", // a child serves one client; one P saves a thread
		// No memory-profile sampling: a child writes CPU profiles only,
		// and the first sample (package initialisers allocate enough)
		// dirties the runtime's profile hash table, 4-6 KiB Pss per
		// child (README, Performance).
		"GODEBUG=memprofilerate=0",
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		cmd.Env = append(cmd.Env, "TZ="+tz)
	}
	cmd.Env = append(cmd.Env, profileEnv()...)
	if client == nil {
		client = childEnd
	}
	cmd.ExtraFiles = []*os.File{client, childEnd} // fd 3, fd 4
	cmd.Stderr = b.cfg.ChildStderr
	// Children stay in the parent's process group, but a terminal's ^C
	// reaches them too; they ignore SIGINT and wait for the parent.
	if err := cmd.Start(); err != nil {
		parentEnd.Close()
		return nil, nil, fmt.Errorf("start child: %w", err)
	}
	parentEnd.MaxRecord = b.maxRecord()
	return cmd, parentEnd, nil
}

// clientTitle is a child's argv[0], what ps shows: "stomp-broker: client
// ADDR", with " (ws)" or " (wss)" after it for a WebSocket client (a spare
// writes the same, see child.Run). TCP and TLS clients keep the title they
// always had.
func clientTitle(addr string, t ipc.Transport) string {
	if !t.IsWebSocket() {
		return "stomp-broker: client " + addr
	}
	return "stomp-broker: client " + addr + " (" + string(t) + ")"
}

// spareTitle is a spare's argv[0]: "stomp-broker: spare" padded to
// ipc.TitleRoom bytes, the room the spare later overwrites in place with
// "stomp-broker: client ADDR" (child.setTitle). The spare trims the padding
// off what ps shows as soon as it runs.
func spareTitle() string {
	t := "stomp-broker: spare"
	return t + strings.Repeat(" ", ipc.TitleRoom-len(t))
}

// currentChildLogLevel is the log level of children started now.
func (b *Broker) currentChildLogLevel() string {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	return b.childLogLevel
}

// fileOf returns a dup of a connection's descriptor as an *os.File without
// switching the connection to blocking mode (which os.File.Fd would do).
func fileOf(sc syscall.Conn) (*os.File, error) {
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var dup int
	var dupErr error
	if err := raw.Control(func(fd uintptr) {
		dup, dupErr = syscall.Dup(int(fd))
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dup client socket: %w", dupErr)
	}
	syscall.CloseOnExec(dup)
	return os.NewFile(uintptr(dup), "client"), nil
}
