package ipc

import (
	"errors"
	"testing"
)

func TestOfferClaimRoundTrip(t *testing.T) {
	offers := []struct {
		in        Offer
		wantCount int
	}{
		{Offer{Slot: 1, Gen: 7, Destination: "/queue/a", MessageID: "m-1", Count: 64}, 64},
		{Offer{Slot: 255, Gen: 1 << 40, Destination: "/queue/b", MessageID: "", Count: 1}, 1},
		{Offer{Slot: 3, Gen: 2, Destination: "/queue/c", MessageID: "m-2"}, 1}, // 0 is sent as 1
	}
	for _, tc := range offers {
		k, body, rest, err := NextRecord(AppendOffer(nil, tc.in))
		if err != nil || k != KindOffer || len(rest) != 0 {
			t.Fatalf("%+v: record %v %v", tc.in, k, err)
		}
		got, err := DecodeOffer(body)
		want := tc.in
		want.Count = tc.wantCount
		if err != nil || got != want {
			t.Fatalf("offer round trip: got %+v, %v; want %+v", got, err, want)
		}
	}
	for _, in := range []Claim{
		{Slot: 9, Gen: 3, SubID: "s1", MessageID: "m-5", Count: 32},
		{Slot: 1, Gen: 1, SubID: "", MessageID: "m", Count: 0},
	} {
		_, body, _, _ := NextRecord(AppendClaim(nil, in))
		got, err := DecodeClaim(body)
		if err != nil || got != in {
			t.Fatalf("claim round trip: got %+v, %v; want %+v", got, err, in)
		}
	}
}

func TestDenyAndRevokeCounts(t *testing.T) {
	cases := []struct {
		name string
		rec  []byte
		kind Kind
		want int
	}{
		{"deny of a whole claim", AppendDeny(nil, "k", "m-1", 12), KindDeny, 12},
		{"deny count 0 means 1", AppendDeny(nil, "k", "m-1", 0), KindDeny, 1},
		{"revoke is one message", AppendRevoke(nil, "k", "m-1"), KindRevoke, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, body, _, err := NextRecord(tc.rec)
			if err != nil || k != tc.kind {
				t.Fatalf("record %v %v", k, err)
			}
			key, id, n, err := DecodeDenyCount(body)
			if err != nil || key != "k" || id != "m-1" || n != tc.want {
				t.Fatalf("got %q %q %d %v, want k m-1 %d", key, id, n, err, tc.want)
			}
			if key2, id2, err := DecodeDeny(body); err != nil || key2 != key || id2 != id {
				t.Fatalf("DecodeDeny: %q %q %v", key2, id2, err)
			}
		})
	}
}

func TestDecodersRejectMalformedBodies(t *testing.T) {
	huge := AppendUint(nil, 1<<40)
	cases := []struct {
		name   string
		decode func() error
	}{
		{"offer cut short", func() error { _, err := DecodeOffer([]byte{1, 2}); return err }},
		{"offer count out of range", func() error {
			b := AppendString(AppendString(AppendUint(AppendUint(nil, 1), 1), "/q"), "m")
			_, err := DecodeOffer(append(b, huge...))
			return err
		}},
		{"claim with trailing bytes", func() error {
			_, body, _, _ := NextRecord(AppendClaim(nil, Claim{Slot: 1, Gen: 1, SubID: "s", MessageID: "m", Count: 1}))
			_, err := DecodeClaim(append(append([]byte(nil), body...), 0))
			return err
		}},
		{"deny with a bad count", func() error {
			_, _, _, err := DecodeDenyCount(append(AppendString(AppendString(nil, "k"), "m"), 0x80))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.decode(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
		})
	}
}
