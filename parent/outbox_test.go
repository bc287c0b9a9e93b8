package parent

import (
	"bytes"
	"testing"

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
	var got []byte
	for len(got) < len(want) {
		b, err := child.ReadBatch()
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d bytes: %v", len(got), len(want), err)
		}
		got = append(got, b...)
	}
	<-done
	if !bytes.Equal(got, want) {
		t.Errorf("child read %d bytes that differ from the %d pushed", len(got), len(want))
	}
}
