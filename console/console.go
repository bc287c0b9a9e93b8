// Package console is the broker's live web console: one page, served by the
// parent over HTTP (--console-listen), that lists every client with the
// CPU time and memory of the process serving it, every queue and topic,
// and plots the message rates of the last minutes. An admin may disconnect
// a client from it.
//
// # Where the figures come from
//
// The broker's event loop owns the child table and the queue ledger. The
// console takes them through [Source.Snapshot], which the parent answers
// as one event between two others, exactly like `stomp-broker clients`
// and `queues` over the control socket (same function, same figures). The
// CPU time and Pss of each child are read here, from /proc/PID/stat and
// /proc/PID/smaps_rollup, in the console's own goroutine: never on the
// event loop. Rates are differences between two samples.
//
// # Cost
//
// One sampler goroutine takes a snapshot every Interval while at least one
// page is open, encodes it to JSON once and offers it to every open page
// (server-sent events). A page whose connection does not keep up is
// dropped after a few samples, never buffered without bound; the browser's
// EventSource reconnects by itself. With no page open nothing is sampled.
//
// # Access
//
// With a users file, every request needs HTTP basic auth from it (the
// same bcrypt check as STOMP logins, internal/userfile), and disconnecting
// needs a user marked admin. Without one, the page is open to whoever can
// reach the (loopback-only, the CLI enforces it) address and the
// disconnect button is refused: there is nobody to grant it to.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stomp-broker/stomp-broker/control"
	"github.com/stomp-broker/stomp-broker/internal/userfile"
)

// Source is the broker the console shows (a *parent.Broker).
type Source interface {
	// Snapshot returns clients, spares, queues, topics and the cluster
	// state (nil without a cluster) at one instant.
	Snapshot(ctx context.Context) (control.Response, error)
	// Disconnect sends SIGTERM to the child serving a client; an error for
	// a pid that is no client's.
	Disconnect(ctx context.Context, pid int) error
}

// Config configures a Server. Source is required.
type Config struct {
	Source Source
	// UsersFile is the --users file; empty for none (see the package
	// doc). It is read at every request, as children read it at every
	// CONNECT, so a changed file applies at once.
	UsersFile string
	// Interval is the time between samples (default 1s).
	Interval time.Duration
	// History is how many samples the plots keep (default 300: five
	// minutes at 1s).
	History int
	// ProcRoot is where /proc is (default "/proc"; tests change it).
	ProcRoot string
	// Log receives errors (default: discard).
	Log *slog.Logger
}

//go:embed assets
var assets embed.FS

// Server is the console's HTTP side.
type Server struct {
	cfg     Config
	sampler *sampler
	http    *http.Server
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a server for cfg; Serve starts it.
func New(cfg Config) *Server {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 300
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, sampler: newSampler(cfg.Source, cfg.Interval, cfg.History, cfg.ProcRoot), done: make(chan struct{})}
	static, _ := fs.Sub(assets, "assets") // cannot fail: the directory is embedded
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("POST /clients/{pid}/disconnect", s.disconnect)
	s.http = &http.Server{Handler: s.authenticated(mux), ReadHeaderTimeout: 5 * time.Second}
	return s
}

// Serve serves l until Close. It returns at once; errors are logged.
func (s *Server) Serve(l net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		s.sampler.run(ctx)
	}()
	go func() {
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Log.Error("web console listener failed", "err", err)
		}
	}()
}

// Close stops the server: its listener, every open stream and the sampler.
func (s *Server) Close() {
	s.http.Close()
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// realm is the basic-auth realm the browser shows.
const realm = `Basic realm="stomp-broker console", charset="UTF-8"`

// user is who made a request: "" without a users file.
type userKey struct{}

// authenticated requires basic auth from the users file for every request
// when there is one.
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.UsersFile == "" {
			next.ServeHTTP(w, r)
			return
		}
		f, err := userfile.Read(s.cfg.UsersFile)
		if err != nil {
			s.cfg.Log.Error("web console cannot read the users file", "err", err)
			http.Error(w, "the users file cannot be read", http.StatusServiceUnavailable)
			return
		}
		login, pass, ok := r.BasicAuth()
		if !ok || !f.Check(login, pass) {
			w.Header().Set("WWW-Authenticate", realm)
			http.Error(w, "log in with a user of the broker's --users file", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, f.Admins[login])))
	})
}

// events streams samples as server-sent events: first "history" (the plot
// points so far), then one "sample" per interval (a Sample as JSON).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	sub, history := s.sampler.subscribe()
	defer s.sampler.unsubscribe(sub)
	h, _ := json.Marshal(history)
	write := func(event string, data []byte) bool {
		// A stream that cannot take one event within the interval's
		// generous multiple is as good as dropped.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * s.cfg.Interval))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("history", h) {
		return
	}
	for {
		select {
		case data := <-sub.ch:
			if !write("sample", data) {
				return
			}
		case <-sub.dropped:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// disconnect ends one client: POST /clients/PID/disconnect, admins only.
// A cross-site form cannot post here: the request must come from the
// console's own page (Origin, when the browser sends one, must match).
func (s *Server) disconnect(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
	}
	switch admin, _ := r.Context().Value(userKey{}).(bool); {
	case s.cfg.UsersFile == "":
		http.Error(w, "disconnecting needs an admin login: start the broker with --users and mark a user admin (login:hash:admin)", http.StatusForbidden)
		return
	case !admin:
		http.Error(w, "only a user marked admin in the users file may disconnect clients", http.StatusForbidden)
		return
	}
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil || pid <= 0 {
		http.Error(w, "bad pid", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Source.Disconnect(ctx, pid); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
