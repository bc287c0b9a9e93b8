package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// hostileCase is one malformed or disallowed input. The client connects
// with version (unless it is "none": the input comes before CONNECT),
// writes input, and must get one ERROR whose message contains msg and
// whose receipt-id is receipt ("" = absent), then the end of the
// connection; clients connected before it must not notice.
type hostileCase struct {
	name    string
	version string // "1.0" (no accept-version), "1.1", "1.2" or "none"
	input   string
	msg     string
	receipt string
}

var hostileCases = []hostileCase{
	// Before CONNECT (CVE-2023-32081 is a broker that served SEND here).
	{"SEND before CONNECT", "none", "SEND\ndestination:/topic/x\nreceipt:r0\n\nsneaky\x00", "expected CONNECT or STOMP frame", "r0"},
	{"SUBSCRIBE before CONNECT", "none", "SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\x00", "expected CONNECT or STOMP frame", ""},
	{"DISCONNECT before CONNECT", "none", "DISCONNECT\nreceipt:bye\n\n\x00", "expected CONNECT or STOMP frame", "bye"},
	{"binary garbage", "none", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe", "unknown command", ""},
	{"HTTP request", "none", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "unknown command", ""},
	{"NUL bytes", "none", "\x00\x00\x00\x00", "unknown command", ""},
	{"lower-case connect", "none", "connect\naccept-version:1.2\n\n\x00", "unknown command", ""},
	{"CONNECT header without colon", "none", "CONNECT\naccept-version:1.2\nbogus\n\n\x00", "header line without ':'", ""},

	// The grammar, after CONNECT.
	{"unknown command", "1.2", "FROB\nreceipt:r1\n\n\x00", "unknown command", ""},
	{"lower-case command", "1.2", "send\ndestination:/topic/x\n\n\x00", "unknown command", ""},
	{"command with trailing space", "1.2", "SEND \ndestination:/topic/x\n\n\x00", "unknown command", ""},
	{"header line without colon", "1.2", "SEND\ndestination:/topic/x\nreceipt:r2\nno colon here\n\nbody\x00", "header line without ':'", "r2"},
	{"empty header name", "1.2", "SEND\n:value\ndestination:/topic/x\n\n\x00", "empty header name", ""},
	{"NUL inside the headers", "1.2", "SEND\ndestination:/topic/x\x00\n\n\x00", "NUL inside the headers", ""},
	{"content-length too short", "1.2", "SEND\ndestination:/topic/x\nreceipt:r3\ncontent-length:2\n\nabc\x00", "content-length", "r3"},
	{"content-length too long", "1.2", "SEND\ndestination:/topic/x\nreceipt:r4\ncontent-length:9\n\nabc\x00\x00\x00\x00\x00\x00x", "content-length", "r4"},
	{"content-length not a number", "1.2", "SEND\ndestination:/topic/x\ncontent-length:12abc\n\nabc\x00", "content-length", ""},
	{"content-length negative", "1.2", "SEND\ndestination:/topic/x\ncontent-length:-1\n\n\x00", "content-length", ""},
	{"undefined escape in 1.2", "1.2", "SEND\ndestination:/topic/x\nreceipt:r5\nx:tab\\there\n\n\x00", "invalid escape", "r5"},
	{"lone backslash in 1.2", "1.2", "SEND\ndestination:/topic/x\nx:oops\\\n\n\x00", "lone backslash", ""},
	{"destination not UTF-8", "1.2", "SEND\nreceipt:u1\ndestination:/queue/\xff\xfe\n\nboom\x00", `header "destination" is not valid UTF-8`, "u1"},
	{"topic destination not UTF-8", "1.2", "SEND\ndestination:/topic/\xc3\n\n\x00", `header "destination" is not valid UTF-8`, ""},
	{"user header not UTF-8", "1.2", "SEND\ndestination:/topic/x\nreceipt:u2\nx-note:caf\xe9\n\n\x00", `header "x-note" is not valid UTF-8`, "u2"},
	{"header name not UTF-8", "1.2", "SEND\ndestination:/topic/x\nreceipt:u3\n\xff\xfe:v\n\n\x00", `header name "\xff\xfe" is not valid UTF-8`, "u3"},
	{"receipt not UTF-8", "1.2", "SEND\ndestination:/topic/x\nreceipt:\xff\n\n\x00", `header "receipt" is not valid UTF-8`, ""},
	{"subscription id not UTF-8", "1.1", "SUBSCRIBE\ndestination:/queue/x\nid:\x80\nreceipt:u4\n\n\x00", `header "id" is not valid UTF-8`, ""},
	{"1.0 destination not UTF-8", "1.0", "SEND\nreceipt:u5\ndestination:/queue/\xfe\n\n\x00", `header "destination" is not valid UTF-8`, "u5"},
	{"CONNECT login not UTF-8", "none", "CONNECT\naccept-version:1.2\nlogin:\xff\n\n\x00", `header "login" is not valid UTF-8`, ""},
	{"\\r escape in 1.1", "1.1", "SEND\ndestination:/topic/x\nreceipt:r6\nx:a\\rb\n\n\x00", "invalid escape", "r6"},
	{"undefined escape in 1.1", "1.1", "SEND\ndestination:/topic/x\nx:\\t\n\n\x00", "invalid escape", ""},
	{"CR LF line ends in 1.1", "1.1", "SEND\r\ndestination:/topic/x\r\n\r\n\x00", "CR LF line ends need STOMP 1.2", ""},
	{"CR LF line ends in 1.0", "1.0", "SEND\r\ndestination:/topic/x\r\n\r\n\x00", "CR LF line ends need STOMP 1.2", ""},

	// Frames the grammar allows but the session refuses.
	{"SEND without destination", "1.2", "SEND\nreceipt:r7\n\nlost\x00", "missing destination", "r7"},
	{"SEND to an empty destination", "1.2", "SEND\ndestination:\nreceipt:r8\n\n\x00", "missing destination", "r8"},
	{"SEND to an unknown destination kind", "1.2", "SEND\ndestination:/exchange/x\nreceipt:r9\n\n\x00", "unknown destination", "r9"},
	{"SEND to a bare prefix", "1.2", "SEND\ndestination:/queue/\n\n\x00", "unknown destination", ""},
	{"SUBSCRIBE without destination", "1.2", "SUBSCRIBE\nid:1\nreceipt:r10\n\n\x00", "missing destination", "r10"},
	{"SUBSCRIBE without id in 1.2", "1.2", "SUBSCRIBE\ndestination:/topic/x\nreceipt:r11\n\n\x00", "SUBSCRIBE without id", "r11"},
	{"SUBSCRIBE without id in 1.1", "1.1", "SUBSCRIBE\ndestination:/topic/x\nreceipt:r12\n\n\x00", "SUBSCRIBE without id", "r12"},
	{"duplicate subscription id", "1.2", "SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/y\nreceipt:r13\n\n\x00", "already in use", "r13"},
	{"unknown ack mode", "1.2", "SUBSCRIBE\nid:1\ndestination:/topic/x\nack:sometimes\nreceipt:r14\n\n\x00", "unknown ack mode", "r14"},
	{"UNSUBSCRIBE without id", "1.2", "UNSUBSCRIBE\nreceipt:r15\n\n\x00", "UNSUBSCRIBE without id", "r15"},
	{"UNSUBSCRIBE unknown id", "1.2", "UNSUBSCRIBE\nid:nope\nreceipt:r16\n\n\x00", "no subscription with id", "r16"},
	{"ACK without id", "1.2", "ACK\nreceipt:r17\n\n\x00", "ACK without id", "r17"},
	{"NACK without id", "1.2", "NACK\nreceipt:r18\n\n\x00", "NACK without id", "r18"},
	{"body on SUBSCRIBE", "1.2", "SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:r19\n\nbody\x00", "must not have a body", "r19"},
	{"body on ACK", "1.2", "ACK\nid:1\n\nbody\x00", "must not have a body", ""},
	{"body on DISCONNECT", "1.2", "DISCONNECT\nreceipt:r20\n\nbody\x00", "must not have a body", "r20"},
	{"second CONNECT", "1.2", "CONNECT\naccept-version:1.2\nhost:h\n\n\x00", "already connected", ""},
	{"second STOMP", "1.1", "STOMP\naccept-version:1.1\nhost:h\n\n\x00", "already connected", ""},
	{"server frame MESSAGE from a client", "1.2", "MESSAGE\ndestination:/topic/x\nmessage-id:1\nsubscription:1\nreceipt:r21\n\n\x00", "unsupported command MESSAGE", "r21"},
	{"server frame CONNECTED from a client", "1.2", "CONNECTED\nversion:1.2\n\n\x00", "unsupported command CONNECTED", ""},
	{"server frame RECEIPT from a client", "1.2", "RECEIPT\nreceipt-id:1\n\n\x00", "unsupported command RECEIPT", ""},
	{"server frame ERROR from a client", "1.2", "ERROR\nmessage:hi\n\n\x00", "unsupported command ERROR", ""},

	// Transactions.
	{"BEGIN without transaction", "1.2", "BEGIN\nreceipt:r22\n\n\x00", "BEGIN without transaction", "r22"},
	{"BEGIN twice", "1.2", "BEGIN\ntransaction:t\n\n\x00BEGIN\ntransaction:t\nreceipt:r23\n\n\x00", "already begun", "r23"},
	{"COMMIT of an unknown transaction", "1.2", "COMMIT\ntransaction:nope\nreceipt:r24\n\n\x00", "unknown transaction", "r24"},
	{"ABORT of an unknown transaction", "1.2", "ABORT\ntransaction:nope\nreceipt:r25\n\n\x00", "unknown transaction", "r25"},
	{"COMMIT without transaction", "1.2", "COMMIT\nreceipt:r26\n\n\x00", "unknown transaction", "r26"},
	{"SEND in an unknown transaction", "1.2", "SEND\ndestination:/topic/x\ntransaction:nope\nreceipt:r27\n\n\x00", "unknown transaction", "r27"},
	{"ACK in an unknown transaction", "1.2", "ACK\nid:1\ntransaction:nope\nreceipt:r28\n\n\x00", "unknown transaction", "r28"},
	{"COMMIT of an aborted transaction", "1.2", "BEGIN\ntransaction:t\n\n\x00ABORT\ntransaction:t\n\n\x00COMMIT\ntransaction:t\nreceipt:r29\n\n\x00", "unknown transaction", "r29"},

	// The same checks in 1.0, whose headers are raw.
	{"1.0 SEND without destination", "1.0", "SEND\nreceipt:r30\n\n\x00", "missing destination", "r30"},
	{"1.0 receipt with a colon", "1.0", "SEND\nreceipt:a:b\n\n\x00", "missing destination", "a:b"},
}

func TestProtocolHostileInput(t *testing.T) {
	b := brokertest.Start(t, "--heart-beat", "0")
	by := newBystander(t, b)
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			runHostile(t, b, tc)
			by.check(t)
		})
	}
	// Every hostile client's process is gone; only the bystanders remain.
	b.WaitChildren(t, 2, 5*time.Second)
}

// runHostile plays one hostileCase against b.
func runHostile(t *testing.T, b *brokertest.Broker, tc hostileCase) {
	t.Helper()
	p := newPeer(t, b, "hostile")
	switch tc.version {
	case "none":
	case "1.0":
		p.ConnectVersion("")
	default:
		p.ConnectVersion(tc.version)
	}
	p.Send(tc.input)
	f := p.ExpectError(tc.msg, tc.receipt)
	if strings.ContainsAny(f.Header.Get("message"), "\r\n\x00") {
		t.Errorf("ERROR message %q contains raw control characters", f.Header.Get("message"))
	}
}
