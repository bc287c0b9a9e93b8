package parent

import (
	"bytes"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/ipc"
)

// TestOutboxFlushKeepsOrder pushes and flushes (as the event loop does)
// far more than the socket holds while the writer goroutine runs: what the
// socket does not take at once must reach the child through the writer,
// and everything must arrive once, in push order.
func TestOutboxFlushKeepsOrder(t *testing.T) {
	parentEnd, childFile, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer parentEnd.Close()
	child, err := ipc.FileConn(childFile)
	childFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()

	o := newOutbox(1 << 30)
	done := make(chan struct{})
	go func() { o.run(parentEnd); close(done) }()
	var want []byte
	for i := range 400 {
		rec := ipc.AppendText(nil, ipc.KindAck, string(bytes.Repeat([]byte{byte('a' + i%26)}, 3000+i)))
		want = append(want, rec...)
		if !o.push(rec) {
			t.Fatal("push refused under a huge limit")
		}
		if i%7 == 0 {
			o.flush(parentEnd)
		}
	}
	o.flush(parentEnd)
	o.close()

	// Read in a goroutine so that lost records fail the test at the
	// deadline (closing the child's end ends a blocked ReadBatch) instead
	// of hanging it.
	type result struct {
		got []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		var got []byte
		for len(got) < len(want) {
			b, err := child.ReadBatch()
			if err != nil {
				read <- result{got, err}
				return
			}
			got = append(got, b...)
		}
		read <- result{got, nil}
	}()
	var r result
	select {
	case r = <-read:
	case <-time.After(10 * time.Second):
		child.Close()
		r = <-read
		t.Fatalf("child read %d of %d bytes in 10s: records were lost (%v)", len(r.got), len(want), r.err)
	}
	if r.err != nil {
		t.Fatalf("ReadBatch after %d of %d bytes: %v", len(r.got), len(want), r.err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer goroutine did not exit after close")
	}
	if !bytes.Equal(r.got, want) {
		t.Errorf("child read %d bytes that differ from the %d pushed", len(r.got), len(want))
	}
}
