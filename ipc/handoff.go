package ipc

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Spare children. A spare is a child started before its client arrives: it
// inherits only its socketpair end, as fd 4 ([FDParent]) and, as a
// placeholder, fd 3 ([FDClient]), and a ChildConfig with Spare set, and
// waits. When a client connects, the parent
// sends the spare one handoff packet over the socketpair: the flag byte
// [HandoffFlag], a JSON [Handoff] with what only the accept knows, and the
// client socket itself as an SCM_RIGHTS control message. From then on the
// spare moves the client socket onto fd 3 (replacing the placeholder) and
// is from then on an ordinary child of that client, with the same
// descriptors as a child started for it. A spare that reads EOF instead
// (the parent stopped or died) exits quietly.

// HandoffFlag is the first byte of the handoff packet. It is no packet flag
// of a batch ('B', 'M', 'E'), so a spare cannot mistake anything else for a
// handoff.
const HandoffFlag = 'H'

// maxHandoff bounds the handoff packet a spare accepts.
const maxHandoff = 4096

// Handoff is the per-client part of a ChildConfig, which a spare learns
// only when its client arrives.
type Handoff struct {
	// ClientAddr is the client's remote address.
	ClientAddr string `json:"client_addr"`
	// Transport is how the client came in; a TLS one (TransportTLS,
	// TransportWSS) makes the child do the TLS handshake with the
	// ChildConfig's TLSCertFile and TLSKeyFile.
	Transport Transport `json:"transport,omitempty"`
	// LogLevel is the log level in force when the client connected (a
	// reload may have changed it since the spare started).
	LogLevel string `json:"log_level"`
	// Accepted is when the parent accepted the client.
	Accepted time.Time `json:"accepted"`
}

// Apply returns cfg with the per-client fields of h filled in: a spare's
// template becomes the configuration of a child spawned for that client.
func (h Handoff) Apply(cfg ChildConfig) ChildConfig {
	cfg.ClientAddr = h.ClientAddr
	cfg.LogLevel = h.LogLevel
	cfg.Transport = h.Transport.OrTCP()
	if !cfg.Transport.UsesTLS() {
		cfg.TLSCertFile, cfg.TLSKeyFile = "", ""
	}
	return cfg
}

// SendHandoff sends h and the client socket to a spare in one packet. The
// caller still owns client and closes it afterwards: the spare has its own
// copy once SendHandoff returned nil.
func (c *Conn) SendHandoff(h Handoff, client *os.File) error {
	body, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("ipc: handoff: %w", err)
	}
	raw, err := client.SyscallConn()
	if err != nil {
		return fmt.Errorf("ipc: handoff: %w", err)
	}
	var sendErr error
	if err := raw.Control(func(fd uintptr) {
		_, _, sendErr = c.uc.WriteMsgUnix(append([]byte{HandoffFlag}, body...), unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return fmt.Errorf("ipc: handoff: %w", err)
	}
	if sendErr != nil {
		return fmt.Errorf("ipc: handoff: %w", sendErr)
	}
	return nil
}

// ReceiveHandoff waits on fd, a spare's blocking socketpair end, for the
// parent's handoff packet and returns it with the client socket's
// descriptor (close-on-exec). It returns io.EOF when the parent closed the
// socketpair first, and an error for anything that is not a handoff packet
// with exactly one descriptor. It blocks its thread in recvmsg: a spare
// has nothing else to do.
func ReceiveHandoff(fd int) (Handoff, int, error) {
	buf := make([]byte, maxHandoff)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room to notice extra fds
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return Handoff{}, -1, fmt.Errorf("ipc: handoff: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return Handoff{}, -1, fmt.Errorf("ipc: handoff control message: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, got...)
			}
		}
	}
	fail := func(err error) (Handoff, int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return Handoff{}, -1, err
	}
	switch {
	case n == 0 && len(fds) == 0:
		return Handoff{}, -1, io.EOF
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		return fail(ErrTruncated)
	case n < 1 || buf[0] != HandoffFlag || len(fds) != 1:
		return fail(fmt.Errorf("%w: not a handoff packet (%d bytes, %d descriptors)", ErrMalformed, n, len(fds)))
	}
	var h Handoff
	if err := json.Unmarshal(buf[1:n], &h); err != nil {
		return fail(fmt.Errorf("%w: handoff: %v", ErrMalformed, err))
	}
	return h, fds[0], nil
}

// SetReadDeadline sets the deadline of blocked and future reads; the
// parent uses it to stop watching a waiting spare before it hands it a
// client.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }
