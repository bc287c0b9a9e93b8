package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// MaxInline is the largest payload sent inside a NOTIFY (PostgreSQL's
// limit is 8000 bytes); larger ones go through stomp_bus_payload.
const MaxInline = 7900

const (
	channelPrefix   = "stomp_bus_"
	interestChannel = "stomp_bus_interest"
	// deadAfter heartbeats without a sign of life, a node is ignored.
	deadAfter = 5
	// payloadTTL is how long a large payload's row is kept.
	payloadTTL = time.Minute
	// opTimeout bounds one round trip of the sender; past it the
	// connection is dropped and made again.
	opTimeout  = 10 * time.Second
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	maxBatch   = 256
)

// Message is one message crossing brokers.
type Message struct {
	// Origin is the node that sent it (set by the bus).
	Origin string `json:"o"`
	// Dest is the destination it was sent to: a /topic/... or the
	// /reply-queue/... name of a temporary queue.
	Dest string `json:"d"`
	// ID is its message-id.
	ID string `json:"i"`
	// Enc is the MESSAGE frame as the sending broker encoded it.
	Enc []byte `json:"m"`
}

// Config configures a Bus.
type Config struct {
	// DSN is the PostgreSQL connection string (the --store URL).
	DSN string
	// Heartbeat is how often the node proves it is alive and reloads the
	// other nodes' interest (default 2s).
	Heartbeat time.Duration
	// QueueLen bounds the messages waiting to be sent (default 65536);
	// past it they are dropped and counted.
	QueueLen int
	// Log receives the bus's few log lines (default: discard).
	Log *slog.Logger
}

// Stats are the bus's counters.
type Stats struct {
	Connected bool
	// Sent, Received and Dropped count messages.
	Sent, Received, Dropped uint64
	// LocalTopics and RemoteTopics count the topics with subscribers on
	// this node and on the others.
	LocalTopics, RemoteTopics int
}

type outMsg struct {
	channels []string
	m        Message
}

// Bus is one node's connection to the others. Its methods are safe for
// concurrent use.
type Bus struct {
	cfg    Config
	node   string
	log    *slog.Logger
	out    chan outMsg
	dirty  chan struct{}
	recv   chan Message
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	local  map[string]bool     // topics this node's clients subscribe to
	remote map[string][]string // topic → channels of other live nodes interested in it
	// remoteGen is the loadSeq of the load remote came from: both
	// connections load it, and an older load must not overwrite a newer.
	remoteGen uint64
	loadSeq   atomic.Uint64

	listenUp, sendUp atomic.Bool
	stateMu          sync.Mutex
	reported         bool // the connected state last logged

	sent, received, dropped atomic.Uint64
}

// Open starts a node on the database cfg.DSN names. It does not wait for
// the database: the node connects (and reconnects) in the background.
func Open(cfg Config) (*Bus, error) {
	if _, err := pgx.ParseConfig(cfg.DSN); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1 << 16
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		cfg: cfg, node: newNodeName(), out: make(chan outMsg, cfg.QueueLen),
		dirty: make(chan struct{}, 1), recv: make(chan Message, 1024),
		ctx: ctx, cancel: cancel, local: map[string]bool{}, remote: map[string][]string{},
	}
	b.log = cfg.Log.With("node", b.node)
	b.wg.Add(2)
	go b.sender()
	go b.listener()
	return b, nil
}

// newNodeName is a fresh lower-case name: the start time and a random part.
func newNodeName() string {
	n, err := rand.Int(rand.Reader, big.NewInt(36*36*36*36*36))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatInt(n.Int64()+36*36*36*36, 36)
}

// Node is this node's name, unique among the brokers sharing the database
// and new at every start.
func (b *Bus) Node() string { return b.node }

// Connected reports whether the node is connected to the database (both
// its listening and its sending connection).
func (b *Bus) Connected() bool { return b.listenUp.Load() && b.sendUp.Load() }

