package child

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"golang.org/x/crypto/bcrypt"

	"github.com/stomp-broker/stomp-broker/ipc"
	"github.com/stomp-broker/stomp-broker/stompwire"
)

// A session is in one of these states:
//
//	awaiting CONNECT   TestNegotiation, TestBeforeConnect, TestAuthentication
//	connected          TestReceiptsWaitForSynced, TestConnectedErrors,
//	                   TestTransactions, TestAckModes, TestCredit,
//	                   TestTopicDelivery, TestHeartBeats, TestEndedByParent
//	closing            TestDisconnect (after DISCONNECT, awaiting its SYNCED)
//	done               every test that ends in an ERROR or EOF checks both
//	                   sockets are closed and nothing else is sent

// TestNegotiation: CONNECT or STOMP, the version picked from accept-version,
// the heart-beat header, and the HELLO the parent gets.
func TestNegotiation(t *testing.T) {
	cases := []struct {
		name      string
		command   string
		accept    string // "" sends no accept-version header
		heartBeat time.Duration
		clientHB  string
		version   string // CONNECTED's version header; "" means an ERROR
		wantHB    string // CONNECTED's heart-beat header ("" = absent)
	}{
		{name: "no accept-version is 1.0", command: frame.CONNECT, version: "1.0"},
		{name: "1.0", command: frame.CONNECT, accept: "1.0", version: "1.0"},
		{name: "highest common version", command: frame.CONNECT, accept: "1.0,1.1", version: "1.1", wantHB: "0,0"},
		{name: "STOMP frame", command: frame.STOMP, accept: "1.1,1.2", version: "1.2", wantHB: "0,0"},
		{name: "spaces and unknown versions ignored", command: frame.CONNECT, accept: " 1.2 , 9.9", version: "1.2", wantHB: "0,0"},
		{name: "heart-beat offered", command: frame.CONNECT, accept: "1.2", heartBeat: 3 * time.Second, clientHB: "0,0", version: "1.2", wantHB: "3000,3000"},
		{name: "malformed client heart-beat", command: frame.CONNECT, accept: "1.2", heartBeat: time.Second, clientHB: "x", version: "1.2", wantHB: "1000,1000"},
		{name: "1.0 gets no heart-beat", command: frame.CONNECT, accept: "1.0", heartBeat: time.Second, clientHB: "1000,1000", version: "1.0"},
		{name: "no common version", command: frame.CONNECT, accept: "2.0,3.0"},
		{name: "no common version via STOMP", command: frame.STOMP, accept: "0.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.HeartBeat = tc.heartBeat
			h := start(t, cfg)
			kv := []string{frame.Host, "test"}
			if tc.accept != "" {
				kv = append(kv, frame.AcceptVersion, tc.accept)
			}
			if tc.clientHB != "" {
				kv = append(kv, frame.HeartBeat, tc.clientHB)
			}
			h.send(tc.command, "", kv...)
			if tc.version == "" {
				e := h.expectError("unsupported protocol version")
				if got := e.Header.Get(frame.Version); got != "1.0,1.1,1.2" {
					t.Errorf("ERROR version header %q, want 1.0,1.1,1.2", got)
				}
				if got := h.recordsUntilEOF(); len(got) != 0 {
					t.Errorf("parent got %v from a client that never connected", got)
				}
				return
			}
			f := h.expectFrame(frame.CONNECTED)
			if got := f.Header.Get(frame.Version); got != tc.version {
				t.Errorf("version %q, want %q", got, tc.version)
			}
			if got, ok := f.Header.Contains(frame.HeartBeat); got != tc.wantHB || ok != (tc.wantHB != "") {
				t.Errorf("heart-beat %q (present %v), want %q", got, ok, tc.wantHB)
			}
			if got := f.Header.Get(frame.Server); got != cfg.ServerName {
				t.Errorf("server %q, want %q", got, cfg.ServerName)
			}
			if !strings.HasPrefix(f.Header.Get(frame.Session), "session-") {
				t.Errorf("session header %q", f.Header.Get(frame.Session))
			}
			r := h.nextRecord()
			info, err := ipc.DecodeHello(r.body)
			if r.kind != ipc.KindHello || err != nil {
				t.Fatalf("first record %s (%v), want HELLO", r, err)
			}
			if info != (ipc.SessionInfo{Addr: cfg.ClientAddr, Version: tc.version}) {
				t.Errorf("HELLO %+v", info)
			}
		})
	}
}

// TestBeforeConnect: the only frame a session takes before CONNECT is
// CONNECT (or STOMP), and it waits for it no longer than ConnectTimeout.
func TestBeforeConnect(t *testing.T) {
	cases := []struct {
		name        string
		timeout     time.Duration
		do          func(h *harness)
		wantErr     bool // an ERROR, whose message contains wantMsg; else the session just closes
		wantMsg     string
		wantReceipt string
	}{
		{
			name:    "SEND first",
			do:      func(h *harness) { h.send(frame.SEND, "hi", frame.Destination, "/queue/a") },
			wantErr: true, wantMsg: "expected CONNECT or STOMP frame",
		},
		{
			name: "SUBSCRIBE first, with a receipt",
			do: func(h *harness) {
				h.send(frame.SUBSCRIBE, "", frame.Id, "1", frame.Destination, "/queue/a", frame.Receipt, "r1")
			},
			wantErr:     true,
			wantMsg:     "expected CONNECT or STOMP frame",
			wantReceipt: "r1",
		},
		{
			name:    "nothing within the CONNECT deadline",
			timeout: 200 * time.Millisecond,
			do:      func(h *harness) {},
			wantErr: true, wantMsg: "no CONNECT frame within 200ms",
		},
		{
			name:    "heart-beats do not count as CONNECT",
			timeout: 200 * time.Millisecond,
			do:      func(h *harness) { h.sendRaw("\n\n") },
			wantErr: true, wantMsg: "no CONNECT frame within 200ms",
		},
		{
			name:    "not STOMP at all",
			do:      func(h *harness) { h.sendRaw("GET / HTTP/1.1\r\n\r\n") },
			wantErr: true, // whatever the codec calls it
		},
		{
			name: "client goes away",
			do:   func(h *harness) { h.client.(interface{ CloseWrite() error }).CloseWrite() },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.timeout > 0 {
				cfg.ConnectTimeout = tc.timeout
			}
			h := start(t, cfg)
			tc.do(h)
			if tc.wantErr {
				e := h.expectError(tc.wantMsg)
				if got := e.Header.Get(frame.ReceiptId); got != tc.wantReceipt {
					t.Errorf("receipt-id %q, want %q", got, tc.wantReceipt)
				}
			} else {
				h.expectClientEOF()
			}
			if got := h.recordsUntilEOF(); len(got) != 0 {
				t.Errorf("parent got %v from a client that never connected", got)
			}
		})
	}
}

