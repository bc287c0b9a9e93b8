package integration

// The web console (--console-listen): the page in a real headless Chromium,
// its event stream and its access rules read with a plain Go HTTP client,
// and the CLI's refusal to expose it without --users.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-stomp/stomp/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/browsertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// consoleBroker starts a broker with a web console and a users file of
// root (admin) and alice (not admin), both with passcode "pw". It returns
// the broker and the console's base URL.
func consoleBroker(t *testing.T) (*brokertest.Broker, string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("root:"+string(h)+":admin\nalice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := brokertest.Start(t, "--users", users, "--console-listen", addr)
	return b, "http://" + addr
}

// loginClient connects a go-stomp client as alice and finds its child.
func loginClient(t *testing.T, b *brokertest.Broker) (*stomp.Conn, net.Conn, int) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stomp.Connect(nc, stomp.ConnOpt.HeartBeat(0, 0), stomp.ConnOpt.Login("alice", "pw"))
	if err != nil {
		nc.Close()
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Disconnect(); nc.Close() })
	return c, nc, childServing(t, b, nc.LocalAddr().String())
}

// consoleSample is the part of an SSE "sample" event the tests check.
type consoleSample struct {
	Clients []struct {
		PID       int    `json:"pid"`
		Addr      string `json:"addr"`
		Transport string `json:"transport"`
		Login     string `json:"login"`
		PssKiB    int64  `json:"pss_kib"`
	} `json:"clients"`
	Queues []struct {
		Name  string `json:"name"`
		Depth int    `json:"depth"`
	} `json:"queues"`
}

// TestConsoleAccessAndEventStream: the console asks for a login; only an
// admin may disconnect (401 without credentials, 403 for alice, nothing
// happens to the client either way); the event stream, read with a plain
// HTTP client, starts with the history and then carries samples naming
// every client by pid, address, transport and login, with the Pss of its
// process.
func TestConsoleAccessAndEventStream(t *testing.T) {
	b, base := consoleBroker(t)
	_, nc1, pid1 := loginClient(t, b)
	_, nc2, pid2 := loginClient(t, b)

	do := func(method, path, login string) (int, string) {
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if login != "" {
			req.SetBasicAuth(login, "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	disconnect := fmt.Sprintf("/clients/%d/disconnect", pid1)
	for _, tc := range []struct {
		name, method, path, login string
		want                      int
	}{
		{"page without login", "GET", "/", "", http.StatusUnauthorized},
		{"page as alice", "GET", "/", "alice", http.StatusOK},
		{"disconnect without login", "POST", disconnect, "", http.StatusUnauthorized},
		{"disconnect as alice (not admin)", "POST", disconnect, "alice", http.StatusForbidden},
		{"disconnect of a pid that is no client", "POST", fmt.Sprintf("/clients/%d/disconnect", b.PID), "root", http.StatusNotFound},
	} {
		if got, body := do(tc.method, tc.path, tc.login); got != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, got, strings.TrimSpace(body), tc.want)
		}
	}
	time.Sleep(200 * time.Millisecond) // a wrongly sent SIGTERM has had time to act
	for _, pid := range []int{pid1, pid2} {
		if !brokertest.Alive(pid) {
			t.Fatalf("child %d died though no admin asked", pid)
		}
	}
	if !brokertest.Alive(b.PID) {
		t.Fatal("the parent died")
	}

	req, _ := http.NewRequest("GET", base+"/events", nil)
	req.SetBasicAuth("alice", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var events []string
	var sample consoleSample
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && events[len(events)-1] == "sample" {
			if err := json.Unmarshal([]byte(data), &sample); err != nil {
				t.Fatalf("sample %s: %v", data, err)
			}
			break
		}
	}
	if len(events) != 2 || events[0] != "history" || events[1] != "sample" {
		t.Fatalf("events %q, want history then sample", events)
	}
	want := map[int]string{pid1: nc1.LocalAddr().String(), pid2: nc2.LocalAddr().String()}
	if len(sample.Clients) != 2 {
		t.Fatalf("sample lists %d clients, want 2: %+v", len(sample.Clients), sample.Clients)
	}
	for _, c := range sample.Clients {
		if want[c.PID] != c.Addr || c.Transport != "tcp" || c.Login != "alice" || c.PssKiB <= 0 {
			t.Errorf("client %+v, want one of %v, transport tcp, login alice, Pss > 0", c, want)
		}
	}
}

// TestConsoleInBrowser: the page in headless Chromium lists the test's two
// clients with their pids and addresses, shows a queue's depth follow what
// the test sends, and its disconnect button ends exactly the chosen client:
// its process is gone, the other client is still served.
func TestConsoleInBrowser(t *testing.T) {
	b, base := consoleBroker(t)
	_, nc1, pid1 := loginClient(t, b)
	other, nc2, pid2 := loginClient(t, b)

	ctx := browsertest.New(t)
	url := strings.Replace(base, "http://", "http://root:pw@", 1) + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#clients")); err != nil {
		t.Fatalf("open console: %v", err)
	}
	waitFor := func(what, expr string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if _, err := chromedp.Run(pctx, chromedp.Poll[bool](expr)); err != nil {
			status, _ := chromedp.Run(ctx, chromedp.Text("#status"))
			t.Fatalf("page never showed %s (status %q): %v", what, status, err)
		}
	}
	cell := func(pid, col int) string {
		return fmt.Sprintf(`(document.querySelector("#client-%d")?.children[%d]?.textContent ?? "")`, pid, col)
	}
	for pid, addr := range map[int]string{pid1: nc1.LocalAddr().String(), pid2: nc2.LocalAddr().String()} {
		waitFor(fmt.Sprintf("client %d at %s", pid, addr),
			fmt.Sprintf(`%s === "%d" && %s === %q`, cell(pid, 0), pid, cell(pid, 1), addr))
	}

	depth := `Array.from(document.querySelectorAll("#queues tbody tr")).filter(r => r.children[0].textContent === "/queue/console").map(r => r.children[1].textContent).join()`
	for sent, n := 0, 0; n < 2; n++ {
		for i := 0; i < 3; i++ {
			if err := other.Send("/queue/console", "text/plain", []byte("m")); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		waitFor(fmt.Sprintf("queue depth %d", sent), fmt.Sprintf(`%s === "%d"`, depth, sent))
	}

	if err := chromedp.Do(ctx, chromedp.Click(fmt.Sprintf("#client-%d button.disconnect", pid1))); err != nil {
		t.Fatalf("click disconnect: %v", err)
	}
	if !poll.Within(10*time.Second, func() bool { return !brokertest.Alive(pid1) }) {
		status, _ := chromedp.Run(ctx, chromedp.Text("#status"))
		t.Fatalf("child %d still alive 10s after the click (page status %q)", pid1, status)
	}
	waitFor("the disconnected client gone from the page", fmt.Sprintf(`document.querySelector("#client-%d") === null`, pid1))
	if !brokertest.Alive(pid2) {
		t.Fatalf("the other client's child %d died too", pid2)
	}
	// The other client is still served: it gets what it sent to a queue.
	sub, err := other.Subscribe("/queue/console", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sub.C:
		if m.Err != nil || string(m.Body) != "m" {
			t.Fatalf("the other client got %v %q", m.Err, m.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other client got nothing after the disconnect")
	}
}

// TestConsoleNeedsUsersOffLoopback: --console-listen on an address other
// than loopback without --users stops the start with an error naming both
// flags; on loopback the same start succeeds (TestConsole* above use one
// with --users; here without).
func TestConsoleNeedsUsersOffLoopback(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	for _, addr := range []string{"0.0.0.0:" + port, ":" + port, "[::]:" + port} {
		t.Run(addr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, brokertest.Binary(t), "--console-listen", addr,
				"--listen", "127.0.0.1:0", "--control-socket", "off").CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), "--console-listen") || !strings.Contains(string(out), "--users") || !strings.Contains(string(out), "loopback") {
				t.Errorf("message does not name --console-listen, --users and loopback:\n%s", out)
			}
		})
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	brokertest.Start(t, "--console-listen", addr)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loopback console without --users: status %d, want 200", resp.StatusCode)
	}
}