// Received delivers the messages other nodes sent to this one, in the
// order they were sent.
func (b *Bus) Received() <-chan Message { return b.recv }

// Stats returns the counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Connected: b.Connected(), Sent: b.sent.Load(), Received: b.received.Load(), Dropped: b.dropped.Load(),
		RemoteTopics: len(b.remote), LocalTopics: len(b.local)}
}

// Interested reports whether another live node has subscribers for topic.
func (b *Bus) Interested(topic string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.remote[topic]) > 0
}

// Publish queues a topic message for the other nodes with subscribers to
// m.Dest and returns their number (0: nothing is sent).
func (b *Bus) Publish(m Message) int {
	b.mu.Lock()
	chans := b.remote[m.Dest]
	b.mu.Unlock()
	if len(chans) == 0 {
		return 0
	}
	b.enqueue(outMsg{channels: chans, m: m})
	return len(chans)
}

// SendTo queues m for node alone.
func (b *Bus) SendTo(node string, m Message) {
	b.enqueue(outMsg{channels: []string{channelPrefix + node}, m: m})
}

func (b *Bus) enqueue(om outMsg) {
	om.m.Origin = b.node
	if !b.Connected() {
		b.dropped.Add(1)
		return
	}
	select {
	case b.out <- om:
	default:
		b.dropped.Add(1)
	}
}

// SetInterest records whether this node's clients subscribe to topic; the
// other nodes learn it a moment later.
func (b *Bus) SetInterest(topic string, on bool) {
	b.mu.Lock()
	if on {
		b.local[topic] = true
	} else {
		delete(b.local, topic)
	}
	b.mu.Unlock()
	select {
	case b.dirty <- struct{}{}:
	default:
	}
}

// Close stops the node: it leaves the database (its interest goes) and
// closes its connections. Received is not closed.
func (b *Bus) Close() {
	b.cancel()
	b.wg.Wait()
}

// setUp records the state of one connection and logs the node's
// transitions between connected and cut off, once each.
func (b *Bus) setUp(flag *atomic.Bool, up bool, err error) {
	flag.Store(up)
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	now := b.Connected()
	if now == b.reported || b.ctx.Err() != nil {
		return
	}
	b.reported = now
	if now {
		b.log.Info("cluster: connected to the database; topics and reply queues span the brokers sharing it")
	} else {
		b.log.Warn("cluster: cut off from the database; serving this broker's clients only, reconnecting", "err", err)
	}
}

// connect opens one connection and makes sure the schema exists. A
// cancelled context makes a call fail at once (the connection is dropped),
// rather than send the server a cancel request.
func (b *Bus) connect() (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(b.cfg.DSN)
	if err != nil {
		return nil, err
	}
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range schema {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("cluster schema: %w", err)
	}
	return conn, nil
}

var schema = []string{
	// Two nodes starting at once must not race to create the tables.
	`SELECT pg_advisory_xact_lock(hashtext('stomp_bus_schema'))`,
	`CREATE TABLE IF NOT EXISTS stomp_bus_node (node text PRIMARY KEY, seen timestamptz NOT NULL DEFAULT now())`,
	`CREATE TABLE IF NOT EXISTS stomp_bus_interest (node text NOT NULL REFERENCES stomp_bus_node ON DELETE CASCADE,
		topic text NOT NULL, PRIMARY KEY (node, topic))`,
	`CREATE TABLE IF NOT EXISTS stomp_bus_payload (id bigserial PRIMARY KEY, body bytea NOT NULL,
		created timestamptz NOT NULL DEFAULT now())`,
}

// sleep waits d, dropping (and counting) what is queued meanwhile; false
// if the bus is closing.
func (b *Bus) sleep(d time.Duration, drain bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var out chan outMsg
	if drain {
		out = b.out
	}
	for {
		select {
		case <-b.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-out:
			b.dropped.Add(1)
		}
	}
}

func nextBackoff(d time.Duration) time.Duration { return min(2*d, maxBackoff) }

