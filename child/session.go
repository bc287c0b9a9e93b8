package child

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/semaphore"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// session is one client's STOMP session. All of its fields are owned by
// the goroutine running run; the two reader goroutines only hand it events
// over channels (and the client reader reads readWindow).
type session struct {
	cfg    ipc.ChildConfig
	log    *slog.Logger
	client net.Conn
	cw     *bufio.Writer // to the client; flushed once per wake-up
	parent *ipc.Conn
	sem    *semaphore.Set
	term   <-chan os.Signal

	version stompwire.Version
	// maxVersion is the highest STOMP version CONNECT may negotiate: a
	// WebSocket subprotocol (v10.stomp, v11.stomp) lowers it.
	maxVersion stompwire.Version
	connected  bool
	login      string
	// closing is set after DISCONNECT: later frames are ignored and the
	// session ends when the DISCONNECT's receipt (if any) has been sent.
	closing bool
	done    bool

	subs      map[string]*subscription   // by the client's subscription id
	subsByKey map[string]*subscription   // by the key the parent knows
	byDest    map[string][]*subscription // by destination
	clientID  string                     // CONNECT's client-id (ActiveMQ's durable subscriptions)
	unacked   map[string]*subscription   // client-mode queue deliveries awaiting ACK, by message id
	nextSub   uint64

	txs map[string][]txOp

	// raced[slot] is the latest offer generation this child raced for in
	// that slot. The parent shows a child the current offers again when
	// its credit comes back; one it already raced for (and won or lost)
	// is skipped without a system call.
	raced []uint64

	receipts        map[uint64]string // sync token → receipt id to send when SYNCED arrives
	nextToken       uint64
	disconnectToken uint64 // SYNCED for this token ends the session (0 = none)

	toParent []byte   // records to send to the parent at the end of this wake-up
	autoAcks []string // auto-mode queue deliveries to ACK once written to the socket (see flush)
	// ackDue is set when the auto-ACKs held back have waited autoAckHold.
	ackDue  bool
	scratch []byte // encoding buffer for frames to the client

	readWindow atomic.Int64  // heart-beat read window in ns for the client reader; 0 = none
	beatEvery  time.Duration // negotiated interval of the broker's heart-beats; 0 = none
	beatExpect time.Duration // negotiated interval of the client's heart-beats; 0 = none
	lastWrite  time.Time     // when bytes last went to the client, for heart-beats
}

type ackMode int

const (
	ackAuto ackMode = iota
	ackClient
	ackClientIndividual
)

// subscription is one SUBSCRIBE of this client.
type subscription struct {
	id       string // the client's id (the MESSAGE subscription header)
	key      string // unique for the life of the child; what the parent knows
	dest     string
	queue    bool
	ack      ackMode
	prefetch int
	inflight int      // queue messages claimed or delivered and not yet acked
	pending  []string // client-mode message ids in delivery order, for cumulative ACK
	held     int      // auto-mode deliveries written whose ACK is held back (flush)
}

// autoAckHold bounds how long the ACKs of written auto-mode messages wait
// for a record they can ride with (see flush).
const autoAckHold = 10 * time.Millisecond

// txOp is a frame held back until its transaction commits.
type txOp struct {
	f *frame.Frame
}

type clientEvent struct {
	f   *frame.Frame
	err error
}

type parentEvent struct {
	batch []byte
	err   error
}

func newSession(cfg ipc.ChildConfig, log *slog.Logger, client net.Conn, parent *ipc.Conn, sem *semaphore.Set, term <-chan os.Signal) *session {
	return &session{
		cfg:        cfg,
		log:        log,
		client:     client,
		cw:         bufio.NewWriterSize(client, 64<<10),
		parent:     parent,
		sem:        sem,
		term:       term,
		version:    stompwire.V12,
		maxVersion: stompwire.V12,
		subs:       map[string]*subscription{},
		subsByKey:  map[string]*subscription{},
		byDest:     map[string][]*subscription{},
		unacked:    map[string]*subscription{},
		txs:        map[string][]txOp{},
		receipts:   map[uint64]string{},
		raced:      make([]uint64, cfg.Slots+1),
	}
}

