package integration

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// refusalAttempts is how many refused connections each client makes: the
// ERROR frame used to be lost about half the time, so this many make a
// regression certain to show.
const refusalAttempts = 50

// refusalCases are the limits that refuse a client, each with one client
// already holding the only place.
var refusalCases = []struct {
	name, flag, message string
}{
	{"max clients", "--max-clients", "too many clients (limit 1)"},
	{"per IP", "--max-clients-per-ip", "too many clients from 127.0.0.1 (limit 1)"},
}

// startFull starts a broker whose limit flag is 1 and fills the one place.
func startFull(t *testing.T, flag string) *brokertest.Broker {
	t.Helper()
	b := brokertest.Start(t, flag, "1")
	b.Raw(t).Connect()
	b.WaitChildren(t, 1, 5*time.Second)
	return b
}

// TestRefusedRawClientAlwaysSeesError: a client that sends CONNECT and then
// reads, as every STOMP client does, gets the ERROR frame every time, and
// then a clean end of stream (not a reset).
func TestRefusedRawClientAlwaysSeesError(t *testing.T) {
	for _, tc := range refusalCases {
		t.Run(tc.name, func(t *testing.T) {
			b := startFull(t, tc.flag)
			for i := 0; i < refusalAttempts; i++ {
				r := b.Raw(t)
				r.Send(plainConnect)
				f, err := r.Read(5 * time.Second)
				if err != nil || f.Command != frame.ERROR || f.Header.Get(frame.Message) != tc.message {
					t.Fatalf("attempt %d: got %v, %v; want ERROR %q", i, f, err, tc.message)
				}
				if f, err := r.Read(5 * time.Second); !errors.Is(err, io.EOF) {
					t.Fatalf("attempt %d: after the ERROR got %v, %v; want the end of the stream", i, f, err)
				}
				r.Conn.Close()
			}
			if n := len(b.Children(t)); n != 1 {
				t.Fatalf("%d children, want only the one admitted client's", n)
			}
			checkRefusalLog(t, b)
		})
	}
}

// TestRefusedStompPyClientAlwaysSeesError: stomp.py, which starts reading
// before it has written its CONNECT, gets the ERROR frame as the answer to
// its CONNECT every time (ConnectFailedException with the ERROR given to
// the listener), never a connection torn down under it.
func TestRefusedStompPyClientAlwaysSeesError(t *testing.T) {
	if out, err := exec.Command("/usr/bin/python3", "-c", "import stomp").CombinedOutput(); err != nil {
		brokertest.Missing(t, "stomp.py unavailable (/usr/bin/python3 -c 'import stomp': "+strings.TrimSpace(string(out))+"); install the Debian package python3-stomp")
	}
	for _, tc := range refusalCases {
		t.Run(tc.name, func(t *testing.T) {
			b := startFull(t, tc.flag)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/refused/stomp_refused.py", b.Addr, strconv.Itoa(refusalAttempts)).Output()
			if err != nil {
				t.Fatalf("stomp_refused.py: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			want := "SAW_ERROR " + tc.message + " | ConnectFailedException"
			bad := 0
			for _, l := range lines {
				if strings.TrimSpace(l) != want {
					bad++
					t.Errorf("got %q, want %q", l, want)
				}
			}
			if len(lines) != refusalAttempts || bad > 0 {
				t.Fatalf("%d attempts reported, %d of them without the ERROR as the answer to CONNECT", len(lines), bad)
			}
		})
	}
}

// checkRefusalLog: refusals are logged at WARN, at most one line per
// second per reason, and the lines count the ones left out.
func checkRefusalLog(t *testing.T, b *brokertest.Broker) {
	t.Helper()
	b.WaitLog(t, `level=WARN msg="client refused"`, 5*time.Second)
	lines := regexp.MustCompile(`level=WARN msg="client refused".*`).FindAllString(b.Logs(), -1)
	suppressed := 0
	for _, l := range lines {
		m := regexp.MustCompile(`suppressed=(\d+)`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("refusal line without a suppressed count: %s", l)
		}
		n := 0
		for _, d := range m[1] {
			n = n*10 + int(d-'0')
		}
		suppressed += n
	}
	if len(lines) >= refusalAttempts || len(lines)+suppressed > refusalAttempts {
		t.Fatalf("%d refusal lines (%d suppressed) for %d refusals: not rate-limited\n%s", len(lines), suppressed, refusalAttempts, strings.Join(lines, "\n"))
	}
}
