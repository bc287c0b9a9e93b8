package main

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/urfave/cli/v2"

	"github.com/stomp-broker/stomp-broker/console"
	"github.com/stomp-broker/stomp-broker/parent"
)

// startConsole serves the web console on --console-listen, if given, and
// returns the function that stops it.
func startConsole(c *cli.Context, b *parent.Broker, log *slog.Logger) (stop func(), err error) {
	addr := c.String(flagConsoleListen)
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError(flagConsoleListen, "%v", err)
	}
	srv := console.New(console.Config{Source: b, UsersFile: absPath(c.String(flagUsers)), Log: log})
	srv.Serve(l)
	log.Info("serving the web console", "addr", "http://"+l.Addr().String()+"/", "login_required", c.String(flagUsers) != "")
	return srv.Close, nil
}

// isLoopback reports whether addr (host:port) listens on loopback only:
// "localhost" or a loopback IP. An empty host means every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