// run serves the session until the client or the parent goes away.
func (s *session) run() {
	defer s.finish()
	if s.cfg.ConnectTimeout > 0 {
		_ = s.client.SetReadDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	}
	frames := make(chan clientEvent, 64)
	go s.readClient(frames)
	batches := make(chan parentEvent, 4)
	go s.readParent(batches)

	var beat *time.Timer
	var beatC <-chan time.Time
	// One timer for the held auto-ACKs, armed when the first is held back
	// and stopped when they go out, not one per message.
	ackHold := time.NewTimer(autoAckHold)
	ackHold.Stop()
	defer ackHold.Stop()
	holding := false
	for !s.done {
		if s.beatEvery > 0 && beat == nil {
			beat = time.NewTimer(s.heartBeat(time.Now()))
			defer beat.Stop()
			beatC = beat.C
		}
		select {
		case ev := <-frames:
			s.onClient(ev)
		case ev := <-batches:
			s.onParent(ev)
		case now := <-beatC:
			beat.Reset(s.heartBeat(now))
		case <-ackHold.C:
			holding = false
			s.ackDue = true
		case <-s.term:
			s.fail(stompwire.ErrTextDisconnectedByOperator, "", "")
		}
		// Take whatever else is already waiting before writing anything,
		// so one wake-up costs one write per socket however many frames
		// it handled.
	drain:
		for i := 0; i < 256 && !s.done; i++ {
			select {
			case ev := <-frames:
				s.onClient(ev)
			case ev := <-batches:
				s.onParent(ev)
			default:
				break drain
			}
		}
		s.flush()
		switch {
		case len(s.autoAcks) == 0 && holding:
			ackHold.Stop()
			holding = false
		case len(s.autoAcks) > 0 && !holding:
			ackHold.Reset(autoAckHold)
			holding = true
		}
	}
}

// heartBeat writes a heart-beat (an EOL) if nothing went to the client for
// almost the negotiated interval, and returns how long to wait before the
// next check. The spec wants some data at least once per interval; the
// tenth of it held back absorbs timer and scheduling delays.
func (s *session) heartBeat(now time.Time) time.Duration {
	due := s.beatEvery - s.beatEvery/10
	if idle := now.Sub(s.lastWrite); idle < due {
		return due - idle
	}
	s.cw.Write([]byte{'\n'})
	return due
}

// readClient reads frames from the client until an error and hands them to
// the session loop. It owns the stompwire.Reader.
func (s *session) readClient(out chan<- clientEvent) {
	r := stompwire.NewReader(&deadlineReader{conn: s.client, window: &s.readWindow}, s.cfg.Limits)
	for {
		f, err := r.Read()
		if err != nil {
			out <- clientEvent{err: err}
			return
		}
		if f != nil && (f.Command == frame.CONNECT || f.Command == frame.STOMP) {
			// The reply decides the escaping rules for every later frame,
			// and CONNECT is version-agnostic, so switch now: the session
			// loop cannot answer before this goroutine reads on.
			r.SetVersion(negotiate(f.Header.Get(frame.AcceptVersion), s.maxVersion))
			// The CONNECT deadline is met; clear it before reading on, or
			// a CONNECT that arrived just in time could still be followed
			// by a false timeout. (The session loop sets the heart-beat
			// deadline, if any, when it answers.)
			_ = s.client.SetReadDeadline(time.Time{})
		}
		out <- clientEvent{f: f}
	}
}

// deadlineReader pushes the read deadline forward before every read while
// heart-beating is on, so a silent client is noticed.
type deadlineReader struct {
	conn   net.Conn
	window *atomic.Int64
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if w := d.window.Load(); w > 0 {
		_ = d.conn.SetReadDeadline(time.Now().Add(time.Duration(w)))
	}
	return d.conn.Read(p)
}

// readParent reads ipc batches from the parent and hands them (copied, as
// the ipc buffer is reused) to the session loop.
func (s *session) readParent(out chan<- parentEvent) {
	for {
		b, err := s.parent.ReadBatch()
		if err != nil {
			out <- parentEvent{err: err}
			return
		}
		out <- parentEvent{batch: append([]byte(nil), b...)}
	}
}

