package control

import (
	"bufio"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBroker answers every control connection with answer(request).
func fakeBroker(t *testing.T, answer func(request string) string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			_, _ = c.Write([]byte(answer(strings.TrimSuffix(line, "\n"))))
			c.Close()
		}
	}()
	return path
}

func TestDo(t *testing.T) {
	tests := []struct {
		name      string
		answer    string
		wantErr   string
		wantCause error
		check     func(*Response) bool
	}{
		{"clients", `{"clients":[{"pid":7,"addr":"127.0.0.1:1","login":"a","version":"1.2","subscriptions":2,"messages_in":3,"messages_out":4,"bytes_queued":5,"since":"2026-01-02T03:04:05Z"}]}`,
			"", nil, func(r *Response) bool {
				c := r.Clients[0]
				return len(r.Clients) == 1 && c.PID == 7 && c.Login == "a" && c.MessagesOut == 4 && c.BytesQueued == 5 && c.Since.Year() == 2026
			}},
		{"queues", `{"queues":[{"name":"/queue/a","depth":1,"consumers":2,"in_flight":3,"stored":4,"dead_lettered":5}]}`,
			"", nil, func(r *Response) bool {
				return len(r.Queues) == 1 && r.Queues[0] == Queue{Name: "/queue/a", Depth: 1, Consumers: 2, InFlight: 3, Stored: 4, DeadLettered: 5}
			}},
		{"broker error", `{"error":"unknown request"}`, "unknown request", ErrBroker, nil},
		{"not JSON", "hello\n", "read answer", nil, nil},
		{"nothing", "", "read answer", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			path := fakeBroker(t, func(req string) string { got = req; return tt.answer })
			resp, err := Do(path, tt.name, 5*time.Second)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.wantCause != nil && !errors.Is(err, tt.wantCause)) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.name {
				t.Errorf("broker got request %q, want %q", got, tt.name)
			}
			if !tt.check(resp) {
				t.Errorf("response %+v", resp)
			}
		})
	}
}

func TestDoWithoutBroker(t *testing.T) {
	_, err := Clients(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "control: ") {
		t.Fatalf("err %v, want a control: dial error", err)
	}
}

func TestDoTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slow.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		c, err := l.Accept()
		if err == nil {
			<-release // never answers while the test runs
			c.Close()
		}
	}()
	const timeout = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := Queues(path, timeout)
		done <- err
	}()
	// Only the timeout can end Do here (the peer stays silent and open);
	// the bound is generous for a loaded machine.
	limit := 5*timeout + 4*time.Second
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error from a broker that does not answer")
		}
	case <-time.After(limit):
		t.Fatalf("Do still blocked after %v with a %v timeout", limit, timeout)
	}
}
