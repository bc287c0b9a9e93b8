package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-stomp/stomp/v3"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/ipc"
)

// wsBroker starts a broker with a --ws-listen socket on a free port and
// returns it with the ws:// URL of its /ws endpoint.
func wsBroker(t *testing.T, args ...string) (*brokertest.Broker, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := brokertest.Start(t, append([]string{"--ws-listen", addr}, args...)...)
	return b, "ws://" + addr + "/ws"
}

// wsClient is a STOMP client over a WebSocket, written frame by frame
// against the wire, so the tests control how frames map onto messages.
type wsClient struct {
	t    *testing.T
	c    *websocket.Conn
	addr string // the client's local address, as the broker sees it
	buf  []byte // received bytes not yet split into frames
	beat int    // heart-beats (bare EOLs) received
}

// dialWS opens a WebSocket to url offering subprotocols.
func dialWS(t *testing.T, url string, opts *websocket.DialOptions) (*wsClient, *http.Response, error) {
	t.Helper()
	var local string
	if opts == nil {
		opts = &websocket.DialOptions{Subprotocols: []string{"v12.stomp", "v11.stomp", "v10.stomp"}}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	tr, _ := opts.HTTPClient.Transport.(*http.Transport)
	if tr == nil {
		tr = &http.Transport{}
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			local = c.LocalAddr().String()
		}
		return c, err
	}
	opts.HTTPClient.Transport = tr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c, addr: local}, resp, nil
}

func (w *wsClient) send(typ websocket.MessageType, data string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, typ, []byte(data)); err != nil {
		w.t.Fatalf("websocket write: %v", err)
	}
}

// frame returns the next STOMP frame (command and the rest, NUL dropped),
// counting and skipping heart-beats; err is the read error that ended the
// stream.
func (w *wsClient) frame(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		for len(w.buf) > 0 && (w.buf[0] == '\n' || w.buf[0] == '\r') {
			w.beat++
			w.buf = w.buf[1:]
		}
		if i := strings.IndexByte(string(w.buf), 0); i >= 0 {
			f := string(w.buf[:i])
			w.buf = w.buf[i+1:]
			return f, nil
		}
		_, data, err := w.c.Read(ctx)
		if err != nil {
			return "", err
		}
		w.buf = append(w.buf, data...)
	}
}

// mustFrame is frame that fails the test unless the frame starts with
// command.
func (w *wsClient) mustFrame(command string) string {
	w.t.Helper()
	f, err := w.frame(10 * time.Second)
	if err != nil {
		w.t.Fatalf("waiting for %s: %v", command, err)
	}
	if !strings.HasPrefix(f, command+"\n") {
		w.t.Fatalf("got %q, want a %s frame", f, command)
	}
	return f
}

func (w *wsClient) connect() {
	w.t.Helper()
	w.send(websocket.MessageText, "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\x00")
	w.mustFrame("CONNECTED")
}

// tcpClient connects go-stomp over TCP (stomp.py stands in the browser
// tests, where Debian's python3-stomp is installed).
func tcpClient(t *testing.T, b *brokertest.Broker) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", b.Addr, stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	return c
}

