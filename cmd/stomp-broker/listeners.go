package main

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/systemd"
)

// Names a socket unit gives its sockets (FileDescriptorName=) to say what
// each one is for. Sockets are chosen by name, never by position.
const (
	// fdNameSTOMP is a plain STOMP client socket.
	fdNameSTOMP = "stomp"
	// fdNameSTOMPTLS is a STOMP-over-TLS client socket (needs --tls-cert
	// and --tls-key).
	fdNameSTOMPTLS = "stomp-tls"
	// fdNameWS is a STOMP-over-WebSocket client socket.
	fdNameWS = "stomp-ws"
	// fdNameWSS is a STOMP-over-WebSocket-over-TLS client socket (needs
	// --tls-cert and --tls-key).
	fdNameWSS = "stomp-wss"
	// fdNameMetrics is the Prometheus metrics socket.
	fdNameMetrics = "metrics"
)

// controlSocketOff disables the control socket (--control-socket off).
const controlSocketOff = "off"

// listeners are every socket the broker serves.
type listeners struct {
	plain, tls []net.Listener
	ws, wss    []net.Listener // STOMP over WebSocket, over WebSocket over TLS
	tlsConfig  *tls.Config    // for the parent's TLS refusals; nil without TLS
	control    net.Listener   // nil with --control-socket off
	metrics    net.Listener   // nil without --metrics-listen or a "metrics" socket
}

// plainAndTLS returns the client listeners (of every transport).
func (ls *listeners) plainAndTLS() []net.Listener {
	var out []net.Listener
	for _, set := range [][]net.Listener{ls.plain, ls.tls, ls.ws, ls.wss} {
		out = append(out, set...)
	}
	return out
}

// closeAll closes every listener (closing twice is harmless).
func (ls *listeners) closeAll() {
	for _, l := range ls.plainAndTLS() {
		l.Close()
	}
	for _, l := range []net.Listener{ls.control, ls.metrics} {
		if l != nil {
			l.Close()
		}
	}
}

// openListeners opens the client, metrics and control sockets.
//
// Socket activation: when systemd passed sockets and --listen was not
// given, the sockets named "stomp" serve plain clients, "stomp-tls" TLS
// clients (unless --tls-listen is given), "stomp-ws" and "stomp-wss"
// WebSocket and WebSocket-over-TLS clients (unless --ws-listen or
// --wss-listen is given) and "metrics" the metrics (unless
// --metrics-listen is given). Sockets with none of these names are all
// plain client sockets if no socket has a known name (a socket unit
// without FileDescriptorName=), and are closed otherwise. Without
// activation, or with --listen, the broker binds --listen itself.
func openListeners(c *cli.Context, log *slog.Logger, activated []systemd.NamedListener) (_ *listeners, err error) {
	ls := &listeners{}
	defer func() {
		if err != nil {
			ls.closeAll() // whatever was opened before the failure
		}
	}()
	known := false
	for _, nl := range activated {
		switch nl.Name {
		case fdNameSTOMP, fdNameSTOMPTLS, fdNameWS, fdNameWSS, fdNameMetrics:
			known = true
		}
	}
	useActivated := len(activated) > 0 && !c.IsSet(flagListen)
	for _, nl := range activated {
		var to *[]net.Listener
		switch {
		case !useActivated:
		case nl.Name == fdNameSTOMP || !known:
			to = &ls.plain
		case nl.Name == fdNameSTOMPTLS && !c.IsSet(flagTLSListen):
			to = &ls.tls
		case nl.Name == fdNameWS && !c.IsSet(flagWSListen):
			to = &ls.ws
		case nl.Name == fdNameWSS && !c.IsSet(flagWSSListen):
			to = &ls.wss
		case nl.Name == fdNameMetrics && c.String(flagMetricsListen) == "" && ls.metrics == nil:
			ls.metrics = nl.Listener
			log.Info("serving metrics on a socket passed by systemd", "name", nl.Name, "addr", nl.Listener.Addr().String())
			continue
		}
		if to == nil {
			log.Warn("closing a socket passed by systemd that the broker does not use", "name", nl.Name, "addr", nl.Listener.Addr().String())
			nl.Listener.Close()
			continue
		}
		*to = append(*to, nl.Listener)
	}
	if len(ls.tls) > 0 && c.String(flagTLSCert) == "" {
		return nil, fmt.Errorf("socket activation: systemd passed a %q socket, which needs --%s and --%s", fdNameSTOMPTLS, flagTLSCert, flagTLSKey)
	}
	if len(ls.wss) > 0 && c.String(flagTLSCert) == "" {
		return nil, fmt.Errorf("socket activation: systemd passed a %q socket, which needs --%s and --%s", fdNameWSS, flagTLSCert, flagTLSKey)
	}
	if !useActivated {
		for _, addr := range c.StringSlice(flagListen) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, usageError(flagListen, "%v", err)
			}
			ls.plain = append(ls.plain, l)
		}
	}
	for _, addr := range c.StringSlice(flagTLSListen) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, usageError(flagTLSListen, "%v", err)
		}
		ls.tls = append(ls.tls, l)
	}
	for _, f := range []struct {
		flag string
		to   *[]net.Listener
	}{{flagWSListen, &ls.ws}, {flagWSSListen, &ls.wss}} {
		for _, addr := range c.StringSlice(f.flag) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, usageError(f.flag, "%v", err)
			}
			*f.to = append(*f.to, l)
		}
	}
	if len(ls.wss) > 0 && c.String(flagTLSCert) == "" {
		return nil, usageError(flagWSSListen, "needs --%s and --%s", flagTLSCert, flagTLSKey)
	}
	if c.String(flagTLSCert) != "" {
		if len(ls.tls)+len(ls.wss) == 0 {
			return nil, cli.Exit(fmt.Sprintf("--%s and --%s are set but there is no TLS client socket to use them on: add --%s ADDR (or a systemd socket named %q)",
				flagTLSCert, flagTLSKey, flagTLSListen, fdNameSTOMPTLS), 2)
		}
		// Load once here so a bad certificate fails the start, not every
		// client; each child loads the files again for its own handshake.
		cert, err := loadKeyPair(c.String(flagTLSCert), c.String(flagTLSKey))
		if err != nil {
			return nil, err
		}
		ls.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if len(ls.plain)+len(ls.tls)+len(ls.ws)+len(ls.wss) == 0 {
		return nil, usageError(flagListen, "no client socket to serve on")
	}
	if addr := c.String(flagMetricsListen); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, usageError(flagMetricsListen, "%v", err)
		}
		ls.metrics = l
	}
	if path := controlSocketPath(c, portTag(ls.plainAndTLS())); path != "" {
		l, err := listenControl(path)
		if err != nil {
			return nil, usageError(flagControlSocket, "%v", err)
		}
		ls.control = l
	}
	return ls, nil
}