// sender owns the sending connection: messages, interest, heartbeats.
func (b *Bus) sender() {
	defer b.wg.Done()
	var conn *pgx.Conn
	backoff := minBackoff
	hb := time.NewTicker(b.cfg.Heartbeat)
	defer hb.Stop()
	for {
		if conn == nil {
			c, err := b.connect()
			if err == nil {
				err = b.syncInterest(c)
				if err != nil {
					c.Close(context.Background())
				}
			}
			if err != nil {
				if b.ctx.Err() != nil {
					return
				}
				b.setUp(&b.sendUp, false, err)
				if !b.sleep(backoff, true) {
					return
				}
				backoff = nextBackoff(backoff)
				continue
			}
			conn, backoff = c, minBackoff
			b.setUp(&b.sendUp, true, nil)
		}
		var err error
		select {
		case <-b.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = conn.Exec(ctx, `DELETE FROM stomp_bus_node WHERE node = $1`, b.node)
			_, _ = conn.Exec(ctx, `SELECT pg_notify($1, '')`, interestChannel)
			cancel()
			conn.Close(context.Background())
			return
		case om := <-b.out:
			batch := []outMsg{om}
		more:
			for len(batch) < maxBatch {
				select {
				case om := <-b.out:
					batch = append(batch, om)
				default:
					break more
				}
			}
			err = b.send(conn, batch)
		case <-b.dirty:
			err = b.syncInterest(conn)
		case <-hb.C:
			err = b.heartbeat(conn)
		}
		if err != nil {
			if b.ctx.Err() != nil {
				conn.Close(context.Background())
				return
			}
			b.setUp(&b.sendUp, false, err)
			conn.Close(context.Background())
			conn = nil
		}
	}
}