// flush sends what this wake-up produced: frames to the client first, then
// records to the parent, led by the ACKs of auto-mode messages (which
// count as consumed only once written).
//
// Those ACKs only give the parent its count of the subscription's credit
// back, so they are held back, to ride with the next record this child
// sends anyway (a CLAIM, typically, a fraction of a millisecond later at a
// steady rate), rather than waking the parent once more per message. They
// go at once when the session ends, when a subscription has half its
// prefetch held back (the parent's view of its credit stays at least
// half), or when they have waited autoAckHold (the session loop's timer
// sets ackDue). They lead the batch, so the parent never sees a record the
// client sent later (an UNSUBSCRIBE, say) before them.
func (s *session) flush() {
	if s.cw.Buffered() > 0 {
		s.lastWrite = time.Now()
		if err := s.cw.Flush(); err != nil {
			s.log.Debug("client write failed", "err", err)
			s.done = true
			return
		}
	}
	if len(s.autoAcks) > 0 && (len(s.toParent) > 0 || s.ackDue || s.done || s.ackPressure()) {
		acks := s.scratch[:0]
		for _, id := range s.autoAcks {
			if s.cfg.Trace {
				s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopAck, "record", ipc.KindAck.String(), "message-id", id, "ack", "auto: the MESSAGE is written")
			}
			acks = ipc.AppendText(acks, ipc.KindAck, id)
		}
		s.scratch = acks
		s.toParent = append(s.toParent, acks...)
		copy(s.toParent[len(acks):], s.toParent[:len(s.toParent)-len(acks)])
		copy(s.toParent, acks)
		clear(s.autoAcks)
		s.autoAcks = s.autoAcks[:0]
		for _, sub := range s.subs {
			sub.held = 0
		}
		s.ackDue = false
	}
	if len(s.toParent) > 0 {
		if err := s.parent.WriteBatch(s.toParent); err != nil {
			s.log.Warn("parent went away", "err", err)
			s.done = true
		}
		s.toParent = s.toParent[:0]
	}
}

// ackPressure reports whether a subscription has half its prefetch (at
// least one message) in auto-ACKs held back.
func (s *session) ackPressure() bool {
	for _, sub := range s.subs {
		if sub.held > 0 && sub.held >= sub.prefetch/2 {
			return true
		}
	}
	return false
}

// finish closes both connections; the parent sees EOF and forgets (or
// requeues) everything this child held.
func (s *session) finish() {
	s.flush()
	s.client.Close()
	s.parent.Close()
}

func (s *session) onClient(ev clientEvent) {
	if s.done {
		return
	}
	if ev.err != nil {
		s.onClientError(ev.err)
		return
	}
	if ev.f == nil { // heart-beat
		return
	}
	if s.closing {
		return // the client must not send after DISCONNECT; ignore it
	}
	if s.cfg.Trace {
		s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopClientRead, "frame", ev.f.Command, "destination", ev.f.Header.Get(frame.Destination))
	}
	s.handleFrame(ev.f)
}

func (s *session) onClientError(err error) {
	var pe *stompwire.ProtocolError
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		s.done = true
	case errors.As(err, &pe):
		receipt := pe.Receipt
		if s.version == stompwire.V10 {
			receipt = strings.TrimSpace(receipt) // as header() reads it
		}
		s.fail(pe.Msg, receipt, "")
	case errors.As(err, &ne) && ne.Timeout():
		if !s.connected {
			s.fail(stompwire.ErrTextConnectTimeout(s.cfg.ConnectTimeout), "", "")
		} else {
			s.fail(stompwire.ErrTextHeartBeatTimeout(time.Duration(s.readWindow.Load())), "",
				stompwire.ErrDetailHeartBeatTimeout(s.beatExpect))
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.done = true
	default:
		s.log.Debug("client read failed", "err", err)
		s.done = true
	}
}

func (s *session) onParent(ev parentEvent) {
	if ev.err != nil {
		if !s.done {
			s.fail(stompwire.ErrTextBrokerWentAway, "", "")
		}
		return
	}
	rest := ev.batch
	for len(rest) > 0 && !s.done {
		k, body, r, err := ipc.NextRecord(rest)
		if err != nil {
			s.log.Error("bad record from parent", "err", err)
			s.fail(stompwire.ErrTextInternal, "", "")
			return
		}
		rest = r
		if err := s.handleRecord(k, body); err != nil {
			s.log.Error("bad record from parent", "kind", k, "err", err)
			s.fail(stompwire.ErrTextInternal, "", "")
			return
		}
	}
}

