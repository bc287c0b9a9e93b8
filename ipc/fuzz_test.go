package ipc

import (
	"bytes"
	"errors"
	"testing"
)

// The parent must survive any bytes a child sends (and a child any bytes
// from a broken parent), so every decoder is fuzzed: it must return an
// error wrapping ErrMalformed, never panic, and whatever it accepts must
// survive a round trip through its encoder unchanged.
//
// Run one for a while with, e.g.:
//
//	go test ./ipc -run XXX -fuzz FuzzDecodeClaim -fuzztime 60s

// realMessage is a MESSAGE as the parent encodes it (STOMP 1.2, without
// subscription and ack headers).
const realMessage = "MESSAGE\ndestination:/queue/jobs\nmessage-id:dn5xyidg91fo-1\nredelivered:true\ncontent-length:5\n\nhello\x00"

// realRecords returns one record of every kind, as the broker writes them.
func realRecords() [][]byte {
	return [][]byte{
		AppendHello(nil, SessionInfo{Addr: "127.0.0.1:40001", Login: "guest", Version: "1.2"}),
		AppendRecord(nil, KindFrame, []byte("SEND\ndestination:/queue/jobs\ncontent-length:2\n\nhi\x00")),
		AppendToken(nil, KindSync, 1),
		AppendClaim(nil, Claim{Slot: 1, Gen: 1, SubID: "1", MessageID: "dn5xyidg91fo-1", Count: 64}),
		AppendText(nil, KindAck, "dn5xyidg91fo-1"),
		AppendText(nil, KindNack, "dn5xyidg91fo-2"),
		AppendMessage(nil, KindDeliver, "/topic/news", "dn5xyidg91fo-3", []byte(realMessage)),
		AppendOffer(nil, Offer{Slot: 3, Gen: 1 << 33, Destination: "/queue/jobs", MessageID: "dn5xyidg91fo-1", Count: 7}),
		AppendMessage(nil, KindGrant, "2", "dn5xyidg91fo-1", []byte(realMessage)),
		AppendDeny(nil, "2", "dn5xyidg91fo-1", 12),
		AppendSynced(nil, 9, SyncedCoalesced),
		AppendText(nil, KindShutdown, "broker shutting down"),
		AppendRevoke(nil, "2", "dn5xyidg91fo-1"),
	}
}

// bodyOf returns the body of the first record of kind k in realRecords.
func bodyOf(k Kind) []byte {
	for _, r := range realRecords() {
		if Kind(r[0]) == k {
			_, body, _, err := NextRecord(r)
			if err != nil {
				panic(err)
			}
			return body
		}
	}
	panic("no record of kind " + k.String())
}

// addBodySeeds seeds f with the real bodies of kinds ks and a few damaged
// copies of them (cut short, one byte more).
func addBodySeeds(f *testing.F, ks ...Kind) {
	f.Add([]byte{})
	for _, k := range ks {
		b := bodyOf(k)
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(append([]byte(nil), b...), 0x80))
	}
}

// mustBeMalformed fails unless err is nil or wraps ErrMalformed.
func mustBeMalformed(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
}

// FuzzNextRecord splits arbitrary bytes into records the way both sides
// read a batch.
func FuzzNextRecord(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(bytes.Join(realRecords(), nil))
	for _, r := range realRecords() {
		f.Add(r)
		f.Add(r[:len(r)-1])
	}
	f.Fuzz(func(t *testing.T, batch []byte) {
		rest := batch
		for len(rest) > 0 {
			k, body, r, err := NextRecord(rest)
			if err != nil {
				mustBeMalformed(t, err)
				return
			}
			if len(r) >= len(rest) {
				t.Fatalf("NextRecord consumed nothing of %d bytes", len(rest))
			}
			// The record re-encodes to one that splits the same way.
			k2, body2, rest2, err := NextRecord(AppendRecord(nil, k, body))
			if err != nil || k2 != k || !bytes.Equal(body2, body) || len(rest2) != 0 {
				t.Fatalf("re-encoded %s record: %v %q %q %v", k, k2, body2, rest2, err)
			}
			rest = r
		}
	})
}

func FuzzDecodeClaim(f *testing.F) {
	addBodySeeds(f, KindClaim)
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeClaim(body)
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		_, b, _, _ := NextRecord(AppendClaim(nil, c))
		if c2, err := DecodeClaim(b); err != nil || c2 != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, c2, err)
		}
	})
}

func FuzzDecodeOffer(f *testing.F) {
	addBodySeeds(f, KindOffer)
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := DecodeOffer(body)
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		if o.Count < 1 {
			t.Fatalf("decoded offer count %d, want at least 1", o.Count)
		}
		_, b, _, _ := NextRecord(AppendOffer(nil, o))
		if o2, err := DecodeOffer(b); err != nil || o2 != o {
			t.Fatalf("round trip of %+v: %+v, %v", o, o2, err)
		}
	})
}

