package parent

import (
	"time"

	"github.com/stomp-broker/stomp-broker/ledger"
)

// ledgerHost is the broker as the queue ledger sees it (ledger.Host). Its
// methods run on the event loop, called by the ledger; every consumer the
// ledger hands back is a *childProc the event loop gave it.
type ledgerHost struct{ b *Broker }

var _ ledger.Host = ledgerHost{}

func (h ledgerHost) Send(c ledger.Consumer, records []byte, messages int) {
	cp := c.(*childProc)
	cp.messagesOut += uint64(messages)
	h.b.send(cp, records)
}

func (h ledgerHost) TellToClose(c ledger.Consumer, reason string) {
	h.b.tellToClose(c.(*childProc), reason)
}

func (h ledgerHost) NextMessage() uint64 {
	h.b.nextMsg++
	return h.b.nextMsg
}

func (h ledgerHost) Async(work func() (apply func())) { h.b.async(work) }

func (h ledgerHost) StoreCommitted(took time.Duration, err error) { h.b.storeCommitted(took, err) }

func (h ledgerHost) Fatal(err error) { h.b.fatal(err) }
