package parent

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/stomp-broker/stomp-broker/control"
)

// ErrNoClient is returned by Disconnect for a pid that is not a connected
// client's child.
var ErrNoClient = errors.New("parent: no client with that pid")

// evDisconnect asks the event loop to SIGTERM one client's child; the loop
// sends exactly one answer on reply (buffered).
type evDisconnect struct {
	pid   int
	reply chan error
}

// Snapshot returns the broker at one instant: clients, spares, queues
// (with the store's counts), topics and the cluster state (nil without a
// cluster), the same figures `stomp-broker clients` and `queues` print. It is answered by the event loop between two
// events, so it waits (until ctx is done) but never makes the loop wait.
func (b *Broker) Snapshot(ctx context.Context) (control.Response, error) {
	resp := b.ask(ctx, control.RequestSnapshot)
	if resp.Error != "" {
		return resp, fmt.Errorf("parent: snapshot: %s", resp.Error)
	}
	return resp, nil
}

// Disconnect sends SIGTERM to the child serving a client, as `kill PID`
// does: the child sends its client ERROR "disconnected by operator" and
// exits. It returns ErrNoClient if pid is no connected client's child
// (spares included: they have no client yet), so a stale or forged pid
// never signals another process.
func (b *Broker) Disconnect(ctx context.Context, pid int) error {
	ev := evDisconnect{pid: pid, reply: make(chan error, 1)}
	select {
	case b.events <- ev:
	case <-b.done:
		return errors.New("parent: broker stopped")
	case <-ctx.Done():
		return fmt.Errorf("parent: disconnect %d: %w", pid, ctx.Err())
	}
	select {
	case err := <-ev.reply:
		return err
	case <-b.done:
		return errors.New("parent: broker stopped")
	case <-ctx.Done():
		return fmt.Errorf("parent: disconnect %d: %w", pid, ctx.Err())
	}
}

// disconnect signals client pid's child. Event loop only: the child table
// says whether pid is still ours, and Go's pidfd makes the signal free of
// pid reuse.
func (b *Broker) disconnect(pid int) error {
	c := b.children[pid]
	if c == nil || c.gone {
		return fmt.Errorf("%w: %d", ErrNoClient, pid)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("parent: SIGTERM child %d: %w", pid, err)
	}
	b.log.Info("client disconnected from the web console", "client", c.addr, "child_pid", pid)
	return nil
}