// TestConsoleShowsClusterState: a broker on a shared database shows in its
// console, rendered in headless Chromium, its node name and that it is
// connected to the other brokers; CUT OFF while its database connection is
// cut (a proxy in front of it), and connected again once it is back. A
// broker without a cluster shows nothing of the kind (TestConsoleInBrowser's
// page is checked for that here too).
func TestConsoleShowsClusterState(t *testing.T) {
	dsn := postgresDSN(t)
	proxy, viaProxy := newPGProxy(t, dsn)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, sock := clusterBroker(t, viaProxy, "console", "--console-listen", addr)
	node := clusterState(t, sock).Node
	if node == "" {
		t.Fatal("the broker reports no cluster node name")
	}

	ctx := browsertest.New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible("#clients")); err != nil {
		t.Fatalf("open console: %v", err)
	}
	clusterText := `(document.querySelector("#cluster")?.textContent ?? "")`
	waitFor := func(what, expr string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(pctx, chromedp.Poll[bool](expr)); err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](clusterText))
			t.Fatalf("page never showed %s (cluster line %q): %v", what, text, err)
		}
	}
	connected := fmt.Sprintf(`%s.includes(%q) && %s.includes("connected") && !%s.includes("CUT OFF")`, clusterText, node, clusterText, clusterText)
	waitFor("the node connected", connected)
	proxy.cut()
	waitFor("the node cut off", fmt.Sprintf(`%s.includes(%q) && %s.includes("CUT OFF")`, clusterText, node, clusterText))
	proxy.restore()
	waitFor("the node connected again", connected)

	// Without a cluster: no cluster line.
	_, base := consoleBroker(t)
	url := strings.Replace(base, "http://", "http://root:pw@", 1) + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#clients")); err != nil {
		t.Fatalf("open console: %v", err)
	}
	waitFor("a first sample", `document.querySelector("#status")?.textContent.startsWith("updated")`)
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](clusterText)); err != nil || text != "" {
		t.Fatalf("console of a broker without a cluster shows %q (%v)", text, err)
	}
}