// controlSocketPath is where the control socket lives: --control-socket;
// else stomp-broker.sock in --runtime-dir ($RUNTIME_DIRECTORY under
// systemd, a directory of the service's own); else
// stomp-broker-PORT.sock in $XDG_RUNTIME_DIR or /tmp, named after the
// client port(s) so brokers on different ports do not collide. "" means
// no control socket.
func controlSocketPath(c *cli.Context, ports string) string {
	switch p := c.String(flagControlSocket); p {
	case controlSocketOff:
		return ""
	case "":
	default:
		return p
	}
	if d := c.String(flagRuntimeDir); d != "" {
		return filepath.Join(d, "stomp-broker.sock")
	}
	d := os.Getenv("XDG_RUNTIME_DIR")
	if d == "" {
		d = os.TempDir()
	}
	return filepath.Join(d, "stomp-broker-"+ports+".sock")
}

// listenControl creates the control socket with mode 0600. The umask is
// tightened around bind, so the socket is never reachable by others, not
// even for the moment before a chmod (start-up is single-threaded here, so
// no other file is created under this umask). A socket file left by a
// broker that died is replaced; one a live broker answers on is not.
func listenControl(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("%s: another broker is using this control socket (choose another --%s)", path, flagControlSocket)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale control socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// portOf returns the port of a host:port address, or the address itself.
func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// loadKeyPair loads the --tls-cert and --tls-key files. Its errors name
// the flag whose file is at fault (both, one per line, when the two were
// swapped).
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	var problems []string
	bad := func(flag, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		bad(flagTLSCert, "%v", err)
	} else if hasCert, hasKey := pemKinds(certPEM); !hasCert && hasKey {
		bad(flagTLSCert, "%s holds a private key, not a certificate (swapped with --%s?)", certFile, flagTLSKey)
	} else if !hasCert {
		bad(flagTLSCert, "%s holds no PEM certificate", certFile)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		bad(flagTLSKey, "%v", err)
	} else if hasCert, hasKey := pemKinds(keyPEM); !hasKey && hasCert {
		bad(flagTLSKey, "%s holds a certificate, not a private key (swapped with --%s?)", keyFile, flagTLSCert)
	} else if !hasKey {
		bad(flagTLSKey, "%s holds no PEM private key", keyFile)
	}
	if len(problems) > 0 {
		return tls.Certificate{}, cli.Exit(strings.Join(problems, "\n"), 2)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, usageError(flagTLSKey, "%s does not go with the certificate in --%s %s: %v", keyFile, flagTLSCert, certFile, err)
	}
	return cert, nil
}

// pemKinds reports whether data holds a PEM certificate and a PEM private
// key.
func pemKinds(data []byte) (cert, key bool) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return cert, key
		}
		cert = cert || b.Type == "CERTIFICATE"
		key = key || strings.HasSuffix(b.Type, "PRIVATE KEY")
	}
}