// TestAuthentication: with a users file, CONNECT's login and passcode
// decide; the login goes to the parent in HELLO.
func TestAuthentication(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("# test users\n\nalice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file, login, passcode string
		wantErr                     string // "" = CONNECTED
	}{
		{"right passcode", users, "alice", "secret", ""},
		{"wrong passcode", users, "alice", "guess", "wrong login or passcode"},
		{"unknown login", users, "bob", "secret", "wrong login or passcode"},
		{"no login", users, "", "", "wrong login or passcode"},
		{"users file missing", filepath.Join(t.TempDir(), "none"), "alice", "secret", "authentication is unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.UsersFile = tc.file
			h := start(t, cfg)
			h.send(frame.CONNECT, "", frame.AcceptVersion, "1.2", frame.Host, "test", frame.Login, tc.login, frame.Passcode, tc.passcode)
			if tc.wantErr != "" {
				e := h.expectError("access denied")
				if !strings.Contains(string(e.Body), tc.wantErr) {
					t.Errorf("ERROR body %q, want %q", e.Body, tc.wantErr)
				}
				if got := h.recordsUntilEOF(); len(got) != 0 {
					t.Errorf("parent got %v from a client that was refused", got)
				}
				return
			}
			h.expectFrame(frame.CONNECTED)
			h.expectRecords("HELLO 1.2 alice")
		})
	}
}

// TestReceiptsWaitForSynced: a frame's RECEIPT goes out only when the
// parent answers the SYNC that follows it, never when the child has merely
// read the frame.
func TestReceiptsWaitForSynced(t *testing.T) {
	cases := []struct {
		name        string
		frame       []string // command, then headers; the test adds receipt
		wantRecords []string // before the SYNC
	}{
		{"SEND", []string{frame.SEND, frame.Destination, "/queue/a"}, []string{"FRAME SEND /queue/a"}},
		{"SUBSCRIBE", []string{frame.SUBSCRIBE, frame.Id, "s", frame.Destination, "/topic/t"}, []string{"FRAME SUBSCRIBE /topic/t"}},
		{"BEGIN", []string{frame.BEGIN, frame.Transaction, "t1"}, nil},
		{"ACK of nothing", []string{frame.ACK, frame.Id, "m-1"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, testConfig())
			h.connect("1.2")
			h.barrier() // subscribes to the marker topic first
			h.send(tc.frame[0], "", append(tc.frame[1:], frame.Receipt, "r1")...)
			got := h.expectRecords(append(tc.wantRecords, "SYNC")...)
			token, err := ipc.DecodeToken(got[len(got)-1].body)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				if r.kind == ipc.KindFrame {
					if f := r.frame(t); f.Header.Get(frame.Receipt) != "" {
						t.Errorf("forwarded %s keeps its receipt header", f.Command)
					}
				}
			}
			// A SYNCED for another token, then nothing: no RECEIPT yet.
			h.toChild(ipc.AppendSynced(nil, token+1000, 0))
			if frames, _ := h.barrier(); len(frames) != 0 {
				t.Fatalf("client got %v before the parent answered the SYNC", commands(frames))
			}
			h.toChild(ipc.AppendSynced(nil, token, ipc.SyncedCoalesced))
			r := h.expectFrame(frame.RECEIPT)
			if r.Header.Get(frame.ReceiptId) != "r1" || r.Header.Get(stompwire.HeaderCoalesced) != "true" {
				t.Errorf("RECEIPT %s, want receipt-id r1 and coalesced:true", headers(r))
			}
		})
	}
}

