package child

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// handleFrame applies one client frame. Every path either does what the
// frame asks or ends the session with an ERROR naming the problem.
func (s *session) handleFrame(f *frame.Frame) {
	receipt := s.header(f, frame.Receipt)
	if !s.connected {
		if f.Command != frame.CONNECT && f.Command != frame.STOMP {
			s.fail(stompwire.ErrTextNotConnected, receipt, stompwire.ErrDetailNotConnected(f.Command))
			return
		}
		s.handleConnect(f)
		return
	}
	if len(f.Body) > 0 && f.Command != frame.SEND {
		s.fail(stompwire.ErrTextBodyNotAllowed(f.Command), receipt, "")
		return
	}
	switch f.Command {
	case frame.CONNECT, frame.STOMP:
		s.fail(stompwire.ErrTextAlreadyConnected, receipt, "")
		return
	case frame.SEND:
		if !s.handleSend(f, receipt) {
			return
		}
	case frame.SUBSCRIBE:
		if !s.handleSubscribe(f, receipt) {
			return
		}
	case frame.UNSUBSCRIBE:
		if !s.handleUnsubscribe(f, receipt) {
			return
		}
	case frame.ACK, frame.NACK:
		if tx := s.header(f, frame.Transaction); tx != "" {
			if _, ok := s.txs[tx]; !ok {
				s.fail(stompwire.ErrTextUnknownTransaction(tx), receipt, "")
				return
			}
			s.txs[tx] = append(s.txs[tx], txOp{f: f})
		} else if !s.handleAck(f, receipt) {
			return
		}
	case frame.BEGIN:
		tx := s.header(f, frame.Transaction)
		if tx == "" {
			s.fail(stompwire.ErrTextBeginWithoutTransaction, receipt, "")
			return
		}
		if _, ok := s.txs[tx]; ok {
			s.fail(stompwire.ErrTextTransactionBegun(tx), receipt, "")
			return
		}
		s.txs[tx] = []txOp{}
	case frame.COMMIT, frame.ABORT:
		tx := s.header(f, frame.Transaction)
		ops, ok := s.txs[tx]
		if !ok {
			s.fail(stompwire.ErrTextUnknownTransaction(tx), receipt, "")
			return
		}
		delete(s.txs, tx)
		if f.Command == frame.COMMIT {
			// Everything the transaction held reaches the parent in this
			// wake-up's one batch, which the parent applies in one go.
			for _, op := range ops {
				var ok bool
				if op.f.Command == frame.SEND {
					ok = s.forwardSend(op.f)
				} else {
					ok = s.handleAck(op.f, "")
				}
				if !ok {
					return
				}
			}
		}
	case frame.DISCONNECT:
		s.closing = true
		s.endDurableSubscriptions()
		if receipt == "" {
			s.flush()
			s.done = true
			return
		}
		s.disconnectToken = s.sync(receipt)
		return
	default:
		s.fail(stompwire.ErrTextUnsupportedCommand(f.Command), receipt, "")
		return
	}
	if receipt != "" {
		s.sync(receipt)
	}
}

// sync asks the parent to confirm it applied everything sent so far; the
// RECEIPT goes out when it does. It returns the token used.
func (s *session) sync(receiptID string) uint64 {
	s.nextToken++
	s.receipts[s.nextToken] = receiptID
	if s.cfg.Trace {
		s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopSync, "record", ipc.KindSync.String(), "token", s.nextToken, "receipt-id", receiptID)
	}
	s.toParent = ipc.AppendToken(s.toParent, ipc.KindSync, s.nextToken)
	return s.nextToken
}

// header returns a header's first value; STOMP 1.0 peers often pad values
// with spaces, so for them it is trimmed (1.1 and 1.2 forbid trimming).
func (s *session) header(f *frame.Frame, name string) string {
	v := f.Header.Get(name)
	if s.version == stompwire.V10 {
		v = strings.TrimSpace(v)
	}
	return v
}