// handleRecord applies one record from the parent.
func (s *session) handleRecord(k ipc.Kind, body []byte) error {
	switch k {
	case ipc.KindDeliver:
		dest, msgID, enc, err := ipc.DecodeMessage(body)
		if err != nil {
			return err
		}
		if s.cfg.Trace {
			s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopChildRead, "record", k.String(), "destination", dest, "message-id", msgID, "subscriptions", len(s.byDest[dest]))
		}
		subs := s.byDest[dest]
		if len(subs) == 0 && stompwire.IsTempQueue(dest) {
			// A reply to this connection's temporary queue, which the
			// client did not SUBSCRIBE to (RabbitMQ's way): it arrives on
			// a subscription named after the queue, in ack mode auto.
			subs = []*subscription{{id: dest, dest: dest, ack: ackAuto}}
		}
		for _, sub := range subs {
			s.writeMessage(enc, sub, msgID)
		}
	case ipc.KindOffer:
		o, err := ipc.DecodeOffer(body)
		if err != nil {
			return err
		}
		s.onOffer(o)
	case ipc.KindGrant:
		key, msgID, enc, err := ipc.DecodeMessage(body)
		if err != nil {
			return err
		}
		if s.cfg.Trace {
			dest := "" // a GRANT names the subscription, not the queue
			if sub := s.subsByKey[key]; sub != nil {
				dest = sub.dest
			}
			s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopChildRead, "record", k.String(), "destination", dest, "message-id", msgID)
		}
		s.onGrant(key, msgID, enc)
	case ipc.KindDeny:
		key, msgID, n, err := ipc.DecodeDenyCount(body)
		if err != nil {
			return err
		}
		if s.cfg.Trace {
			s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopChildRead, "record", k.String(), "message-id", msgID, "messages", n)
		}
		if sub := s.subsByKey[key]; sub != nil {
			sub.inflight = max(0, sub.inflight-n)
		}
	case ipc.KindSynced:
		token, flags, err := ipc.DecodeSynced(body)
		if err != nil {
			return err
		}
		if id, ok := s.receipts[token]; ok {
			delete(s.receipts, token)
			if s.cfg.Trace {
				s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopReceipt, "record", k.String(), "token", token, "frame", frame.RECEIPT, "receipt-id", id)
			}
			r := frame.New(frame.RECEIPT, frame.ReceiptId, id)
			if flags&ipc.SyncedCoalesced != 0 {
				r.Header.Add(stompwire.HeaderCoalesced, "true")
			}
			s.writeFrame(r)
		}
		if token == s.disconnectToken {
			s.flush()
			s.done = true
		}
	case ipc.KindRevoke:
		key, msgID, err := ipc.DecodeDeny(body)
		if err != nil {
			return err
		}
		s.revoke(key, msgID)
	case ipc.KindShutdown:
		s.fail(string(body), "", "")
	default:
		return errors.New("unexpected record kind " + k.String())
	}
	return nil
}

// onOffer races for an offered batch of queue messages if a subscription
// to its queue has credit, and claims as many of them as that
// subscription can take. Winning the semaphore is not delivering: the
// claim goes to the parent, whose ledger grants or denies it.
func (s *session) onOffer(o ipc.Offer) {
	if o.Slot >= 0 && o.Slot < len(s.raced) {
		if o.Gen <= s.raced[o.Slot] {
			return // raced for this one already
		}
	}
	var best *subscription
	for _, sub := range s.byDest[o.Destination] {
		if sub.queue && sub.inflight < sub.prefetch && (best == nil || sub.prefetch-sub.inflight > best.prefetch-best.inflight) {
			best = sub
		}
	}
	if best == nil {
		return // no credit: the parent offers again when an ACK frees some
	}
	if o.Slot >= 0 && o.Slot < len(s.raced) {
		s.raced[o.Slot] = o.Gen
	}
	won, err := s.sem.TryTake(o.Slot)
	if err != nil {
		s.log.Error("semaphore failed", "err", err)
		s.fail(stompwire.ErrTextSemaphoreGone, "", "")
		return
	}
	if s.cfg.Trace {
		s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopRace, "record", ipc.KindOffer.String(), "destination", o.Destination, "message-id", o.MessageID, "messages", o.Count, "slot", o.Slot, "gen", o.Gen, "won", won)
	}
	if !won {
		return
	}
	n := min(o.Count, best.prefetch-best.inflight)
	best.inflight += n
	s.toParent = ipc.AppendClaim(s.toParent, ipc.Claim{Slot: o.Slot, Gen: o.Gen, SubID: best.key, MessageID: o.MessageID, Count: n})
}

