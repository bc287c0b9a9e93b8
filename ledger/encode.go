package ledger

import (
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// skipOnMessage lists SEND headers that must not be copied to MESSAGE: the
// broker sets them itself, or they only concern the SEND.
var skipOnMessage = map[string]bool{
	frame.Destination: true, frame.MessageId: true, frame.Subscription: true,
	frame.Ack: true, frame.ContentLength: true, frame.Receipt: true,
	frame.Transaction: true, stompwire.HeaderRedelivered: true,
}

// EncodeMessage appends the MESSAGE frame for a SEND in STOMP 1.2 wire
// form, without subscription and ack headers (the child adds them). The
// broker's own headers come first, so they win over same-named user
// headers. deliveries > 1 marks a redelivery. The parent's topic routing
// uses it too (deliveries 0: no delivery-count header).
func EncodeMessage(dst []byte, dest, id string, send *frame.Frame, redelivered bool, deliveries int) []byte {
	m := frame.New(frame.MESSAGE, frame.Destination, dest, frame.MessageId, id)
	if redelivered {
		m.Header.Add(stompwire.HeaderRedelivered, "true")
	}
	if deliveries > 0 {
		m.Header.Add(stompwire.HeaderDeliveryCount, strconv.Itoa(deliveries))
	}
	for i := 0; i < send.Header.Len(); i++ {
		k, v := send.Header.GetAt(i)
		if !skipOnMessage[k] {
			m.Header.Add(k, v)
		}
	}
	m.Header.Add(frame.ContentLength, strconv.Itoa(len(send.Body)))
	m.Body = send.Body
	return stompwire.AppendFrame(dst, m, stompwire.V12)
}