// FuzzDecodeMessage covers DELIVER and GRANT bodies.
func FuzzDecodeMessage(f *testing.F) {
	addBodySeeds(f, KindDeliver, KindGrant)
	f.Fuzz(func(t *testing.T, body []byte) {
		key, id, enc, err := DecodeMessage(body)
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		_, b, _, _ := NextRecord(AppendMessage(nil, KindGrant, key, id, enc))
		key2, id2, enc2, err := DecodeMessage(b)
		if err != nil || key2 != key || id2 != id || !bytes.Equal(enc2, enc) {
			t.Fatalf("round trip of %q %q %q: %q %q %q, %v", key, id, enc, key2, id2, enc2, err)
		}
	})
}

// FuzzDecodeDeny covers DENY and REVOKE bodies, through both decoders.
func FuzzDecodeDeny(f *testing.F) {
	addBodySeeds(f, KindDeny, KindRevoke)
	f.Fuzz(func(t *testing.T, body []byte) {
		key, id, n, err := DecodeDenyCount(body)
		key1, id1, err1 := DecodeDeny(body)
		if (err == nil) != (err1 == nil) || key1 != key || id1 != id {
			t.Fatalf("DecodeDeny and DecodeDenyCount disagree: %q %q %v / %q %q %v", key1, id1, err1, key, id, err)
		}
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		if n < 1 {
			t.Fatalf("decoded count %d, want at least 1", n)
		}
		_, b, _, _ := NextRecord(AppendDeny(nil, key, id, n))
		key2, id2, n2, err := DecodeDenyCount(b)
		if err != nil || key2 != key || id2 != id || n2 != n {
			t.Fatalf("round trip of %q %q %d: %q %q %d, %v", key, id, n, key2, id2, n2, err)
		}
	})
}

func FuzzDecodeSynced(f *testing.F) {
	addBodySeeds(f, KindSynced)
	f.Fuzz(func(t *testing.T, body []byte) {
		token, flags, err := DecodeSynced(body)
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		_, b, _, _ := NextRecord(AppendSynced(nil, token, flags))
		if t2, f2, err := DecodeSynced(b); err != nil || t2 != token || f2 != flags {
			t.Fatalf("round trip of %d %d: %d %d, %v", token, flags, t2, f2, err)
		}
	})
}

func FuzzDecodeToken(f *testing.F) {
	addBodySeeds(f, KindSync)
	f.Fuzz(func(t *testing.T, body []byte) {
		token, err := DecodeToken(body)
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		_, b, _, _ := NextRecord(AppendToken(nil, KindSync, token))
		if t2, err := DecodeToken(b); err != nil || t2 != token {
			t.Fatalf("round trip of %d: %d, %v", token, t2, err)
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	addBodySeeds(f, KindHello)
	f.Add([]byte(`{"addr":"\ud800","login":null,"version":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := DecodeHello(body)
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		_, b, _, _ := NextRecord(AppendHello(nil, info))
		if info2, err := DecodeHello(b); err != nil || info2 != info {
			t.Fatalf("round trip of %+v: %+v, %v", info, info2, err)
		}
	})
}

// FuzzPackets feeds a sequence of packets to the reader's packet handling
// (what ReadBatch does with each packet it receives) and checks it against
// a model of the rules: a 'B' packet is a batch unless a fragmented record
// is open; 'M' fragments and the 'E' that ends them reassemble to their
// concatenation, up to MaxRecord bytes; anything else is an error.
//
// The input is cut into packets by length bytes: each packet is a length
// byte n, then up to n+1 bytes.
func FuzzPackets(f *testing.F) {
	packets := func(pkts ...[]byte) []byte {
		var b []byte
		for _, p := range pkts {
			b = append(append(b, byte(len(p)-1)), p...)
		}
		return b
	}
	ack := AppendText(nil, KindAck, "m-1")
	f.Add(packets(append([]byte{'B'}, ack...)))
	f.Add(packets(append([]byte{'M'}, ack[:3]...), append([]byte{'E'}, ack[3:]...)))
	f.Add(packets(append([]byte{'M'}, ack[:3]...), append([]byte{'B'}, ack...)))
	f.Add(packets([]byte("Zjunk"), []byte("E")))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxRecord = 300
		c := &Conn{MaxRecord: maxRecord}
		var model []byte // the fragments of the open record, as the rules say
		for len(data) > 0 {
			n := min(int(data[0])+1, len(data)-1)
			pkt := data[1 : 1+n]
			data = data[1+n:]
			if len(pkt) == 0 {
				continue // ReadBatch never passes an empty packet
			}
			batch, done, err := c.takePacket(pkt)
			var want []byte
			var wantDone bool
			var wantErr error
			switch pkt[0] {
			case flagBatch:
				if len(model) > 0 {
					wantErr = ErrMalformed
				} else {
					want, wantDone = pkt[1:], true
				}
			case flagMore, flagMoreLast:
				if len(model)+len(pkt)-1 > maxRecord {
					wantErr = ErrTooLarge
				} else {
					model = append(model, pkt[1:]...)
					if pkt[0] == flagMoreLast {
						want, wantDone = model, true
					}
				}
			default:
				wantErr = ErrMalformed
			}
			if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) || done != wantDone || !bytes.Equal(batch, want) {
				t.Fatalf("packet %q: got %q, %v, %v; want %q, %v, %v", pkt, batch, done, err, want, wantDone, wantErr)
			}
			if done || err != nil {
				// ReadBatch starts the next batch afresh.
				c.frag, model = c.frag[:0], nil
			}
		}
	})
}
