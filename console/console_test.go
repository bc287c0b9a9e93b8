package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stomp-broker/stomp-broker/control"
)

// fakeSource is a broker with one client (this test process, so /proc has
// it) and one queue.
type fakeSource struct {
	mu           sync.Mutex
	disconnected []int
	cluster      *control.Cluster // the broker's cluster state, nil for none
}

func (f *fakeSource) Snapshot(context.Context) (control.Response, error) {
	return control.Response{
		Clients: []control.Client{{PID: os.Getpid(), Addr: "127.0.0.1:5000", Transport: "tcp", MessagesIn: 3}},
		Queues:  []control.Queue{{Name: "/queue/a", Depth: 7}},
		Topics:  []control.Topic{{Name: "/topic/t", Subscribers: 2}},
		Cluster: f.cluster,
	}, nil
}

func (f *fakeSource) Disconnect(_ context.Context, pid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pid != os.Getpid() {
		return errors.New("no client with that pid")
	}
	f.disconnected = append(f.disconnected, pid)
	return nil
}

func usersFile(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("root:"+string(h)+":admin\nalice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAccess: who may see the page and who may disconnect, with and
// without a users file.
func TestAccess(t *testing.T) {
	users := usersFile(t)
	pid := "/clients/" + itoa(os.Getpid()) + "/disconnect"
	for _, tc := range []struct {
		name, users, method, path, login, pass, origin string
		want                                           int
	}{
		{"page, no users file", "", "GET", "/", "", "", "", 200},
		{"disconnect, no users file", "", "POST", pid, "", "", "", 403},
		{"page, no login", users, "GET", "/", "", "", "", 401},
		{"page, wrong passcode", users, "GET", "/", "alice", "nope", "", 401},
		{"page, user", users, "GET", "/console.js", "alice", "pw", "", 200},
		{"disconnect, no login", users, "POST", pid, "", "", "", 401},
		{"disconnect, non-admin", users, "POST", pid, "alice", "pw", "", 403},
		{"disconnect, admin", users, "POST", pid, "root", "pw", "", 204},
		{"disconnect, admin, same origin", users, "POST", pid, "root", "pw", "http://example.com", 204},
		{"disconnect, admin, other origin", users, "POST", pid, "root", "pw", "http://evil.example", 403},
		{"disconnect, admin, unknown pid", users, "POST", "/clients/1/disconnect", "root", "pw", "", 404},
		{"disconnect, GET", users, "GET", pid, "root", "pw", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{}
			s := New(Config{Source: src, UsersFile: tc.users})
			req := httptest.NewRequest(tc.method, "http://example.com"+tc.path, nil)
			if tc.login != "" {
				req.SetBasicAuth(tc.login, tc.pass)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
			}
			if (len(src.disconnected) == 1) != (tc.want == 204) {
				t.Errorf("disconnected %v after status %d", src.disconnected, rec.Code)
			}
		})
	}
}

// TestSlowStreamDropped: a stream that does not take its samples is
// dropped once its buffer is full, and the others keep theirs.
func TestSlowStreamDropped(t *testing.T) {
	s := newSampler(&fakeSource{}, time.Second, 10, "/proc")
	slow, _ := s.subscribe()
	fast, _ := s.subscribe()
	for i := 0; i < subscriberBuffer+1; i++ {
		s.publish(s.take(context.Background()))
		<-fast.ch
	}
	select {
	case <-slow.dropped:
	default:
		t.Fatal("the slow stream was not dropped")
	}
	select {
	case <-fast.dropped:
		t.Fatal("the fast stream was dropped")
	default:
	}
	if len(s.history) != subscriberBuffer+1 {
		t.Errorf("history holds %d points, want %d", len(s.history), subscriberBuffer+1)
	}
}

// TestEventsStream reads the SSE stream with a plain HTTP client: history
// first, then samples with the client's /proc figures and the queue.
func TestEventsStream(t *testing.T) {
	s := New(Config{Source: &fakeSource{}, Interval: 50 * time.Millisecond})
	srv := httptest.NewUnstartedServer(s.http.Handler)
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.sampler.run(ctx)
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() && len(lines) < 6 {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	if lines[0] != "event: history" || lines[2] != "event: sample" {
		t.Fatalf("stream %q", lines)
	}
	for _, want := range []string{`"pid":` + itoa(os.Getpid()), `"pss_kib":`, `"name":"/queue/a","depth":7`, `"point":{`} {
		if !strings.Contains(lines[3], want) {
			t.Errorf("sample %s lacks %s", lines[3], want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSampleCarriesCluster: a sample says whether the broker is connected
// to the other brokers (and its node name) when it has a cluster, and
// carries no cluster field when it has none.
func TestSampleCarriesCluster(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster *control.Cluster
		want    string // in the sample's JSON; "" for no cluster field
	}{
		{"no cluster", nil, ""},
		{"connected", &control.Cluster{Node: "n1", Connected: true, Sent: 4}, `"cluster":{"node":"n1","connected":true,"sent":4,`},
		{"cut off", &control.Cluster{Node: "n2"}, `"cluster":{"node":"n2","connected":false,`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(&fakeSource{cluster: tc.cluster}, time.Second, 10, "/proc")
			data, err := json.Marshal(s.take(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			switch has := strings.Contains(string(data), `"cluster"`); {
			case tc.want == "" && has:
				t.Errorf("sample without a cluster has one: %s", data)
			case tc.want != "" && !strings.Contains(string(data), tc.want):
				t.Errorf("sample %s lacks %s", data, tc.want)
			}
		})
	}
}
