package child

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stomp-broker/stomp-broker/internal/logging"
	"github.com/stomp-broker/stomp-broker/internal/profiling"
	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/semaphore"
	"github.com/stomp-broker/stomp-broker/stompwire"
	"github.com/stomp-broker/stomp-broker/wsstomp"
)

// Run is the whole life of a child process: it checks that it really was
// started by a parent, adopts the client socket (fd 3) and the parent
// socketpair (fd 4), serves the client's STOMP session, and returns the
// process exit status. A spare (ChildConfig.Spare) has no fd 3: it waits on
// fd 4 for the parent's handoff of its client (ipc.Handoff) and renames
// itself from "stomp-broker: spare" to "stomp-broker: client ADDR". It never returns before the client connection is
// closed.
//
// Exit status 2 means the child was started wrongly (by hand, or with the
// wrong descriptors) and touched nothing.
func Run() int {
	cfg, err := ipc.ChildConfigFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stomp-broker child: %v\n", err)
		return 2
	}
	if err := checkInheritedFDs(cfg.Spare); err != nil {
		fmt.Fprintf(os.Stderr, "stomp-broker child: %v\n", err)
		return 2
	}
	if cfg.Spare {
		// comm and the args line say "spare" until a client arrives.
		setComm("stomp-spare")
		setTitle("stomp-broker: spare")
		h, fd, err := ipc.ReceiveHandoff(ipc.FDParent)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0 // the parent stopped (or died) before it needed us
			}
			fmt.Fprintf(os.Stderr, "stomp-broker spare: %v\n", err)
			return 1
		}
		// The client socket replaces the placeholder at fd 3: from here on
		// this process is a child like one started for this client.
		err = unix.Dup3(fd, ipc.FDClient, unix.O_CLOEXEC)
		unix.Close(fd)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stomp-broker spare: client socket to fd %d: %v\n", ipc.FDClient, err)
			return 1
		}
		cfg = h.Apply(cfg)
		title := "stomp-broker: client " + cfg.ClientAddr
		if cfg.Transport.IsWebSocket() {
			title += " (" + string(cfg.Transport) + ")"
		}
		setTitle(title)
	}
	// comm shows in ps, top and ss -p; the full args line says which client.
	setComm("stomp-client")

	log := logging.New(os.Stderr, cfg.LogLevel).With("role", "child", "client", cfg.ClientAddr, "transport", string(cfg.Transport.OrTCP()))
	if cfg.Trace && cfg.Spare {
		log.Info("trace", "hop", ipc.HopHandoff, "pid", os.Getpid(), "note", "the spare adopted the client socket")
	}

	clientFile := os.NewFile(ipc.FDClient, "client")
	client, err := net.FileConn(clientFile)
	clientFile.Close()
	if err != nil {
		log.Error("cannot adopt client socket", "err", err)
		return 1
	}
	client = quiet(client)
	if cfg.TLSCertFile != "" && cfg.TLSKeyFile != "" {
		// The handshake runs on the session's first read, under its
		// CONNECT deadline.
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			client.Close()
			log.Error("cannot load the TLS certificate", "err", err)
			return 1
		}
		client = tls.Server(client, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	maxVersion := stompwire.V12
	if cfg.Transport.IsWebSocket() {
		// This process answers the HTTP upgrade itself (after the TLS
		// handshake, for wss), under the CONNECT deadline.
		ws, err := wsstomp.Upgrade(client, wsstomp.Options{AllowedOrigins: cfg.WSAllowedOrigins, Timeout: cfg.ConnectTimeout})
		if err != nil {
			log.Info("WebSocket upgrade failed", "err", err)
			return 0
		}
		if cfg.Trace {
			log.Info("trace", "hop", ipc.HopWSUpgrade, "pid", os.Getpid(), "subprotocol", ws.Subprotocol())
		}
		client, maxVersion = ws, ws.MaxVersion()
	}
	parentFile := os.NewFile(ipc.FDParent, "parent-ipc")
	parent, err := ipc.FileConn(parentFile)
	parentFile.Close()
	if err != nil {
		client.Close()
		log.Error("cannot adopt parent socketpair", "err", err)
		return 1
	}
	parent.MaxRecord = ipc.MaxRecordFor(cfg.Limits)

	var sem *semaphore.Set
	if cfg.Slots > 0 {
		sem, err = semaphore.Join(cfg.SemaphoreID, cfg.Slots)
		if err != nil {
			client.Close()
			parent.Close()
			log.Error("cannot join the broker's semaphore set", "err", err)
			return 1
		}
		defer sem.Leave()
	}

	// SIGTERM is the operator's scalpel: disconnect this one client
	// cleanly. SIGINT and SIGHUP come from a terminal to the whole process
	// group; shutting down is the parent's decision, so ignore them.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
	// The log goes wherever the parent's stderr goes; if that is a pipe
	// whose reader died with the parent, a log write must fail quietly,
	// not kill the child (Go dies of SIGPIPE on fds 1 and 2) before it has
	// told its client why it is closing.
	signal.Ignore(syscall.SIGPIPE)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)

	defer profiling.Start("child")()
	s := newSession(cfg, log, client, parent, sem, term)
	s.maxVersion = maxVersion
	s.run()
	return 0
}

// checkInheritedFDs makes sure fd 3 is a TCP (or unix stream) socket and fd
// 4 a unix SEQPACKET socket before anything touches them. A spare's fd 3
// is a placeholder, a second copy of its socketpair end, until the client
// socket arrives over fd 4.
func checkInheritedFDs(spare bool) error {
	want, what := unix.SOCK_STREAM, "stream"
	if spare {
		want, what = unix.SOCK_SEQPACKET, "SEQPACKET (placeholder)"
	}
	typ, err := unix.GetsockoptInt(ipc.FDClient, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != want {
		return fmt.Errorf("fd %d is not a %s socket (a child must be started by the parent)", ipc.FDClient, what)
	}
	dom, err := unix.GetsockoptInt(ipc.FDParent, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || dom != unix.AF_UNIX {
		return fmt.Errorf("fd %d is not a unix socket (a child must be started by the parent)", ipc.FDParent)
	}
	typ, err = unix.GetsockoptInt(ipc.FDParent, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_SEQPACKET {
		return fmt.Errorf("fd %d is not a SEQPACKET socket (a child must be started by the parent)", ipc.FDParent)
	}
	return nil
}

// setComm sets the name ps, top and ss -p show for the process: the name
// of its main thread (the thread-group leader), whichever thread calls it.
// It writes /proc/self/comm, which names the leader, rather than calling
// prctl(PR_SET_NAME), which names the calling thread: a child then needs no
// runtime.LockOSThread to stay on its main thread until it is named, and
// the Go runtime starts no extra OS thread (its "template thread", which
// the first LockOSThread starts) in every child (README, Performance).
// Naming is cosmetic; a failure is ignored.
func setComm(name string) {
	fd, err := unix.Open("/proc/self/comm", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_, _ = unix.Write(fd, []byte(name))
	_ = unix.Close(fd)
}
