package child

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// File descriptors a child inherits from the parent (exec.Cmd.ExtraFiles
// entry i becomes fd 3+i). They are the whole interface between the two
// processes, so they are fixed and documented here.
const (
	// FDClient is the accepted TCP connection of the client this child serves.
	FDClient = 3
	// FDParent is the child's end of its SOCK_SEQPACKET socketpair with the parent.
	FDParent = 4
)

// Environment variables the parent sets for a child. The environment is
// built from an allow-list, so nothing else leaks in (no LISTEN_FDS, no
// NOTIFY_SOCKET).
const (
	// EnvRole marks a process as a broker child; its value is the
	// parent/child protocol version, so a child refuses a parent speaking
	// another version (after an in-place upgrade, say).
	EnvRole = "STOMP_BROKER_CHILD"
	// EnvConfig holds the child's Config as JSON.
	EnvConfig = "STOMP_BROKER_CHILD_CONFIG"
	// ProtocolVersion is the current parent/child protocol version.
	ProtocolVersion = "1"
)

// Config is what the parent tells a child about its job. It travels as JSON
// in EnvConfig.
type Config struct {
	// ClientAddr is the client's remote address, for logs.
	ClientAddr string `json:"client_addr"`
	// Limits bounds every frame the client sends.
	Limits stompwire.Limits `json:"limits"`
	// ConnectTimeout is how long a client may take to send CONNECT.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// HeartBeat is the interval the broker offers and asks for in
	// CONNECTED's heart-beat header; 0 disables heart-beating.
	HeartBeat time.Duration `json:"heart_beat"`
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
}

// Encode returns c as the value of EnvConfig.
func (c Config) Encode() string {
	b, _ := json.Marshal(c) // plain data always marshals
	return string(b)
}

// configFromEnv reads and checks the child's environment. Its errors are
// written for a human who ran `stomp-broker child` by hand.
func configFromEnv() (Config, error) {
	role, ok := os.LookupEnv(EnvRole)
	if !ok {
		return Config{}, fmt.Errorf("this command is run by the stomp-broker parent process, once per client connection; it is not meant to be run by hand (start the broker with `stomp-broker`)")
	}
	if role != ProtocolVersion {
		return Config{}, fmt.Errorf("parent speaks child protocol %q, this binary speaks %q", role, ProtocolVersion)
	}
	var c Config
	if err := json.Unmarshal([]byte(os.Getenv(EnvConfig)), &c); err != nil {
		return Config{}, fmt.Errorf("bad %s: %w", EnvConfig, err)
	}
	return c, nil
}