// negotiate picks the highest version both sides speak from an
// accept-version header; no header means a STOMP 1.0 client. It returns -1
// if there is no common version.
func negotiate(acceptVersion string, max stompwire.Version) stompwire.Version {
	if acceptVersion == "" {
		return stompwire.V10
	}
	best := stompwire.Version(-1)
	for _, v := range strings.Split(acceptVersion, ",") {
		if pv, ok := stompwire.ParseVersion(strings.TrimSpace(v)); ok && pv > best && pv <= max {
			best = pv
		}
	}
	return best
}

func (s *session) handleConnect(f *frame.Frame) {
	v := negotiate(f.Header.Get(frame.AcceptVersion), s.maxVersion)
	if v < 0 {
		// The spec's one ERROR with a required header: version lists what
		// the server speaks, so the client can retry.
		e := stompwire.ErrorFrame(stompwire.ErrTextUnsupportedVersion, "",
			stompwire.ErrDetailUnsupportedVersion(f.Header.Get(frame.AcceptVersion)))
		// Only those a WebSocket subprotocol allows (s.maxVersion).
		offered := []string{}
		for _, v := range []stompwire.Version{stompwire.V10, stompwire.V11, stompwire.V12} {
			if v <= s.maxVersion {
				offered = append(offered, v.String())
			}
		}
		e.Header.Add(frame.Version, strings.Join(offered, ","))
		s.failWith(e)
		return
	}
	s.version = v
	login := f.Header.Get(frame.Login)
	if err := s.authenticate(login, f.Header.Get(frame.Passcode)); err != nil {
		s.fail(stompwire.ErrTextAccessDenied, "", err.Error())
		return
	}
	s.login = login
	s.clientID = f.Header.Get(stompwire.HeaderClientID)
	s.connected = true

	reply := frame.New(frame.CONNECTED, frame.Session, "session-"+strconv.Itoa(os.Getpid()), frame.Server, s.cfg.ServerName)
	if v > stompwire.V10 {
		reply.Header.Add(frame.Version, v.String())
		cx, cy := parseHeartBeat(f.Header.Get(frame.HeartBeat))
		hb := negotiateHeartBeat(cx, cy, s.cfg.HeartBeat, s.cfg.HeartBeatMin)
		reply.Header.Add(frame.HeartBeat, strconv.FormatInt(hb.sx.Milliseconds(), 10)+","+strconv.FormatInt(hb.sy.Milliseconds(), 10))
		s.beatEvery, s.beatExpect = hb.send, hb.expect
		if hb.expect > 0 {
			s.readWindow.Store(int64(heartBeatGrace(hb.expect)))
		}
	} else {
		reply.Header.Add(frame.Version, "1.0")
	}
	// Replace the CONNECT deadline: from now on only heart-beats bound reads.
	if w := s.readWindow.Load(); w > 0 {
		_ = s.client.SetReadDeadline(time.Now().Add(time.Duration(w)))
	} else {
		_ = s.client.SetReadDeadline(time.Time{})
	}
	s.writeFrame(reply)
	s.toParent = ipc.AppendHello(s.toParent, ipc.SessionInfo{Addr: s.cfg.ClientAddr, Login: login, Version: v.String()})
	s.log.Debug("client connected", "version", v.String(), "login", login)
}

// heartBeats is the outcome of heart-beat negotiation: CONNECTED's
// heart-beat header (sx,sy) and the intervals that follow from it.
type heartBeats struct {
	sx, sy time.Duration // CONNECTED's heart-beat:sx,sy
	send   time.Duration // the broker sends data at least this often (0 = never)
	expect time.Duration // the client must send data at least this often (0 = never)
}

