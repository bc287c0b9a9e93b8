package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// connectAs opens a raw connection and CONNECTs with a login header.
func connectAs(t *testing.T, b *brokertest.Broker, login string) *brokertest.Raw {
	t.Helper()
	r := b.Raw(t)
	r.Send("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\nlogin:" + login + "\n\n\x00")
	r.Expect(frame.CONNECTED)
	return r
}

// syncRaw sends a receipted SEND to a throw-away topic and waits for the
// receipt: everything r sent before has been applied by the parent.
func syncRaw(t *testing.T, r *brokertest.Raw) {
	t.Helper()
	r.Send("SEND\ndestination:/topic/ops-sync\nreceipt:sync\n\n\x00")
	f := r.Expect(frame.RECEIPT)
	if f.Header.Get(frame.ReceiptId) != "sync" {
		t.Fatalf("receipt %q, want sync", f.Header.Get(frame.ReceiptId))
	}
}

func TestClientsAndQueuesCommands(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	b := brokertest.Start(t, "--control-socket", sock)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want 0600", fi.Mode().Perm())
	}

	consumer := connectAs(t, b, "carol")
	consumer.Send("SUBSCRIBE\nid:s1\ndestination:/queue/ops\nack:client\n\n\x00SUBSCRIBE\nid:s2\ndestination:/topic/ops\n\n\x00")
	syncRaw(t, consumer)
	producer := connectAs(t, b, "dave")
	for i := 0; i < 5; i++ {
		producer.Send("SEND\ndestination:/queue/ops\n\nm" + strconv.Itoa(i) + "\x00")
	}
	syncRaw(t, producer)
	// The default prefetch (32) lets all five be delivered; none is acked.
	for i := 0; i < 5; i++ {
		consumer.Expect(frame.MESSAGE)
	}
	idle := b.Raw(t) // connected at TCP level only: no CONNECT yet
	_ = idle
	b.WaitChildren(t, 3, 5*time.Second)

	var clients []control.Client
	if err := json.Unmarshal([]byte(runBroker(t, "", "clients", "--control-socket", sock, "--json")), &struct {
		Clients *[]control.Client `json:"clients"`
	}{&clients}); err != nil {
		t.Fatal(err)
	}
	byLogin := map[string]control.Client{}
	for _, c := range clients {
		byLogin[c.Login] = c
		if !brokertest.Alive(c.PID) {
			t.Errorf("client %+v: pid is not alive", c)
		}
	}
	if len(clients) != 3 {
		t.Fatalf("clients: got %d, want 3: %+v", len(clients), clients)
	}
	// Each client's receipted sync SEND counts as a message in.
	tests := []struct {
		login   string
		version string
		subs    int
		in, out uint64
	}{
		{login: "carol", version: "1.2", subs: 2, in: 1, out: 5},
		{login: "dave", version: "1.2", subs: 0, in: 6},
		{login: "", version: "", subs: 0}, // not CONNECTed yet
	}
	for _, tt := range tests {
		c, ok := byLogin[tt.login]
		if !ok {
			t.Errorf("no client with login %q", tt.login)
			continue
		}
		if c.Version != tt.version || c.Subscriptions != tt.subs || c.MessagesIn != tt.in || c.MessagesOut != tt.out {
			t.Errorf("client %q: got version=%q subs=%d in=%d out=%d, want %q %d %d %d",
				tt.login, c.Version, c.Subscriptions, c.MessagesIn, c.MessagesOut, tt.version, tt.subs, tt.in, tt.out)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.PID))
		if !strings.HasPrefix(string(cmdline), "stomp-broker: client "+c.Addr+"\x00") {
			t.Errorf("client %q: pid %d runs %q, not the child for %s", tt.login, c.PID, cmdline, c.Addr)
		}
	}

	table := runBroker(t, "", "clients", "--control-socket", sock)
	if !regexp.MustCompile(`(?m)^PID +ADDRESS +TRANSPORT +LOGIN +VERSION +SUBS +IN +OUT +QUEUED +CONNECTED$`).MatchString(table) ||
		!regexp.MustCompile(`(?m)^\d+ +127\.0\.0\.1:\d+ +tcp +carol +1\.2 +2 +1 +5 +0 `).MatchString(table) {
		t.Errorf("clients table:\n%s", table)
	}

	queues := runBroker(t, "", "queues", "--control-socket", sock)
	if !regexp.MustCompile(`(?m)^QUEUE +DEPTH +CONSUMERS +IN-FLIGHT +STORED +DEAD-LETTERED$`).MatchString(queues) ||
		!regexp.MustCompile(`(?m)^/queue/ops +0 +1 +5 +0 +0$`).MatchString(queues) {
		t.Errorf("queues table:\n%s", queues)
	}
	// Unsubscribing hands the five unacknowledged messages back to the queue.
	consumer.Send("UNSUBSCRIBE\nid:s1\n\n\x00")
	syncRaw(t, consumer)
	qs, err := control.Queues(sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0] != (control.Queue{Name: "/queue/ops", Depth: 5}) {
		t.Errorf("after UNSUBSCRIBE: queues %+v, want /queue/ops with depth 5 and nothing in flight", qs)
	}

	if _, err := control.Do(sock, "bogus", 5*time.Second); err == nil || !strings.Contains(err.Error(), "unknown request") {
		t.Errorf("bogus request: err %v, want unknown request", err)
	}
}