// send NOTIFYs a batch in one round trip (one implicit transaction, so
// the notifications are delivered in this order).
func (b *Bus) send(conn *pgx.Conn, batch []outMsg) error {
	var pb pgx.Batch
	for _, om := range batch {
		payload, err := json.Marshal(om.m)
		if err != nil {
			return fmt.Errorf("cluster: encode: %w", err)
		}
		if len(payload) <= MaxInline {
			pb.Queue(`SELECT pg_notify(c, $2) FROM unnest($1::text[]) AS c`, om.channels, string(payload))
		} else {
			pb.Queue(`WITH p AS (INSERT INTO stomp_bus_payload (body) VALUES ($2) RETURNING id)
				SELECT pg_notify(c, '@' || p.id) FROM p, unnest($1::text[]) AS c`, om.channels, payload)
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	if err := conn.SendBatch(ctx, &pb).Close(); err != nil {
		b.dropped.Add(uint64(len(batch)))
		return fmt.Errorf("cluster: notify: %w", err)
	}
	b.sent.Add(uint64(len(batch)))
	return nil
}

// syncInterest writes this node's liveness and interest and tells the
// other nodes.
func (b *Bus) syncInterest(conn *pgx.Conn) error {
	b.mu.Lock()
	topics := make([]string, 0, len(b.local))
	for t := range b.local {
		topics = append(topics, t)
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO stomp_bus_node (node) VALUES ($1)
			ON CONFLICT (node) DO UPDATE SET seen = now()`, b.node); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM stomp_bus_interest WHERE node = $1`, b.node); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO stomp_bus_interest (node, topic) SELECT $1, t FROM unnest($2::text[]) AS t`, b.node, topics); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, interestChannel, b.node)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: interest: %w", err)
	}
	return nil
}

// heartbeat proves this node alive, forgets dead nodes and old payloads,
// and reloads the other nodes' interest (a dead node's lapses here).
func (b *Bus) heartbeat(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	tag, err := conn.Exec(ctx, `UPDATE stomp_bus_node SET seen = now() WHERE node = $1`, b.node)
	if err != nil {
		return fmt.Errorf("cluster: heartbeat: %w", err)
	}
	if tag.RowsAffected() == 0 { // thought dead by another node: say it again
		if err := b.syncInterest(conn); err != nil {
			return err
		}
	}
	dead := (deadAfter * b.cfg.Heartbeat).Milliseconds()
	if _, err := conn.Exec(ctx, `DELETE FROM stomp_bus_node WHERE seen < now() - $1 * interval '1 millisecond'`, dead); err != nil {
		return fmt.Errorf("cluster: forget dead nodes: %w", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM stomp_bus_payload WHERE created < now() - $1 * interval '1 millisecond'`, payloadTTL.Milliseconds()); err != nil {
		return fmt.Errorf("cluster: forget old payloads: %w", err)
	}
	return b.loadInterest(ctx, conn)
}

// loadInterest reads which live nodes other than this one subscribe to
// which topics.
func (b *Bus) loadInterest(ctx context.Context, conn *pgx.Conn) error {
	gen := b.loadSeq.Add(1)
	rows, err := conn.Query(ctx, `SELECT i.topic, i.node FROM stomp_bus_interest i JOIN stomp_bus_node n ON n.node = i.node
		WHERE i.node <> $1 AND n.seen > now() - $2 * interval '1 millisecond'`, b.node, (deadAfter * b.cfg.Heartbeat).Milliseconds())
	if err != nil {
		return fmt.Errorf("cluster: load interest: %w", err)
	}
	remote := map[string][]string{}
	var topic, node string
	_, err = pgx.ForEachRow(rows, []any{&topic, &node}, func() error {
		remote[topic] = append(remote[topic], channelPrefix+node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: load interest: %w", err)
	}
	b.mu.Lock()
	if gen > b.remoteGen {
		b.remote, b.remoteGen = remote, gen
	}
	b.mu.Unlock()
	return nil
}

// listener owns the listening connection.
func (b *Bus) listener() {
	defer b.wg.Done()
	backoff := minBackoff
	for {
		conn, err := b.connect()
		if err == nil {
			err = b.listen(conn, func() { backoff = minBackoff })
			conn.Close(context.Background())
		}
		if b.ctx.Err() != nil {
			return
		}
		b.setUp(&b.listenUp, false, err)
		if !b.sleep(backoff, false) {
			return
		}
		backoff = nextBackoff(backoff)
	}
}

// listen LISTENs and hands on what arrives until the connection fails.
func (b *Bus) listen(conn *pgx.Conn, up func()) error {
	own := channelPrefix + b.node
	for _, ch := range []string{own, interestChannel} {
		if _, err := conn.Exec(b.ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("cluster: listen: %w", err)
		}
	}
	if err := b.loadInterest(b.ctx, conn); err != nil {
		return err
	}
	up()
	b.setUp(&b.listenUp, true, nil)
	for {
		n, err := conn.WaitForNotification(b.ctx)
		if err != nil {
			return fmt.Errorf("cluster: wait: %w", err)
		}
		if n.Channel == interestChannel {
			if n.Payload != b.node {
				if err := b.loadInterest(b.ctx, conn); err != nil {
					return err
				}
			}
			continue
		}
		payload := []byte(n.Payload)
		if ref, ok := strings.CutPrefix(n.Payload, "@"); ok {
			id, err := strconv.ParseInt(ref, 10, 64)
			if err != nil {
				b.log.Warn("cluster: undecodable notification; ignored", "payload", n.Payload)
				continue
			}
			err = conn.QueryRow(b.ctx, `SELECT body FROM stomp_bus_payload WHERE id = $1`, id).Scan(&payload)
			if errors.Is(err, pgx.ErrNoRows) {
				b.dropped.Add(1) // deleted before we got to it
				continue
			}
			if err != nil {
				return fmt.Errorf("cluster: read payload: %w", err)
			}
		}
		var m Message
		if err := json.Unmarshal(payload, &m); err != nil {
			b.log.Warn("cluster: undecodable notification; ignored", "err", err)
			continue
		}
		b.received.Add(1)
		select {
		case b.recv <- m:
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}
