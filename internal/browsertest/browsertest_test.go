package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/stomp-broker/stomp-broker/internal/browsertest"
)

// TestBrowserRunsPageScript proves the browser is real: a page's script
// computes a value and calls back the test's server with it, and the DOM
// the test reads back shows the same value. New's cleanup then checks that
// no Chromium process of the test is left.
func TestBrowserRunsPageScript(t *testing.T) {
	got := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><p id="out"></p><script>
const v = String(6 * 7);
document.getElementById("out").textContent = v;
fetch("/report?v=" + v);
</script>`)
	})
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query().Get("v"):
		default:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := browsertest.New(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL),
		chromedp.WaitVisible("#out"),
	); err != nil {
		t.Fatalf("open page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("out").textContent !== ""`)); err != nil {
		t.Fatalf("wait for the script: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("#out"))
	if err != nil {
		t.Fatalf("read page: %v", err)
	}
	if text != "42" {
		t.Fatalf("page text = %q, want 42", text)
	}
	if v := <-got; v != "42" {
		t.Fatalf("page reported %q, want 42", v)
	}
}