// TestConnectedErrors: every frame a connected session refuses ends it
// with one ERROR (carrying the frame's receipt as receipt-id) and nothing
// else reaches the parent.
func TestConnectedErrors(t *testing.T) {
	sub := func(id, dest string, kv ...string) []string {
		return append([]string{frame.SUBSCRIBE, frame.Id, id, frame.Destination, dest}, kv...)
	}
	cases := []struct {
		name    string
		setup   [][]string // frames accepted first
		bad     []string   // command, then headers; the test adds receipt:bad
		body    string
		wantMsg string
	}{
		{name: "CONNECT again", bad: []string{frame.CONNECT, frame.AcceptVersion, "1.2"}, wantMsg: "already connected"},
		{name: "SEND without destination", bad: []string{frame.SEND}, wantMsg: "missing destination header"},
		{name: "SEND to an unknown destination", bad: []string{frame.SEND, frame.Destination, "/exchange/x"}, wantMsg: "unknown destination"},
		{name: "SEND to a bare prefix", bad: []string{frame.SEND, frame.Destination, "/queue/"}, wantMsg: "unknown destination"},
		{name: "SUBSCRIBE without id", bad: []string{frame.SUBSCRIBE, frame.Destination, "/queue/a"}, wantMsg: "SUBSCRIBE without id header"},
		{name: "SUBSCRIBE to an unknown destination", bad: sub("1", "/foo"), wantMsg: "unknown destination"},
		{name: "SUBSCRIBE with a body", bad: sub("1", "/queue/a"), body: "x", wantMsg: "SUBSCRIBE frame must not have a body"},
		{name: "unknown ack mode", bad: sub("1", "/queue/a", frame.Ack, "sometimes"), wantMsg: "unknown ack mode"},
		{name: "bad prefetch-count", bad: sub("1", "/queue/a", stompwire.HeaderPrefetchCount, "-1"), wantMsg: "bad prefetch-count header"},
		{name: "bad activemq.prefetchSize", bad: sub("1", "/queue/a", stompwire.HeaderActiveMQPrefetchSize, "many"), wantMsg: "bad activemq.prefetchSize header"},
		{name: "subscription id in use", setup: [][]string{sub("1", "/queue/a")}, bad: sub("1", "/queue/b"), wantMsg: `subscription id "1" already in use`},
		{name: "too many subscriptions", setup: [][]string{sub("1", "/queue/a"), sub("2", "/queue/a")}, bad: sub("3", "/queue/b"), wantMsg: "too many subscriptions (limit 2)"},
		{name: "UNSUBSCRIBE without id", bad: []string{frame.UNSUBSCRIBE}, wantMsg: "UNSUBSCRIBE without id header"},
		{name: "UNSUBSCRIBE of an unknown id", bad: []string{frame.UNSUBSCRIBE, frame.Id, "9"}, wantMsg: `no subscription with id "9"`},
		{name: "ACK without id", bad: []string{frame.ACK}, wantMsg: "ACK without id header"},
		{name: "NACK without id", bad: []string{frame.NACK}, wantMsg: "NACK without id header"},
		{name: "BEGIN without transaction", bad: []string{frame.BEGIN}, wantMsg: "BEGIN without transaction header"},
		{name: "BEGIN twice", setup: [][]string{{frame.BEGIN, frame.Transaction, "t"}}, bad: []string{frame.BEGIN, frame.Transaction, "t"}, wantMsg: `transaction "t" already begun`},
		{name: "COMMIT of an unknown transaction", bad: []string{frame.COMMIT, frame.Transaction, "t"}, wantMsg: `unknown transaction "t"`},
		{name: "ABORT of an unknown transaction", bad: []string{frame.ABORT, frame.Transaction, "t"}, wantMsg: `unknown transaction "t"`},
		{name: "SEND in an unknown transaction", bad: []string{frame.SEND, frame.Destination, "/queue/a", frame.Transaction, "t"}, wantMsg: `unknown transaction "t"`},
		{name: "ACK in an unknown transaction", bad: []string{frame.ACK, frame.Id, "m-1", frame.Transaction, "t"}, wantMsg: `unknown transaction "t"`},
		{name: "a server frame from the client", bad: []string{frame.MESSAGE, frame.Destination, "/queue/a"}, wantMsg: "unsupported command MESSAGE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxSubscriptions = 2
			h := start(t, cfg)
			h.connect("1.2")
			for _, f := range tc.setup {
				h.send(f[0], "", f[1:]...)
			}
			h.send(tc.bad[0], tc.body, append(tc.bad[1:], frame.Receipt, "bad")...)
			e := h.expectError(tc.wantMsg)
			if got := e.Header.Get(frame.ReceiptId); got != "bad" {
				t.Errorf("ERROR receipt-id %q, want bad", got)
			}
			for _, r := range h.recordsUntilEOF() {
				if r == "SYNC" {
					t.Errorf("the refused frame's receipt was asked for")
				}
			}
		})
	}
}

// TestProtocolErrorAfterConnect: a frame the codec refuses (here, over the
// body limit) ends a connected session with an ERROR.
func TestProtocolErrorAfterConnect(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = stompwire.Limits{MaxBodyBytes: 16}
	h := start(t, cfg)
	h.connect("1.2")
	h.send(frame.SEND, strings.Repeat("x", 100), frame.Destination, "/queue/a", frame.Receipt, "big")
	e := h.expectError("")
	if got := e.Header.Get(frame.ReceiptId); got != "big" {
		t.Errorf("ERROR receipt-id %q, want big", got)
	}
	if got := h.recordsUntilEOF(); len(got) != 0 {
		t.Errorf("parent got %v", got)
	}
}

// TestTransactions: a transaction's SENDs and ACKs reach the parent at
// COMMIT, in order, without their transaction header; ABORT, DISCONNECT
// and the client going away drop them.
func TestTransactions(t *testing.T) {
	begin := []string{frame.BEGIN, frame.Transaction, "t1"}
	send := func(dest string) []string {
		return []string{frame.SEND, frame.Destination, dest, frame.Transaction, "t1"}
	}
	cases := []struct {
		name  string
		end   func(h *harness)
		after []string // the records that follow the held-back SENDs
	}{
		{
			name: "COMMIT forwards them in order",
			end: func(h *harness) {
				h.send(frame.COMMIT, "", frame.Transaction, "t1", frame.Receipt, "c")
			},
			after: []string{"FRAME SEND /queue/a", "FRAME SEND /topic/b", "SYNC"},
		},
		{
			name: "ABORT drops them",
			end: func(h *harness) {
				h.send(frame.ABORT, "", frame.Transaction, "t1", frame.Receipt, "a")
			},
			after: []string{"SYNC"},
		},
		{
			name:  "DISCONNECT drops them",
			end:   func(h *harness) { h.send(frame.DISCONNECT, "") },
			after: []string{}, // then EOF
		},
		{
			name:  "the client going away drops them",
			end:   func(h *harness) { h.client.Close() },
			after: []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, testConfig())
			h.connect("1.2")
			h.send(begin[0], "", begin[1:]...)
			h.send(frame.SEND, "1", send("/queue/a")[1:]...)
			h.send(frame.SEND, "2", send("/topic/b")[1:]...)
			if _, recs := h.barrier(); len(recs) != 0 {
				t.Fatalf("parent got %v before the transaction ended", recs)
			}
			tc.end(h)
			if len(tc.after) == 0 {
				if got := h.recordsUntilEOF(); len(got) != 0 {
					t.Fatalf("parent got %v from a transaction that never committed", got)
				}
				return
			}
			got := h.expectRecords(tc.after...)
			for i, r := range got {
				if r.kind != ipc.KindFrame {
					continue
				}
				f := r.frame(t)
				if f.Header.Get(frame.Transaction) != "" {
					t.Errorf("forwarded SEND keeps its transaction header")
				}
				if want := []byte{byte('1' + i)}; string(f.Body) != string(want) {
					t.Errorf("SEND %d has body %q, want %q", i, f.Body, want)
				}
			}
			// The transaction is over either way.
			h.send(frame.COMMIT, "", frame.Transaction, "t1")
			h.expectError(`unknown transaction "t1"`)
		})
	}
}

