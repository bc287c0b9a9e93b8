package ipc

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// The start-up contract between the parent and a child: how the parent
// starts a child (command word, file descriptors, environment) and what it
// tells it (ChildConfig). The parent (package parent, spawn.go) writes it,
// the child (package child) reads it; both import it from here, so neither
// process role depends on the other.

// ChildCommand is the word the parent puts in argv[1] when it re-executes
// its own binary as a child. [StartedAsChild] recognises a child by it,
// before any flag parsing; the rest of argv is free for ps to show.
const ChildCommand = "child"

// TitleRoom is how many bytes the parent reserves for a spare's process
// title: it pads the spare's argv[0] to this length, so that the spare can
// later write "stomp-broker: client ADDR" (21 bytes plus at most 47 for an
// IPv6 address with zone and port) over it in place.
const TitleRoom = 96

// File descriptors a child inherits from the parent (exec.Cmd.ExtraFiles
// entry i becomes fd 3+i).
const (
	// FDClient is the accepted TCP connection of the client the child serves.
	FDClient = 3
	// FDParent is the child's end of its SOCK_SEQPACKET socketpair with the parent.
	FDParent = 4
)

// Environment variables the parent sets for a child. The parent builds a
// child's environment from an allow-list, so nothing else leaks in (no
// LISTEN_FDS, no NOTIFY_SOCKET).
const (
	// EnvRole carries the parent/child protocol version, so a child refuses
	// a parent speaking another version (after an in-place upgrade, say).
	EnvRole = "STOMP_BROKER_CHILD"
	// EnvConfig holds the child's ChildConfig as JSON.
	EnvConfig = "STOMP_BROKER_CHILD_CONFIG"
	// ProtocolVersion is the current parent/child protocol version: the
	// value of EnvRole and the version of the record format in this package.
	ProtocolVersion = "1"
)

// StartedAsChild reports whether this process was started by a parent as
// a child, judged by argv alone (see [ChildCommand]). It is the one test
// for the role, used by main and by the child package's init.
func StartedAsChild() bool {
	return len(os.Args) > 1 && os.Args[1] == ChildCommand
}

// ChildConfig is what the parent tells a child about its job. It travels
// as JSON in EnvConfig.
type ChildConfig struct {
	// ClientAddr is the client's remote address, for logs.
	ClientAddr string `json:"client_addr"`
	// Limits bounds every frame the client sends.
	Limits stompwire.Limits `json:"limits"`
	// ConnectTimeout is how long a client may take to send CONNECT.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// HeartBeat is the longest heart-beat interval the broker offers and
	// asks for in CONNECTED's heart-beat header, and what it proposes where
	// the client asks nothing; 0 disables heart-beating.
	HeartBeat time.Duration `json:"heart_beat"`
	// HeartBeatMin is the shortest interval the broker offers: a client
	// asking for beats more often gets them this often (bounded by
	// HeartBeat; 0 = no floor).
	HeartBeatMin time.Duration `json:"heart_beat_min"`
	// MaxSubscriptions caps subscriptions per connection.
	MaxSubscriptions int `json:"max_subscriptions"`
	// DefaultPrefetch is a queue subscription's credit (unacked messages in
	// flight) when SUBSCRIBE names none.
	DefaultPrefetch int `json:"default_prefetch"`
	// SemaphoreID and Slots identify the parent's semaphore set.
	SemaphoreID int `json:"semaphore_id"`
	Slots       int `json:"slots"`
	// UsersFile, when set, names the login:bcrypt-hash file CONNECT is checked against.
	UsersFile string `json:"users_file,omitempty"`
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string `json:"log_level"`
	// Trace logs every hop of every frame.
	Trace bool `json:"trace"`
	// ServerName is sent in CONNECTED's server header.
	ServerName string `json:"server_name"`
	// TLSCertFile and TLSKeyFile, when both are set, make the child serve
	// its client over TLS: it does the handshake itself with these PEM
	// files (the parent only accepted the TCP connection).
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
	// Transport is how the client came in (tcp, tls, ws, wss; empty
	// means tcp). For ws and wss the child answers the client's HTTP
	// upgrade itself, after the TLS handshake for wss.
	Transport Transport `json:"transport,omitempty"`
	// WSAllowedOrigins are the Origin patterns a WebSocket client's page
	// may come from (--ws-allowed-origins; empty allows any).
	WSAllowedOrigins []string `json:"ws_allowed_origins,omitempty"`
	// Spare marks a child started before its client arrived: it holds no
	// client socket (fd 3 is closed) and waits for the parent's handoff
	// (see [Handoff]), which fills in ClientAddr, LogLevel and whether the
	// TLS files apply.
	Spare bool `json:"spare,omitempty"`
}

// Encode returns c as the value of EnvConfig.
func (c ChildConfig) Encode() string {
	b, _ := json.Marshal(c) // plain data always marshals
	return string(b)
}

// ChildConfigFromEnv reads and checks a child's environment. Its errors are
// written for a human who ran `stomp-broker child` by hand.
func ChildConfigFromEnv() (ChildConfig, error) {
	role, ok := os.LookupEnv(EnvRole)
	if !ok {
		return ChildConfig{}, fmt.Errorf("this command is run by the stomp-broker parent process, once per client connection; it is not meant to be run by hand (start the broker with `stomp-broker`)")
	}
	if role != ProtocolVersion {
		return ChildConfig{}, fmt.Errorf("parent speaks child protocol %q, this binary speaks %q", role, ProtocolVersion)
	}
	var c ChildConfig
	if err := json.Unmarshal([]byte(os.Getenv(EnvConfig)), &c); err != nil {
		return ChildConfig{}, fmt.Errorf("bad %s: %w", EnvConfig, err)
	}
	return c, nil
}

// MaxRecordFor is the largest record either side accepts when clients'
// frames are bounded by lim: a relayed frame (re-escaped for STOMP 1.2, with
// the broker's own headers added, see [stompwire.Limits.Relayed]) plus room
// for the record's own fields. Parent and child use the same bound.
func MaxRecordFor(lim stompwire.Limits) int {
	r := lim.Relayed()
	return r.MaxBodyBytes + r.MaxHeaderLines*r.MaxHeaderLineBytes + 4096
}
