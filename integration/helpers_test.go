package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// client is a go-stomp connection whose serving child process is known.
type client struct {
	*stomp.Conn
	pid int // the broker child serving this connection
}

// dialClient connects a go-stomp client over a socket we dialled ourselves,
// so the child serving it can be found by the client's port.
func dialClient(t *testing.T, b *brokertest.Broker) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stomp.Connect(nc, stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		nc.Close()
		t.Fatalf("connect: %v", err)
	}
	pid := childServing(t, b, nc.LocalAddr().String())
	cl := &client{Conn: c, pid: pid}
	t.Cleanup(func() { c.Disconnect(); nc.Close() })
	return cl
}

// childServing finds the broker child whose command line names addr.
func childServing(t *testing.T, b *brokertest.Broker, addr string) int {
	t.Helper()
	serving := 0
	poll.Eventually(t, 5*time.Second, "a child serves "+addr, func() bool {
		for _, pid := range b.Children(t) {
			data, _ := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "cmdline"))
			if strings.HasPrefix(string(data), "stomp-broker: client "+addr+"\x00") {
				serving = pid
				return true
			}
		}
		return false
	})
	return serving
}