// TestWebSocketRoundTrip: a WebSocket client and a TCP client exchange
// messages both ways, on a topic and a queue; the WebSocket client is held
// by its own child process, named "(ws)", which holds the client's TCP
// socket, which the parent does not hold; `stomp-broker clients` says
// "ws".
func TestWebSocketRoundTrip(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b, url := wsBroker(t, "--metrics-listen", metricsAddr)
	ws, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.connect()
	tcp := tcpClient(t, b)
	for _, dest := range []string{"/topic/ws-rt", "/queue/ws-rt"} {
		ws.send(websocket.MessageText, "SUBSCRIBE\nid:"+dest+"\ndestination:"+dest+"\nreceipt:r-"+dest+"\n\n\x00")
		ws.mustFrame("RECEIPT")
		if err := tcp.Send(dest, "text/plain", []byte("to the browser "+dest)); err != nil {
			t.Fatal(err)
		}
		if f := ws.mustFrame("MESSAGE"); !strings.HasSuffix(f, "\n\nto the browser "+dest) {
			t.Errorf("%s: MESSAGE %q", dest, f)
		}
		sub, err := tcp.Subscribe(dest+".back", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		// A receipted SEND after SUBSCRIBE: once its RECEIPT is back, the
		// parent has the subscription.
		if err := tcp.Send("/queue/ws-rt.sync", "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		ws.send(websocket.MessageText, "SEND\ndestination:"+dest+".back\nreceipt:s\n\nfrom the browser\x00")
		ws.mustFrame("RECEIPT")
		select {
		case m := <-sub.C:
			if m.Err != nil || string(m.Body) != "from the browser" {
				t.Errorf("%s: TCP client got %q, %v", dest, m.Body, m.Err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: TCP client got nothing", dest)
		}
	}

	pid := 0
	poll.Eventually(t, 5*time.Second, "a child titled "+ws.addr+" (ws)", func() bool {
		for _, p := range b.Children(t) {
			data, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline"))
			if strings.HasPrefix(string(data), "stomp-broker: client "+ws.addr+" (ws)\x00") {
				pid = p
				return true
			}
		}
		return false
	})
	inode := tcpInode(t, ws.addr)
	held := false
	for _, target := range fdTargets(t, pid) {
		held = held || target == "socket:["+inode+"]"
	}
	if !held {
		t.Errorf("child %d does not hold the WebSocket client's socket:[%s]: %v", pid, inode, fdTargets(t, pid))
	}
	for fd, target := range fdTargets(t, b.PID) {
		if target == "socket:["+inode+"]" {
			t.Errorf("the parent holds the WebSocket client's socket too (fd %d)", fd)
		}
	}
	clients, err := control.Clients(controlSocketOf(t, b), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range clients {
		if c.PID == pid {
			found = true
			if c.Transport != "ws" {
				t.Errorf("stomp-broker clients lists the WebSocket client with transport %q", c.Transport)
			}
		}
	}
	if !found {
		t.Errorf("stomp-broker clients does not list child %d: %+v", pid, clients)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`stomp_broker_clients_accepted_total{transport="ws"} 1`, `stomp_broker_clients_accepted_total{transport="tcp"} 1`} {
		if !strings.Contains(string(page), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// controlSocketOf finds the control socket brokertest.Start put in the
// test's temp dir, from the parent's command line.
func controlSocketOf(t *testing.T, b *brokertest.Broker) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", b.PID))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(data), "\x00")
	for i, a := range args {
		if a == "--control-socket" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatal("broker has no --control-socket")
	return ""
}

// tcpInode returns the inode of the server side of the TCP connection
// whose remote end is clientAddr, from /proc/net/tcp.
func tcpInode(t *testing.T, clientAddr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(clientAddr)
	ip := net.ParseIP(host).To4()
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// Inode 0 is a socket no process holds any more (TIME_WAIT of an
		// earlier connection that had the same client port).
		if len(fs) > 9 && fs[2] == want && fs[9] != "0" {
			return fs[9]
		}
	}
	t.Fatalf("no server socket for %s in /proc/net/tcp", clientAddr)
	return ""
}

// TestWebSocketFramesSplitAndCoalesced: one STOMP frame split over three
// WebSocket messages (binary and text mixed), several frames in one
// message, and heart-beats both ways as bare EOL messages.
func TestWebSocketFramesSplitAndCoalesced(t *testing.T) {
	b, url := wsBroker(t, "--heart-beat-min", "100ms")
	ws, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.send(websocket.MessageBinary, "CONNECT\naccept-ver")
	ws.send(websocket.MessageText, "sion:1.2\nheart-beat:200,200\nho")
	ws.send(websocket.MessageBinary, "st:/\n\n\x00")
	if f := ws.mustFrame("CONNECTED"); !strings.Contains(f, "\nheart-beat:200,200") {
		t.Fatalf("CONNECTED %q, want heart-beat:200,200", f)
	}
	ws.send(websocket.MessageText, "SUBSCRIBE\nid:1\ndestination:/topic/split\n\n\x00"+
		"SEND\ndestination:/topic/split\n\none\x00SEND\ndestination:/topic/split\n\ntwo\x00\n")
	tcp := tcpClient(t, b)
	_ = tcp
	for _, want := range []string{"one", "two"} {
		if f := ws.mustFrame("MESSAGE"); !strings.HasSuffix(f, "\n\n"+want) {
			t.Errorf("MESSAGE %q, want body %q", f, want)
		}
	}
	// A binary body that is not UTF-8 arrives intact (as a binary message).
	body := "\xff\xfe\x00binary"
	ws.send(websocket.MessageBinary, "SEND\ndestination:/topic/split\ncontent-length:"+strconv.Itoa(len(body))+"\n\n"+body+"\x00")
	typ, data, err := ws.c.Read(context.Background())
	for err == nil && strings.Trim(string(data), "\n") == "" {
		typ, data, err = ws.c.Read(context.Background()) // heart-beats
	}
	if err != nil || typ != websocket.MessageBinary || !strings.HasSuffix(string(data), "\n\n"+body+"\x00") {
		t.Errorf("binary MESSAGE: %v %q %v", typ, data, err)
	}
	// Keep sending heart-beats as bare EOL messages: the broker keeps the
	// connection, and sends its own at 200ms.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		ws.send(websocket.MessageText, "\n")
		time.Sleep(100 * time.Millisecond)
	}
	ws.beat = 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			_ = ws.c.Write(ctx, websocket.MessageText, []byte("\n"))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	_, err = ws.frame(time.Second)
	if err == nil {
		t.Fatal("unexpected frame while only heart-beats flow")
	}
	if ws.beat < 2 {
		t.Errorf("%d heart-beats from the broker in 1s at heart-beat 200ms", ws.beat)
	}
}

// TestWebSocketSubprotocolBoundsVersion: the negotiated subprotocol bounds
// the STOMP version, as RabbitMQ Web-STOMP does.
func TestWebSocketSubprotocolBoundsVersion(t *testing.T) {
	_, url := wsBroker(t)
	cases := []struct {
		sub, accept, command, version string
	}{
		{"v12.stomp", "1.0,1.1,1.2", "CONNECTED", "1.2"},
		{"v11.stomp", "1.0,1.1,1.2", "CONNECTED", "1.1"},
		{"v10.stomp", "1.1,1.2", "ERROR", "1.0"}, // the ERROR offers only 1.0
	}
	for _, tc := range cases {
		t.Run(tc.sub, func(t *testing.T) {
			ws, _, err := dialWS(t, url, &websocket.DialOptions{Subprotocols: []string{tc.sub}})
			if err != nil {
				t.Fatal(err)
			}
			if ws.c.Subprotocol() != tc.sub {
				t.Fatalf("negotiated %q", ws.c.Subprotocol())
			}
			ws.send(websocket.MessageText, "CONNECT\naccept-version:"+tc.accept+"\nhost:/\n\n\x00")
			f, err := ws.frame(10 * time.Second)
			if err != nil || !strings.HasPrefix(f, tc.command+"\n") || !strings.Contains(f, "\nversion:"+tc.version+"\n") {
				t.Errorf("got %q, %v; want %s with version:%s", f, err, tc.command, tc.version)
			}
		})
	}
}

// TestWebSocketRefusals: what a browser-facing broker must refuse, each
// with its status or an ERROR frame.
func TestWebSocketRefusals(t *testing.T) {
	_, url := wsBroker(t, "--ws-allowed-origins", "https://app.example", "--max-frame-size", "1000")
	cases := []struct {
		name   string
		url    string
		opts   *websocket.DialOptions
		status int
	}{
		{"wrong path", strings.TrimSuffix(url, "/ws") + "/stomp", nil, http.StatusNotFound},
		{"no subprotocol", url, &websocket.DialOptions{}, http.StatusBadRequest},
		{"unknown subprotocol", url, &websocket.DialOptions{Subprotocols: []string{"mqtt"}}, http.StatusBadRequest},
		{"origin not allowed", url, &websocket.DialOptions{Subprotocols: []string{"v12.stomp"},
			HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}, http.StatusForbidden},
		{"origin allowed", url, &websocket.DialOptions{Subprotocols: []string{"v12.stomp"},
			HTTPHeader: http.Header{"Origin": {"https://app.example"}}}, http.StatusSwitchingProtocols},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := dialWS(t, tc.url, tc.opts)
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%v), want %d", resp.StatusCode, err, tc.status)
			}
			if tc.status == http.StatusSwitchingProtocols {
				ws.connect()
			}
		})
	}
	t.Run("not an upgrade", func(t *testing.T) {
		resp, err := http.Get(strings.Replace(url, "ws://", "http://", 1))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), "STOMP-over-WebSocket endpoint") {
			t.Errorf("%d %q, want 426 with a hint", resp.StatusCode, body)
		}
	})
	t.Run("oversized message", func(t *testing.T) {
		ws, _, err := dialWS(t, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.connect()
		ws.send(websocket.MessageText, "SEND\ndestination:/queue/big\n\n"+strings.Repeat("x", 5000)+"\x00")
		f := ws.mustFrame("ERROR")
		if !strings.Contains(f, "exceeds 1000 bytes") {
			t.Errorf("ERROR %q does not say the frame is too large", f)
		}
		if _, err := ws.frame(5 * time.Second); err == nil {
			t.Error("connection still open after the ERROR")
		}
	})
}

// TestWebSocketSlowUpgrade: a client that opens the TCP connection and
// never completes its upgrade request is closed after --connect-timeout,
// and so is its child.
func TestWebSocketSlowUpgrade(t *testing.T) {
	const timeout = time.Second
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := brokertest.Start(t, "--ws-listen", addr, "--connect-timeout", timeout.String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\n"); err != nil { // never the empty line
		t.Fatal(err)
	}
	b.WaitChildren(t, 1, 5*time.Second)
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(timeout + 10*time.Second))
	_, _ = io.Copy(io.Discard, c)
	if took := time.Since(start); took > timeout+5*time.Second {
		t.Errorf("closed after %v, want about %v", took, timeout)
	}
	b.WaitChildren(t, 0, 5*time.Second)
}