// negotiateHeartBeat answers a client's heart-beat:cx,cy. upper is the
// broker's --heart-beat, floor its --heart-beat-min.
//
// The broker offers what the client asked for: sx (how often it can send)
// is the client's cy and sy (how often it wants to hear) the client's cx,
// each raised to the floor and lowered to upper. A side the client left at
// 0 gets upper, the broker's default proposal, which the spec's rule then
// leaves unused. The spec's rule makes each direction's interval the larger
// of the sender's offer and the receiver's wish, so a client asking for
// beats more often than the floor gets them at the floor, and one asking
// for them less often than upper gets what it asked. upper 0 turns heart-beating off (0,0 whatever the
// client says); a floor above upper counts as upper, so an operator who
// sets a small --heart-beat gets it.
func negotiateHeartBeat(cx, cy, upper, floor time.Duration) heartBeats {
	if upper <= 0 {
		return heartBeats{}
	}
	floor = min(floor, upper)
	offer := func(asked time.Duration) time.Duration {
		if asked == 0 {
			return upper
		}
		return min(max(asked, floor), upper)
	}
	hb := heartBeats{sx: offer(cy), sy: offer(cx)}
	if cy > 0 {
		hb.send = max(hb.sx, cy)
	}
	if cx > 0 {
		hb.expect = max(cx, hb.sy)
	}
	return hb
}

// heartBeatGrace is how long the broker waits for data from a client that
// must send every interval before it closes it: twice the interval plus a
// second. The spec asks receivers to be tolerant of timing inaccuracies;
// doubling covers a beat that is late by up to a whole interval, the second
// covers a slow network or a loaded machine when the interval is short.
func heartBeatGrace(interval time.Duration) time.Duration {
	return 2*interval + time.Second
}

// parseHeartBeat parses "cx,cy" in milliseconds; anything malformed counts
// as "0,0" (no heart-beats), the spec's default.
func parseHeartBeat(h string) (cx, cy time.Duration) {
	a, b, ok := strings.Cut(h, ",")
	if !ok {
		return 0, 0
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 31)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 31)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return time.Duration(x) * time.Millisecond, time.Duration(y) * time.Millisecond
}

// checkDestination returns "" if dest is a destination the broker serves,
// else the ERROR message.
func checkDestination(dest string) string {
	switch {
	case dest == "":
		return stompwire.ErrTextNoDestination
	case stompwire.Served(dest):
		return ""
	}
	return stompwire.ErrTextUnknownDestination(dest)
}

func (s *session) handleSend(f *frame.Frame, receipt string) bool {
	dest := s.header(f, frame.Destination)
	if msg := checkDestination(dest); msg != "" {
		s.fail(msg, receipt, "")
		return false
	}
	if tx := s.header(f, frame.Transaction); tx != "" {
		if _, ok := s.txs[tx]; !ok {
			s.fail(stompwire.ErrTextUnknownTransaction(tx), receipt, "")
			return false
		}
		s.txs[tx] = append(s.txs[tx], txOp{f: f})
		return true
	}
	return s.forwardSend(f)
}

// forwardSend hands a SEND to the parent, minus the headers that only
// concern this hop (receipt, transaction).
func (s *session) forwardSend(f *frame.Frame) bool {
	if s.version == stompwire.V10 {
		f.Header.Set(frame.Destination, s.header(f, frame.Destination))
	}
	f.Header.Del(frame.Receipt)
	f.Header.Del(frame.Transaction)
	s.forward(f)
	return true
}

// forward appends f to the batch for the parent, in STOMP 1.2 encoding.
func (s *session) forward(f *frame.Frame) {
	if s.cfg.Trace {
		// No message-id yet: the parent assigns it (hop 3).
		s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopChildToIPC, "record", ipc.KindFrame.String(), "frame", f.Command, "destination", f.Header.Get(frame.Destination))
	}
	var mark int
	s.toParent, mark = ipc.BeginRecord(s.toParent, ipc.KindFrame)
	s.toParent = stompwire.AppendFrame(s.toParent, f, stompwire.V12)
	s.toParent = ipc.FinishRecord(s.toParent, mark)
}

func parseAckMode(v string) (ackMode, bool) {
	switch v {
	case "", frame.AckAuto:
		return ackAuto, true
	case frame.AckClient:
		return ackClient, true
	case frame.AckClientIndividual:
		return ackClientIndividual, true
	}
	return 0, false
}

