package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// TestInvalidUTF8DestinationWithMetrics is the regression test for issue
// 17: with --metrics-listen on, a SEND to a destination that is not valid
// UTF-8 used to reach the parent, whose Prometheus label panicked and took
// every client down ("broker went away"). The frame must be refused at the
// edge, with an ERROR to its sender only; the other clients and the parent
// (and its metrics) carry on.
func TestInvalidUTF8DestinationWithMetrics(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--heart-beat", "0", "--metrics-listen", addr)
	by := newBystander(t, b)
	for i, dest := range []string{"/queue/\xff\xfe", "/topic/\xff\xfe", "/queue/ok\xc3"} {
		p := newPeer(t, b, "hostile")
		p.ConnectVersion("1.2")
		receipt := "bad-" + strconv.Itoa(i)
		p.Send("SEND\nreceipt:" + receipt + "\ndestination:" + dest + "\n\nboom\x00")
		p.ExpectError(`header "destination" is not valid UTF-8`, receipt)
		by.check(t)
	}
	if b.Exited() {
		t.Fatalf("the parent exited:\n%s", b.Logs())
	}
	m := scrape(t, addr)
	if got := m[`stomp_broker_messages_in_total{destination="/topic/bystander"}`]; got < 4 {
		t.Errorf("bystander messages counted %v, want at least 4", got)
	}
	// Only the two bystanders are left.
	b.WaitChildren(t, 2, 5*time.Second)
}