// TestWebSocketKillChild: kill -9 of a WebSocket client's child ends that
// client only; the other WebSocket and TCP clients are still served.
func TestWebSocketKillChild(t *testing.T) {
	b, url := wsBroker(t)
	victim, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	victim.connect()
	other, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	other.connect()
	other.send(websocket.MessageText, "SUBSCRIBE\nid:1\ndestination:/topic/kill\nreceipt:r\n\n\x00")
	other.mustFrame("RECEIPT")
	pid := childServingTitle(t, b, "stomp-broker: client "+victim.addr+" (ws)")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := victim.frame(10 * time.Second); err == nil {
		t.Fatal("the killed child's client still gets frames")
	}
	tcp := tcpClient(t, b)
	if err := tcp.Send("/topic/kill", "text/plain", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if f := other.mustFrame("MESSAGE"); !strings.HasSuffix(f, "\n\nstill here") {
		t.Errorf("MESSAGE %q", f)
	}
}

// childServingTitle waits for the broker child whose command line is title.
func childServingTitle(t *testing.T, b *brokertest.Broker, title string) int {
	t.Helper()
	pid := 0
	poll.Eventually(t, 5*time.Second, "a child titled "+title, func() bool {
		for _, p := range b.Children(t) {
			data, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline"))
			if strings.HasPrefix(string(data), title+"\x00") {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// TestWebSocketTransports: ws:// and wss:// (with the existing --tls-cert
// and --tls-key), each through a child started for the client and through
// a waiting spare (the transport travels in the handoff).
func TestWebSocketTransports(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSignedCert(t, dir)
	for _, tc := range []struct {
		scheme, flag, spares string
	}{
		{"ws", "--ws-listen", "0"},
		{"ws", "--ws-listen", "2"},
		{"wss", "--wss-listen", "0"},
		{"wss", "--wss-listen", "2"},
	} {
		t.Run(tc.scheme+" spares "+tc.spares, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			b := brokertest.Start(t, tc.flag, addr, "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--spare-children", tc.spares, "--trace")
			if tc.spares != "0" {
				poll.Eventually(t, 10*time.Second, "spares started", func() bool { return len(b.Spares(t)) >= 2 })
			}
			ws, _, err := dialWS(t, tc.scheme+"://"+addr+"/ws", &websocket.DialOptions{
				Subprotocols: []string{"v12.stomp"},
				HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			ws.connect()
			ws.send(websocket.MessageText, "SUBSCRIBE\nid:1\ndestination:/queue/t\n\n\x00SEND\ndestination:/queue/t\n\nsecret\x00")
			if f := ws.mustFrame("MESSAGE"); !strings.HasSuffix(f, "\n\nsecret") {
				t.Errorf("MESSAGE %q", f)
			}
			childServingTitle(t, b, "stomp-broker: client "+ws.addr+" ("+tc.scheme+")")
			// `stomp-broker clients` names the transport in its own column.
			table := runBroker(t, "", "clients", "--control-socket", controlSocketOf(t, b))
			if !regexp.MustCompile(`(?m)^\d+ +` + regexp.QuoteMeta(ws.addr) + ` +` + tc.scheme + ` +- +1\.2 `).MatchString(table) {
				t.Errorf("clients table lacks %s with transport %s:\n%s", ws.addr, tc.scheme, table)
			}
			// --trace names the transport and the upgrade hop.
			b.WaitLog(t, `client=`+regexp.QuoteMeta(ws.addr)+` transport=`+tc.scheme+` hop="`+regexp.QuoteMeta(ipc.HopWSUpgrade)+`" .*subprotocol=v12\.stomp`, 5*time.Second)
			if tc.spares != "0" {
				b.WaitLog(t, `hop="`+regexp.QuoteMeta(ipc.HopHandoff)+`" client=`+regexp.QuoteMeta(ws.addr)+` transport=`+tc.scheme+` `, 5*time.Second)
			}
		})
	}
}

// TestWebSocketOverLimitGets503: a WebSocket client over --max-clients is
// refused by the parent with an HTTP 503 carrying the reason (a STOMP
// ERROR frame would mean nothing before the upgrade), and no child starts.
func TestWebSocketOverLimitGets503(t *testing.T) {
	b, url := wsBroker(t, "--max-clients", "1")
	first, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	first.connect()
	_, resp, err := dialWS(t, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second client: %v %v, want 503", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "too many") {
		t.Errorf("503 body %q does not say why", body)
	}
	if n := len(b.Children(t)); n != 1 {
		t.Errorf("%d children, want 1", n)
	}
}