func (s *session) handleSubscribe(f *frame.Frame, receipt string) bool {
	dest := s.header(f, frame.Destination)
	if msg := checkDestination(dest); msg != "" {
		s.fail(msg, receipt, "")
		return false
	}
	if !stompwire.Subscribable(dest) { // another connection's temporary queue
		s.fail(stompwire.ErrTextUnknownDestination(dest), receipt, "")
		return false
	}
	id := s.header(f, frame.Id)
	if id == "" {
		if s.version > stompwire.V10 {
			s.fail(stompwire.ErrTextSubscribeWithoutID, receipt, stompwire.ErrDetailSubscribeWithoutID)
			return false
		}
		id = dest // STOMP 1.0: the destination names the subscription
	}
	if _, dup := s.subs[id]; dup {
		s.fail(stompwire.ErrTextSubscriptionInUse(id), receipt, "")
		return false
	}
	if s.cfg.MaxSubscriptions > 0 && len(s.subs) >= s.cfg.MaxSubscriptions {
		s.fail(stompwire.ErrTextTooManySubscriptions(s.cfg.MaxSubscriptions), receipt, "")
		return false
	}
	mode, ok := parseAckMode(s.header(f, frame.Ack))
	if !ok {
		s.fail(stompwire.ErrTextUnknownAckMode(f.Header.Get(frame.Ack)), receipt, stompwire.ErrDetailUnknownAckMode)
		return false
	}
	// A durable topic subscription is a queue subscription to the queue
	// that keeps the topic's messages for it (see stompwire.DurableQueue).
	topic, route := "", dest
	if stompwire.IsTopic(dest) {
		durable, needClientID := stompwire.DurableQueue(f.Header, s.clientID)
		if needClientID {
			s.fail(stompwire.ErrTextDurableNeedsClientID, receipt, "")
			return false
		}
		if durable != "" {
			topic, route = dest, durable
		}
	}
	prefetch := s.cfg.DefaultPrefetch
	if mode == ackAuto {
		// An ack:auto message counts as consumed once written, so its
		// credit only paces the offer -> CLAIM -> GRANT round trips, and
		// the client never holds what it has not read: twice the default
		// halves those trips per message (issue 13: 7.7 -> 5.6 us of
		// broker CPU per message, 2P -> 2C with go-stomp's client). The
		// client-ack modes keep the default: go-stomp's client stalls
		// (its ACKs wait behind MESSAGEs it cannot hand over) once about
		// 40 unacked messages are out, and a window of 64 did that.
		prefetch *= 2
	}
	for _, h := range []string{stompwire.HeaderPrefetchCount, stompwire.HeaderActiveMQPrefetchSize} {
		if v := s.header(f, h); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.fail(stompwire.ErrTextBadHeader(h, v), receipt, "")
				return false
			}
			if n > 0 { // 0 means "unlimited" to RabbitMQ; keep our default bound
				prefetch = n
			}
			break
		}
	}
	s.nextSub++
	sub := &subscription{
		id: id, key: strconv.FormatUint(s.nextSub, 10), dest: route,
		queue: stompwire.IsQueue(route), ack: mode, prefetch: max(prefetch, 1),
	}
	s.subs[id] = sub
	s.subsByKey[sub.key] = sub
	s.byDest[route] = append(s.byDest[route], sub)
	fwd := frame.New(frame.SUBSCRIBE, frame.Id, sub.key, frame.Destination, route, frame.Ack, f.Header.Get(frame.Ack), stompwire.HeaderPrefetchCount, strconv.Itoa(sub.prefetch))
	if topic != "" {
		fwd.Header.Add(stompwire.HeaderDurableTopic, topic)
	}
	if v := s.header(f, stompwire.HeaderAckTimeout); v != "" { // a lease on each delivery, in ms
		fwd.Header.Add(stompwire.HeaderAckTimeout, v)
	}
	s.forward(fwd)
	return true
}

