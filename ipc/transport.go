package ipc

// Transport is how a client reaches the broker: which listener accepted
// it, and so what the child does with the raw socket before STOMP starts.
type Transport string

// The transports. The zero value means TransportTCP.
const (
	// TransportTCP is STOMP straight on the TCP connection (--listen).
	TransportTCP Transport = "tcp"
	// TransportTLS is STOMP over TLS (--tls-listen): the child does the
	// TLS handshake.
	TransportTLS Transport = "tls"
	// TransportWS is STOMP over WebSocket (--ws-listen): the child answers
	// the HTTP upgrade (package wsstomp).
	TransportWS Transport = "ws"
	// TransportWSS is STOMP over WebSocket over TLS (--wss-listen): the
	// child does the TLS handshake, then the upgrade.
	TransportWSS Transport = "wss"
)

// OrTCP returns t, or TransportTCP for the zero value.
func (t Transport) OrTCP() Transport {
	if t == "" {
		return TransportTCP
	}
	return t
}

// UsesTLS reports whether the child must do a TLS handshake first.
func (t Transport) UsesTLS() bool { return t == TransportTLS || t == TransportWSS }

// IsWebSocket reports whether the child must answer an HTTP upgrade.
func (t Transport) IsWebSocket() bool { return t == TransportWS || t == TransportWSS }