// grantQueue subscribes to /queue/a with the given headers and makes the
// parent hand the subscription n messages m-1..m-n (an OFFER of slot 1,
// won, claimed and granted), returning the subscription key.
func grantQueue(h *harness, n int, kv ...string) string {
	h.t.Helper()
	key := h.subscribe("s", "/queue/a", kv...)
	offer(h, 1, 1, n)
	h.expectRecords("CLAIM slot 1 gen 1 sub " + key + " m-1 x" + itoa(n))
	var grants []byte
	for i := 1; i <= n; i++ {
		id := "m-" + itoa(i)
		grants = ipc.AppendMessage(grants, ipc.KindGrant, key, id, message("/queue/a", id, "body "+id))
	}
	h.toChild(grants)
	for i := 1; i <= n; i++ {
		m := h.expectFrame(frame.MESSAGE)
		if got := m.Header.Get(frame.MessageId); got != "m-"+itoa(i) {
			h.t.Fatalf("MESSAGE %d is %s, want m-%d", i, got, i)
		}
	}
	return key
}

// offer arms slot and sends an OFFER of count messages starting at m-1.
func offer(h *harness, slot int, gen uint64, count int) {
	h.t.Helper()
	if err := h.sem.Arm(slot); err != nil {
		h.t.Fatal(err)
	}
	h.toChild(ipc.AppendOffer(nil, ipc.Offer{Slot: slot, Gen: gen, Destination: "/queue/a", MessageID: "m-1", Count: count}))
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestAckModes: which records each ack mode sends for the client's ACKs
// and NACKs of three granted queue messages, and that an ACK of a message
// that is not pending is ignored.
func TestAckModes(t *testing.T) {
	type step struct {
		frame []string // command, then headers; the test adds a receipt
		want  []string // records before its SYNC
	}
	ack := func(cmd, id string) []string { return []string{cmd, frame.Id, id} }
	cases := []struct {
		mode      string
		wantAckHd bool
		auto      []string // records right after the grants
		steps     []step
	}{
		{
			mode: "auto", auto: []string{"ACK m-1", "ACK m-2", "ACK m-3"},
			steps: []step{{ack(frame.ACK, "m-1"), nil}}, // already acked
		},
		{
			mode: "client", wantAckHd: true,
			steps: []step{
				{ack(frame.ACK, "m-2"), []string{"ACK m-1", "ACK m-2"}}, // cumulative
				{ack(frame.ACK, "m-2"), nil},                            // not pending any more
				{ack(frame.NACK, "m-3"), []string{"NACK m-3"}},
				{ack(frame.ACK, "unknown"), nil},
			},
		},
		{
			mode: "client-individual", wantAckHd: true,
			steps: []step{
				{ack(frame.ACK, "m-2"), []string{"ACK m-2"}},
				{ack(frame.NACK, "m-1"), []string{"NACK m-1"}},
				{[]string{frame.ACK, frame.MessageId, "m-3"}, []string{"ACK m-3"}}, // 1.1 style
				{ack(frame.ACK, "m-3"), nil},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := testConfig()
			cfg.Slots = 2
			h := start(t, cfg)
			h.connect("1.2")
			h.subscribe("s", "/queue/a", frame.Ack, tc.mode)
			offer(h, 1, 1, 3)
			h.expectRecords("CLAIM slot 1 gen 1 sub 1 m-1 x3")
			var grants []byte
			for _, id := range []string{"m-1", "m-2", "m-3"} {
				grants = ipc.AppendMessage(grants, ipc.KindGrant, "1", id, message("/queue/a", id, "body"))
			}
			h.toChild(grants)
			for _, id := range []string{"m-1", "m-2", "m-3"} {
				m := h.expectFrame(frame.MESSAGE)
				if m.Header.Get(frame.MessageId) != id || m.Header.Get(frame.Subscription) != "s" {
					t.Fatalf("MESSAGE %s, want message-id %s subscription s", headers(m), id)
				}
				if got, ok := m.Header.Contains(frame.Ack); ok != tc.wantAckHd || (ok && got != id) {
					t.Errorf("MESSAGE ack header %q (present %v)", got, ok)
				}
			}
			h.expectRecords(tc.auto...)
			for i, st := range tc.steps {
				h.send(st.frame[0], "", append(st.frame[1:], frame.Receipt, "s"+itoa(i))...)
				h.expectRecords(append(st.want, "SYNC")...)
			}
		})
	}
}

// TestAckInTransaction: a client's ACK inside a transaction reaches the
// parent at COMMIT.
func TestAckInTransaction(t *testing.T) {
	cfg := testConfig()
	cfg.Slots = 1
	h := start(t, cfg)
	h.connect("1.2")
	grantQueue(h, 2, frame.Ack, "client-individual")
	h.send(frame.BEGIN, "", frame.Transaction, "t")
	h.send(frame.ACK, "", frame.Id, "m-2", frame.Transaction, "t")
	if _, recs := h.barrier(); len(recs) != 0 {
		t.Fatalf("parent got %v before COMMIT", recs)
	}
	h.send(frame.COMMIT, "", frame.Transaction, "t", frame.Receipt, "c")
	h.expectRecords("ACK m-2", "SYNC")
}

// TestCredit: a queue subscription claims no more than its prefetch allows,
// gets credit back from ACKs, DENYs and REVOKEs, and races for an offer
// only once.
func TestCredit(t *testing.T) {
	cfg := testConfig()
	cfg.Slots = 2
	cfg.DefaultPrefetch = 3

	t.Run("prefetch bounds the claim", func(t *testing.T) {
		cases := []struct {
			name    string
			headers []string
			want    string // the forwarded prefetch-count, and the claim's count
		}{
			{"prefetch-count", []string{stompwire.HeaderPrefetchCount, "2"}, "2"},
			{"activemq.prefetchSize", []string{stompwire.HeaderActiveMQPrefetchSize, "4"}, "4"},
			{"default, client-individual", []string{frame.Ack, "client-individual"}, "3"},
			{"default, client", []string{frame.Ack, "client"}, "3"},
			{"0 keeps the default, client-individual", []string{frame.Ack, "client-individual", stompwire.HeaderPrefetchCount, "0"}, "3"},
			// ack:auto (the default mode) without a header gets twice the
			// default: its credit only paces the pipeline (issue 13).
			{"default, auto", nil, "6"},
			{"default, explicit auto", []string{frame.Ack, "auto"}, "6"},
			{"0 keeps the default, auto", []string{stompwire.HeaderPrefetchCount, "0"}, "6"},
			{"prefetch-count wins in auto", []string{frame.Ack, "auto", stompwire.HeaderPrefetchCount, "3"}, "3"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := start(t, cfg)
				h.connect("1.2")
				h.send(frame.SUBSCRIBE, "", append([]string{frame.Id, "s", frame.Destination, "/queue/a", stompwire.HeaderAckTimeout, "5000"}, tc.headers...)...)
				f := h.nextRecord().frame(t)
				if got := f.Header.Get(stompwire.HeaderPrefetchCount); got != tc.want {
					t.Errorf("forwarded prefetch-count %q, want %q", got, tc.want)
				}
				if got := f.Header.Get(stompwire.HeaderAckTimeout); got != "5000" {
					t.Errorf("forwarded ack-timeout %q, want 5000", got)
				}
				offer(h, 1, 1, 9)
				h.expectRecords("CLAIM slot 1 gen 1 sub 1 m-1 x" + tc.want)
			})
		}
	})

	t.Run("no credit, no race; an ACK gives it back", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		grantQueue(h, 2, frame.Ack, "client-individual", stompwire.HeaderPrefetchCount, "2")
		offer(h, 2, 1, 5)
		if _, recs := h.barrier(); len(recs) != 0 {
			t.Fatalf("a subscription without credit sent %v", recs)
		}
		if v, _ := h.sem.Value(2); v != 1 {
			t.Fatalf("slot 2 is %d: a child without credit took the token", v)
		}
		h.send(frame.ACK, "", frame.Id, "m-1")
		h.expectRecords("ACK m-1")
		offer(h, 2, 2, 5)
		h.expectRecords("CLAIM slot 2 gen 2 sub 1 m-1 x1")
	})

	t.Run("a DENY gives the credit back", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		key := h.subscribe("s", "/queue/a", stompwire.HeaderPrefetchCount, "2")
		offer(h, 1, 1, 2)
		h.expectRecords("CLAIM slot 1 gen 1 sub " + key + " m-1 x2")
		h.toChild(ipc.AppendDeny(nil, key, "m-1", 2))
		offer(h, 1, 2, 2)
		h.expectRecords("CLAIM slot 1 gen 2 sub " + key + " m-1 x2")
	})

	t.Run("a REVOKE gives the credit back and voids the ACK", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		key := grantQueue(h, 1, frame.Ack, "client", stompwire.HeaderPrefetchCount, "1")
		h.toChild(ipc.AppendRevoke(nil, key, "m-1"))
		offer(h, 1, 2, 1)
		h.expectRecords("CLAIM slot 1 gen 2 sub " + key + " m-1 x1")
		h.send(frame.ACK, "", frame.Id, "m-1", frame.Receipt, "late")
		h.expectRecords("SYNC") // no ACK for the revoked delivery
	})

	t.Run("a lost race claims nothing, and an offer is raced for once", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		h.subscribe("s", "/queue/a")
		// Slot 1 not armed: another child won it.
		h.toChild(ipc.AppendOffer(nil, ipc.Offer{Slot: 1, Gen: 1, Destination: "/queue/a", MessageID: "m-1", Count: 1}))
		if _, recs := h.barrier(); len(recs) != 0 {
			t.Fatalf("parent got %v", recs)
		}
		// The same offer again, now armed: already raced for, skipped.
		offer(h, 1, 1, 1)
		if _, recs := h.barrier(); len(recs) != 0 {
			t.Fatalf("parent got %v", recs)
		}
		if v, _ := h.sem.Value(1); v != 1 {
			t.Fatalf("slot 1 is %d: the child raced again for an offer it had lost", v)
		}
		// An offer to a queue it does not consume is ignored too.
		h.toChild(ipc.AppendOffer(nil, ipc.Offer{Slot: 1, Gen: 2, Destination: "/queue/other", MessageID: "m-9", Count: 1}))
		if _, recs := h.barrier(); len(recs) != 0 {
			t.Fatalf("parent got %v", recs)
		}
	})

	t.Run("UNSUBSCRIBE forgets the subscription", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		key := grantQueue(h, 1, frame.Ack, "client")
		h.send(frame.UNSUBSCRIBE, "", frame.Id, "s")
		if f := h.nextRecord().frame(t); f.Command != frame.UNSUBSCRIBE || f.Header.Get(frame.Id) != key || f.Header.Get(frame.Destination) != "/queue/a" {
			t.Fatalf("forwarded %s %s, want UNSUBSCRIBE id:%s destination:/queue/a", f.Command, headers(f), key)
		}
		// A GRANT that crossed the UNSUBSCRIBE is not delivered, and the
		// ACK of the earlier delivery is void (the parent requeued it).
		h.toChild(ipc.AppendMessage(nil, ipc.KindGrant, key, "m-2", message("/queue/a", "m-2", "")))
		h.send(frame.ACK, "", frame.Id, "m-1")
		if frames, recs := h.barrier(); len(frames) != 0 || len(recs) != 0 {
			t.Fatalf("after UNSUBSCRIBE: client got %v, parent got %v", commands(frames), recs)
		}
	})
}

