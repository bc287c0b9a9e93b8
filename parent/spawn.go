package parent

import (
	"fmt"
	"net"
	"os"
	"os/exec"
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
func (b *Broker) spawn(conn net.Conn, tlsClient bool) (*childProc, error) {
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
	parentEnd, childEnd, err := ipc.Socketpair()
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	defer childEnd.Close()

	addr := conn.RemoteAddr().String()
	cfg := b.cfg.Child
	cfg.ClientAddr = addr
	b.liveMu.Lock()
	cfg.LogLevel = b.childLogLevel
	b.liveMu.Unlock()
	if tlsClient {
		cfg.TLSCertFile, cfg.TLSKeyFile = b.cfg.TLSCertFile, b.cfg.TLSKeyFile
	}
	cmd := exec.Command(SelfExe, ipc.ChildCommand)
	// ps shows Args, so an operator sees which client each process serves.
	cmd.Args[0] = "stomp-broker: client " + addr
	// An allow-list, never os.Environ(): nothing systemd handed the parent
	// (LISTEN_FDS, NOTIFY_SOCKET, ...) may leak into a child.
	cmd.Env = []string{
		ipc.EnvRole + "=" + ipc.ProtocolVersion,
		ipc.EnvConfig + "=" + cfg.Encode(),
		"GOMAXPROCS=1", // a child serves one client; one P saves a thread
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		cmd.Env = append(cmd.Env, "TZ="+tz)
	}
	cmd.Env = append(cmd.Env, profileEnv()...)
	cmd.ExtraFiles = []*os.File{clientFile, childEnd} // fd 3, fd 4
	cmd.Stderr = b.cfg.ChildStderr
	// Children stay in the parent's process group, but a terminal's ^C
	// reaches them too; they ignore SIGINT and wait for the parent.
	if err := cmd.Start(); err != nil {
		parentEnd.Close()
		return nil, fmt.Errorf("spawn: start child: %w", err)
	}
	parentEnd.MaxRecord = b.maxRecord()
	return &childProc{
		pid:     cmd.Process.Pid,
		addr:    addr,
		tls:     tlsClient,
		started: time.Now(),
		cmd:     cmd,
		conn:    parentEnd,
		out:     newOutbox(b.cfg.OutboxLimit),
		subs:    map[string]*subscription{},
	}, nil
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