// onGrant delivers a queue message the parent granted to this child.
func (s *session) onGrant(key, msgID string, enc []byte) {
	sub := s.subsByKey[key]
	if sub == nil {
		return // unsubscribed meanwhile; the parent requeued it when it saw the UNSUBSCRIBE
	}
	s.writeMessage(enc, sub, msgID)
	if sub.ack == ackAuto {
		if sub.inflight > 0 {
			sub.inflight--
		}
		s.autoAcks = append(s.autoAcks, msgID)
		sub.held++
		return
	}
	sub.pending = append(sub.pending, msgID)
	s.unacked[msgID] = sub
}

// revoke forgets a delivery the parent took back (ack-timeout): the
// subscription gets its credit back, and a late ACK for it is ignored.
func (s *session) revoke(key, msgID string) {
	sub := s.subsByKey[key]
	if sub == nil || s.unacked[msgID] != sub {
		return
	}
	delete(s.unacked, msgID)
	for i, p := range sub.pending {
		if p == msgID {
			sub.pending = append(sub.pending[:i], sub.pending[i+1:]...)
			break
		}
	}
	if sub.inflight > 0 {
		sub.inflight--
	}
}

// writeMessage writes a MESSAGE for sub. enc is the frame in STOMP 1.2
// wire form starting with "MESSAGE\n"; the subscription and ack headers go
// first, so they win over any same-named header (the first one counts).
func (s *session) writeMessage(enc []byte, sub *subscription, msgID string) {
	if s.cfg.Trace {
		s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopClientWrite, "frame", frame.MESSAGE, "destination", sub.dest, "message-id", msgID, "subscription", sub.id)
	}
	const prefix = "MESSAGE\n"
	if s.version == stompwire.V12 && len(enc) >= len(prefix) && string(enc[:len(prefix)]) == prefix {
		b := append(s.scratch[:0], prefix...)
		b = stompwire.AppendHeader(b, frame.MESSAGE, stompwire.V12, frame.Subscription, sub.id)
		if sub.ack != ackAuto {
			b = stompwire.AppendHeader(b, frame.MESSAGE, stompwire.V12, frame.Ack, msgID)
		}
		s.scratch = b
		s.cw.Write(b)
		s.cw.Write(enc[len(prefix):])
		return
	}
	// The parent's MESSAGE has more headers than the producer's SEND, and
	// lines 1.2 escaping made longer, so the client limits do not apply.
	f, _, err := stompwire.Parse(enc, stompwire.V12, s.cfg.Limits.Relayed())
	if err != nil || f == nil {
		s.log.Error("undecodable MESSAGE from parent", "err", err)
		return
	}
	out := frame.New(frame.MESSAGE, frame.Subscription, sub.id)
	if sub.ack != ackAuto {
		out.Header.Add(frame.Ack, msgID)
	}
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		// A 1.2 producer's header may hold a line feed, which an
		// unescaped 1.0 frame cannot carry: written raw it would inject
		// header lines (or a body) into this client's frame. Leave it out.
		if !stompwire.Encodable(frame.MESSAGE, s.version, k, v) {
			continue
		}
		out.Header.Add(k, v)
	}
	out.Body = f.Body
	s.writeFrame(out)
}

// writeFrame encodes f in the session's version and buffers it.
func (s *session) writeFrame(f *frame.Frame) {
	s.scratch = stompwire.AppendFrame(s.scratch[:0], f, s.version)
	s.cw.Write(s.scratch)
}

// fail sends an ERROR frame and ends the session, as the spec requires
// after any ERROR. message is the short text for the message header,
// receiptID (if not "") goes into receipt-id, and detail (message if "")
// is the body.
func (s *session) fail(message, receiptID, detail string) {
	s.failWith(stompwire.ErrorFrame(message, receiptID, detail))
}

// failWith sends f, an ERROR frame, and ends the session: the one ERROR a
// client gets before the connection closes.
func (s *session) failWith(f *frame.Frame) {
	if s.done {
		return
	}
	s.log.Info("closing client with ERROR", "message", f.Header.Get(frame.Message))
	_ = s.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	s.writeFrame(f)
	s.flush()
	s.done = true
	// Half-close and read what the client still sends for a moment, so the
	// kernel does not answer unread data with a RST that destroys the ERROR
	// frame before the client reads it.
	if tc, ok := s.client.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = s.client.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(s.client, 1<<20))
	}
}