// TestTopicDelivery: a DELIVER goes to each of the session's subscriptions
// to its destination, in the client's version, with no ACK to the parent.
func TestTopicDelivery(t *testing.T) {
	cases := []struct {
		version  string
		subs     [][2]string // id, ack mode
		header   [2]string   // a producer's header in the MESSAGE
		wantHdr  bool        // whether the client sees it
		wantSubs []string
	}{
		{"1.2", [][2]string{{"a", "auto"}, {"b", "client"}}, [2]string{"note", "x:y"}, true, []string{"a", "b"}},
		// The subscription and ack headers the child splices into a 1.2
		// MESSAGE are escaped like every other 1.2 header.
		{"1.2", [][2]string{{"id:with\\specials\r\n", "client-individual"}}, [2]string{"note", "special id"}, true, []string{"id:with\\specials\r\n"}},
		{"1.1", [][2]string{{"a", "auto"}}, [2]string{"note", "x:y"}, true, []string{"a"}},
		// An unescaped 1.0 frame cannot carry a line feed in a header.
		{"1.0", [][2]string{{"a", "client"}}, [2]string{"note", "two\nlines"}, false, []string{"a"}},
		{"1.0", [][2]string{{"a", "auto"}}, [2]string{"note", "plain"}, true, []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.version+" "+tc.header[1], func(t *testing.T) {
			h := start(t, testConfig())
			h.connect(tc.version)
			for _, s := range tc.subs {
				h.send(frame.SUBSCRIBE, "", frame.Id, s[0], frame.Destination, "/topic/t", frame.Ack, s[1])
				h.nextRecord()
			}
			h.send(frame.SUBSCRIBE, "", frame.Id, "other", frame.Destination, "/topic/other")
			h.nextRecord()
			h.toChild(ipc.AppendMessage(nil, ipc.KindDeliver, "/topic/t", "m-1", message("/topic/t", "m-1", "hello", tc.header[0], tc.header[1])))
			for i, want := range tc.wantSubs {
				m := h.expectFrame(frame.MESSAGE)
				if got := m.Header.Get(frame.Subscription); got != want {
					t.Errorf("MESSAGE %d for subscription %q, want %q", i, got, want)
				}
				if string(m.Body) != "hello" || m.Header.Get(frame.MessageId) != "m-1" {
					t.Errorf("MESSAGE %s body %q", headers(m), m.Body)
				}
				if got, ok := m.Header.Contains(tc.header[0]); ok != tc.wantHdr || (ok && got != tc.header[1]) {
					t.Errorf("header %s = %q (present %v), want %q (present %v)", tc.header[0], got, ok, tc.header[1], tc.wantHdr)
				}
				if _, ok := m.Header.Contains(frame.Ack); ok != (tc.subs[i][1] != "auto") {
					t.Errorf("ack header present %v for ack mode %s", ok, tc.subs[i][1])
				}
			}
			if frames, recs := h.barrier(); len(frames) != 0 || len(recs) != 0 {
				t.Fatalf("after the DELIVER: client got %v, parent got %v", commands(frames), recs)
			}
		})
	}
}

