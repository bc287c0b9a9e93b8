package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/browsertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// output collects what a helper process writes to stdout.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output matches re.
func (o *output) waitFor(t *testing.T, p *proc, re string, timeout time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	if !poll.Within(timeout, func() bool { return rx.MatchString(o.String()) || p.done() }) || !rx.MatchString(o.String()) {
		t.Fatalf("output never matched %q:\n%s\nstderr:\n%s", re, o.String(), p.logs())
	}
}

// stompPyPeer starts testdata/ws/tcp_peer.py, a stomp.py client over TCP
// subscribed to back; send writes it a "SEND dest body" line.
func stompPyPeer(t *testing.T, b *brokertest.Broker, back string) (p *proc, out *output, send func(dest, body string)) {
	t.Helper()
	requireStompPy(t)
	host, port, _ := net.SplitHostPort(b.Addr)
	cmd := exec.Command(stompPyPython, filepath.Join("testdata", "ws", "tcp_peer.py"), host, port, back)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out = &output{}
	cmd.Stdout = out
	p = startProc(t, cmd)
	t.Cleanup(func() { stdin.Close() })
	out.waitFor(t, p, `(?m)^READY$`, 20*time.Second)
	return p, out, func(dest, body string) {
		if _, err := fmt.Fprintf(stdin, "SEND %s %s\n", dest, body); err != nil {
			t.Fatalf("stomp.py peer: %v", err)
		}
	}
}

// interopDir is interop/, where the npm packages are installed.
func interopDir(t *testing.T, need ...string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range need {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", n)); err != nil {
			brokertest.Missing(t, fmt.Sprintf("npm package %s missing in interop/node_modules (run scripts/install-test-deps)", n))
		}
	}
	return dir
}

// TestWebSocketStompjsNode: @stomp/stompjs under Node, over WebSocket,
// receives on a topic and a queue what a stomp.py client sends over TCP,
// and sends what the stomp.py client receives.
func TestWebSocketStompjsNode(t *testing.T) {
	node := brokertest.RequireTool(t, "node", "stompjs under Node")
	dir := interopDir(t, "@stomp/stompjs", "ws")
	b, url := wsBroker(t)
	py, pyOut, pySend := stompPyPeer(t, b, "/queue/node-back")

	cmd := exec.Command(node, filepath.Join("clients", "node", "stompjs_ws.mjs"), url, "/topic/node", "/queue/node", "/queue/node-back")
	cmd.Dir = dir
	out := &output{}
	cmd.Stdout = out
	p := startProc(t, cmd)
	out.waitFor(t, p, `(?m)^READY$`, 20*time.Second)
	pySend("/topic/node", "to-node-topic")
	pySend("/queue/node", "to-node-queue")
	if err := p.wait(t, 20*time.Second); err != nil {
		t.Fatalf("node client: %v\n%s\n%s", err, out, p.logs())
	}
	for _, want := range []string{"GOT /topic/node to-node-topic", "GOT /queue/node to-node-queue", "SENT"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("node client output lacks %q:\n%s", want, out)
		}
	}
	pyOut.waitFor(t, py, `(?m)^GOT from node$`, 10*time.Second)
}

// browserPage is the test page: @stomp/stompjs's UMD bundle connects to
// the broker's /ws (the URL in the page's query), subscribes to a topic
// and a queue, and lists what arrives in #got; send() publishes.
const browserPage = `<!doctype html>
<title>stompjs over WebSocket</title>
<p id="status">loading</p><ul id="got"></ul>
<script src="/stomp.umd.js"></script>
<script>
const url = new URLSearchParams(location.search).get("ws");
window.got = [];
const client = new StompJs.Client({brokerURL: url, reconnectDelay: 0});
client.onConnect = () => {
  client.watchForReceipt("r-queue", () => { document.getElementById("status").textContent = "ready"; });
  for (const [dest, receipt] of [["/topic/browser", "r-topic"], ["/queue/browser", "r-queue"]]) {
    client.subscribe(dest, m => {
      window.got.push(dest + " " + m.body);
      const li = document.createElement("li");
      li.textContent = dest + " " + m.body;
      document.getElementById("got").appendChild(li);
    }, {receipt});
  }
};
client.onStompError = f => { document.getElementById("status").textContent = "error: " + f.headers.message; };
client.onWebSocketClose = e => { document.getElementById("status").textContent = "closed " + e.code; };
window.send = body => client.publish({destination: "/queue/browser-back", body});
client.activate();
</script>`

// TestWebSocketStompjsBrowser: @stomp/stompjs in headless Chromium,
// served from another origin that --ws-allowed-origins allows, receives on
// a topic and a queue what a stomp.py client sends over TCP, and sends
// what the stomp.py client receives. The browser's client is held by its
// own child process.
func TestWebSocketStompjsBrowser(t *testing.T) {
	dir := interopDir(t, "@stomp/stompjs")
	bundle, err := os.ReadFile(filepath.Join(dir, "node_modules", "@stomp", "stompjs", "bundles", "stomp.umd.js"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, browserPage) })
	mux.HandleFunc("/stomp.umd.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(bundle)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := browsertest.New(t)
	b, url := wsBroker(t, "--ws-allowed-origins", strings.TrimPrefix(srv.URL, "http://"))
	py, pyOut, pySend := stompPyPeer(t, b, "/queue/browser-back")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?ws="+url)); err != nil {
		t.Fatalf("open page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent === "ready"`)); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text("#status"))
		t.Fatalf("page never ready: %v (status %q)\n%s", err, status, b.Logs())
	}
	children := brokertest.WithCmdline(b.Children(t), "stomp-broker: client 127.0.0.1:")
	ws := 0
	for _, pid := range children {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if title, _, _ := strings.Cut(string(data), "\x00"); strings.HasSuffix(title, " (ws)") {
			ws++
		}
	}
	if ws != 1 {
		t.Errorf("%d children titled (ws), want 1 for the browser", ws)
	}
	pySend("/topic/browser", "to-browser-topic")
	pySend("/queue/browser", "to-browser-queue")
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.got.length === 2`)); err != nil {
		t.Fatalf("browser did not get both messages: %v", err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.got.slice().sort()`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/queue/browser to-browser-queue", "/topic/browser to-browser-topic"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("browser got %q, want %q", got, want)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`window.send("from-browser")`)); err != nil {
		t.Fatal(err)
	}
	pyOut.waitFor(t, py, `(?m)^GOT from-browser$`, 10*time.Second)
}