func TestSIGTERMToOneChildDisconnectsOnlyItsClient(t *testing.T) {
	b := brokertest.Start(t)
	var raws []*brokertest.Raw
	for i := 0; i < 3; i++ {
		r := b.Raw(t)
		r.Connect()
		r.Send("SUBSCRIBE\nid:1\ndestination:/topic/term\n\n\x00")
		syncRaw(t, r)
		raws = append(raws, r)
	}
	victim := childServing(t, b, raws[0].Conn.LocalAddr().String())
	if err := syscall.Kill(victim, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f := raws[0].ExpectError("disconnected by operator", "")
	if f.Header.Get(frame.Message) != "disconnected by operator" {
		t.Errorf("ERROR message %q, want exactly %q", f.Header.Get(frame.Message), "disconnected by operator")
	}
	waitGone(t, []int{victim}, 5*time.Second)
	b.WaitChildren(t, 2, 5*time.Second)

	raws[1].Send("SEND\ndestination:/topic/term\n\nafter\x00")
	for _, r := range raws[1:] {
		if m := r.Expect(frame.MESSAGE); string(m.Body) != "after" {
			t.Fatalf("survivor got %q, want after", m.Body)
		}
	}
	if regexp.MustCompile(`level=(WARN|ERROR) msg="(client gone|child)`).MatchString(b.Logs()) {
		t.Errorf("an operator's SIGTERM to one child made the parent warn:\n%s", b.Logs())
	}
}

// scrape fetches the metrics page and returns its sample lines by metric
// name with labels, e.g. `stomp_broker_refused_total{reason="per_ip"}`.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics content type %q, want the Prometheus text format", ct)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric polls until metric has value want.
func waitMetric(t *testing.T, addr, metric string, want float64) {
	t.Helper()
	var got float64
	if !poll.Within(5*time.Second, func() bool { got = scrape(t, addr)[metric]; return got == want }) {
		t.Fatalf("metric %s = %v, want %v", metric, got, want)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--metrics-listen", addr, "--max-clients", "3")
	sub := b.Raw(t)
	sub.Connect()
	sub.Send("SUBSCRIBE\nid:1\ndestination:/topic/m\n\n\x00SUBSCRIBE\nid:2\ndestination:/queue/m\nack:client\n\n\x00")
	syncRaw(t, sub)
	pub := b.Raw(t)
	pub.Connect()
	for i := 0; i < 3; i++ {
		pub.Send("SEND\ndestination:/topic/m\n\nt\x00SEND\ndestination:/queue/m\n\nq\x00")
	}
	syncRaw(t, pub)
	for i := 0; i < 6; i++ {
		sub.Expect(frame.MESSAGE)
	}
	victim := b.Raw(t)
	victim.Connect()
	b.Raw(t).ExpectError("too many clients", "")

	if err := syscall.Kill(childServing(t, b, victim.Conn.LocalAddr().String()), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, addr, "stomp_broker_clients", 2)
	waitMetric(t, addr, `stomp_broker_queue_in_flight{queue="/queue/m"}`, 3) // refreshed every second
	m := scrape(t, addr)
	want := map[string]float64{
		"stomp_broker_spawns_total":                                     3,
		"stomp_broker_child_crashes_total":                              1,
		`stomp_broker_refused_total{reason="max_clients"}`:              1,
		`stomp_broker_refused_total{reason="per_ip"}`:                   0,
		`stomp_broker_messages_in_total{destination="/topic/m"}`:        3,
		`stomp_broker_messages_in_total{destination="/queue/m"}`:        3,
		`stomp_broker_messages_out_total{destination="/topic/m"}`:       3,
		`stomp_broker_messages_out_total{destination="/queue/m"}`:       3,
		`stomp_broker_queue_depth{queue="/queue/m"}`:                    0,
		`stomp_broker_queue_consumers{queue="/queue/m"}`:                1,
		"stomp_broker_store_commit_seconds_count":                       0,
		`stomp_broker_messages_in_total{destination="/topic/ops-sync"}`: 2,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if m["process_resident_memory_bytes"] <= 0 || m["go_goroutines"] <= 0 {
		t.Errorf("process and Go collectors missing")
	}
}

func TestChildLogLinesCarryClientAddress(t *testing.T) {
	b := brokertest.Start(t)
	r := b.Raw(t)
	r.Connect()
	r.Send("BOGUS\n\n\x00")
	r.ExpectError("", "")
	addr := r.Conn.LocalAddr().String()
	b.WaitLog(t, `level=\w+ msg=.*role=child client=`+regexp.QuoteMeta(addr), 5*time.Second)
	for _, line := range strings.Split(b.Logs(), "\n") {
		if strings.Contains(line, "role=child") && !strings.Contains(line, "client=") {
			t.Errorf("child log line without the client address: %s", line)
		}
	}
}

// TestQueuesWithDurableStore checks that `queues` and the queue gauges
// count persistent messages still in the store, and the dead-letter queue,
// and that store commits are timed.
func TestQueuesWithDurableStore(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--store", "sqlite:"+filepath.Join(dir, "b.db"), "--control-socket", sock,
		"--metrics-listen", addr, "--max-redeliveries", "0")
	r := b.Raw(t)
	r.Connect()
	for i := 0; i < 4; i++ {
		r.Send("SEND\ndestination:/queue/jobs\npersistent:true\nreceipt:p" + strconv.Itoa(i) + "\n\njob\x00")
		r.Expect(frame.RECEIPT)
	}
	qs, err := control.Queues(sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0] != (control.Queue{Name: "/queue/jobs", Depth: 4, Stored: 4}) {
		t.Fatalf("four stored jobs, no consumer: queues %+v", qs)
	}

	// A consumer takes one and NACKs it: with --max-redeliveries 0 it
	// goes to the dead-letter queue at once.
	r.Send("SUBSCRIBE\nid:1\ndestination:/queue/jobs\nack:client-individual\nprefetch-count:1\n\n\x00")
	m := r.Expect(frame.MESSAGE)
	r.Send("NACK\nid:" + m.Header.Get(frame.Ack) + "\nreceipt:n\n\n\x00")
	r.Expect(frame.RECEIPT)
	want := map[string]control.Queue{
		"/queue/jobs":     {Name: "/queue/jobs", Consumers: 1, InFlight: 1, Depth: 2, Stored: 3},
		"/queue/DLQ.jobs": {Name: "/queue/DLQ.jobs", Depth: 1, Stored: 1, DeadLettered: 1},
	}
	var got []control.Queue
	matches := func() bool {
		if got, err = control.Queues(sock, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		ok := len(got) == len(want)
		for _, q := range got {
			ok = ok && q == want[q.Name]
		}
		return ok
	}
	if !poll.Within(5*time.Second, matches) {
		t.Fatalf("after a NACK: queues %+v, want %+v", got, want)
	}
	waitMetric(t, addr, `stomp_broker_queue_dead_lettered{queue="/queue/DLQ.jobs"}`, 1)
	waitMetric(t, addr, `stomp_broker_queue_stored{queue="/queue/jobs"}`, 3)
	if n := scrape(t, addr)["stomp_broker_store_commit_seconds_count"]; n < 1 {
		t.Errorf("store commits timed: %v, want at least 1", n)
	}
}