// TestSubscribe10: a STOMP 1.0 SUBSCRIBE without id is named by its
// destination, and UNSUBSCRIBE may name it that way.
func TestSubscribe10(t *testing.T) {
	h := start(t, testConfig())
	h.connect("1.0")
	h.send(frame.SUBSCRIBE, "", frame.Destination, " /topic/t ") // 1.0 values are trimmed
	if f := h.nextRecord().frame(t); f.Header.Get(frame.Destination) != "/topic/t" {
		t.Fatalf("forwarded destination %q", f.Header.Get(frame.Destination))
	}
	h.toChild(ipc.AppendMessage(nil, ipc.KindDeliver, "/topic/t", "m-1", message("/topic/t", "m-1", "")))
	if got := h.expectFrame(frame.MESSAGE).Header.Get(frame.Subscription); got != "/topic/t" {
		t.Errorf("subscription %q, want /topic/t", got)
	}
	h.send(frame.UNSUBSCRIBE, "", frame.Destination, "/topic/t", frame.Receipt, "u")
	h.expectRecords("FRAME UNSUBSCRIBE /topic/t", "SYNC")
}

// TestDisconnect: after DISCONNECT the session takes no more frames; with
// a receipt it ends once the parent answers the SYNC, so the RECEIPT means
// everything before it was applied.
func TestDisconnect(t *testing.T) {
	cases := []struct {
		name    string
		receipt string
	}{
		{"with receipt", "bye"},
		{"without receipt", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, testConfig())
			h.connect("1.2")
			h.send(frame.SEND, "1", frame.Destination, "/queue/a")
			h.expectRecords("FRAME SEND /queue/a")
			if tc.receipt == "" {
				h.send(frame.DISCONNECT, "")
				h.expectClientEOF()
				if got := h.recordsUntilEOF(); len(got) != 0 {
					t.Errorf("parent got %v after DISCONNECT", got)
				}
				return
			}
			// DISCONNECT and a frame the client must not send after it.
			h.send(frame.DISCONNECT, "", frame.Receipt, tc.receipt)
			h.send(frame.SEND, "2", frame.Destination, "/queue/a", frame.Receipt, "late")
			h.answerSync(0)
			if got := h.expectFrame(frame.RECEIPT).Header.Get(frame.ReceiptId); got != tc.receipt {
				t.Errorf("RECEIPT for %q, want %q", got, tc.receipt)
			}
			h.expectClientEOF()
			if got := h.recordsUntilEOF(); len(got) != 0 {
				t.Errorf("parent got %v after DISCONNECT", got)
			}
		})
	}
}