func (s *session) handleUnsubscribe(f *frame.Frame, receipt string) bool {
	id := s.header(f, frame.Id)
	if id == "" && s.version == stompwire.V10 {
		id = s.header(f, frame.Destination)
	}
	if id == "" {
		s.fail(stompwire.ErrTextUnsubscribeWithoutID, receipt, "")
		return false
	}
	durable, needClientID := stompwire.DurableQueue(f.Header, s.clientID)
	if needClientID {
		s.fail(stompwire.ErrTextDurableNeedsClientID, receipt, "")
		return false
	}
	sub, ok := s.subs[id]
	if !ok && durable == "" {
		s.fail(stompwire.ErrTextNoSubscription(id), receipt, "")
		return false
	}
	fwd := frame.New(frame.UNSUBSCRIBE)
	if ok {
		s.dropSubscription(sub)
		fwd.Header.Add(frame.Id, sub.key)
		fwd.Header.Add(frame.Destination, sub.dest)
	}
	if durable != "" {
		// Deleting a durable subscription needs no live subscription:
		// ActiveMQ's clients often unsubscribe by name alone.
		fwd.Header.Set(frame.Destination, durable)
		fwd.Header.Add(stompwire.HeaderDurableDelete, "true")
	}
	s.forward(fwd)
	return true
}

// endDurableSubscriptions tells the parent, ahead of a DISCONNECT's
// RECEIPT, that this connection's durable subscriptions have no active
// subscriber any more (a plain UNSUBSCRIBE each: the subscriptions keep
// their messages). A client that reconnects as soon as it has the RECEIPT
// then finds them free, instead of racing the parent's notice of this
// process's exit.
func (s *session) endDurableSubscriptions() {
	for _, sub := range s.subs {
		if !stompwire.IsDurable(sub.dest) {
			continue
		}
		s.dropSubscription(sub)
		s.forward(frame.New(frame.UNSUBSCRIBE, frame.Id, sub.key, frame.Destination, sub.dest))
	}
}

// dropSubscription forgets sub locally. Its unacked queue messages go back
// to the queue: the parent requeues them when it sees the UNSUBSCRIBE.
func (s *session) dropSubscription(sub *subscription) {
	delete(s.subs, sub.id)
	delete(s.subsByKey, sub.key)
	list := s.byDest[sub.dest]
	for i, x := range list {
		if x == sub {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byDest, sub.dest)
	} else {
		s.byDest[sub.dest] = list
	}
	for _, id := range sub.pending {
		delete(s.unacked, id)
	}
}

// ackID finds the message an ACK or NACK refers to: STOMP 1.2 uses id (the
// MESSAGE's ack header), 1.1 and 1.0 message-id. Clients mix these up, so
// any of them is accepted.
func (s *session) ackID(f *frame.Frame) string {
	for _, h := range []string{frame.Id, frame.MessageId, frame.Ack} {
		if v := s.header(f, h); v != "" {
			return v
		}
	}
	return ""
}

// handleAck applies an ACK or NACK. Acks of messages that are not pending
// here (topic messages in a client mode, or already acked) are no-ops.
func (s *session) handleAck(f *frame.Frame, receipt string) bool {
	id := s.ackID(f)
	if id == "" {
		s.fail(stompwire.ErrTextAckWithoutID(f.Command), receipt, stompwire.ErrDetailAckWithoutID)
		return false
	}
	sub, ok := s.unacked[id]
	if !ok {
		return true
	}
	kind := ipc.KindAck
	if f.Command == frame.NACK {
		kind = ipc.KindNack
	}
	// client mode is cumulative: everything delivered on the subscription
	// up to and including this message.
	n := 1
	if sub.ack == ackClient {
		for i, p := range sub.pending {
			if p == id {
				n = i + 1
				break
			}
		}
		for _, p := range sub.pending[:n] {
			s.settle(sub, p, kind)
		}
		sub.pending = append(sub.pending[:0], sub.pending[n:]...)
		return true
	}
	s.settle(sub, id, kind)
	for i, p := range sub.pending {
		if p == id {
			sub.pending = append(sub.pending[:i], sub.pending[i+1:]...)
			break
		}
	}
	return true
}

// settle tells the parent a delivered message was acked or nacked and
// returns its credit to the subscription.
func (s *session) settle(sub *subscription, id string, kind ipc.Kind) {
	if s.cfg.Trace {
		s.log.Info("trace", "pid", os.Getpid(), "hop", ipc.HopAck, "record", kind.String(), "destination", sub.dest, "message-id", id)
	}
	delete(s.unacked, id)
	if sub.inflight > 0 {
		sub.inflight--
	}
	s.toParent = ipc.AppendText(s.toParent, kind, id)
}
