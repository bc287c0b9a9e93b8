package store_test

import (
	"errors"
	"testing"

	"github.com/stomp-broker/stomp-broker/store"
)

// TestMemoryBudget: the memory store refuses a Put that would take the
// stored Headers+Body bytes past its budget, stores nothing of it, and takes
// messages again once acks free room. Coalesced messages take no room.
func TestMemoryBudget(t *testing.T) {
	s := store.NewMemory(100)
	defer s.Close()
	ctx := testContext(t)
	q := "/queue/budget"
	blob := func(n int) []byte { return make([]byte, n) }

	first := &store.Message{Queue: q, Headers: blob(10), Body: blob(50), UniqKey: "k"} // 60
	steps := []struct {
		name    string
		msgs    []*store.Message
		wantErr error
	}{
		{"fits", []*store.Message{first}, nil},
		{"over budget", []*store.Message{{Queue: q, Body: blob(41)}}, store.ErrFull},
		{"partly over: all refused", []*store.Message{{Queue: q, Body: blob(10)}, {Queue: q, Body: blob(40)}}, store.ErrFull},
		{"coalesced takes no room", []*store.Message{{Queue: q, Body: blob(90), UniqKey: "k"}}, nil},
		{"exactly full", []*store.Message{{Queue: q, Headers: blob(20), Body: blob(20)}}, nil},
		{"one byte more", []*store.Message{{Queue: q, Body: blob(1)}}, store.ErrFull},
	}
	for _, st := range steps {
		_, err := s.Put(ctx, st.msgs)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: Put error %v, want %v", st.name, err, st.wantErr)
		}
	}
	if got := statsFor(t, s, q).Stored; got != 2 {
		t.Fatalf("stored %d, want 2 (refused Puts must store nothing)", got)
	}
	if err := s.Ack(ctx, []int64{first.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, []*store.Message{{Queue: q, Body: blob(60)}}); err != nil {
		t.Fatalf("Put after Ack freed room: %v", err)
	}
}