// TestEndedByParent: what the client is told when the parent ends the
// session, goes away, or breaks the protocol, and when the operator
// disconnects it.
func TestEndedByParent(t *testing.T) {
	cases := []struct {
		name    string
		do      func(h *harness)
		wantMsg string
	}{
		{"parent goes away", func(h *harness) { h.parent.CloseWrite() }, "broker went away"},
		{"SHUTDOWN", func(h *harness) { h.toChild(ipc.AppendText(nil, ipc.KindShutdown, "broker shutting down")) }, "broker shutting down"},
		{"a child-to-parent record", func(h *harness) { h.toChild(ipc.AppendToken(nil, ipc.KindSync, 1)) }, "internal broker error"},
		{"an undecodable OFFER", func(h *harness) { h.toChild(ipc.AppendRecord(nil, ipc.KindOffer, []byte{0x80})) }, "internal broker error"},
		{"an undecodable DELIVER", func(h *harness) { h.toChild(ipc.AppendRecord(nil, ipc.KindDeliver, []byte{9})) }, "internal broker error"},
		{"an undecodable GRANT", func(h *harness) { h.toChild(ipc.AppendRecord(nil, ipc.KindGrant, []byte{9})) }, "internal broker error"},
		{"an undecodable DENY", func(h *harness) { h.toChild(ipc.AppendRecord(nil, ipc.KindDeny, []byte{9})) }, "internal broker error"},
		{"an undecodable REVOKE", func(h *harness) { h.toChild(ipc.AppendRecord(nil, ipc.KindRevoke, []byte{9})) }, "internal broker error"},
		{"an undecodable SYNCED", func(h *harness) { h.toChild(ipc.AppendRecord(nil, ipc.KindSynced, []byte{0x80})) }, "internal broker error"},
		{"bytes that are not records", func(h *harness) { h.rawToChild([]byte{'B', byte(ipc.KindDeliver)}) }, "internal broker error"},
		{"SIGTERM", func(h *harness) { h.term <- syscall.SIGTERM }, "disconnected by operator"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, testConfig())
			h.connect("1.2")
			tc.do(h)
			h.expectError(tc.wantMsg)
			if got := h.recordsUntilEOF(); len(got) != 0 {
				t.Errorf("parent got %v", got)
			}
		})
	}
}

// TestHeartBeats: the session sends heart-beats when the client asks for
// them, and closes a client that sends nothing within the negotiated
// window.
func TestHeartBeats(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		cfg := testConfig()
		cfg.HeartBeat = 50 * time.Millisecond
		h := start(t, cfg)
		h.send(frame.CONNECT, "", frame.AcceptVersion, "1.2", frame.HeartBeat, "0,50")
		h.expectFrame(frame.CONNECTED)
		timeout := time.After(wait)
		for beats := 0; beats < 3; {
			select {
			case f := <-h.frames:
				if f != nil {
					t.Fatalf("client got %s, want heart-beats", f.Command)
				}
				beats++
			case <-timeout:
				t.Fatalf("no heart-beats within %v (every 50ms asked)", wait)
			}
		}
	})
	t.Run("client silent", func(t *testing.T) {
		cfg := testConfig()
		cfg.HeartBeat = 50 * time.Millisecond
		h := start(t, cfg)
		h.send(frame.CONNECT, "", frame.AcceptVersion, "1.2", frame.HeartBeat, "50,0")
		h.expectFrame(frame.CONNECTED)
		h.expectError("heart-beat timeout")
	})
	// The client gets the interval it asks for, not --heart-beat's.
	asked := []struct {
		name     string
		header   string        // the client's heart-beat header
		interval time.Duration // how often the session must beat
	}{
		{"asks for 100ms", "0,100", 100 * time.Millisecond},
		{"asks for 250ms and promises nothing", "0,250", 250 * time.Millisecond},
		{"asks below the floor, gets the floor", "0,10", 60 * time.Millisecond},
	}
	for _, tc := range asked {
		t.Run("sent as asked/"+tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.HeartBeat, cfg.HeartBeatMin = 10*time.Second, 60*time.Millisecond
			h := start(t, cfg)
			h.send(frame.CONNECT, "", frame.AcceptVersion, "1.2", frame.HeartBeat, tc.header)
			h.expectFrame(frame.CONNECTED)
			// Count beats over 12 intervals: with --heart-beat's 10s
			// there would be none. The bounds are loose (a loaded
			// machine delays timers), the upper one counts the tenth
			// of the interval the session beats early.
			const n = 12
			beats, window := 0, time.After(n*tc.interval)
		count:
			for {
				select {
				case f, ok := <-h.frames:
					if !ok || f != nil {
						t.Fatalf("client got %v, want heart-beats", f)
					}
					beats++
				case <-window:
					break count
				}
			}
			if most := n*10/9 + 2; beats < n/4 || beats > most {
				t.Errorf("%d beats in %v, want about %d (at least %d, at most %d)", beats, n*tc.interval, n, n/4, most)
			}
		})
	}
	t.Run("silent client closed after the promised interval", func(t *testing.T) {
		const promised = 100 * time.Millisecond
		cfg := testConfig()
		cfg.HeartBeat, cfg.HeartBeatMin = 10*time.Second, 50*time.Millisecond
		h := start(t, cfg)
		h.send(frame.CONNECT, "", frame.AcceptVersion, "1.2", frame.HeartBeat, "100,0")
		begin := time.Now()
		h.expectFrame(frame.CONNECTED)
		e := h.expectError("heart-beat timeout: no data from the client within 1.2s")
		// 2×100ms+1s after CONNECT; --heart-beat's 10s would give 21s,
		// past expectError's patience.
		if took, grace := time.Since(begin), heartBeatGrace(promised); took < grace/2 || took > grace+5*time.Second {
			t.Errorf("closed after %v, want about %v", took, grace)
		}
		if body := string(e.Body); !strings.Contains(body, "at least every 100ms") {
			t.Errorf("ERROR body %q does not name the negotiated interval", body)
		}
	})
	t.Run("client beats keep it alive", func(t *testing.T) {
		cfg := testConfig()
		cfg.HeartBeat = 50 * time.Millisecond
		h := start(t, cfg)
		h.send(frame.CONNECT, "", frame.AcceptVersion, "1.2", frame.HeartBeat, "50,0")
		h.expectFrame(frame.CONNECTED)
		// The window is 2×50ms + 1s; beat for longer than that.
		for range 15 {
			h.sendRaw("\n")
			time.Sleep(100 * time.Millisecond)
		}
		h.send(frame.SEND, "", frame.Destination, "/queue/a", frame.Receipt, "alive")
		h.expectRecords("HELLO 1.2", "FRAME SEND /queue/a", "SYNC")
	})
}

