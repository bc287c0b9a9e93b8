// Package browsertest starts a headless Chromium for tests that need a real
// browser: the WebSocket transport driven by @stomp/stompjs in a page, and
// the web console. It drives Chromium over the DevTools protocol with
// chromedp.
//
// A test calls New and gets a chromedp context for one fresh tab in a
// browser of its own (own temporary profile); the browser process tree is
// killed when the test ends. When Debian's chromium is not installed the
// test is skipped with a clear message, or fails under
// STOMP_BROKER_REQUIRE_ALL=1 as CI runs it (brokertest.Missing).
package browsertest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// Candidates are the executable names tried, in order, for Chromium.
var Candidates = []string{"chromium", "chromium-browser", "google-chrome"}

// Timeout bounds a whole browser test: the context New returns ends after
// it even if a step hangs.
const Timeout = 90 * time.Second

// Path returns the Chromium executable, or skips (fails under
// STOMP_BROKER_REQUIRE_ALL=1) when none is installed.
func Path(tb testing.TB) string {
	tb.Helper()
	for _, name := range Candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	brokertest.Missing(tb, "chromium not found (the browser tests drive a real headless Chromium; apt-get install chromium)")
	return ""
}

// New starts a headless Chromium and returns a context bound to a new tab.
// Run chromedp actions on it (chromedp.Do(ctx, chromedp.Navigate(url), ...),
// or chromedp.Run(ctx, chromedp.Text(sel)) for a value). The browser is stopped, and its processes reaped, when the test
// ends.
//
// The flags keep Chromium off the network except for the pages the test
// opens: this machine refuses outside connections, and without
// --disable-background-networking Chromium would try many.
func New(tb testing.TB) context.Context {
	tb.Helper()
	path := Path(tb)
	profile := tb.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	deadline, cancelDeadline := context.WithTimeout(context.Background(), Timeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(deadline, opts...)
	ctx, cancelTab := chromedp.NewContext(alloc, chromedp.WithErrorf(tb.Logf))
	// Start the browser now, so a failure to start is reported here and
	// not as a mysterious error of the test's first action.
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		cancelDeadline()
		tb.Fatalf("browsertest: start %s: %v", path, err)
	}
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser process and waits for it
		cancelDeadline()
		waitGone(tb, profile)
	})
	return ctx
}

// waitGone waits until no process started with the profile directory on its
// command line is left: Chromium's helper processes (renderers, the GPU and
// network services) outlive the main process by a moment, and a test must
// not leave processes behind. It fails the test after 10 s.
func waitGone(tb testing.TB, profile string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "--", "user-data-dir="+profile).Output()
		left := strings.TrimSpace(string(out))
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("browsertest: chromium processes still running 10 s after stop: %s", strings.Join(strings.Fields(left), " "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
