package parent

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

func TestRefusalLogRateLimitsPerReason(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	now := time.Unix(1000, 0)
	r := refusalLog{now: func() time.Time { return now }}
	steps := []struct {
		advance time.Duration
		reason  string
		logged  string // the suppressed count logged, "" for no line
	}{
		{0, "max_clients", "0"},
		{100 * time.Millisecond, "max_clients", ""},
		{100 * time.Millisecond, "per_ip", "0"}, // another reason has its own budget
		{100 * time.Millisecond, "max_clients", ""},
		{800 * time.Millisecond, "max_clients", "2"}, // a second after the first line
		{500 * time.Millisecond, "max_clients", ""},
		{2 * time.Second, "per_ip", "0"},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		out.Reset()
		r.warn(log, s.reason, "127.0.0.1:1", "too many")
		m := regexp.MustCompile(`level=WARN msg="client refused".* reason=` + s.reason + `.* suppressed=(\d+)`).FindStringSubmatch(out.String())
		switch {
		case s.logged == "" && out.Len() > 0:
			t.Errorf("step %d: logged %q, want no line", i, out.String())
		case s.logged != "" && (m == nil || m[1] != s.logged):
			t.Errorf("step %d: logged %q, want a WARN line with suppressed=%s", i, out.String(), s.logged)
		}
	}
}