// TestHeartBeatNegotiation: CONNECTED's heart-beat offers what the client
// asked for, bounded by --heart-beat-min below and --heart-beat above, and
// the intervals follow the spec's max(sender's offer, receiver's wish).
func TestHeartBeatNegotiation(t *testing.T) {
	const ms = time.Millisecond
	cases := []struct {
		name         string
		upper, floor time.Duration // --heart-beat, --heart-beat-min
		header       string        // the client's heart-beat ("" = none)
		want         string        // CONNECTED's heart-beat
		send, expect time.Duration // negotiated intervals (0 = none)
	}{
		{"asks nothing", 10000 * ms, 100 * ms, "0,0", "10000,10000", 0, 0},
		{"no header", 10000 * ms, 100 * ms, "", "10000,10000", 0, 0},
		{"malformed", 10000 * ms, 100 * ms, "soon", "10000,10000", 0, 0},
		{"asks to hear every 500ms", 10000 * ms, 100 * ms, "0,500", "500,10000", 500 * ms, 0},
		{"promises 500ms", 10000 * ms, 100 * ms, "500,0", "10000,500", 0, 500 * ms},
		{"both ways", 10000 * ms, 100 * ms, "300,700", "700,300", 700 * ms, 300 * ms},
		{"below the floor", 10000 * ms, 100 * ms, "20,50", "100,100", 100 * ms, 100 * ms},
		{"at the floor", 10000 * ms, 100 * ms, "100,100", "100,100", 100 * ms, 100 * ms},
		{"above --heart-beat gets what it asked", 10000 * ms, 100 * ms, "30000,60000", "10000,10000", 60000 * ms, 30000 * ms},
		{"--heart-beat 0 turns it off", 0, 100 * ms, "500,500", "0,0", 0, 0},
		{"a floor above --heart-beat is --heart-beat", 50 * ms, 100 * ms, "20,0", "50,50", 0, 50 * ms},
		{"no floor", 10000 * ms, 0, "0,1", "1,10000", 1 * ms, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cx, cy := parseHeartBeat(tc.header)
			hb := negotiateHeartBeat(cx, cy, tc.upper, tc.floor)
			if hb.send != tc.send || hb.expect != tc.expect {
				t.Errorf("send %v expect %v, want %v and %v", hb.send, hb.expect, tc.send, tc.expect)
			}
			// And what a session puts in CONNECTED.
			cfg := testConfig()
			cfg.HeartBeat, cfg.HeartBeatMin = tc.upper, tc.floor
			h := start(t, cfg)
			kv := []string{frame.AcceptVersion, "1.2"}
			if tc.header != "" {
				kv = append(kv, frame.HeartBeat, tc.header)
			}
			h.send(frame.CONNECT, "", kv...)
			if got := h.expectFrame(frame.CONNECTED).Header.Get(frame.HeartBeat); got != tc.want {
				t.Errorf("CONNECTED heart-beat:%s, want %s", got, tc.want)
			}
		})
	}
}

// TestDisconnectEndsDurableSubscriptionsFirst: the parent hears that a
// durable subscription lost its subscriber before the DISCONNECT's sync, so
// a client that reconnects on the RECEIPT finds the subscription free
// (before, it raced the parent's notice of the child's exit and was
// refused as a second subscriber).
func TestDisconnectEndsDurableSubscriptionsFirst(t *testing.T) {
	h := start(t, testConfig())
	h.connect("1.2")
	h.send(frame.SUBSCRIBE, "", frame.Destination, "/topic/news", frame.Id, "d1",
		"durable", "true", "auto-delete", "false")
	h.expectRecords("FRAME SUBSCRIBE /queue/durable-subscription/d1")
	h.send(frame.DISCONNECT, "", frame.Receipt, "bye")
	h.expectRecords("FRAME UNSUBSCRIBE /queue/durable-subscription/d1")
	h.answerSync(0)
	if got := h.expectFrame(frame.RECEIPT).Header.Get(frame.ReceiptId); got != "bye" {
		t.Errorf("RECEIPT for %q, want bye", got)
	}
	h.expectClientEOF()
}

// TestAutoAcksAreHeldBack: the ACK of a written auto-mode message does not
// wake the parent on its own; it leads the next record the child sends
// anyway, goes at once when a subscription has half its prefetch held
// back, and otherwise after autoAckHold. Before, each went in a batch of
// its own as soon as the MESSAGE was written.
func TestAutoAcksAreHeldBack(t *testing.T) {
	cfg := testConfig()
	cfg.Slots = 2

	t.Run("it rides with the next CLAIM", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		key := grantQueue(h, 1, frame.Ack, "auto", stompwire.HeaderPrefetchCount, "8")
		offer(h, 2, 1, 1)
		recs := h.expectRecords("ACK m-1", "CLAIM slot 2 gen 1 sub "+key+" m-1 x1")
		if recs[0].batch != recs[1].batch {
			t.Fatalf("the ACK came in batch %d, the CLAIM in batch %d: want one batch", recs[0].batch, recs[1].batch)
		}
	})

	t.Run("it leads an UNSUBSCRIBE", func(t *testing.T) {
		h := start(t, cfg)
		h.connect("1.2")
		grantQueue(h, 1, frame.Ack, "auto", stompwire.HeaderPrefetchCount, "8")
		h.send(frame.UNSUBSCRIBE, "", frame.Id, "s")
		h.expectRecords("ACK m-1", "FRAME UNSUBSCRIBE /queue/a")
	})

	t.Run("half the prefetch goes at once, and a lone ACK after the hold", func(t *testing.T) {
		for _, prefetch := range []string{"2", "8"} {
			h := start(t, cfg)
			h.connect("1.2")
			grantQueue(h, 1, frame.Ack, "auto", stompwire.HeaderPrefetchCount, prefetch)
			h.expectRecords("ACK m-1")
		}
	})
}
